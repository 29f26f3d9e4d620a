//! The unified contact: plain Rust, no HTTP (the provider id derives its GraphQL enum). Every provider adapter maps its
//! wire record into this shape; the GraphQL layer only exposes it.

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;
use std::str::FromStr;

/// Declares the provider ids: the enum (also GraphQL's `ProviderId`), `ALL`, and each one's
/// id in config files and global ids, and its product name.
macro_rules! provider_ids {
    ($($variant:ident $id:literal $name:literal;)*) => {
        /// The providers, in the order `contacts` walks them.
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
            async_graphql::Enum,
        )]
        #[serde(rename_all = "lowercase")]
        pub enum ProviderId {
            $($variant,)*
        }

        impl ProviderId {
            pub const ALL: [ProviderId; [$($id),*].len()] = [$(ProviderId::$variant),*];

            /// The id used in config files and global contact ids.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ProviderId::$variant => $id,)*
                }
            }

            /// The provider's product name, for humans.
            pub fn display_name(self) -> &'static str {
                match self {
                    $(ProviderId::$variant => $name,)*
                }
            }
        }
    };
}

// One line per provider; its adapter and simulator are registered in `providers::DESCRIPTORS`.
provider_ids! {
    Magicblocks "magicblocks" "MagicBlocks";
    Consuelo "consuelo" "Consuelo";
    Whautomate "whautomate" "Whautomate";
    Maiagent "maiagent" "MaiAgent";
    Mainbrainer "mainbrainer" "Mainbrainer CRM";
}

impl ProviderId {
    /// Position in `ProviderId::ALL`, which is also the `contacts` order.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for ProviderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProviderId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ProviderId::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("unknown provider `{}`", shown(s)))
    }
}

/// What identifies one person across providers: a normalized email (trimmed, lower-cased) or
/// an E.164 phone. Upserts match by it, and `duplicatesOf` and `person` search by it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, async_graphql::Enum,
)]
pub enum MatchField {
    Email,
    Phone,
}

/// A value the caller sent, as a message quotes it: long ones cut to 80 characters (a 1 MB
/// bad value is not echoed whole). Every message that quotes input goes through this.
pub fn shown(value: &str) -> String {
    const MAX: usize = 80;
    match value.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}…", &value[..end]),
        None => value.to_string(),
    }
}

/// `"<provider>:<nativeId>"`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GlobalId {
    pub provider: ProviderId,
    pub native_id: String,
}

impl GlobalId {
    pub fn new(provider: ProviderId, native_id: impl Into<String>) -> Self {
        GlobalId {
            provider,
            native_id: native_id.into(),
        }
    }

    pub fn parse(s: &str) -> Result<GlobalId, String> {
        let (provider, native) = s.split_once(':').ok_or_else(|| {
            format!(
                "`{}` is not a contact id of the form <provider>:<nativeId>",
                shown(s)
            )
        })?;
        let provider = provider.parse::<ProviderId>()?;
        if native.is_empty() {
            return Err(format!("`{}` has an empty native id", shown(s)));
        }
        Ok(GlobalId::new(provider, native))
    }
}

impl fmt::Display for GlobalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.provider, self.native_id)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PersonName {
    pub first: Option<String>,
    pub middle: Option<String>,
    pub last: Option<String>,
    /// The whole name as the provider holds it (or the parts joined).
    pub full: Option<String>,
}

impl PersonName {
    /// From separate parts; empty strings count as absent.
    pub fn from_parts(first: Option<&str>, middle: Option<&str>, last: Option<&str>) -> Self {
        let first = non_empty(first);
        let middle = non_empty(middle);
        let last = non_empty(last);
        let joined: Vec<&str> = [&first, &middle, &last]
            .into_iter()
            .filter_map(|p| p.as_deref())
            .collect();
        let full = (!joined.is_empty()).then(|| joined.join(" "));
        PersonName {
            first,
            middle,
            last,
            full,
        }
    }

