//! Whautomate's documented JSON (whautomate.txt): the contact it answers, the body of a create
//! and of a replace, and the tag endpoints' body and answer. The tolerance rules are on the
//! fields; a field of an unexpected type reads as absent. No documented field carries a
//! credential (the key travels in the `x-api-key` header only), so `raw` is kept whole.

use crate::contact::{json_or_encoded, non_empty, string_or_number};
use crate::providers::wire;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// Fields of a record the server owns: never sent back on PUT. whautomate.txt: the path id is
/// the one that counts (NOTES 3.5.2); the timestamps come from the webhook payload, not the
/// documented request body.
pub const READ_ONLY: [&str; 4] = ["id", "createdAt", "updatedAt", "lastActivity"];

/// A contact as answered by get, list, create and update (whautomate.txt), read for the
/// unified contact. The webhook's shape (NOTES 3.3) adds timestamps and may encode `tags` and
/// `customFields` as JSON strings.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactRecord {
    #[serde(default, deserialize_with = "wire::string_or_number")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "wire::text")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "wire::string_or_number")]
    pub phone_number: Option<String>,
    #[serde(default, deserialize_with = "wire::object")]
    pub location: Option<Location>,
    /// whautomate.txt: an enum whose values the page does not show; an open string.
    #[serde(default, deserialize_with = "wire::text")]
    pub stage: Option<String>,
    #[serde(default, deserialize_with = "wire::text")]
    pub notes: Option<String>,
    /// An object, or (webhooks) a JSON-encoded object.
    #[serde(default, deserialize_with = "wire::json_or_encoded")]
    pub custom_fields: Option<Value>,
    #[serde(default, deserialize_with = "tag_list")]
    pub tags: Option<Vec<String>>,
    #[serde(default, deserialize_with = "wire::timestamp")]
    pub created_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default, deserialize_with = "wire::timestamp")]
    pub updated_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// `location: {id, title}`: a contact's one location.
#[derive(Debug, Default, Clone, PartialEq, Deserialize, Serialize)]
pub struct Location {
    #[serde(
        default,
        deserialize_with = "wire::string_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub id: Option<String>,
    /// Not sent on create (the example body's `title` is the server's).
    #[serde(
        default,
        deserialize_with = "wire::text",
        skip_serializing_if = "Option::is_none"
    )]
    pub title: Option<String>,
}

/// The body of a create (`POST`) and of a replace (`PUT`), both with `name` and `phoneNumber`
/// required (whautomate.txt), only the keys given. PUT replaces the record (Decision 3), so a
/// read-merge-write reads the record into this type as received and sends it back whole with
/// the patch applied: a field left out is cleared upstream.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactBody {
    /// As received (untrimmed), so an untouched name goes back as it came.
    #[serde(
        default,
        deserialize_with = "wire::lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub name: Option<String>,
    /// E.164 ("with country code", NOTES 3.3).
    #[serde(
        default,
        deserialize_with = "wire::string_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub phone_number: Option<String>,
    #[serde(
        default,
        deserialize_with = "wire::object",
        skip_serializing_if = "Option::is_none"
    )]
    pub location: Option<Location>,
    #[serde(
        default,
        deserialize_with = "wire::lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub stage: Option<String>,
    #[serde(
        default,
        deserialize_with = "wire::lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub notes: Option<String>,
    /// Sent as an object. Read as received (webhooks encode it as a JSON string); one that
    /// decodes to no object goes back as it came unless a patch changes the custom fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_fields: Option<Value>,
    /// Sent as an array; read decoded (an encoded array goes back as a real one).
    #[serde(
        default,
        deserialize_with = "tag_list",
        skip_serializing_if = "Option::is_none"
    )]
    pub tags: Option<Vec<String>>,
    /// Fields the unified model does not hold, sent back as received so they survive a PUT
    /// (Decision 6). Holds the `READ_ONLY` ones too until a PUT drops them.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// `POST /v1/contacts/{id}/tags/add|remove` body (Decision 3).
#[derive(Debug, Serialize)]
pub struct TagsChange<'a> {
    pub tags: &'a [String],
}

/// The tag endpoints' answer, `{id, tags}`.
#[derive(Debug, Default, Deserialize)]
pub struct TagsAnswer {
    #[serde(default, deserialize_with = "tag_list")]
    pub tags: Option<Vec<String>>,
}

