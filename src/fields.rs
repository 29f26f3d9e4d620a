//! The writable unified fields, declared once in [`writable_fields!`]. The write model
//! (`Field`, `ContactDraft`, `ContactPatch`, `NewContact`), validation, the CSV columns and the
//! write-loss comparison are generated here from that table; the GraphQL inputs are generated
//! from it in `graphql/mutation.rs`. Plain Rust, no GraphQL, no HTTP.
//!
//! A new writable field: a row in the table, its place on `Contact` (if it is read back), each
//! adapter's mapping and `WriteFields`, and the regenerated `schema.graphql`.

use crate::contact::{Contact, Email, Phone};
use crate::phone;
use crate::write::{Patch, UserError, UserErrorCode};
use phonenumber::country::Id as Region;
use serde_json::{Map, Value};
use std::fmt::Debug;
use std::str::FromStr;

/// The table. Each row: the Rust name and `Field` variant, its kind (how it validates and what
/// it holds), the GraphQL input name, the CSV column (and other header names it answers to,
/// compared ignoring case, spaces, `_` and `-`), how to read it back from the provider's
/// answer (to warn about what was not stored; `[]` when it is not compared), the
/// `ContactFilter` fields that test it (`[]`: none; `ProviderInfo.fields.filter`), and its
/// description. Each adapter says in `WriteFields` how many values of each it holds.
///
/// It hands the rows to `$then!`, a macro of the module that generates something from them.
#[macro_export]
macro_rules! writable_fields {
    ($then:ident) => {
        $then! {
            first_name FirstName: $crate::fields::kind::Text<200>, "firstName",
                csv "firstName" ["first", "givenname"], read [], filter ["search"],
                "Given name.";
            middle_name MiddleName: $crate::fields::kind::Text<200>, "middleName",
                csv "middleName" ["middle"], read [], filter ["search"],
                "Middle name (providers with one name string hold it joined).";
            last_name LastName: $crate::fields::kind::Text<200>, "lastName",
                csv "lastName" ["last", "surname", "familyname"], read [], filter ["search"],
                "Family name.";
            emails Emails: $crate::fields::kind::Emails, "emails",
                csv "email" ["emailaddress"], read [|c: &Contact| Some(c.emails.clone())],
                filter ["email", "search"],
                "Email addresses; one may be primary (else the first is).";
            phones Phones: $crate::fields::kind::Phones, "phones",
                csv "phone" ["phonenumber", "mobile"], read [|c: &Contact| Some(c.phones.clone())],
                filter ["phone", "search"],
                "Phone numbers in any format; national numbers are read in the provider's `default_region`.";
            company Company: $crate::fields::kind::Text<200>, "company",
                csv "company" ["organization", "organisation"], read [|c: &Contact| c.company.clone()],
                filter ["company", "search"], "Company or organization.";
            notes Notes: $crate::fields::kind::Text<10000>, "notes",
                csv "notes" ["note"], read [|c: &Contact| c.notes.clone()], filter [],
                "Free-text notes.";
            tags Tags: $crate::fields::kind::Tags, "tags",
                csv "tags" [], read [|c: &Contact| Some(c.tags.clone())], filter ["tags"],
                "Tags, exact names (a CSV cell separates them with `;` or `|`).";
            stage Stage: $crate::fields::kind::Text<100>, "stage",
                csv "stage" [], read [|c: &Contact| c.stage.clone()], filter [],
                "Lifecycle or pipeline stage.";
            group_ids GroupIds: $crate::fields::kind::GroupIds, "groupIds",
                csv "groupId" ["group"], read [], filter [],
                "MaiAgent inbox ids, the Whautomate location id, the Mainbrainer list id.";
            custom_fields CustomFields: $crate::fields::kind::CustomFields, "customFields",
                csv "custom.<key>" [], read [|c: &Contact| Some(c.custom_fields.clone())], filter [],
                "A JSON object of the provider's custom fields; an update merges it key by key (`null` removes a key).";
            email_opt_in EmailOptIn: $crate::fields::kind::Consent, "emailOptIn",
                csv "emailOptIn" [], read [], filter [],
                "Consent to email: true or false (it cannot be cleared to unknown).";
            sms_opt_in SmsOptIn: $crate::fields::kind::Consent, "smsOptIn",
                csv "smsOptIn" [], read [], filter [],
                "Consent to SMS: true or false (it cannot be cleared to unknown).";
            is_test IsTest: $crate::fields::kind::Flag, "isTest",
                csv "isTest" [], read [], filter [],
                "Marks a test contact.";
        }
    };
}

