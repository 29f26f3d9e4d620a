//! MaiAgent's documented JSON (maiagent.txt): the contact record and the list envelope it
//! answers, and the body it is sent on create and partial update. The tolerance rules are on
//! the fields; a field of an unexpected type reads as absent.

use crate::providers::wire;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// Fields of a record that carry credentials: never passed on in `raw` (Decision 6).
/// maiagent.txt: `mcpCredentials`, "List of the contact's MCP credentials".
pub const CREDENTIAL_FIELDS: &[&str] = &["mcpCredentials"];

/// A contact as answered by list, get, create and update (maiagent.txt's response schema).
/// `avatar`, `sourceId` and `queryMetadata` are not read: they stay in `raw`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactRecord {
    #[serde(default, deserialize_with = "wire::string_or_number")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "wire::text")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "wire::text")]
    pub email: Option<String>,
    /// maiagent.txt: phoneNumber arrives as an integer (912345678) where the schema says string.
    #[serde(default, deserialize_with = "wire::string_or_number")]
    pub phone_number: Option<String>,
    /// `None` unless an array: then the legacy `inbox` is read instead.
    #[serde(default, deserialize_with = "inbox_list")]
    pub inboxes: Option<Vec<Inbox>>,
    /// maiagent.txt: the legacy single inbox, "ignored if inboxes is also provided".
    #[serde(default, deserialize_with = "wire::object")]
    pub inbox: Option<Inbox>,
    /// maiagent.txt: epoch milliseconds as strings ("1751875361000").
    #[serde(default, deserialize_with = "wire::timestamp")]
    pub created_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default, deserialize_with = "wire::timestamp")]
    pub updated_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// `{id, name}` of an inbox the contact is in.
#[derive(Debug, Default, Deserialize)]
pub struct Inbox {
    #[serde(default, deserialize_with = "wire::string_or_number")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "wire::text")]
    pub name: Option<String>,
}

/// A list answer: `{count, next, previous, results}` (maiagent.txt "List Contacts").
#[derive(Debug, Default)]
pub struct ContactList {
    /// `count`: the matching records over all pages.
    pub count: Option<u64>,
    /// Whether `next` is set (`None` when the key is absent). maiagent.txt: the link points at
    /// another host, so only its presence is read, never the URL.
    pub has_next: Option<bool>,
    /// The records as received, for `raw`. maiagent.txt: the example nests `results`
    /// (`[[{…},{…}]]`) where the schema says a flat array: flattened one level, nulls dropped;
    /// `results: null` is no records. A bare array body is read as the records.
    pub records: Vec<Value>,
}

impl ContactList {
    /// Reads an answer body, moving its records out (no copy of them is made).
    pub fn from_body(body: Value) -> Result<Self, &'static str> {
        // A bare array first: a page is an object, never a sequence of its fields.
        let (count, has_next, results) = match body {
            Value::Array(items) => (None, None, items),
            Value::Object(mut page) => {
                #[derive(Deserialize)]
                struct Paging {
                    #[serde(default, deserialize_with = "wire::lenient")]
                    count: Option<u64>,
                    #[serde(default, deserialize_with = "link_given")]
                    next: Option<bool>,
                }
                // Required: an object without `results` is no listing.
                let results = page.remove("results").ok_or("no `results` in the page")?;
                let paging = Paging::deserialize(&Value::Object(page)).map_err(|_| "a bad page")?;
                match results {
                    Value::Array(items) => (paging.count, paging.next, items),
                    Value::Null => (paging.count, paging.next, Vec::new()),
                    _ => return Err("`results` is not an array"),
                }
            }
            _ => return Err("not a listing"),
        };
        let records = results
            .into_iter()
            .flat_map(|item| match item {
                Value::Array(inner) => inner,
                one => vec![one],
            })
            .filter(|item| !item.is_null())
            .collect();
        Ok(ContactList {
            count,
            has_next,
            records,
        })
    }
}

impl<'de> Deserialize<'de> for ContactList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ContactList::from_body(Value::deserialize(d)?).map_err(D::Error::custom)
    }
}

/// The body of a create (`POST`) and of a partial update (`PATCH`): only the keys given.
/// PUT is never sent (NOTES 4.5.6: PATCH for partial updates).
#[derive(Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactWrite {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// An E.164 string (Decision 4; the examples send an integer, the schema says string).
    /// `""` clears it on PATCH (NOTES 4.5.6). Not in the update table, but in its examples.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    /// `""` clears it on PATCH. Not in the update table, but in its examples.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// `[]` clears them on PATCH. The legacy `inbox` is never written (NOTES 4.5.7).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inboxes: Option<Vec<InboxRef>>,
}

