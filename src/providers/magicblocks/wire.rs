//! MagicBlocks' documented JSON (magicblocks.txt): the contact record (the create and update
//! responses), the listing shapes NOTES.md Decision 1 settles, the record as read for a
//! read-merge-write, and the create and update bodies. No field of the record carries a
//! credential (the API token travels only in the `Authorization` header), so `raw` keeps it
//! whole.

use crate::providers::wire;
use chrono::{DateTime, Utc};
use serde::de::Deserializer;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Fields of a record the server computes (magicblocks.txt response model, NOTES 1.4): never
/// sent back on an update.
pub const READ_ONLY: [&str; 10] = [
    "id",
    "firstSeen",
    "modifiedAt",
    "lastSeen",
    "generatedName",
    "primaryEmail",
    "primaryPhone",
    "sessionCount",
    "link",
    "preview",
];

/// Flags that may start agent workflows (NOTES 1.6.5): never sent, on create or update.
pub const SIDE_EFFECTS: [&str; 3] = ["sendMessageEvents", "flowEditorName", "flowEditorLink"];

/// A contact: magicblocks.txt's response model (create 201 and update 200 share it). Every
/// field is optional and read leniently; the mapping requires the id.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactRecord {
    #[serde(default, deserialize_with = "wire::string_or_number")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "wire::lenient")]
    pub name: Option<Name>,
    /// Shown when `name` is empty (NOTES 1.6.6).
    #[serde(default, deserialize_with = "wire::lenient")]
    pub generated_name: Option<Name>,
    #[serde(default, deserialize_with = "wire::items")]
    pub emails: Vec<Channel>,
    #[serde(default, deserialize_with = "wire::lenient")]
    pub primary_email: Option<Channel>,
    #[serde(default, deserialize_with = "wire::items")]
    pub phones: Vec<Channel>,
    #[serde(default, deserialize_with = "wire::lenient")]
    pub primary_phone: Option<Channel>,
    /// The response key (magicblocks.txt)…
    #[serde(default, deserialize_with = "wire::lenient")]
    pub custom_fields: Option<Map<String, Value>>,
    /// …and the request key, read when the response has no `customFields` (NOTES 1.6.3).
    #[serde(default, deserialize_with = "wire::lenient")]
    pub custom: Option<Map<String, Value>>,
    #[serde(default, deserialize_with = "wire::flag")]
    pub is_test: Option<bool>,
    /// Epoch seconds (magicblocks.txt `1730288600`).
    #[serde(default, deserialize_with = "wire::timestamp")]
    pub first_seen: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "wire::timestamp")]
    pub modified_at: Option<DateTime<Utc>>,
}

/// `name` and `generatedName`: `{first, middle, last}` in magicblocks.txt; one string is
/// tolerated (split into parts by the mapping).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Name {
    Full(String),
    Parts(NameParts),
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct NameParts {
    #[serde(deserialize_with = "wire::text")]
    pub first: Option<String>,
    #[serde(deserialize_with = "wire::text")]
    pub middle: Option<String>,
    #[serde(deserialize_with = "wire::text")]
    pub last: Option<String>,
}

/// An item of `emails[]` or `phones[]`, or `primaryEmail` / `primaryPhone`: magicblocks.txt's
/// `{address|number, type, primary}`; a bare string is tolerated as the address or number.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Channel {
    Bare(String),
    Item(ChannelItem),
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ChannelItem {
    /// In `emails[]`.
    #[serde(deserialize_with = "wire::string_or_number")]
    pub address: Option<String>,
    /// In `phones[]` (E.164 in magicblocks.txt).
    #[serde(deserialize_with = "wire::string_or_number")]
    pub number: Option<String>,
    #[serde(rename = "type", deserialize_with = "wire::text")]
    pub kind: Option<String>,
    #[serde(deserialize_with = "wire::flag")]
    pub primary: Option<bool>,
}

/// A single-record answer: the record, or `{data: {record}}` when it came in an envelope (an
/// object with an `id` is the record itself, whatever else it holds).
#[derive(Debug)]
pub struct Single(pub Value);

impl<'de> Deserialize<'de> for Single {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Single(match Value::deserialize(d)? {
            Value::Object(mut map)
                if !map.contains_key("id") && map.get("data").is_some_and(Value::is_object) =>
            {
                map.remove("data").unwrap_or(Value::Null)
            }
            other => other,
        }))
    }
}