/// In `WriteFields`: a field holds any number of values.
pub const MANY: usize = usize::MAX;

/// A set of writable fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FieldSet(u32);

// One bit per field.
const _: () = assert!(Field::ALL.len() <= 32);

impl FieldSet {
    pub const fn of(fields: &[Field]) -> FieldSet {
        let mut bits = 0;
        let mut i = 0;
        while i < fields.len() {
            bits |= 1 << fields[i] as u32;
            i += 1;
        }
        FieldSet(bits)
    }

    pub fn contains(self, field: Field) -> bool {
        self.0 & (1 << field as u32) != 0
    }
}

/// What a provider does with each writable field besides holding it on writes (its
/// `WriteFields`): whether its contacts show it when read, and whether an update can clear it
/// (a text or a list set to null or empty, a custom field's key set to null). An adapter
/// declares it once, beside its `WriteFields`; `ProviderInfo.fields` is built from both, and
/// a test checks both against what the simulators store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FieldAccess {
    pub read: FieldSet,
    pub clear: FieldSet,
}

/// How one kind of field validates, what it holds, and how it is read from a CSV cell and
/// compared with a provider's answer.
pub trait Kind {
    /// As the caller gives it (GraphQL input, CSV cell).
    type Draft: Clone + Debug;
    /// After validation.
    type Value: Clone + Debug + PartialEq;
    /// In a `NewContact`: `Option<Value>`, or the list itself (empty = not given).
    type New: Clone + Debug + PartialEq + Default;

    /// A given value: `Set`, `Clear` when it is blank, or `Keep` with an error recorded.
    fn check(c: &mut Check<'_, '_>, draft: Self::Draft) -> Patch<Self::Value>;
    /// An explicit `null`.
    fn clear(c: &mut Check<'_, '_>) -> Patch<Self::Value> {
        let _ = c;
        Patch::Clear
    }
    fn into_new(value: Option<Self::Value>) -> Self::New;
    fn from_new(new: &Self::New) -> Option<Self::Value>;
    fn from_csv(cell: &str) -> Result<Self::Draft, String>;
    /// Warns about what `asked` has that the provider's answer `held` does not show.
    fn unstored(asked: &Self::Value, held: Option<Self::Value>, w: &mut Warnings<'_>) {
        let _ = (asked, held, w);
    }
}

/// Validation of one input object: where it sits in the input, what the provider holds.
pub struct Checker<'a> {
    pub prefix: &'a [&'a str],
    pub fields: &'a WriteFields,
    /// The provider's name, for messages.
    pub provider: &'a str,
    pub region: Option<Region>,
    pub errors: Vec<UserError>,
}

impl Checker<'_> {
    pub fn error(&mut self, path: &[&str], code: UserErrorCode, message: impl Into<String>) {
        let full: Vec<&str> = self.prefix.iter().chain(path).copied().collect();
        self.errors.push(UserError::new(&full, code, message));
    }

    /// Validates one field's patch: refused when the provider cannot hold it, else by kind.
    pub fn field<K: Kind>(
        &mut self,
        field: Field,
        capacity: usize,
        patch: Patch<K::Draft>,
    ) -> Patch<K::Value> {
        let name = field.input_name();
        if capacity == 0 && !patch.is_keep() {
            let message = format!("{} cannot hold `{name}`; nothing was sent", self.provider);
            self.error(&[name], UserErrorCode::FieldNotSupported, message);
            return Patch::Keep;
        }
        let mut check = Check {
            checker: self,
            field,
            capacity,
        };
        match patch {
            Patch::Keep => Patch::Keep,
            Patch::Clear => K::clear(&mut check),
            Patch::Set(draft) => K::check(&mut check, draft),
        }
    }
}

