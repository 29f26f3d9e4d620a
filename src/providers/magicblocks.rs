//! MagicBlocks (magicblocks.txt), read side. The document lost the method and path cells of its
//! "Retrieve Contact Data" table; the paths here are the conventional ones settled by NOTES.md
//! Decision 1: `GET /v1/contacts?limit=&offset=[&email=|&phone=]` and `GET /v1/contacts/{id}`.

use super::http::{path_segment, UpstreamClient};
use super::{Capabilities, ListChunk, ListQuery, Provider, ProviderError};
use crate::contact::{
    non_empty, parse_timestamp, string_or_number, Contact, Email, PersonName, Phone, ProviderId,
};
use crate::phone;
use phonenumber::country::Id as Region;
use reqwest::Method;
use serde_json::{Map, Value};

const CONTACTS: &str = "/v1/contacts";

pub struct MagicBlocks {
    client: UpstreamClient,
}

impl MagicBlocks {
    pub fn new(client: UpstreamClient) -> Self {
        MagicBlocks { client }
    }
}

#[async_trait::async_trait]
impl Provider for MagicBlocks {
    fn id(&self) -> ProviderId {
        self.client.provider()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            list: true,
            get: true,
            // By email and by phone (Decision 1); no text search is documented.
            search: true,
            holds_email: true,
            ..Default::default()
        }
    }

    async fn get(&self, native_id: &str) -> Result<Option<Contact>, ProviderError> {
        let Some(segment) = path_segment(native_id) else {
            return Ok(None);
        };
        let path = format!("{CONTACTS}/{segment}");
        let Some(response) = self.client.send(Method::GET, &path, &[], None).await? else {
            return Ok(None);
        };
        let record = unwrap_single(response.body);
        to_contact(&record, self.client.region()).map(Some)
    }

    async fn list(
        &self,
        query: &ListQuery,
        offset: u64,
        limit: u32,
    ) -> Result<ListChunk, ProviderError> {
        let provider = self.id();
        let mut params = vec![("limit", limit.to_string()), ("offset", offset.to_string())];
        if let Some(email) = &query.email {
            params.push(("email", email.clone()));
        }
        if let Some(phone) = &query.phone {
            params.push(("phone", phone.clone()));
        }
        let filtered = query.email.is_some() || query.phone.is_some();
        let Some(response) = self
            .client
            .send(Method::GET, CONTACTS, &params, None)
            .await?
        else {
            // A lookup by email or phone may answer 404 for "no such contact".
            if filtered {
                return Ok(empty_chunk());
            }
            return Err(ProviderError::Rejected {
                provider,
                status: 404,
                message: "the contact listing was not found".into(),
            });
        };
        let listing = read_listing(&response.body).ok_or_else(|| {
            ProviderError::unparseable(provider, "no contact array in the listing")
        })?;
        let region = self.client.region();
        if listing.single {
            // A lookup answered with the one record itself: it is the whole listing.
            let contacts = match listing.records.first() {
                Some(record) if offset == 0 && limit > 0 => vec![to_contact(record, region)?],
                _ => Vec::new(),
            };
            return Ok(ListChunk {
                contacts,
                exhausted: true,
                total: None,
            });
        }
        let mut records = listing.records;
        let received = records.len();
        // magicblocks.txt documents no paging parameters: never return more than asked.
        records.truncate(limit as usize);
        let contacts = records
            .iter()
            .map(|r| to_contact(r, region))
            .collect::<Result<Vec<_>, _>>()?;
        let exhausted = match listing.has_more {
            Some(more) => !more,
            None => {
                received < limit as usize
                    || listing.total.is_some_and(|t| offset + received as u64 >= t)
            }
        };
        Ok(ListChunk {
            contacts,
            exhausted: exhausted && received <= limit as usize,
            total: listing.total,
        })
    }
}

fn empty_chunk() -> ListChunk {
    ListChunk {
        contacts: Vec::new(),
        exhausted: true,
        total: None,
    }
}

