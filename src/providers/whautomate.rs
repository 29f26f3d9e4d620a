//! Whautomate (whautomate.txt), read side: `GET /v1/contacts?page=&limit=` (1-based pages, a bare
//! array, no total) and `GET /v1/contacts/{contactId}`. Contacts have no email field.

use super::http::{path_segment, UpstreamClient};
use super::{
    window_from_pages, Capabilities, ListChunk, ListQuery, NumberedPage, Provider, ProviderError,
};
use crate::contact::{
    json_or_encoded, non_empty, parse_timestamp, string_or_number, Contact, Group, PersonName,
    Phone, ProviderId,
};
use crate::phone;
use phonenumber::country::Id as Region;
use reqwest::Method;
use serde_json::Value;

const CONTACTS: &str = "/v1/contacts";

pub struct Whautomate {
    client: UpstreamClient,
}

impl Whautomate {
    pub fn new(client: UpstreamClient) -> Self {
        Whautomate { client }
    }

    async fn list_page(
        &self,
        filters: &[(&'static str, String)],
        page: u64,
        size: u32,
    ) -> Result<NumberedPage, ProviderError> {
        let mut params = vec![("page", page.to_string()), ("limit", size.to_string())];
        params.extend(filters.iter().cloned());
        let response = self
            .client
            .send_expecting(Method::GET, CONTACTS, &params, None)
            .await?;
        let records = records_of(&response.body)
            .ok_or_else(|| ProviderError::unparseable(self.id(), "no contact array"))?;
        let region = self.client.region();
        let contacts = records
            .iter()
            .map(|r| to_contact(r, region))
            .collect::<Result<Vec<_>, _>>()?;
        // whautomate.txt: no total and no next link; a short page is the last.
        Ok(NumberedPage {
            contacts,
            total: None,
            has_more: None,
        })
    }
}

#[async_trait::async_trait]
impl Provider for Whautomate {
    fn id(&self) -> ProviderId {
        self.client.provider()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            list: true,
            get: true,
            // `searchText` (text, and a phone's digits) and `tags`.
            search: true,
            holds_tags: true,
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
        to_contact(&response.body, self.client.region()).map(Some)
    }

    async fn list(
        &self,
        query: &ListQuery,
        offset: u64,
        limit: u32,
    ) -> Result<ListChunk, ProviderError> {
        // whautomate.txt: a contact has no email field, so none can match an email filter.
        if query.email.is_some() {
            return Ok(ListChunk {
                contacts: Vec::new(),
                exhausted: true,
                total: None,
            });
        }
        let mut filters: Vec<(&'static str, String)> = Vec::new();
        let search_text = query
            .search
            .clone()
            .or_else(|| query.phone.as_deref().map(phone::digits));
        if let Some(text) = search_text.filter(|t| !t.is_empty()) {
            filters.push(("searchText", text));
        }
        // whautomate.txt types `tags` as one string and never says how a list is written: send
        // one tag, which narrows correctly under any reading; the gateway checks the rest.
        if let Some(tag) = query.tags.first() {
            filters.push(("tags", tag.clone()));
        }
        window_from_pages(offset, limit, |page, size| {
            let filters = &filters;
            async move { self.list_page(filters, page, size).await }
        })
        .await
    }
}

/// A list answer: a bare array (whautomate.txt), or the array under `data`/`contacts`/`results`.
fn records_of(body: &Value) -> Option<&[Value]> {
    match body {
        Value::Array(items) => Some(items),
        Value::Null => Some(&[]),
        Value::Object(map) => ["data", "contacts", "results"]
            .iter()
            .find_map(|k| map.get(*k).and_then(Value::as_array))
            .map(Vec::as_slice),
        _ => None,
    }
}

/// Maps one Whautomate contact (whautomate.txt's contact, plus the webhook's timestamps) to the
/// unified contact.
pub fn to_contact(raw: &Value, region: Option<Region>) -> Result<Contact, ProviderError> {
    let text = |k: &str| non_empty(raw.get(k).and_then(Value::as_str));
    let id = raw.get("id").and_then(string_or_number).ok_or_else(|| {
        ProviderError::unparseable(ProviderId::Whautomate, "contact without an id")
    })?;
    let mut contact = Contact::new(ProviderId::Whautomate, id, raw.clone());
    contact.name = PersonName::from_full(text("name").as_deref());
    if let Some(number) = raw.get("phoneNumber").and_then(string_or_number) {
        contact.phones.push(Phone {
            e164: phone::to_e164(&number, region),
            number,
            kind: None,
            primary: true,
        });
    }
    if let Some(location) = raw.get("location").and_then(Value::as_object) {
        if let Some(id) = location.get("id").and_then(string_or_number) {
            contact.groups.push(Group {
                id,
                name: non_empty(location.get("title").and_then(Value::as_str)),
                kind: "location".into(),
            });
        }
    }
    // whautomate.txt: `stage` is an enum whose values the page does not show; pass it through.
    contact.stage = text("stage");
    contact.notes = text("notes");
    contact.tags = raw.get("tags").map(tags_of).unwrap_or_default();
    // whautomate webhooks send `customFields` as a JSON-encoded string.
    if let Some(Value::Object(custom)) = raw.get("customFields").map(json_or_encoded) {
        contact.custom_fields = custom;
    }
    contact.created_at = raw.get("createdAt").and_then(parse_timestamp);
    contact.updated_at = raw.get("updatedAt").and_then(parse_timestamp);
    Ok(contact)
}

/// whautomate webhooks send `tags` as a JSON-encoded string; read an array, an encoded array, or
/// (not valid JSON) a comma list.
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
use super::testing;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// whautomate.txt, the contact of every example response.
    fn documented() -> Value {
        json!({
            "id": "text",
            "name": "text",
            "phoneNumber": "text",
            "location": { "id": "text", "title": "text" },
            "stage": "Subscriber",
            "notes": "text",
            "customFields": {},
            "tags": [ "text" ]
        })
    }

    /// The webhook's shape (NOTES.md 3.3): timestamps, and tags/customFields JSON-encoded.
    fn webhook() -> Value {
        json!({
            "id": "c_81",
            "name": "Maria de la Cruz",
            "phoneNumber": "+1234567890",
            "location": { "id": "loc_1", "title": "Downtown" },
            "stage": "Lead",
            "notes": "called twice",
            "customFields": "{\"plan\":\"gold\",\"visits\":3}",
            "tags": "[\"vip\",\"spring\"]",
            "channel": "Whatsapp",
            "createdAt": "2024-03-01T09:00:00.000Z",
            "updatedAt": "2024-03-02T10:30:00.000Z"
        })
    }

    #[test]
    fn maps_the_documented_contact() {
        let contact = to_contact(&documented(), phone::parse_region("US")).expect("maps");
        assert_eq!(contact.phones[0].e164, None, "`text` is no phone");
        insta::with_settings!({ sort_maps => true }, {
            insta::assert_json_snapshot!(contact);
        });
    }

    #[test]
    fn maps_a_webhook_shaped_contact() {
        let contact = to_contact(&webhook(), phone::parse_region("US")).expect("maps");
        insta::with_settings!({ sort_maps => true }, {
            insta::assert_json_snapshot!(contact);
        });
    }

    #[test]
    fn encoded_tags_and_custom_fields_are_decoded() {
        let contact = to_contact(&webhook(), None).expect("maps");
        assert_eq!(contact.tags, ["vip", "spring"]);
        assert_eq!(contact.custom_fields.get("plan"), Some(&json!("gold")));
        assert_eq!(contact.custom_fields.get("visits"), Some(&json!(3)));
        assert_eq!(tags_of(&json!("a, b")), ["a", "b"]);
        assert_eq!(tags_of(&json!("\"solo\"")), ["solo"]);
        assert_eq!(tags_of(&json!(null)), Vec::<String>::new());
        assert_eq!(tags_of(&json!([{ "name": "x" }, "y", null])), ["x", "y"]);
    }

    #[test]
    fn names_split_and_groups_come_from_the_location() {
        let contact = to_contact(&webhook(), None).expect("maps");
        assert_eq!(contact.name.first.as_deref(), Some("Maria"));
        assert_eq!(contact.name.last.as_deref(), Some("Cruz"));
        assert_eq!(contact.groups[0].kind, "location");
        assert_eq!(contact.groups[0].name.as_deref(), Some("Downtown"));
        assert_eq!(contact.stage.as_deref(), Some("Lead"));
        assert!(contact.emails.is_empty());
        assert!(contact.created_at.is_some() && contact.updated_at.is_some());
    }

    #[test]
    fn nulls_are_tolerated_and_an_id_is_required() {
        let raw = json!({ "id": "c", "name": null, "location": null, "tags": null, "customFields": "not json" });
        let contact = to_contact(&raw, None).expect("maps");
        assert!(
            contact.tags.is_empty()
                && contact.custom_fields.is_empty()
                && contact.groups.is_empty()
        );
        assert!(to_contact(&json!({ "name": "x" }), None).is_err());
    }

    fn numbered(n: usize, from: usize) -> Value {
        Value::Array(
            (from..from + n)
                .map(|i| json!({ "id": format!("c{i}") }))
                .collect(),
        )
    }

    #[tokio::test]
    async fn an_offset_between_pages_reads_two_pages() {
        // Seven contacts, pages of three: offset 4 is item 2 of page 2.
        let up = testing::spawn(ProviderId::Whautomate, "US", |req| {
            let page: usize = req.param("page").and_then(|p| p.parse().ok()).unwrap_or(0);
            let limit: usize = req.param("limit").and_then(|p| p.parse().ok()).unwrap_or(0);
            let from = (page - 1) * limit;
            (200, numbered(limit.min(7usize.saturating_sub(from)), from))
        })
        .await;
        let adapter = Whautomate::new(up.client.clone());
        let query = ListQuery {
            phone: Some("+1 (234) 567-890".into()),
            tags: vec!["vip".into(), "spring".into()],
            ..Default::default()
        };
        let chunk = adapter.list(&query, 4, 3).await.expect("list");
        let ids: Vec<_> = chunk
            .contacts
            .iter()
            .map(|c| c.native_id.as_str())
            .collect();
        assert_eq!(ids, ["c4", "c5", "c6"]);
        assert!(chunk.exhausted, "page 3 was short");
        assert_eq!(chunk.total, None);

        let requests = up.requests();
        let pages: Vec<_> = requests
            .iter()
            .map(|r| r.param("page").unwrap_or(""))
            .collect();
        assert_eq!(pages, ["2", "3"]);
        for r in &requests {
            assert_eq!(r.method, Method::GET);
            assert_eq!(r.path, "/v1/contacts");
            assert_eq!(r.header("x-api-key"), Some("test-key-123"));
            assert_eq!(r.header("authorization"), None);
            assert_eq!(r.param("limit"), Some("3"));
            assert_eq!(r.param("searchText"), Some("1234567890"));
            assert_eq!(r.param("tags"), Some("vip"));
        }
    }

    #[tokio::test]
    async fn get_uses_the_id_path_and_an_email_filter_calls_nothing() {
        let up = testing::spawn(ProviderId::Whautomate, "US", |req| {
            if req.path.ends_with("gone") {
                (404, json!({}))
            } else {
                (200, webhook())
            }
        })
        .await;
        let adapter = Whautomate::new(up.client.clone());
        let contact = adapter.get("c 81").await.expect("get").expect("found");
        assert_eq!(contact.native_id, "c_81");
        assert_eq!(adapter.get("gone").await.expect("404 is none"), None);
        let query = ListQuery {
            email: Some("a@b.io".into()),
            ..Default::default()
        };
        let chunk = adapter.list(&query, 0, 10).await.expect("list");
        assert!(chunk.contacts.is_empty() && chunk.exhausted);

        let requests = up.requests();
        assert_eq!(requests.len(), 2, "the email filter made no call");
        assert_eq!(requests[0].method, Method::GET);
        assert_eq!(requests[0].path, "/v1/contacts/c%2081");
        assert_eq!(requests[0].header("x-api-key"), Some("test-key-123"));
    }
}
