//! Consuelo's documented JSON (consuelo.txt): the contact record, the `{data, meta}` envelope
//! every answer comes in, and the bodies the adapter sends. No field of the record carries a
//! credential (the tokens of the auth flow never appear in a contact), so `raw` keeps it whole.

use crate::providers::wire;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A contact: consuelo.txt's "List Contacts" item (get, create and PATCH answer the same shape
/// under `data`). Every field is optional and read leniently; the mapping requires the id.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactRecord {
    #[serde(default, deserialize_with = "wire::string_or_number")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "wire::text")]
    pub first_name: Option<String>,
    #[serde(default, deserialize_with = "wire::text")]
    pub last_name: Option<String>,
    /// Not in consuelo.txt: one name string, read only when the parts are absent.
    #[serde(default, deserialize_with = "wire::text")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "wire::text")]
    pub email: Option<String>,
    /// E.164 text in consuelo.txt; a number is read as its digits.
    #[serde(default, deserialize_with = "wire::string_or_number")]
    pub phone: Option<String>,
    #[serde(default, deserialize_with = "wire::text")]
    pub company: Option<String>,
    /// consuelo.txt shows `notes` only on PATCH: read when a record carries it.
    #[serde(default, deserialize_with = "wire::text")]
    pub notes: Option<String>,
    /// Not on the documented record (list is scoped by the query's `workspaceId`).
    #[serde(default, deserialize_with = "wire::string_or_number")]
    pub workspace_id: Option<String>,
    /// Not documented; an object when present, anything else reads as absent.
    #[serde(default, deserialize_with = "wire::lenient")]
    pub custom_fields: Option<Map<String, Value>>,
    /// ISO-8601 `…Z` in consuelo.txt.
    #[serde(default, deserialize_with = "wire::timestamp")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "wire::timestamp")]
    pub updated_at: Option<DateTime<Utc>>,
}

/// Whether an answer is a contact record: an object with an id and some other field (an empty
/// body, a 204 or an id-only acknowledgement is not).
pub fn is_record(raw: &Value) -> bool {
    raw.as_object().is_some_and(|record| {
        record.contains_key("id") && record.iter().any(|(k, v)| k != "id" && !v.is_null())
    })
}

/// An answer: consuelo.txt wraps every one as `{data: …, meta: …}`. `data` is taken when
/// present and not null, else the body as-is (NOTES 2.5.5: the single-record envelopes are not
/// shown). `meta` is read from the body, and is empty when absent or of another type.
#[derive(Debug)]
pub struct Answer {
    pub data: Value,
    pub meta: Meta,
}

impl Answer {
    /// Reads an answer body, moving its `data` out (no copy of it is made).
    pub fn from_body(mut body: Value) -> Self {
        let meta = match body.get("meta") {
            Some(meta @ Value::Object(_)) => Meta::deserialize(meta).unwrap_or_default(),
            _ => Meta::default(),
        };
        let data = match body.get_mut("data") {
            Some(data) if !data.is_null() => data.take(),
            _ => body,
        };
        Answer { data, meta }
    }
}

/// A listing or search answer: the contacts under `data`, each as received (it becomes the
/// contact's `raw`; no body at all is no contacts), and its `meta`.
pub fn listing(body: Value) -> Result<(Vec<Value>, Meta), &'static str> {
    let Answer { data, meta } = Answer::from_body(body);
    match data {
        Value::Array(records) => Ok((records, meta)),
        Value::Null => Ok((Vec::new(), meta)),
        _ => Err("no contact array under `data`"),
    }
}

/// consuelo.txt's list `meta`: `{total, hasMore}` (`{requestId}` on other answers).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    #[serde(default, deserialize_with = "wire::lenient")]
    pub total: Option<u64>,
    #[serde(default, deserialize_with = "wire::flag")]
    pub has_more: Option<bool>,
}

/// `POST /v1/contacts` (consuelo.txt "Create Contact"): only the given keys are sent.
#[derive(Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// E.164.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub company: Option<String>,
}