/// A single-record answer, unwrapped from `data` when it came in an envelope.
fn unwrap_single(body: Value) -> Value {
    match body {
        Value::Object(mut map)
            if !map.contains_key("id") && map.get("data").is_some_and(Value::is_object) =>
        {
            map.remove("data").unwrap_or(Value::Null)
        }
        other => other,
    }
}

/// A listing read tolerantly (Decision 1): the records, and what the body says about the rest.
struct Listing {
    records: Vec<Value>,
    total: Option<u64>,
    has_more: Option<bool>,
    /// The body was one record, not a list (a by-email or by-phone lookup may answer so).
    single: bool,
}

fn read_listing(body: &Value) -> Option<Listing> {
    let listing = |records: Vec<Value>, single| Listing {
        records,
        total: ["/total", "/meta/total", "/count", "/meta/count"]
            .iter()
            .find_map(|p| body.pointer(p).and_then(as_count)),
        has_more: ["/hasMore", "/meta/hasMore"]
            .iter()
            .find_map(|p| body.pointer(p).and_then(Value::as_bool)),
        single,
    };
    match body {
        Value::Array(items) => Some(listing(items.clone(), false)),
        Value::Null => Some(listing(Vec::new(), false)),
        Value::Object(map) => {
            for key in ["data", "contacts", "results"] {
                match map.get(key) {
                    Some(Value::Array(items)) => return Some(listing(items.clone(), false)),
                    Some(record @ Value::Object(_)) => {
                        return Some(listing(vec![record.clone()], true))
                    }
                    _ => {}
                }
            }
            map.contains_key("id")
                .then(|| listing(vec![body.clone()], true))
        }
        _ => None,
    }
}

