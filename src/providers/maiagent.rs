//! MaiAgent (maiagent.txt), read side: `GET /api/contacts/?page=&pageSize=&search=` and
//! `GET /api/contacts/{id}/`. Every path ends in `/` (NOTES.md Decision 4).

use super::http::{path_segment, UpstreamClient};
use super::{
    window_from_pages, Capabilities, ListChunk, ListQuery, NumberedPage, Provider, ProviderError,
};
use crate::contact::{
    non_empty, parse_timestamp, string_or_number, Contact, Email, Group, PersonName, Phone,
    ProviderId,
};
use crate::phone;
use phonenumber::country::Id as Region;
use reqwest::Method;
use serde_json::Value;

const CONTACTS: &str = "/api/contacts/";

pub struct MaiAgent {
    client: UpstreamClient,
}

impl MaiAgent {
    pub fn new(client: UpstreamClient) -> Self {
        MaiAgent { client }
    }

    async fn list_page(
        &self,
        search: Option<&str>,
        page: u64,
        size: u32,
    ) -> Result<NumberedPage, ProviderError> {
        let mut params = vec![("page", page.to_string()), ("pageSize", size.to_string())];
        if let Some(search) = search {
            params.push(("search", search.to_string()));
        }
        let Some(response) = self
            .client
            .send(Method::GET, CONTACTS, &params, None)
            .await?
        else {
            // A page past the end answers 404 ("Invalid page."): nothing follows.
            return Ok(NumberedPage {
                contacts: Vec::new(),
                total: None,
                has_more: Some(false),
            });
        };
        let body = &response.body;
        let records = records_of(body)
            .ok_or_else(|| ProviderError::unparseable(self.id(), "no `results` array"))?;
        let region = self.client.region();
        let contacts = records
            .iter()
            .map(|r| to_contact(r, region))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(NumberedPage {
            contacts,
            total: body.get("count").and_then(Value::as_u64),
            // maiagent.txt: `next` points at another host; read it only as "more follow".
            has_more: body.get("next").map(|next| !next.is_null()),
        })
    }
}

#[async_trait::async_trait]
impl Provider for MaiAgent {
    fn id(&self) -> ProviderId {
        self.client.provider()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            list: true,
            get: true,
            search: true,
            holds_email: true,
            ..Default::default()
        }
    }

    async fn get(&self, native_id: &str) -> Result<Option<Contact>, ProviderError> {
        let Some(segment) = path_segment(native_id) else {
            return Ok(None);
        };
        let path = format!("{CONTACTS}{segment}/");
        let Some(response) = self.client.send(Method::GET, &path, &[], None).await? else {
            return Ok(None);
        };
        to_contact(&response.body, self.client.region()).map(Some)
    }

    async fn list(
        &self,
        query: &ListQuery,
        offset: u64,
        limit: u32,
    ) -> Result<ListChunk, ProviderError> {
        let search = query
            .search
            .clone()
            .or_else(|| query.email.clone())
            .or_else(|| query.phone.as_deref().map(national_digits));
        let search = search.filter(|s| !s.is_empty());
        window_from_pages(offset, limit, |page, size| {
            let search = search.as_deref();
            async move { self.list_page(search, page, size).await }
        })
        .await
    }
}

/// maiagent.txt: phoneNumber arrives as an integer (912345678), without country code or trunk
/// `0`, so a phone search sends the national significant number, which such a store contains.
fn national_digits(e164: &str) -> String {
    phone::normalize(e164, None)
        .map(|n| n.national_number.to_string())
        .unwrap_or_else(|| phone::digits(e164))
}

/// The records of a list answer. maiagent.txt: the example nests `results` (`[[{…},{…}]]`)
/// where the schema says a flat array; flatten one level.
fn records_of(body: &Value) -> Option<Vec<Value>> {
    let results = match body {
        Value::Array(_) => body,
        Value::Object(map) => map.get("results")?,
        _ => return None,
    };
    match results {
        Value::Array(items) => Some(
            items
                .iter()
                .flat_map(|item| match item {
                    Value::Array(inner) => inner.clone(),
                    one => vec![one.clone()],
                })
                .filter(|item| !item.is_null())
                .collect(),
        ),
        Value::Null => Some(Vec::new()),
        _ => None,
    }
}