/// One field under validation.
pub struct Check<'c, 'a> {
    checker: &'c mut Checker<'a>,
    field: Field,
    /// How many values the provider holds (`usize::MAX`: no bound).
    capacity: usize,
}

impl Check<'_, '_> {
    fn name(&self) -> &'static str {
        self.field.input_name()
    }

    /// An error at this field, or below it (`["0", "address"]`).
    fn error(&mut self, below: &[&str], code: UserErrorCode, message: impl Into<String>) {
        let path: Vec<&str> = [self.name()]
            .into_iter()
            .chain(below.iter().copied())
            .collect();
        self.checker.error(&path, code, message);
    }

    /// A list longer than the provider holds is refused, never cut.
    fn within_capacity(&mut self, count: usize, noun: &str) -> bool {
        if count <= self.capacity {
            return true;
        }
        let message = format!(
            "{} holds at most {} {noun}(s); {count} given",
            self.checker.provider, self.capacity
        );
        self.error(&[], UserErrorCode::FieldNotSupported, message);
        false
    }
}

/// Collects `FIELD_NOT_STORED` warnings for one write's answer.
pub struct Warnings<'a> {
    provider: &'a str,
    field: Field,
    pub list: Vec<UserError>,
}

impl Warnings<'_> {
    fn warn(&mut self, below: &[&str], message: String) {
        let path: Vec<&str> = ["input", self.field.input_name()]
            .into_iter()
            .chain(below.iter().copied())
            .collect();
        self.list.push(UserError::new(
            &path,
            UserErrorCode::FieldNotStored,
            message,
        ));
    }
}

/// The first three writable-field kinds hold text, lists and JSON; each is a type so the table
/// can name it.
pub mod kind {
    use super::*;

    const MAX_LIST: usize = 50;
    const MAX_TAG: usize = 100;
    const MAX_GROUP_ID: usize = 200;
    const MAX_CUSTOM_BYTES: usize = 16 * 1024;

    /// Trimmed text of at most `MAX` characters; blank clears.
    pub struct Text<const MAX: usize>;
    /// Email addresses.
    pub struct Emails;
    /// Phone numbers, validated to E.164 in the provider's region.
    pub struct Phones;
    /// Tag names.
    pub struct Tags;
    /// Group ids (inboxes, a location, a list).
    pub struct GroupIds;
    /// A JSON object, merged key by key on update.
    pub struct CustomFields;
    /// Consent: a yes or a no, never cleared to "unknown".
    pub struct Consent;
    /// A plain yes/no.
    pub struct Flag;

    /// An email address as given.
    #[derive(Clone, Debug, Default)]
    pub struct EmailDraft {
        pub address: String,
        pub kind: Option<String>,
        pub primary: Option<bool>,
    }

    /// A phone number as given.
    #[derive(Clone, Debug, Default)]
    pub struct PhoneDraft {
        pub number: String,
        pub kind: Option<String>,
        pub primary: Option<bool>,
    }

    impl<const MAX: usize> Kind for Text<MAX> {
        type Draft = String;
        type Value = String;
        type New = Option<String>;

        fn check(c: &mut Check<'_, '_>, draft: String) -> Patch<String> {
            let s = draft.trim().to_string();
            if s.is_empty() {
                Patch::Clear
            } else if s.chars().count() > MAX {
                let message = format!("`{}` is longer than {MAX} characters", c.name());
                c.error(&[], UserErrorCode::TooLong, message);
                Patch::Keep
            } else {
                Patch::Set(s)
            }
        }
        fn into_new(value: Option<String>) -> Option<String> {
            value
        }
        fn from_new(new: &Option<String>) -> Option<String> {
            new.clone()
        }
        fn from_csv(cell: &str) -> Result<String, String> {
            Ok(cell.to_string())
        }
        fn unstored(asked: &String, held: Option<String>, w: &mut Warnings<'_>) {
            if held.as_deref().map(str::trim) != Some(asked.trim()) {
                let message = format!(
                    "{} did not store `{}` as given",
                    w.provider,
                    w.field.input_name()
                );
                w.warn(&[], message);
            }
        }
    }