fn as_count(v: &Value) -> Option<u64> {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

/// Maps one MagicBlocks contact (the document's response model) to the unified contact.
pub fn to_contact(raw: &Value, region: Option<Region>) -> Result<Contact, ProviderError> {
    let id = raw.get("id").and_then(string_or_number).ok_or_else(|| {
        ProviderError::unparseable(ProviderId::Magicblocks, "contact without an id")
    })?;
    let mut contact = Contact::new(ProviderId::Magicblocks, id, raw.clone());
    // magicblocks.txt: `generatedName` sits beside `name`; show `name`, else the generated one.
    contact.name = name_of(raw.get("name"))
        .filter(|n| !n.is_empty())
        .or_else(|| name_of(raw.get("generatedName")))
        .unwrap_or_default();
    contact.emails = entries(raw, "emails", "primaryEmail", "address")
        .into_iter()
        .map(|e| Email {
            address: e.value,
            kind: e.kind,
            primary: e.primary,
        })
        .collect();
    contact.phones = entries(raw, "phones", "primaryPhone", "number")
        .into_iter()
        .map(|p| Phone {
            e164: phone::to_e164(&p.value, region),
            number: p.value,
            kind: p.kind,
            primary: p.primary,
        })
        .collect();
    // magicblocks.txt: the request writes `custom`, the response reads `customFields`.
    contact.custom_fields = object_of(raw.get("customFields"))
        .or_else(|| object_of(raw.get("custom")))
        .unwrap_or_default();
    contact.company = contact
        .custom_fields
        .get("company")
        .and_then(string_or_number);
    contact.is_test = raw.get("isTest").and_then(Value::as_bool);
    // magicblocks.txt: `firstSeen` and `modifiedAt` are epoch seconds.
    contact.created_at = raw.get("firstSeen").and_then(parse_timestamp);
    contact.updated_at = raw.get("modifiedAt").and_then(parse_timestamp);
    Ok(contact)
}

fn name_of(value: Option<&Value>) -> Option<PersonName> {
    match value? {
        Value::Object(parts) => {
            let part = |k: &str| parts.get(k).and_then(Value::as_str);
            Some(PersonName::from_parts(
                part("first"),
                part("middle"),
                part("last"),
            ))
        }
        Value::String(full) => Some(PersonName::from_full(Some(full))),
        _ => None,
    }
}

fn object_of(value: Option<&Value>) -> Option<Map<String, Value>> {
    value.and_then(Value::as_object).cloned()
}

/// One item of `emails[]` or `phones[]`.
struct Entry {
    value: String,
    kind: Option<String>,
    primary: bool,
}

/// The items of `list`, exactly one of them primary: the one `primary_key` names, else the first
/// with `primary: true`, else the first (NOTES.md 1.6.8).
fn entries(raw: &Value, list: &str, primary_key: &str, field: &str) -> Vec<Entry> {
    let read = |v: &Value| -> Option<Entry> {
        match v {
            Value::String(s) => non_empty(Some(s)).map(|value| Entry {
                value,
                kind: None,
                primary: false,
            }),
            Value::Object(item) => Some(Entry {
                value: item.get(field).and_then(string_or_number)?,
                kind: non_empty(item.get("type").and_then(Value::as_str)),
                primary: item
                    .get("primary")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            }),
            _ => None,
        }
    };
    let mut items: Vec<Entry> = raw
        .get(list)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(read)
        .collect();
    let chosen = match raw.get(primary_key).and_then(read) {
        Some(named) => match items
            .iter()
            .position(|e| e.value.eq_ignore_ascii_case(&named.value))
        {
            Some(i) => Some(i),
            None => {
                items.insert(0, named);
                Some(0)
            }
        },
        None => items
            .iter()
            .position(|e| e.primary)
            .or((!items.is_empty()).then_some(0)),
    };
    for (i, item) in items.iter_mut().enumerate() {
        item.primary = Some(i) == chosen;
    }
    items
}

#[cfg(test)]
use super::testing;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn au() -> Option<Region> {
        phone::parse_region("AU")
    }

    /// magicblocks.txt, "Sample Response" of the create example.
    fn created() -> Value {
        json!({
            "id": "con_01HRWJ0HAN8F6X9Z7",
            "firstSeen": 1730288600,
            "modifiedAt": 1730288600,
            "lastSeen": 1730288600,
            "name": { "first": "Johan", "middle": "", "last": "Greg" },
            "generatedName": { "first": "Johan", "middle": "", "last": "Greg" },
            "emails": [
                { "address": "johan.greg@magicblocks.ai", "type": "work", "primary": true }
            ],
            "primaryEmail": { "address": "johan.greg@magicblocks.ai", "type": "work", "primary": true },
            "phones": [ { "number": "+61412345678", "type": "mobile", "primary": true } ],
            "primaryPhone": { "number": "+61412345678", "type": "mobile", "primary": true },
            "isTest": false,
            "sessionCount": 12,
            "userKnowledge": "Imported from Founders contact list - internal test data",
            "customFields": {
                "utm_source": "founder-referral",
                "utm_campaign": "onboarding-internal",
                "role": "Co-Founder",
                "country": "Australia",
                "timezone": "AEST"
            },
            "link": "https://app.magicblocks.ai/contacts/con_01HRWJ0HAN8F6X9Z7",
            "preview": false
        })
    }

    /// magicblocks.txt, "Success response (200 OK)" of the update example.
    fn updated() -> Value {
        json!({
            "id": "con_01HRW1X9F5A9QZ7",
            "firstSeen": 1730253452,
            "modifiedAt": 1730256720,
            "lastSeen": 1730256720,
            "name": { "first": "Johan", "middle": "", "last": "Greg" },
            "generatedName": { "first": "Johan", "middle": "", "last": "Greg" },
            "emails": [
                { "address": "johan.greg@magicblocks.ai", "type": "work", "primary": true }
            ],
            "primaryEmail": { "address": "johan.greg@magicblocks.ai", "type": "work", "primary": true },
            "phones": [ { "number": "+61412345678", "type": "mobile", "primary": true } ],
            "primaryPhone": { "number": "+61412345678", "type": "mobile", "primary": true },
            "isTest": false,
            "sessionCount": 12,
            "userKnowledge": "Imported from Founders contact list - internal test data",
            "customFields": { "company": "MagicBlocks Pty Ltd", "plan": "Enterprise" },
            "link": "https://app.magicblocks.ai/contacts/con_01HRW1X9F5A9QZ7",
            "preview": false
        })
    }

    #[test]
    fn maps_the_documented_create_response() {
        let contact = to_contact(&created(), au()).expect("maps");
        insta::with_settings!({ sort_maps => true }, {
            insta::assert_json_snapshot!(contact);
        });
    }

    #[test]
    fn maps_the_documented_update_response() {
        let contact = to_contact(&updated(), au()).expect("maps");
        assert_eq!(contact.company.as_deref(), Some("MagicBlocks Pty Ltd"));
        insta::with_settings!({ sort_maps => true }, {
            insta::assert_json_snapshot!(contact);
        });
    }

    #[test]
    fn generated_name_stands_in_for_an_empty_name() {
        let raw = json!({
            "id": "con_1",
            "name": { "first": "", "middle": "", "last": "" },
            "generatedName": { "first": "Quiet", "middle": "", "last": "Otter" }
        });
        let contact = to_contact(&raw, au()).expect("maps");
        assert_eq!(contact.name.full.as_deref(), Some("Quiet Otter"));
        assert_eq!(contact.name.first.as_deref(), Some("Quiet"));
        let raw = json!({ "id": "con_2", "generatedName": { "first": "Only" } });
        assert_eq!(
            to_contact(&raw, au()).expect("maps").name.full.as_deref(),
            Some("Only")
        );
    }

    #[test]
    fn custom_is_read_when_custom_fields_is_absent() {
        let raw = json!({ "id": "con_1", "custom": { "company": "Acme", "plan": "Pro" } });
        let contact = to_contact(&raw, au()).expect("maps");
        assert_eq!(contact.company.as_deref(), Some("Acme"));
        assert_eq!(contact.custom_fields.get("plan"), Some(&json!("Pro")));
        // `customFields` wins when both arrive.
        let raw = json!({ "id": "con_1", "custom": { "plan": "Old" }, "customFields": { "plan": "New" } });
        let contact = to_contact(&raw, au()).expect("maps");
        assert_eq!(contact.custom_fields.get("plan"), Some(&json!("New")));
        assert_eq!(contact.company, None);
    }

    #[test]
    fn primary_email_chooses_the_primary_else_the_flag_else_the_first() {
        let raw = json!({
            "id": "con_1",
            "emails": [
                { "address": "a@x.io", "primary": true },
                { "address": "b@x.io" }
            ],
            "primaryEmail": { "address": "B@x.io" }
        });
        let contact = to_contact(&raw, au()).expect("maps");
        let primaries: Vec<_> = contact.emails.iter().map(|e| e.primary).collect();
        assert_eq!(primaries, [false, true]);
        let raw = json!({ "id": "c", "emails": [ { "address": "a@x.io" }, { "address": "b@x.io", "primary": true } ] });
        let contact = to_contact(&raw, au()).expect("maps");
        assert_eq!(
            contact.primary_email().map(|e| e.address.as_str()),
            Some("b@x.io")
        );
        let raw = json!({ "id": "c", "emails": [ { "address": "a@x.io" }, { "address": "b@x.io" } ], "primaryEmail": null });
        let contact = to_contact(&raw, au()).expect("maps");
        assert!(contact.emails[0].primary && !contact.emails[1].primary);
    }

    #[test]
    fn nulls_and_unknown_fields_are_tolerated_and_an_id_is_required() {
        let raw = json!({
            "id": "con_1", "name": null, "emails": null, "phones": [null, 3], "customFields": null,
            "isTest": true, "firstSeen": null, "somethingNew": { "x": 1 }
        });
        let contact = to_contact(&raw, au()).expect("maps");
        assert!(contact.name.is_empty() && contact.emails.is_empty() && contact.phones.is_empty());
        assert_eq!(contact.is_test, Some(true));
        assert!(to_contact(&json!({ "name": { "first": "x" } }), au()).is_err());
    }

    #[test]
    fn listings_are_read_in_every_tolerated_shape() {
        let bare = read_listing(&json!([{ "id": "a" }])).expect("array");
        assert_eq!((bare.records.len(), bare.total), (1, None));
        let data = read_listing(&json!({ "data": [{ "id": "a" }], "meta": { "total": 7 } }))
            .expect("data");
        assert_eq!((data.records.len(), data.total), (1, Some(7)));
        let contacts = read_listing(&json!({ "contacts": [], "total": 0 })).expect("contacts");
        assert_eq!(contacts.total, Some(0));
        let results =
            read_listing(&json!({ "results": [{ "id": "a" }], "count": "3" })).expect("results");
        assert_eq!(results.total, Some(3));
        assert!(
            read_listing(&json!({ "id": "a" }))
                .expect("one record")
                .single
        );
        assert!(read_listing(&json!({ "unexpected": true })).is_none());
    }

    #[tokio::test]
    async fn requests_carry_the_decided_paths_query_and_auth() {
        let up = testing::spawn(ProviderId::Magicblocks, "AU", |req| {
            if req.path == "/v1/contacts" {
                (200, json!({ "data": [ { "id": "con_1" }, { "id": "con_2" } ], "meta": { "total": 2 } }))
            } else if req.path.ends_with("missing") {
                (404, json!({}))
            } else {
                (200, created())
            }
        })
        .await;
        let adapter = MagicBlocks::new(up.client.clone());

        let got = adapter.get("con 1/x").await.expect("get");
        assert_eq!(
            got.map(|c| c.native_id).as_deref(),
            Some("con_01HRWJ0HAN8F6X9Z7")
        );
        assert_eq!(adapter.get("missing").await.expect("404 is none"), None);
        assert_eq!(adapter.get("..").await.expect("dot id is none"), None);

        let query = ListQuery {
            email: Some("johan.greg@magicblocks.ai".into()),
            phone: Some("+61412345678".into()),
            search: Some("johan".into()),
            ..Default::default()
        };
        let chunk = adapter.list(&query, 0, 5).await.expect("list");
        assert_eq!(chunk.contacts.len(), 2);
        assert!(chunk.exhausted);
        assert_eq!(chunk.total, Some(2));

        let requests = up.requests();
        assert_eq!(requests.len(), 3, "the `..` id never reaches the provider");
        let get = &requests[0];
        assert_eq!(get.method, Method::GET);
        assert_eq!(get.path, "/v1/contacts/con%201%2Fx");
        assert_eq!(get.header("authorization"), Some("Bearer test-key-123"));
        assert_eq!(get.header("accept"), Some("application/json"));
        let list = &requests[2];
        assert_eq!(list.method, Method::GET);
        assert_eq!(list.path, "/v1/contacts");
        assert_eq!(list.header("authorization"), Some("Bearer test-key-123"));
        assert_eq!(list.param("limit"), Some("5"));
        assert_eq!(list.param("offset"), Some("0"));
        assert_eq!(list.param("email"), Some("johan.greg@magicblocks.ai"));
        assert_eq!(list.param("phone"), Some("+61412345678"));
        assert_eq!(list.param("search"), None, "text search is not documented");
    }

    #[tokio::test]
    async fn a_full_page_is_not_the_end_and_a_filtered_404_is_empty() {
        let up = testing::spawn(ProviderId::Magicblocks, "US", |req| {
            match req.param("email") {
                Some(_) => (404, json!({})),
                None => (200, json!([{ "id": "a" }, { "id": "b" }])),
            }
        })
        .await;
        let adapter = MagicBlocks::new(up.client.clone());
        let chunk = adapter
            .list(&ListQuery::default(), 4, 2)
            .await
            .expect("list");
        assert_eq!(chunk.contacts.len(), 2);
        assert!(!chunk.exhausted);
        assert_eq!(up.requests()[0].param("offset"), Some("4"));
        let query = ListQuery {
            email: Some("nobody@x.io".into()),
            ..Default::default()
        };
        let chunk = adapter.list(&query, 0, 2).await.expect("list");
        assert!(chunk.contacts.is_empty() && chunk.exhausted);
    }
}