    /// From a single name string: the first word is the first name, the last word the last
    /// name, anything between the middle name.
    pub fn from_full(full: Option<&str>) -> Self {
        let Some(full) = non_empty(full) else {
            return PersonName::default();
        };
        let words: Vec<&str> = full.split_whitespace().collect();
        let (first, middle, last) = match words.as_slice() {
            [] => (None, None, None),
            [one] => (Some(one.to_string()), None, None),
            [first, rest @ .., last] => (
                Some(first.to_string()),
                (!rest.is_empty()).then(|| rest.join(" ")),
                Some(last.to_string()),
            ),
        };
        PersonName {
            first,
            middle,
            last,
            full: Some(full),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.full.is_none()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Email {
    pub address: String,
    /// The provider's label ("work", "home"…), when it gives one.
    pub kind: Option<String>,
    pub primary: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Phone {
    /// As the provider holds it.
    pub number: String,
    /// E.164 when the number is valid in the provider's default region or was given with its
    /// country code (`phone::to_e164`).
    pub e164: Option<String>,
    pub kind: Option<String>,
    pub primary: bool,
}

impl Email {
    /// A record's one email address, so its primary one.
    pub fn only(address: String) -> Email {
        Email {
            address,
            kind: None,
            primary: true,
        }
    }
}

impl Phone {
    /// A record's one phone number as the provider holds it (so its primary one), with its
    /// E.164 form read in `region`.
    pub fn only(number: String, region: Option<phonenumber::country::Id>) -> Phone {
        Phone {
            e164: crate::phone::to_e164(&number, region),
            number,
            kind: None,
            primary: true,
        }
    }

    /// The E.164 form when known, else the number as the provider holds it.
    pub fn best(&self) -> &str {
        self.e164.as_deref().unwrap_or(&self.number)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub id: String,
    pub name: Option<String>,
    /// What the provider calls it: `inbox`, `location`, `list`, `workspace`.
    pub kind: String,
}

/// Consent as the provider reports it; `None` means the provider does not say.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Consent {
    pub email_opt_in: Option<bool>,
    pub sms_opt_in: Option<bool>,
    pub do_not_contact: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    pub provider: ProviderId,
    pub native_id: String,
    pub name: PersonName,
    pub emails: Vec<Email>,
    pub phones: Vec<Phone>,
    pub company: Option<String>,
    pub notes: Option<String>,
    pub tags: Vec<String>,
    pub stage: Option<String>,
    pub groups: Vec<Group>,
    pub custom_fields: Map<String, Value>,
    pub consent: Option<Consent>,
    pub is_test: Option<bool>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    /// The provider's record as received.
    pub raw: Value,
    /// Where it was read from (left out of serializations when it is the provider).
    #[serde(default, skip_serializing_if = "ContactSource::is_provider")]
    pub source: ContactSource,
}

/// Where a contact's fields come from.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, async_graphql::Enum,
)]
pub enum ContactSource {
    /// The provider's own answer.
    #[default]
    Provider,
    /// The gateway's ledger of what it wrote to a provider that cannot be read back
    /// (Mainbrainer): the fields as the gateway's writes left them.
    GatewayLedger,
}

impl ContactSource {
    pub fn is_provider(&self) -> bool {
        *self == ContactSource::Provider
    }
}

impl Contact {
    /// An empty contact of a provider, to be filled by an adapter's mapping.
    pub fn new(provider: ProviderId, native_id: impl Into<String>, raw: Value) -> Self {
        Contact {
            provider,
            native_id: native_id.into(),
            name: PersonName::default(),
            emails: Vec::new(),
            phones: Vec::new(),
            company: None,
            notes: None,
            tags: Vec::new(),
            stage: None,
            groups: Vec::new(),
            custom_fields: Map::new(),
            consent: None,
            is_test: None,
            created_at: None,
            updated_at: None,
            raw,
            source: ContactSource::Provider,
        }
    }

    pub fn global_id(&self) -> GlobalId {
        GlobalId::new(self.provider, self.native_id.clone())
    }

    /// The primary email, else the first one.
    pub fn primary_email(&self) -> Option<&Email> {
        primary(&self.emails, |e| e.primary)
    }

    /// The primary phone, else the first one.
    pub fn primary_phone(&self) -> Option<&Phone> {
        primary(&self.phones, |p| p.primary)
    }

    /// The name to show: the full name, else the company, else an email or phone, else the id.
    pub fn display_name(&self) -> String {
        if let Some(full) = &self.name.full {
            return full.clone();
        }
        if let Some(company) = &self.company {
            return company.clone();
        }
        if let Some(email) = self.primary_email() {
            return email.address.clone();
        }
        if let Some(phone) = self.primary_phone() {
            return phone.best().to_string();
        }
        self.native_id.clone()
    }
}

/// The item marked primary, else the first.
pub fn primary<T>(items: &[T], is_primary: impl Fn(&T) -> bool) -> Option<&T> {
    primary_index(items, is_primary).map(|i| &items[i])
}

/// Where `primary` is in `items` (to mark exactly one item primary).
pub fn primary_index<T>(items: &[T], is_primary: impl Fn(&T) -> bool) -> Option<usize> {
    items
        .iter()
        .position(is_primary)
        .or((!items.is_empty()).then_some(0))
}

/// `Some(trimmed)` unless the string is absent or blank.
pub fn non_empty(s: Option<&str>) -> Option<String> {
    s.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Reads the timestamps providers send: epoch seconds or milliseconds (as numbers or digit
/// strings, told apart by magnitude) and RFC 3339 / ISO-8601 strings.
pub fn parse_timestamp(value: &Value) -> Option<DateTime<Utc>> {
    match value {
        Value::Number(n) => n.as_i64().and_then(from_epoch),
        Value::String(s) => {
            let s = s.trim();
            if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
                return s.parse::<i64>().ok().and_then(from_epoch);
            }
            DateTime::parse_from_rfc3339(s)
                .map(|d| d.with_timezone(&Utc))
                .ok()
                .or_else(|| {
                    // ISO-8601 without an offset: read as UTC.
                    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                        .ok()
                        .map(|n| n.and_utc())
                })
        }
        _ => None,
    }
}

/// Epoch seconds below 10^11 (year 5138), milliseconds above.
fn from_epoch(n: i64) -> Option<DateTime<Utc>> {
    if n.abs() < 100_000_000_000 {
        Utc.timestamp_opt(n, 0).single()
    } else {
        Utc.timestamp_millis_opt(n).single()
    }
}

/// A string or a number as a string (ids and phones arrive as either).
pub fn string_or_number(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => non_empty(Some(s)),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Reads a value that may arrive as JSON or as a JSON-encoded string.
pub fn json_or_encoded(value: &Value) -> Value {
    match value {
        Value::String(s) => serde_json::from_str(s).unwrap_or(Value::Null),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_primary_item_is_the_flagged_one_else_the_first() {
        let flags = [false, true, true];
        assert_eq!(primary_index(&flags, |f| *f), Some(1));
        assert_eq!(primary_index(&[false, false], |f| *f), Some(0));
        assert_eq!(primary_index(&[] as &[bool], |f| *f), None);
        let names = ["a", "b"];
        assert_eq!(primary(&names, |n| *n == "b"), Some(&"b"));
        assert_eq!(primary(&names, |n| *n == "z"), Some(&"a"));
    }

    #[test]
    fn global_ids_round_trip_and_reject_garbage() {
        let id = GlobalId::parse("mainbrainer:1329318").unwrap();
        assert_eq!(id.provider, ProviderId::Mainbrainer);
        assert_eq!(id.to_string(), "mainbrainer:1329318");
        // Native ids may themselves contain colons.
        assert_eq!(GlobalId::parse("consuelo:a:b").unwrap().native_id, "a:b");
        assert!(GlobalId::parse("nope:1").is_err());
        assert!(GlobalId::parse("maiagent:").is_err());
        assert!(GlobalId::parse("maiagent").is_err());
    }

    #[test]
    fn timestamps_in_every_documented_form() {
        let expect = "2025-07-07T08:02:41Z";
        for v in [
            json!("1751875361000"),
            json!(1751875361000_i64),
            json!(1751875361),
            json!("1751875361"),
            json!("2025-07-07T08:02:41Z"),
            json!("2025-07-07T10:02:41+02:00"),
            json!("2025-07-07T08:02:41"),
        ] {
            let got = parse_timestamp(&v).unwrap_or_else(|| panic!("{v} did not parse"));
            assert_eq!(
                got.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                expect
            );
        }
        assert_eq!(parse_timestamp(&json!("yesterday")), None);
        assert_eq!(parse_timestamp(&json!(null)), None);
    }

    #[test]
    fn names_split_and_join() {
        let n = PersonName::from_full(Some("  Ana María  de la Cruz "));
        assert_eq!(n.first.as_deref(), Some("Ana"));
        assert_eq!(n.middle.as_deref(), Some("María de la"));
        assert_eq!(n.last.as_deref(), Some("Cruz"));
        let n = PersonName::from_parts(Some("Johan"), Some(""), Some("Greg"));
        assert_eq!(n.full.as_deref(), Some("Johan Greg"));
        assert!(PersonName::from_parts(Some(""), None, Some(" ")).is_empty());
    }
}