    /// The primary item (the first when none is marked); at most one may be marked.
    fn settle_primary<T>(
        c: &mut Check<'_, '_>,
        items: &mut [T],
        primary: impl Fn(&mut T) -> &mut bool,
    ) {
        let marked = items.iter_mut().map(|i| *primary(i)).filter(|&p| p).count();
        if marked > 1 {
            let message = format!("at most one of `{}` can be primary", c.name());
            c.error(&[], UserErrorCode::Invalid, message);
        }
        if marked == 0 {
            if let Some(first) = items.first_mut() {
                *primary(first) = true;
            }
        }
    }

    fn list_patch<T>(items: Vec<T>) -> Patch<Vec<T>> {
        if items.is_empty() {
            Patch::Clear
        } else {
            Patch::Set(items)
        }
    }

    impl Kind for Emails {
        type Draft = Vec<EmailDraft>;
        type Value = Vec<Email>;
        type New = Vec<Email>;

        fn check(c: &mut Check<'_, '_>, drafts: Vec<EmailDraft>) -> Patch<Vec<Email>> {
            if !c.within_capacity(drafts.len(), "email") {
                return Patch::Keep;
            }
            let mut emails = Vec::new();
            for (i, draft) in drafts.into_iter().enumerate() {
                let address = draft.address.trim().to_string();
                if !valid_email(&address) {
                    let message = format!("`{}` is not an email address", shown(&address));
                    c.error(
                        &[&i.to_string(), "address"],
                        UserErrorCode::InvalidEmail,
                        message,
                    );
                    continue;
                }
                emails.push(Email {
                    address,
                    kind: trimmed(draft.kind),
                    primary: draft.primary.unwrap_or(false),
                });
            }
            settle_primary(c, &mut emails, |e| &mut e.primary);
            list_patch(emails)
        }
        fn into_new(value: Option<Vec<Email>>) -> Vec<Email> {
            value.unwrap_or_default()
        }
        fn from_new(new: &Vec<Email>) -> Option<Vec<Email>> {
            Some(new.clone())
        }
        fn from_csv(cell: &str) -> Result<Vec<EmailDraft>, String> {
            Ok(vec![EmailDraft {
                address: cell.to_string(),
                ..Default::default()
            }])
        }
        fn unstored(asked: &Vec<Email>, held: Option<Vec<Email>>, w: &mut Warnings<'_>) {
            let held = held.unwrap_or_default();
            for (i, email) in asked.iter().enumerate() {
                if !held
                    .iter()
                    .any(|e| e.address.eq_ignore_ascii_case(&email.address))
                {
                    let message = format!("{} did not store {}", w.provider, email.address);
                    w.warn(&[&i.to_string(), "address"], message);
                }
            }
        }
    }

    impl Kind for Phones {
        type Draft = Vec<PhoneDraft>;
        type Value = Vec<Phone>;
        type New = Vec<Phone>;