/// Maps one MaiAgent contact (maiagent.txt's response model) to the unified contact.
/// `sourceId` and `queryMetadata` stay in `raw` only.
pub fn to_contact(raw: &Value, region: Option<Region>) -> Result<Contact, ProviderError> {
    let text = |k: &str| non_empty(raw.get(k).and_then(Value::as_str));
    let id = raw
        .get("id")
        .and_then(string_or_number)
        .ok_or_else(|| ProviderError::unparseable(ProviderId::Maiagent, "contact without an id"))?;
    let mut contact = Contact::new(ProviderId::Maiagent, id, raw.clone());
    contact.name = PersonName::from_full(text("name").as_deref());
    if let Some(address) = text("email") {
        contact.emails.push(Email {
            address,
            kind: None,
            primary: true,
        });
    }
    // maiagent.txt: phoneNumber arrives as an integer; read its digits in the default region.
    if let Some(number) = raw.get("phoneNumber").and_then(string_or_number) {
        contact.phones.push(Phone {
            e164: phone::to_e164(&number, region),
            number,
            kind: None,
            primary: true,
        });
    }
    // maiagent.txt: `inbox` is the legacy single inbox, ignored when `inboxes` is present.
    let inboxes: Vec<&Value> = match raw.get("inboxes") {
        Some(Value::Array(items)) => items.iter().collect(),
        _ => raw.get("inbox").into_iter().collect(),
    };
    contact.groups = inboxes
        .into_iter()
        .filter_map(|inbox| {
            Some(Group {
                id: inbox.get("id").and_then(string_or_number)?,
                name: non_empty(inbox.get("name").and_then(Value::as_str)),
                kind: "inbox".into(),
            })
        })
        .collect();
    // maiagent.txt: timestamps are epoch milliseconds as strings ("1751875361000").
    contact.created_at = raw.get("createdAt").and_then(parse_timestamp);
    contact.updated_at = raw.get("updatedAt").and_then(parse_timestamp);
    Ok(contact)
}