impl ContactWrite {
    /// Nothing to send.
    pub fn is_empty(&self) -> bool {
        *self == ContactWrite::default()
    }
}

/// maiagent.txt: an inbox is written `{id}`.
#[derive(Debug, PartialEq, Serialize)]
pub struct InboxRef {
    pub id: String,
}

/// An array of inboxes (items that are not inbox objects dropped); anything else is absent,
/// unlike `wire::items`, so that the legacy `inbox` is read instead.
fn inbox_list<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Inbox>>, D::Error> {
    let value = Option::<Value>::deserialize(d)?;
    Ok(match value {
        Some(Value::Array(items)) => Some(items.iter().filter_map(wire::from_object).collect()),
        _ => None,
    })
}

/// Whether a link is given: `null` is "no". The link itself is not kept.
fn link_given<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Ok(Some(!Value::deserialize(d)?.is_null()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn list(body: Value) -> Option<ContactList> {
        ContactList::deserialize(&body).ok()
    }

    fn ids(list: &ContactList) -> Vec<&str> {
        list.records
            .iter()
            .map(|r| r["id"].as_str().unwrap_or(""))
            .collect()
    }

    #[test]
    fn nested_results_are_flattened_and_flat_ones_read_as_they_are() {
        let nested = json!({ "count": 2, "next": null,
            "results": [[ { "id": "user1_uuid" }, { "id": "user2_uuid" } ]] });
        let nested = list(nested).expect("nested");
        assert_eq!(ids(&nested), ["user1_uuid", "user2_uuid"]);
        assert_eq!((nested.count, nested.has_next), (Some(2), Some(false)));
        let flat = list(json!({ "count": 1, "results": [ { "id": "a" }, null ] })).expect("flat");
        assert_eq!(ids(&flat), ["a"]);
        assert_eq!(flat.has_next, None, "no `next` key: not said");
        let bare = list(json!([[{ "id": "a" }], { "id": "b" }, { "id": "c" }])).expect("bare");
        assert_eq!(ids(&bare), ["a", "b", "c"]);
        assert_eq!(bare.count, None);
    }

    #[test]
    fn a_next_link_only_says_more_follow_and_a_strange_count_is_absent() {
        let page = list(
            json!({ "count": "many", "next": "http://api.example.org/?page=2",
            "results": null }),
        )
        .expect("page");
        assert_eq!((page.count, page.has_next), (None, Some(true)));
        assert!(page.records.is_empty());
    }

    #[test]
    fn an_answer_without_a_results_array_is_no_listing() {
        assert!(list(json!({ "detail": "x" })).is_none());
        assert!(list(json!({ "results": "x" })).is_none());
        assert!(list(Value::Null).is_none());
        assert!(list(json!("text")).is_none());
    }

    #[test]
    fn odd_types_read_as_absent() {
        let record = ContactRecord::deserialize(&json!({
            "id": 7, "name": ["x"], "email": " ", "phoneNumber": {}, "inboxes": "in_1",
            "inbox": ["in_2", "Web"], "createdAt": true
        }))
        .expect("lenient");
        assert_eq!(record.id.as_deref(), Some("7"));
        assert!(record.name.is_none() && record.email.is_none());
        assert!(record.phone_number.is_none() && record.created_at.is_none());
        assert!(record.inboxes.is_none() && record.inbox.is_none());
        let record = ContactRecord::deserialize(&json!({
            "inboxes": [ "in_1", { "id": 5, "name": "" }, { "name": "no id" } ]
        }))
        .expect("lenient");
        let inboxes = record.inboxes.expect("an array");
        assert_eq!(inboxes.len(), 2);
        assert_eq!(inboxes[0].id.as_deref(), Some("5"));
        assert!(inboxes[0].name.is_none() && inboxes[1].id.is_none());
    }

    #[test]
    fn a_write_sends_only_the_keys_given() {
        assert_eq!(json!(ContactWrite::default()), json!({}));
        assert!(ContactWrite::default().is_empty());
        let body = ContactWrite {
            email: Some(String::new()),
            inboxes: Some(Vec::new()),
            ..Default::default()
        };
        assert!(!body.is_empty());
        assert_eq!(json!(body), json!({ "email": "", "inboxes": [] }));
    }
}