        fn check(c: &mut Check<'_, '_>, drafts: Vec<PhoneDraft>) -> Patch<Vec<Phone>> {
            if !c.within_capacity(drafts.len(), "phone") {
                return Patch::Keep;
            }
            let region = c.checker.region;
            let mut phones = Vec::new();
            for (i, draft) in drafts.into_iter().enumerate() {
                let number = draft.number.trim().to_string();
                match writable_phone(&number, region) {
                    Some(e164) => phones.push(Phone {
                        number: e164.clone(),
                        e164: Some(e164),
                        kind: trimmed(draft.kind),
                        primary: draft.primary.unwrap_or(false),
                    }),
                    None => {
                        let message = format!(
                            "`{}` is not a valid phone number (national numbers are read as {})",
                            shown(&number),
                            region.map_or("international".to_string(), |r| r.as_ref().to_string())
                        );
                        c.error(
                            &[&i.to_string(), "number"],
                            UserErrorCode::InvalidPhone,
                            message,
                        );
                    }
                }
            }
            settle_primary(c, &mut phones, |p| &mut p.primary);
            list_patch(phones)
        }
        fn into_new(value: Option<Vec<Phone>>) -> Vec<Phone> {
            value.unwrap_or_default()
        }
        fn from_new(new: &Vec<Phone>) -> Option<Vec<Phone>> {
            Some(new.clone())
        }
        fn from_csv(cell: &str) -> Result<Vec<PhoneDraft>, String> {
            Ok(vec![PhoneDraft {
                number: cell.to_string(),
                ..Default::default()
            }])
        }
        fn unstored(asked: &Vec<Phone>, held: Option<Vec<Phone>>, w: &mut Warnings<'_>) {
            let held = held.unwrap_or_default();
            for (i, phone) in asked.iter().enumerate() {
                if !held.iter().any(|p| p.e164 == phone.e164) {
                    let stored: Vec<&str> = held.iter().map(Phone::best).collect();
                    let stored = if stored.is_empty() {
                        "no phone".to_string()
                    } else {
                        stored.join(", ")
                    };
                    let message = format!(
                        "{} did not store {} as given; it holds {stored}",
                        w.provider, phone.number
                    );
                    w.warn(&[&i.to_string(), "number"], message);
                }
            }
        }
    }

    /// Trimmed, non-empty, at most `max_len` characters each, de-duplicated, at most 50.
    fn names(c: &mut Check<'_, '_>, items: Vec<String>, max_len: usize) -> Patch<Vec<String>> {
        let name = c.name();
        let mut out: Vec<String> = Vec::new();
        for item in items {
            let item = item.trim().to_string();
            if item.is_empty() {
                c.error(
                    &[],
                    UserErrorCode::Invalid,
                    format!("`{name}` has an empty entry"),
                );
            } else if item.chars().count() > max_len {
                let message = format!("`{}` is longer than {max_len} characters", shown(&item));
                c.error(&[], UserErrorCode::TooLong, message);
            } else if !out.contains(&item) {
                out.push(item);
            }
        }
        if out.len() > MAX_LIST {
            let message = format!("`{name}` has more than {MAX_LIST} entries");
            c.error(&[], UserErrorCode::TooMany, message);
        }
        list_patch(out)
    }

    fn split_cell(cell: &str) -> Vec<String> {
        cell.split([';', '|'])
            .map(str::to_string)
            .filter(|t| !t.trim().is_empty())
            .collect()
    }

    impl Kind for Tags {
        type Draft = Vec<String>;
        type Value = Vec<String>;
        type New = Vec<String>;

        fn check(c: &mut Check<'_, '_>, tags: Vec<String>) -> Patch<Vec<String>> {
            names(c, tags, MAX_TAG)
        }
        fn into_new(value: Option<Vec<String>>) -> Vec<String> {
            value.unwrap_or_default()
        }
        fn from_new(new: &Vec<String>) -> Option<Vec<String>> {
            Some(new.clone())
        }
        fn from_csv(cell: &str) -> Result<Vec<String>, String> {
            Ok(split_cell(cell))
        }
        fn unstored(asked: &Vec<String>, held: Option<Vec<String>>, w: &mut Warnings<'_>) {
            let held = held.unwrap_or_default();
            for tag in asked {
                if !held.contains(tag) {
                    let message = format!("{} did not store the tag `{tag}`", w.provider);
                    w.warn(&[], message);
                }
            }
        }
    }

    impl Kind for GroupIds {
        type Draft = Vec<String>;
        type Value = Vec<String>;
        type New = Vec<String>;

        fn check(c: &mut Check<'_, '_>, ids: Vec<String>) -> Patch<Vec<String>> {
            let ids = names(c, ids, MAX_GROUP_ID);
            if let Patch::Set(ids) = &ids {
                c.within_capacity(ids.len(), "group");
            }
            ids
        }
        fn into_new(value: Option<Vec<String>>) -> Vec<String> {
            value.unwrap_or_default()
        }
        fn from_new(new: &Vec<String>) -> Option<Vec<String>> {
            Some(new.clone())
        }
        fn from_csv(cell: &str) -> Result<Vec<String>, String> {
            Ok(split_cell(cell))
        }
    }