#[cfg(test)]
use super::testing;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tw() -> Option<Region> {
        phone::parse_region("TW")
    }

    /// maiagent.txt, "List Contacts" response example, nested `results` and all.
    fn listing() -> Value {
        json!({
            "count": 123,
            "next": "http://api.example.org/accounts/?page=4",
            "previous": "http://api.example.org/accounts/?page=2",
            "results": [
                [
                    {
                        "id": "user1_uuid",
                        "inboxes": [ { "id": "inbox_uuid", "name": "inbox_name" } ],
                        "name": "user1",
                        "avatar": "",
                        "sourceId": null,
                        "queryMetadata": null,
                        "createdAt": "1751875361000",
                        "updatedAt": "1751875361000"
                    },
                    {
                        "id": "user2_uuid",
                        "inboxes": [ { "id": "inbox_uuid", "name": "inbox_name" } ],
                        "name": "user2",
                        "avatar": "avatar_url",
                        "sourceId": "self defined source id",
                        "queryMetadata": "self defined query metadata",
                        "createdAt": "1751875400000",
                        "updatedAt": "1751875400000"
                    }
                ]
            ]
        })
    }

    /// maiagent.txt, the get/create/update "Response Example Value" (its email is shown
    /// redacted as "[email protected]" in the document; kept as printed).
    fn detail() -> Value {
        json!({
            "id": "user1_uuid",
            "inboxes": [ { "id": "inbox_uuid", "name": "inbox_name" } ],
            "name": "user1",
            "avatar": "",
            "phoneNumber": 912345678,
            "email": "[email protected]",
            "sourceId": null,
            "queryMetadata": null,
            "createdAt": "1751875361000",
            "updatedAt": "1751875361000"
        })
    }

    #[test]
    fn maps_the_documented_contact() {
        let contact = to_contact(&detail(), tw()).expect("maps");
        insta::with_settings!({ sort_maps => true }, {
            insta::assert_json_snapshot!(contact);
        });
    }

    #[test]
    fn maps_the_documented_listing() {
        let records = records_of(&listing()).expect("records");
        let contacts = records
            .iter()
            .map(|r| to_contact(r, tw()))
            .collect::<Result<Vec<_>, _>>()
            .expect("maps");
        insta::with_settings!({ sort_maps => true }, {
            insta::assert_json_snapshot!(contacts);
        });
    }

    #[test]
    fn nested_results_are_flattened() {
        let ids: Vec<_> = records_of(&listing())
            .expect("records")
            .iter()
            .map(|r| r["id"].clone())
            .collect();
        assert_eq!(ids, [json!("user1_uuid"), json!("user2_uuid")]);
        let flat = json!({ "count": 1, "next": null, "results": [ { "id": "a" } ] });
        assert_eq!(records_of(&flat).expect("flat").len(), 1);
        assert!(records_of(&json!({ "detail": "x" })).is_none());
    }

    #[test]
    fn an_integer_phone_becomes_e164_in_the_default_region() {
        let contact = to_contact(&detail(), tw()).expect("maps");
        assert_eq!(contact.phones[0].number, "912345678");
        assert_eq!(contact.phones[0].e164.as_deref(), Some("+886912345678"));
        let raw = json!({ "id": "x", "phoneNumber": "+886912345678" });
        let contact = to_contact(&raw, phone::parse_region("US")).expect("maps");
        assert_eq!(contact.phones[0].e164.as_deref(), Some("+886912345678"));
    }

    #[test]
    fn epoch_millisecond_strings_are_timestamps() {
        let contact = to_contact(&detail(), tw()).expect("maps");
        let created = contact.created_at.expect("createdAt");
        assert_eq!(created.timestamp_millis(), 1_751_875_361_000);
    }

    #[test]
    fn inbox_is_read_when_inboxes_is_absent() {
        let raw = json!({ "id": "x", "inbox": { "id": "in_1", "name": "Web" } });
        let contact = to_contact(&raw, tw()).expect("maps");
        assert_eq!(contact.groups.len(), 1);
        assert_eq!(contact.groups[0].id, "in_1");
        assert_eq!(contact.groups[0].kind, "inbox");
        let both = json!({ "id": "x", "inbox": { "id": "old" }, "inboxes": [ { "id": "new" } ] });
        let contact = to_contact(&both, tw()).expect("maps");
        let ids: Vec<_> = contact.groups.iter().map(|g| g.id.as_str()).collect();
        assert_eq!(ids, ["new"]);
    }

    #[test]
    fn source_id_and_query_metadata_stay_in_raw() {
        let records = records_of(&listing()).expect("records");
        let contact = to_contact(&records[1], tw()).expect("maps");
        assert!(contact.custom_fields.is_empty());
        assert_eq!(contact.raw["sourceId"], json!("self defined source id"));
        assert!(to_contact(&json!({ "name": "no id" }), tw()).is_err());
    }

    #[test]
    fn a_phone_search_sends_the_national_digits() {
        assert_eq!(national_digits("+886912345678"), "912345678");
        assert_eq!(national_digits("+14155551234"), "4155551234");
    }

    #[tokio::test]
    async fn requests_keep_the_trailing_slash_and_the_api_key_scheme() {
        // Three contacts at page size 2: page 2 holds one, page 3 is past the end.
        let up = testing::spawn(ProviderId::Maiagent, "TW", |req| {
            if req.path == "/api/contacts/user1_uuid/" {
                return (200, detail());
            }
            if req.path != "/api/contacts/" {
                return (404, json!({ "detail": "Not found." }));
            }
            match req.param("page") {
                Some("1") => (
                    200,
                    json!({ "count": 3, "next": "http://api.example.org/?page=2", "previous": null,
                    "results": [[ { "id": "a" }, { "id": "b" } ]] }),
                ),
                Some("2") => (
                    200,
                    json!({ "count": 3, "next": null, "previous": "http://api.example.org/?page=1",
                    "results": [[ { "id": "c" } ]] }),
                ),
                _ => (404, json!({ "detail": "Invalid page." })),
            }
        })
        .await;
        let adapter = MaiAgent::new(up.client.clone());

        let contact = adapter
            .get("user1_uuid")
            .await
            .expect("get")
            .expect("found");
        assert_eq!(contact.phones[0].e164.as_deref(), Some("+886912345678"));
        assert_eq!(adapter.get("missing").await.expect("404 is none"), None);

        let query = ListQuery {
            phone: Some("+886912345678".into()),
            ..Default::default()
        };
        let chunk = adapter.list(&query, 0, 2).await.expect("page 1");
        assert_eq!(chunk.contacts.len(), 2);
        assert!(!chunk.exhausted, "`next` is set");
        assert_eq!(chunk.total, Some(3));
        let chunk = adapter.list(&query, 2, 2).await.expect("page 2");
        assert_eq!(chunk.contacts.len(), 1);
        assert!(chunk.exhausted, "`next` is null");
        let chunk = adapter.list(&query, 4, 2).await.expect("past the end");
        assert!(chunk.contacts.is_empty() && chunk.exhausted);

        let requests = up.requests();
        assert_eq!(requests[0].method, Method::GET);
        assert_eq!(requests[0].path, "/api/contacts/user1_uuid/");
        assert_eq!(
            requests[0].header("authorization"),
            Some("Api-Key test-key-123")
        );
        assert_eq!(requests[1].path, "/api/contacts/missing/");
        let list = &requests[2];
        assert_eq!(list.method, Method::GET);
        assert_eq!(list.path, "/api/contacts/");
        assert_eq!(list.header("authorization"), Some("Api-Key test-key-123"));
        assert_eq!(list.param("page"), Some("1"));
        assert_eq!(list.param("pageSize"), Some("2"));
        assert_eq!(list.param("search"), Some("912345678"));
        let pages: Vec<_> = requests[2..]
            .iter()
            .map(|r| r.param("page").unwrap_or(""))
            .collect();
        assert_eq!(pages, ["1", "2", "3"]);
        assert!(requests.iter().all(|r| r.path.ends_with('/')));
    }
}
