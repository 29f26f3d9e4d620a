//! E.164 parsing and formatting, on the `phonenumber` crate (libphonenumber's metadata).

use phonenumber::country::Id as Region;
use phonenumber::{Mode, PhoneNumber};
use std::sync::LazyLock;

/// What the gateway makes of a phone number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Normalized {
    pub e164: String,
    pub valid: bool,
    pub country_code: u16,
    pub national_number: u64,
    /// The ISO 3166 region the number belongs to, when libphonenumber knows it.
    pub region: Option<String>,
}

/// Parses an ISO 3166 alpha-2 region ("US", "gb").
pub fn parse_region(code: &str) -> Option<Region> {
    code.trim().to_ascii_uppercase().parse::<Region>().ok()
}

/// Numbers already read, by (text, region): parsing is a large share of mapping a page of
/// contacts (libphonenumber's rules are regular expressions), and the same contacts' phones
/// are read again on every listing. Bounded: about 100 bytes an entry.
static READ: LazyLock<moka::sync::Cache<(Box<str>, Option<Region>), Option<Normalized>>> =
    LazyLock::new(|| moka::sync::Cache::new(20_000));

/// Parses a phone in any common format; a number without `+` is read in `default_region`.
/// Returns `None` when it cannot be read as a phone number at all.
pub fn normalize(input: &str, default_region: Option<Region>) -> Option<Normalized> {
    let trimmed = input.trim();
    if trimmed.is_empty() || !trimmed.chars().any(|c| c.is_ascii_digit()) {
        return None;
    }
    let key = (Box::from(trimmed), default_region);
    READ.get_with(key, || parse(trimmed, default_region))
}

fn parse(trimmed: &str, default_region: Option<Region>) -> Option<Normalized> {
    let parsed: PhoneNumber = phonenumber::parse(default_region, trimmed).ok()?;
    Some(Normalized {
        e164: parsed.format().mode(Mode::E164).to_string(),
        valid: phonenumber::is_valid(&parsed),
        country_code: parsed.code().value(),
        national_number: parsed.national().value(),
        region: parsed.country().id().map(|id| id.as_ref().to_string()),
    })
}

/// The E.164 form of a number read from a provider: when it is valid, or was given in
/// international form (`+…`, which names its country even in ranges libphonenumber calls
/// invalid, such as fictional ones). A national number that is not valid in `default_region`
/// was probably not meant for it (MaiAgent's `912345678` read as US): `None`, so it is served
/// as received rather than as a wrong E.164.
pub fn to_e164(input: &str, default_region: Option<Region>) -> Option<String> {
    normalize(input, default_region)
        .filter(|n| n.valid || input.trim_start().starts_with('+'))
        .map(|n| n.e164)
}

/// Only the digits of a phone, for substring search.
pub fn digits(input: &str) -> String {
    input.chars().filter(char::is_ascii_digit).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn national_and_international_forms_agree() {
        let us = parse_region("us");
        assert_eq!(
            to_e164("(415) 555-1234", us).as_deref(),
            Some("+14155551234")
        );
        assert_eq!(
            to_e164("+1 415 555 1234", None).as_deref(),
            Some("+14155551234")
        );
        let au = parse_region("AU");
        assert_eq!(to_e164("0412 345 678", au).as_deref(), Some("+61412345678"));
        let no = normalize("+47 908 12 501", None).unwrap();
        assert_eq!((no.country_code, no.national_number), (47, 90812501));
        assert!(no.valid);
    }

    #[test]
    fn a_national_number_invalid_in_the_region_has_no_e164() {
        assert_eq!(to_e164("912345678", parse_region("US")), None);
        assert_eq!(
            to_e164("912345678", parse_region("TW")).as_deref(),
            Some("+886912345678")
        );
        // Fictional ranges are invalid to libphonenumber but unambiguous with their `+`.
        assert_eq!(
            to_e164("+447700900123", None).as_deref(),
            Some("+447700900123")
        );
    }

    #[test]
    fn garbage_is_not_a_phone() {
        assert_eq!(normalize("not a phone", parse_region("US")), None);
        assert_eq!(normalize("", parse_region("US")), None);
        assert_eq!(parse_region("XX"), None);
    }
}