/// Where a listing keeps its records, in the order they are looked for (Decision 1).
const LISTING_KEYS: [&str; 3] = ["data", "contacts", "results"];

/// A listing answer read tolerantly (Decision 1): a bare array, no body, or an object holding
/// the array under `data`, `contacts` or `results`; each record as received (it becomes the
/// contact's `raw`). A by-email or by-phone lookup may answer the one record instead: under the
/// first listing key that holds a record or a list (when it is a record), else the body itself
/// when no listing key holds either and the body has an `id`. Anything else is unreadable.
#[derive(Debug)]
pub struct Listing {
    pub records: Vec<Value>,
    pub total: Option<u64>,
    pub has_more: Option<bool>,
    /// The body was one record, not a list.
    pub single: bool,
}

impl Listing {
    /// Reads an answer body, moving its records out (no copy of them is made).
    pub fn from_body(mut body: Value) -> Result<Self, &'static str> {
        const UNREADABLE: &str = "no contact array in the listing";
        let paging = match &body {
            Value::Object(_) => Paging::deserialize(&body).unwrap_or_default(),
            _ => Paging::default(),
        };
        let (records, single) = match body {
            Value::Array(items) => (items, false),
            Value::Null => (Vec::new(), false),
            Value::Object(ref mut map) => {
                let held = LISTING_KEYS
                    .iter()
                    .find(|k| map.get(**k).is_some_and(|v| v.is_array() || v.is_object()));
                match held.and_then(|k| map.remove(*k)) {
                    Some(Value::Array(items)) => (items, false),
                    Some(record) => (vec![record], true),
                    None if map.contains_key("id") => (vec![body], true),
                    None => return Err(UNREADABLE),
                }
            }
            _ => return Err(UNREADABLE),
        };
        let meta = paging.meta.unwrap_or_default();
        Ok(Listing {
            records,
            total: [paging.total, meta.total, paging.count, meta.count]
                .into_iter()
                .flatten()
                .next(),
            has_more: paging.has_more.or(meta.has_more),
            single,
        })
    }
}

impl<'de> Deserialize<'de> for Listing {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Listing::from_body(Value::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// What a listing body says about the rest, at its top or under `meta` (nothing of it is
/// documented): `total` (else `count`), a number or a digit string, and `hasMore`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Paging {
    #[serde(deserialize_with = "count")]
    total: Option<u64>,
    #[serde(deserialize_with = "count")]
    count: Option<u64>,
    #[serde(deserialize_with = "wire::flag")]
    has_more: Option<bool>,
    #[serde(deserialize_with = "wire::lenient")]
    meta: Option<Box<Paging>>,
}

/// A contact as read for an update (read-merge-write, Decisions 1 and 6): the custom fields,
/// which the merge rewrites as `custom`, and every other field as received, which a PUT sends
/// back unchanged (`userKnowledge`, `isTest`, fields this adapter does not know) except
/// `READ_ONLY` and `SIDE_EFFECTS`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredContact {
    #[serde(default, deserialize_with = "wire::lenient")]
    pub custom_fields: Option<Map<String, Value>>,
    #[serde(default, deserialize_with = "wire::lenient")]
    pub custom: Option<Map<String, Value>>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// `POST /v1/contacts`: magicblocks.txt's nested body (Decision 1), with only what was given.
/// `sendMessageEvents` and `flowEditor*` are not part of it (NOTES 1.6.5).
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<NameBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emails: Option<Vec<EmailBody>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phones: Option<Vec<PhoneBody>>,
    /// The request key is `custom` (the response's is `customFields`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_test: Option<bool>,
}

/// `PUT /v1/contacts/{id}`: always the whole record (Decision 1), so the update is right
/// whether PUT replaces or merges. The fields below are the ones a patch rewrites; `kept`
/// carries the rest of the record as read, and must not hold a key of a field that is set.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateBody {
    #[serde(flatten)]
    pub kept: Map<String, Value>,
    /// Every part is sent; `""` clears one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<NameBody>,
    /// Replaced whole (NOTES 1.6.4); `[]` clears.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emails: Option<Vec<EmailBody>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phones: Option<Vec<PhoneBody>>,
    /// Always sent: the record's custom fields, merged with the patch.
    pub custom: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_test: Option<bool>,
}

