//! Serde helpers for the tolerance rules several providers' documents need, stated once so an
//! adapter's wire types say which rule a field follows:
//! `#[serde(default, deserialize_with = "wire::string_or_number")] id: Option<String>`.
//! Every helper is lenient in the same way: a value of an unexpected JSON type reads as absent
//! (the record as received stays in `raw`), never as a failed response.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// Ids and phones that arrive as a string or a number, as a string; blank or other types → `None`.
pub fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let value = Option::<Value>::deserialize(d)?;
    Ok(value.as_ref().and_then(crate::contact::string_or_number))
}

/// Text: trimmed, blank or non-string → `None`.
pub fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let value = Option::<Value>::deserialize(d)?;
    Ok(crate::contact::non_empty(
        value.as_ref().and_then(Value::as_str),
    ))
}

/// A boolean; other types → `None`.
pub fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    let value = Option::<Value>::deserialize(d)?;
    Ok(value.as_ref().and_then(Value::as_bool))
}

/// A value that arrives as JSON or as a JSON-encoded string (an undecodable string → `None`).
pub fn json_or_encoded<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    let value = Option::<Value>::deserialize(d)?;
    Ok(value
        .map(|v| crate::contact::json_or_encoded(&v))
        .filter(|v| !v.is_null()))
}

/// Epoch seconds or milliseconds (numbers or digit strings) and RFC 3339 strings.
pub fn timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    let value = Option::<Value>::deserialize(d)?;
    Ok(value.as_ref().and_then(crate::contact::parse_timestamp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Deserialize, Debug)]
    struct Probe {
        #[serde(default, deserialize_with = "string_or_number")]
        id: Option<String>,
        #[serde(default, deserialize_with = "text")]
        name: Option<String>,
        #[serde(default, deserialize_with = "flag")]
        on: Option<bool>,
        #[serde(default, deserialize_with = "json_or_encoded")]
        tags: Option<Value>,
        #[serde(default, deserialize_with = "timestamp")]
        at: Option<DateTime<Utc>>,
    }

    #[test]
    fn each_rule_reads_its_documented_forms_and_tolerates_the_rest() {
        let p: Probe = serde_json::from_value(json!({
            "id": 1329318, "name": "  Ada ", "on": true, "tags": "[\"vip\"]", "at": "1751875361000"
        }))
        .unwrap();
        assert_eq!(p.id.as_deref(), Some("1329318"));
        assert_eq!(p.name.as_deref(), Some("Ada"));
        assert_eq!(p.on, Some(true));
        assert_eq!(p.tags, Some(json!(["vip"])));
        assert_eq!(p.at.unwrap().timestamp(), 1_751_875_361);

        let p: Probe = serde_json::from_value(json!({
            "id": "", "name": 3, "on": "yes", "tags": "not json", "at": "soon"
        }))
        .unwrap();
        assert!(p.id.is_none() && p.name.is_none() && p.on.is_none());
        assert!(p.tags.is_none() && p.at.is_none());
        let p: Probe = serde_json::from_value(json!({})).unwrap();
        assert!(p.id.is_none() && p.tags.is_none());
    }
}