    impl Kind for CustomFields {
        type Draft = Value;
        type Value = Map<String, Value>;
        type New = Map<String, Value>;

        fn check(c: &mut Check<'_, '_>, draft: Value) -> Patch<Map<String, Value>> {
            let Value::Object(map) = draft else {
                c.error(
                    &[],
                    UserErrorCode::Invalid,
                    "`customFields` must be a JSON object",
                );
                return Patch::Keep;
            };
            if Value::Object(map.clone()).to_string().len() > MAX_CUSTOM_BYTES {
                let message = format!("`customFields` is larger than {MAX_CUSTOM_BYTES} bytes");
                c.error(&[], UserErrorCode::TooLong, message);
            }
            Patch::Set(map)
        }
        fn into_new(value: Option<Map<String, Value>>) -> Map<String, Value> {
            value.unwrap_or_default()
        }
        fn from_new(new: &Map<String, Value>) -> Option<Map<String, Value>> {
            Some(new.clone())
        }
        /// One column per key (`custom.<key>`): the import gathers them into one object.
        fn from_csv(cell: &str) -> Result<Value, String> {
            Ok(Value::String(cell.to_string()))
        }
        /// A key set to null asks for its removal; the others must be there with their value
        /// (providers that keep strings only, like Mainbrainer, count as the same text).
        fn unstored(
            asked: &Map<String, Value>,
            held: Option<Map<String, Value>>,
            w: &mut Warnings<'_>,
        ) {
            let held = held.unwrap_or_default();
            for (key, wanted) in asked {
                let same = match (wanted, held.get(key)) {
                    (Value::Null, held) => held.is_none_or(Value::is_null),
                    (wanted, Some(held)) => wanted == held || as_text(wanted) == as_text(held),
                    (_, None) => false,
                };
                if !same {
                    let message = format!(
                        "{} did not store the custom field `{key}` as given",
                        w.provider
                    );
                    w.warn(&[key], message);
                }
            }
        }
    }

    /// A yes/no cell: true/false, yes/no, y/n, 1/0.
    fn yes_no(cell: &str) -> Result<bool, String> {
        match cell.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "y" | "1" => Ok(true),
            "false" | "no" | "n" | "0" => Ok(false),
            _ => Err(format!("`{}` is not yes/no", shown(cell))),
        }
    }

    impl Kind for Consent {
        type Draft = bool;
        type Value = bool;
        type New = Option<bool>;

        fn check(_: &mut Check<'_, '_>, value: bool) -> Patch<bool> {
            Patch::Set(value)
        }
        fn clear(c: &mut Check<'_, '_>) -> Patch<bool> {
            let message = format!("`{}` cannot be cleared; set it to true or false", c.name());
            c.error(&[], UserErrorCode::Invalid, message);
            Patch::Keep
        }
        fn into_new(value: Option<bool>) -> Option<bool> {
            value
        }
        fn from_new(new: &Option<bool>) -> Option<bool> {
            *new
        }
        fn from_csv(cell: &str) -> Result<bool, String> {
            yes_no(cell)
        }
    }

    impl Kind for Flag {
        type Draft = bool;
        type Value = bool;
        type New = Option<bool>;

        fn check(_: &mut Check<'_, '_>, value: bool) -> Patch<bool> {
            Patch::Set(value)
        }
        fn into_new(value: Option<bool>) -> Option<bool> {
            value
        }
        fn from_new(new: &Option<bool>) -> Option<bool> {
            *new
        }
        fn from_csv(cell: &str) -> Result<bool, String> {
            yes_no(cell)
        }
    }
}

/// A well-formed address with a dot in its domain part.
pub fn valid_email(address: &str) -> bool {
    email_address::EmailAddress::from_str(address).is_ok() && address.contains('.')
}