/// whautomate.txt: DELETE answers `{"success": true}`.
#[derive(Debug, Default, Deserialize)]
pub struct DeleteAnswer {
    #[serde(default, deserialize_with = "wire::flag")]
    pub success: Option<bool>,
}

/// whautomate webhooks send `tags` as a JSON-encoded string: read an array, an encoded array,
/// one encoded string, or (not valid JSON) a comma list. Items may be `{name|title|tag}`
/// objects. `null` is absent; another type is no tags.
fn tag_list<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    let value = Option::<Value>::deserialize(d)?;
    Ok(value.filter(|v| !v.is_null()).map(|v| tags_of(&v)))
}

fn tags_of(value: &Value) -> Vec<String> {
    let tag = |v: &Value| match v {
        Value::Object(t) => ["name", "title", "tag"]
            .iter()
            .find_map(|k| t.get(*k).and_then(string_or_number)),
        other => string_or_number(other),
    };
    match (json_or_encoded(value), value) {
        (Value::Array(items), _) => items.iter().filter_map(tag).collect(),
        (Value::String(one), _) => non_empty(Some(&one)).into_iter().collect(),
        (Value::Null, Value::String(list)) => {
            list.split(',').filter_map(|t| non_empty(Some(t))).collect()
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tags(value: Value) -> Option<Vec<String>> {
        TagsAnswer::deserialize(&json!({ "tags": value }))
            .expect("lenient")
            .tags
    }

    #[test]
    fn tags_arrive_as_arrays_encoded_arrays_or_comma_lists() {
        assert_eq!(tags(json!(["a", "b"])), Some(vec!["a".into(), "b".into()]));
        assert_eq!(
            tags(json!("[\"vip\",\"spring\"]")).unwrap(),
            ["vip", "spring"]
        );
        assert_eq!(tags(json!("a, b")).unwrap(), ["a", "b"]);
        assert_eq!(tags(json!("\"solo\"")).unwrap(), ["solo"]);
        assert_eq!(
            tags(json!([{ "name": "x" }, "y", null])).unwrap(),
            ["x", "y"]
        );
        assert_eq!(tags(json!(7)).unwrap(), Vec::<String>::new());
        assert_eq!(tags(Value::Null), None);
    }

    #[test]
    fn odd_types_read_as_absent() {
        let record = ContactRecord::deserialize(&json!({
            "id": 81, "name": 3, "phoneNumber": 1234567890, "location": "loc_1",
            "stage": [], "notes": " ", "customFields": "not json", "createdAt": "soon"
        }))
        .expect("lenient");
        assert_eq!(record.id.as_deref(), Some("81"));
        assert_eq!(record.phone_number.as_deref(), Some("1234567890"));
        assert!(record.name.is_none() && record.location.is_none());
        assert!(record.stage.is_none() && record.notes.is_none());
        assert!(record.custom_fields.is_none() && record.created_at.is_none());
        let location = ContactRecord::deserialize(&json!({ "location": ["loc_1", "Downtown"] }))
            .expect("lenient")
            .location;
        assert_eq!(location, None, "an array is no location");
    }

    #[test]
    fn a_body_reads_the_record_as_received_and_keeps_what_it_does_not_know() {
        let body = ContactBody::deserialize(&json!({
            "id": "c_1", "name": " Maria ", "phoneNumber": "+1234567890",
            "location": { "id": "loc_1", "title": "Downtown" }, "notes": null,
            "customFields": "{\"plan\":\"gold\"}", "tags": "[\"old\"]", "channel": "Whatsapp"
        }))
        .expect("lenient");
        assert_eq!(body.name.as_deref(), Some(" Maria "));
        assert_eq!(body.notes, None);
        assert_eq!(body.custom_fields, Some(json!("{\"plan\":\"gold\"}")));
        assert_eq!(body.tags, Some(vec!["old".to_string()]));
        assert_eq!(body.other.get("channel"), Some(&json!("Whatsapp")));
        assert_eq!(body.other.get("id"), Some(&json!("c_1")));
        let sent = json!(ContactBody {
            other: Map::new(),
            ..body
        });
        assert_eq!(
            sent,
            json!({ "name": " Maria ", "phoneNumber": "+1234567890",
                    "location": { "id": "loc_1", "title": "Downtown" },
                    "customFields": "{\"plan\":\"gold\"}", "tags": ["old"] })
        );
    }
}