/// `name{first, middle, last}`: only the parts given.
#[derive(Debug, Default, Serialize)]
pub struct NameBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub middle: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last: Option<String>,
}

/// `emails[{address, type, primary}]`.
#[derive(Debug, Serialize)]
pub struct EmailBody {
    pub address: String,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub primary: bool,
}

/// `phones[{number, type, primary}]`, the number in E.164 (magicblocks.txt "+61412345678").
#[derive(Debug, Serialize)]
pub struct PhoneBody {
    pub number: String,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub primary: bool,
}

/// A count: a non-negative integer, or a string of one. MagicBlocks' own rule: its counts are
/// undocumented, where Consuelo's and MaiAgent's are documented numbers (`wire::lenient`).
fn count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let value = Option::<Value>::deserialize(d)?;
    Ok(value.and_then(|v| {
        v.as_u64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn listing(body: Value) -> Option<Listing> {
        serde_json::from_value(body).ok()
    }

    #[test]
    fn listings_are_read_in_every_tolerated_shape() {
        let bare = listing(json!([{ "id": "a" }])).expect("array");
        assert_eq!((bare.records.len(), bare.total), (1, None));
        let data =
            listing(json!({ "data": [{ "id": "a" }], "meta": { "total": 7 } })).expect("data");
        assert_eq!((data.records.len(), data.total), (1, Some(7)));
        let contacts = listing(json!({ "contacts": [], "total": 0 })).expect("contacts");
        assert_eq!(contacts.total, Some(0));
        let results =
            listing(json!({ "results": [{ "id": "a" }], "count": "3" })).expect("results");
        assert_eq!(results.total, Some(3));
        assert!(listing(json!({ "id": "a" })).expect("one record").single);
        assert!(listing(json!({ "unexpected": true })).is_none());
    }

    #[test]
    fn a_listing_reads_a_held_record_the_first_total_and_has_more() {
        let held = listing(json!({ "data": { "id": "a" }, "hasMore": false })).expect("held");
        assert!(held.single && held.records == [json!({ "id": "a" })]);
        assert_eq!(held.has_more, Some(false));
        let both =
            listing(json!({ "data": [], "count": 9, "meta": { "total": "4", "hasMore": true } }))
                .expect("both");
        assert_eq!((both.total, both.has_more), (Some(4), Some(true)));
        let none = listing(Value::Null).expect("no body");
        assert!(none.records.is_empty() && !none.single);
        assert!(listing(json!("text")).is_none());
    }

    #[test]
    fn a_single_answer_is_unwrapped_from_data_only_without_an_id() {
        let record = json!({ "id": "con_1", "data": { "x": 1 } });
        let Single(read) = serde_json::from_value(record.clone()).unwrap();
        assert_eq!(read, record);
        let Single(read) = serde_json::from_value(json!({ "data": { "id": "con_1" } })).unwrap();
        assert_eq!(read, json!({ "id": "con_1" }));
    }

    #[test]
    fn odd_items_and_fields_read_as_absent() {
        let record = wire::from_object::<ContactRecord>(&json!({
            "id": "con_1", "name": 3, "emails": [null, 3, "a@x.io", { "type": "work" }],
            "phones": { "number": "+1" }, "customFields": [1], "isTest": "no"
        }))
        .expect("an object");
        assert!(record.name.is_none() && record.custom_fields.is_none());
        assert_eq!(record.emails.len(), 2, "the string and the object");
        assert!(record.phones.is_empty() && record.is_test.is_none());
        assert!(wire::from_object::<ContactRecord>(&json!(["con_1"])).is_none());
    }

    #[test]
    fn the_stored_record_keeps_every_other_field() {
        let stored: StoredContact = serde_json::from_value(json!({
            "id": "con_1", "customFields": { "plan": "Pro" }, "userKnowledge": "likes tea",
            "somethingNew": { "x": 1 }
        }))
        .unwrap();
        assert_eq!(
            stored.custom_fields,
            json!({ "plan": "Pro" }).as_object().cloned()
        );
        assert_eq!(stored.other.get("userKnowledge"), Some(&json!("likes tea")));
        assert_eq!(stored.other.get("somethingNew"), Some(&json!({ "x": 1 })));
        assert!(!stored.other.contains_key("customFields"));
        assert!(serde_json::from_value::<StoredContact>(json!([1])).is_err());
    }
}