/// The E.164 form of a number a write may send: it parses to a plausible length.
/// libphonenumber's stricter validity would refuse numbers providers already hold (reserved
/// fictional ranges, new allocations).
pub fn writable_phone(number: &str, region: Option<Region>) -> Option<String> {
    phone::normalize(number, region)
        .filter(|n| n.valid || (8..=15).contains(&phone::digits(&n.e164).len()))
        .map(|n| n.e164)
}

/// A value as a message shows it (defined with `Contact`, the lowest layer, so every layer
/// quotes input the same way).
pub use crate::contact::shown;

fn trimmed(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// A JSON value as the text a string-only store would keep.
fn as_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn set<T>(patch: Patch<T>) -> Option<T> {
    match patch {
        Patch::Set(v) => Some(v),
        _ => None,
    }
}

macro_rules! generate {
    ($(
        $field:ident $variant:ident : $kind:ty, $input:literal,
            csv $csv:literal [$($alias:literal),*], read [$($read:expr)?],
            filter [$($filter:literal),*], $doc:literal;
    )*) => {
        /// A writable field of the unified contact, as writes name it.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Field {
            $(#[doc = $doc] $variant,)*
        }

        impl Field {
            pub const ALL: &'static [Field] = &[$(Field::$variant),*];

            /// The GraphQL input field name (and `userErrors.field` spelling).
            pub fn input_name(self) -> &'static str {
                match self {
                    $(Field::$variant => $input,)*
                }
            }

            /// The CSV column, as the import's documentation names it.
            pub fn csv_name(self) -> &'static str {
                match self {
                    $(Field::$variant => $csv,)*
                }
            }

            /// The field a CSV header names, compared ignoring case, spaces, `_` and `-`.
            pub fn from_csv_header(header: &str) -> Option<Field> {
                let key = header_key(header);
                Field::ALL.iter().copied().find(|f| {
                    let aliases: &[&str] = match f {
                        $(Field::$variant => &[$($alias),*],)*
                    };
                    header_key(f.csv_name()) == key || aliases.contains(&key.as_str())
                })
            }

            /// The `ContactFilter` fields that test it (none: `contacts` cannot filter by it).
            pub fn filtered_by(self) -> &'static [&'static str] {
                match self {
                    $(Field::$variant => &[$($filter),*],)*
                }
            }

            /// How many values a provider holding `fields` can keep (0: it cannot hold it).
            pub fn capacity(self, fields: &WriteFields) -> usize {
                match self {
                    $(Field::$variant => fields.$field,)*
                }
            }
        }

        /// What a provider's record can hold, so the gateway refuses (never drops) the rest
        /// before any upstream call: per writable field, how many values (0: none, 1: one,
        /// `MANY`: any number), and what a create requires. Each adapter fills it with
        /// `..WriteFields::default()` (holds nothing).
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct WriteFields {
            $(pub $field: usize,)*
            /// A create needs a name.
            pub requires_name: bool,
            /// A create needs a phone.
            pub requires_phone: bool,
            /// A create needs an email or a phone.
            pub requires_email_or_phone: bool,
        }

        /// Write input as the caller gave it, before validation. For a create, `Clear` counts
        /// as not given.
        #[derive(Clone, Debug, Default)]
        pub struct ContactDraft {
            $(pub $field: Patch<<$kind as Kind>::Draft>,)*
        }

        /// A validated partial update. Lists are replaced whole when given; `custom_fields`
        /// is merged key by key (a `null` value removes that key).
        #[derive(Clone, Debug, Default, PartialEq)]
        pub struct ContactPatch {
            $(pub $field: Patch<<$kind as Kind>::Value>,)*
        }

        /// A validated contact to create (or to upsert). Every `Phone` has its `e164` set;
        /// every `Email` is well-formed. Empty lists and `None` mean "not given".
        #[derive(Clone, Debug, Default, PartialEq)]
        pub struct NewContact {
            $(pub $field: <$kind as Kind>::New,)*
        }

        impl ContactDraft {
            /// Sets `field` from a CSV cell.
            pub fn set_from_csv(&mut self, field: Field, cell: &str) -> Result<(), String> {
                match field {
                    $(Field::$variant => {
                        self.$field = Patch::Set(<$kind as Kind>::from_csv(cell)?);
                    })*
                }
                Ok(())
            }

            /// Validates every field; errors are left in `checker`.
            pub fn check(self, checker: &mut Checker<'_>) -> ContactPatch {
                let fields = checker.fields;
                ContactPatch {
                    $($field: checker.field::<$kind>(
                        Field::$variant,
                        Field::$variant.capacity(fields),
                        self.$field,
                    ),)*
                }
            }
        }

        impl ContactPatch {
            /// The values it sets, as a new contact.
            pub fn into_new(self) -> NewContact {
                NewContact {
                    $($field: <$kind as Kind>::into_new(set(self.$field)),)*
                }
            }

            /// What it sets that the provider's answer `got` does not show (`FIELD_NOT_STORED`):
            /// a provider may store a value otherwise (MaiAgent keeps a phone's national digits
            /// only) or drop it. Never silent.
            pub fn unstored(&self, got: &Contact) -> Vec<UserError> {
                let provider = got.provider.display_name();
                let mut all = Vec::new();
                $($(
                    if let Patch::Set(asked) = &self.$field {
                        let mut w = Warnings { provider, field: Field::$variant, list: Vec::new() };
                        <$kind as Kind>::unstored(asked, ($read)(got), &mut w);
                        all.extend(w.list);
                    }
                )?)*
                all
            }
        }

        impl NewContact {
            /// The new contact as a patch setting what it gives.
            pub fn as_patch(&self) -> ContactPatch {
                ContactPatch {
                    $($field: <$kind as Kind>::from_new(&self.$field).map_or(Patch::Keep, Patch::Set),)*
                }
            }
        }
    };
}

