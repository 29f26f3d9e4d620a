//! Serde helpers for the tolerance rules several providers' documents need, stated once so an
//! adapter's wire types say which rule a field follows:
//! `#[serde(default, deserialize_with = "wire::string_or_number")] id: Option<String>`.
//! Every helper is lenient in the same way: a value of an unexpected JSON type reads as absent
//! (the record as received stays in `raw`), never as a failed response.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// Any `T`; a value that does not read as one is `None`. A `String` is kept as received
/// (untrimmed, blank kept), unlike `text`.
pub fn lenient<'de, D: Deserializer<'de>, T: DeserializeOwned>(
    d: D,
) -> Result<Option<T>, D::Error> {
    let value = Option::<Value>::deserialize(d)?;
    Ok(value.and_then(|v| T::deserialize(v).ok()))
}

/// A list of `T`, skipping items of another shape; anything but an array reads as empty.
pub fn items<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Vec<T>, D::Error> {
    let value = Option::<Value>::deserialize(d)?;
    Ok(match value {
        Some(Value::Array(items)) => items
            .into_iter()
            .filter_map(|v| T::deserialize(v).ok())
            .collect(),
        _ => Vec::new(),
    })
}

/// One object read as `T`; anything else is `None` (see `from_object`).
pub fn object<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Option<T>, D::Error> {
    let value = Option::<Value>::deserialize(d)?;
    Ok(value.as_ref().and_then(from_object))
}

/// The `T` a JSON object holds; anything else is `None`. Only an object is a record: a derived
/// struct would also read an array positionally (`["c_1", "Ada"]` as `{id, name}`).
pub fn from_object<T: DeserializeOwned>(value: &Value) -> Option<T> {
    value
        .is_object()
        .then(|| T::deserialize(value).ok())
        .flatten()
}

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

    #[derive(Deserialize, Debug, Default, PartialEq)]
    struct Item {
        #[serde(default, deserialize_with = "text")]
        name: Option<String>,
    }

    #[derive(Deserialize, Debug, Default)]
    struct Shapes {
        #[serde(default, deserialize_with = "lenient")]
        total: Option<u64>,
        #[serde(default, deserialize_with = "items")]
        list: Vec<Item>,
        #[serde(default, deserialize_with = "object")]
        one: Option<Item>,
    }

    fn shapes(value: Value) -> Shapes {
        serde_json::from_value(value).expect("lenient")
    }

    #[test]
    fn lenient_reads_its_type_else_absent() {
        assert_eq!(shapes(json!({ "total": 7 })).total, Some(7));
        for odd in [json!("7"), json!(-1), json!([7]), Value::Null] {
            assert_eq!(shapes(json!({ "total": odd })).total, None, "{odd}");
        }
        assert_eq!(shapes(json!({})).total, None);
    }

    #[test]
    fn items_skip_what_has_another_shape() {
        let read = shapes(json!({ "list": [{ "name": "a" }, 3, "b", null, {}] })).list;
        let names: Vec<_> = read.iter().map(|i| i.name.as_deref()).collect();
        assert_eq!(names, [Some("a"), None]);
        assert!(shapes(json!({ "list": { "name": "a" } })).list.is_empty());
        assert!(shapes(json!({ "list": null })).list.is_empty());
    }

    #[test]
    fn only_an_object_is_a_record() {
        let one = shapes(json!({ "one": { "name": "Ada" } })).one;
        assert_eq!(one.and_then(|i| i.name).as_deref(), Some("Ada"));
        for odd in [json!(["Ada"]), json!("Ada"), json!(1), Value::Null] {
            assert!(shapes(json!({ "one": odd })).one.is_none(), "{odd}");
            assert_eq!(from_object::<Item>(&odd), None, "{odd}");
        }
        // What the guard is for: a derived struct reads an array positionally.
        assert!(serde_json::from_value::<Item>(json!(["Ada"])).is_ok());
        assert_eq!(
            from_object::<Item>(&json!({ "name": " Ada " })),
            Some(Item {
                name: Some("Ada".into())
            })
        );
    }
}