/// `PATCH /v1/contacts/{id}` (consuelo.txt "Update Contact"): only the changed keys are sent.
/// On every field `None` keeps the value (the key is left out) and `Some(None)` sends an
/// explicit `null`, which clears it.
#[derive(Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PatchBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_name: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub company: Option<Option<String>>,
    /// Documented only here, on PATCH.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notes: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<Option<String>>,
    /// E.164.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<Option<String>>,
}

impl PatchBody {
    /// Nothing changes.
    pub fn is_empty(&self) -> bool {
        *self == PatchBody::default()
    }
}

/// `POST /v1/contacts/search` (consuelo.txt "Search Contacts"): `{workspaceId, query,
/// filters: {company}, limit}`; no offset is documented.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filters: Option<SearchFilters>,
    pub limit: u64,
}

/// The only search filter consuelo.txt shows.
#[derive(Debug, Serialize)]
pub struct SearchFilters {
    pub company: String,
}

/// `POST /v1/dnc` (consuelo.txt "Do Not Call"): `{workspaceId, phone (E.164), reason}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DncBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<String>,
    pub phone: String,
    /// Sent when given: consuelo.txt does not say it is required.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn data_is_unwrapped_when_present() {
        let john = json!({ "id": "contact_123", "firstName": "John" });
        let wrapped = json!({ "data": john, "meta": { "requestId": "r1" } });
        let answer = Answer::from_body(wrapped);
        assert_eq!(answer.data, john);
        let answer = Answer::from_body(john.clone());
        assert_eq!(answer.data, john);
        let null = json!({ "data": null, "id": "contact_1" });
        let answer = Answer::from_body(null.clone());
        assert_eq!(answer.data, null, "a null `data` is no envelope");
        let body = json!({ "data": [john], "meta": { "total": 150, "hasMore": true } });
        let (records, meta) = listing(body).unwrap();
        assert_eq!(records, vec![john]);
        assert_eq!((meta.total, meta.has_more), (Some(150), Some(true)));
    }

    #[test]
    fn a_listing_without_an_array_is_unreadable_and_odd_meta_reads_as_absent() {
        assert_eq!(listing(Value::Null).unwrap().0, Vec::<Value>::new());
        let (_, meta) =
            listing(json!({ "data": [], "meta": { "total": "7", "hasMore": 1 } })).unwrap();
        assert_eq!((meta.total, meta.has_more), (None, None));
        let (_, meta) = listing(json!({ "data": [], "meta": "soon" })).unwrap();
        assert_eq!(meta.total, None);
        assert!(listing(json!({ "data": { "id": "x" } })).is_err());
        assert!(listing(json!({ "items": [] })).is_err());
    }

    #[test]
    fn a_record_is_an_object_and_odd_fields_read_as_absent() {
        let record = wire::from_object::<ContactRecord>(&json!({
            "id": 42, "firstName": 3, "phone": 14155551234_u64, "customFields": "x",
            "createdAt": "soon"
        }))
        .expect("an object");
        assert_eq!(record.id.as_deref(), Some("42"));
        assert_eq!(record.phone.as_deref(), Some("14155551234"));
        assert!(record.first_name.is_none() && record.custom_fields.is_none());
        assert!(record.created_at.is_none());
        assert!(wire::from_object::<ContactRecord>(&json!(["contact_1"])).is_none());
    }

    #[test]
    fn a_patch_body_sends_only_changes_and_null_to_clear() {
        let body = PatchBody {
            first_name: Some(Some("Liv".into())),
            notes: Some(None),
            ..Default::default()
        };
        assert_eq!(json!(body), json!({ "firstName": "Liv", "notes": null }));
        assert!(PatchBody::default().is_empty() && !body.is_empty());
    }

    #[test]
    fn answers_are_records_only_with_an_id_and_more() {
        assert!(is_record(&json!({ "id": "c", "firstName": "A" })));
        assert!(!is_record(&json!({ "id": "c" })));
        assert!(!is_record(&json!({ "id": "c", "email": null })));
        assert!(!is_record(&Value::Null));
    }
}