writable_fields!(generate);

/// A header reduced to lower-case letters and digits ("First Name" → "firstname").
fn header_key(header: &str) -> String {
    header
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

impl ContactPatch {
    /// Whether any name part changes.
    pub fn changes_name(&self) -> bool {
        !(self.first_name.is_keep() && self.middle_name.is_keep() && self.last_name.is_keep())
    }
}

impl NewContact {
    /// "first middle last", for providers that hold one name string.
    pub fn full_name(&self) -> Option<String> {
        crate::write::join_name(
            self.first_name.as_deref(),
            self.middle_name.as_deref(),
            self.last_name.as_deref(),
        )
    }

    /// The primary email (else the first).
    pub fn primary_email(&self) -> Option<&Email> {
        crate::contact::primary(&self.emails, |e| e.primary)
    }

    /// The primary phone (else the first).
    pub fn primary_phone(&self) -> Option<&Phone> {
        crate::contact::primary(&self.phones, |p| p.primary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_has_a_distinct_input_name_and_csv_column() {
        let mut inputs: Vec<&str> = Field::ALL.iter().map(|f| f.input_name()).collect();
        let mut columns: Vec<String> = Field::ALL
            .iter()
            .map(|f| header_key(f.csv_name()))
            .collect();
        inputs.sort();
        inputs.dedup();
        columns.sort();
        columns.dedup();
        assert_eq!(inputs.len(), Field::ALL.len());
        assert_eq!(columns.len(), Field::ALL.len());
    }

    #[test]
    fn csv_headers_are_matched_loosely() {
        assert_eq!(Field::from_csv_header("First Name"), Some(Field::FirstName));
        assert_eq!(Field::from_csv_header("e-mail"), Some(Field::Emails));
        assert_eq!(Field::from_csv_header("Mobile"), Some(Field::Phones));
        assert_eq!(Field::from_csv_header("group_id"), Some(Field::GroupIds));
        assert_eq!(Field::from_csv_header("favourite colour"), None);
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        let long = "x".repeat(1_000_000);
        assert_eq!(shown(&long).chars().count(), 81);
        assert_eq!(shown("short"), "short");
    }
}
