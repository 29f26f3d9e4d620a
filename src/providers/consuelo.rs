//! Consuelo (consuelo.txt), read side: offset listing, get by id, and search (POST with a JSON
//! body, falling back once to GET with query parameters: NOTES.md Decision 2).

use super::http::{path_segment, UpstreamClient, UpstreamResponse};
use super::{Capabilities, ListChunk, ListQuery, Provider, ProviderError};
use crate::contact::{
    non_empty, parse_timestamp, string_or_number, Contact, Email, Group, PersonName, Phone,
    ProviderId,
};
use crate::phone;
use phonenumber::country::Id as Region;
use reqwest::Method;
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicBool, Ordering};

const CONTACTS: &str = "/v1/contacts";
const SEARCH: &str = "/v1/contacts/search";

pub struct Consuelo {
    client: UpstreamClient,
    workspace_id: String,
    /// The POST search answered 404/405 and the GET form worked: use GET from now on.
    search_via_get: AtomicBool,
}

impl Consuelo {
    pub fn new(client: UpstreamClient, workspace_id: String) -> Self {
        Consuelo {
            client,
            workspace_id,
            search_via_get: AtomicBool::new(false),
        }
    }

    /// `workspaceId` as a query parameter, when one is configured.
    fn workspace_param(&self) -> Option<(&'static str, String)> {
        non_empty(Some(&self.workspace_id)).map(|id| ("workspaceId", id))
    }

    /// The contact, with the configured workspace as its group when the record names none.
    fn contact_from(&self, record: &Value) -> Result<Contact, ProviderError> {
        let mut contact = to_contact(record, self.client.region())?;
        if contact.groups.is_empty() {
            if let Some(workspace) = non_empty(Some(&self.workspace_id)) {
                contact.groups.push(workspace_group(workspace));
            }
        }
        Ok(contact)
    }

    async fn search(
        &self,
        query: &ListQuery,
        offset: u64,
        limit: u32,
    ) -> Result<UpstreamResponse, ProviderError> {
        // consuelo.txt: search takes one `query` string; email and phone go through it too.
        let text = query
            .search
            .clone()
            .or_else(|| query.email.clone())
            .or_else(|| query.phone.clone());
        if !self.search_via_get.load(Ordering::Relaxed) {
            let mut body = Map::new();
            if let Some(workspace) = non_empty(Some(&self.workspace_id)) {
                body.insert("workspaceId".into(), json!(workspace));
            }
            if let Some(text) = &text {
                body.insert("query".into(), json!(text));
            }
            let mut filters = Map::new();
            if let Some(company) = &query.company {
                filters.insert("company".into(), json!(company));
            }
            body.insert("filters".into(), Value::Object(filters));
            body.insert("limit".into(), json!(limit));
            body.insert("offset".into(), json!(offset));
            let body = Value::Object(body);
            match self
                .client
                .send(Method::POST, SEARCH, &[], Some(&body))
                .await
            {
                Ok(Some(response)) => return Ok(response),
                // consuelo.txt: the table says GET, the worked example POST; on 404/405 try GET.
                Ok(None) | Err(ProviderError::Rejected { status: 405, .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let mut params: Vec<(&str, String)> = self.workspace_param().into_iter().collect();
        if let Some(text) = text {
            params.push(("query", text));
        }
        params.push(("limit", limit.to_string()));
        params.push(("offset", offset.to_string()));
        let response = self
            .client
            .send_expecting(Method::GET, SEARCH, &params, None)
            .await?;
        self.search_via_get.store(true, Ordering::Relaxed);
        Ok(response)
    }
}

#[async_trait::async_trait]
impl Provider for Consuelo {
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
        let path = format!("{CONTACTS}/{segment}");
        let Some(response) = self.client.send(Method::GET, &path, &[], None).await? else {
            return Ok(None);
        };
        let record = unwrap_data(&response.body);
        self.contact_from(record).map(Some)
    }

    async fn list(
        &self,
        query: &ListQuery,
        offset: u64,
        limit: u32,
    ) -> Result<ListChunk, ProviderError> {
        let narrowed = query.search.is_some()
            || query.email.is_some()
            || query.phone.is_some()
            || query.company.is_some();
        let response = if narrowed {
            self.search(query, offset, limit).await?
        } else {
            let mut params: Vec<(&str, String)> = self.workspace_param().into_iter().collect();
            params.push(("limit", limit.to_string()));
            params.push(("offset", offset.to_string()));
            self.client
                .send_expecting(Method::GET, CONTACTS, &params, None)
                .await?
        };
        let body = &response.body;
        let records = match unwrap_data(body) {
            Value::Array(items) => items.as_slice(),
            Value::Null => &[],
            _ => {
                return Err(ProviderError::unparseable(
                    self.id(),
                    "no contact array under `data`",
                ))
            }
        };
        let mut contacts = records
            .iter()
            .map(|r| self.contact_from(r))
            .collect::<Result<Vec<_>, _>>()?;
        let received = contacts.len();
        contacts.truncate(limit as usize);
        let total = body.pointer("/meta/total").and_then(Value::as_u64);
        let exhausted = match body.pointer("/meta/hasMore").and_then(Value::as_bool) {
            Some(more) => !more,
            None => {
                received < limit as usize || total.is_some_and(|t| offset + received as u64 >= t)
            }
        };
        Ok(ListChunk {
            contacts,
            exhausted: exhausted && received <= limit as usize,
            total,
        })
    }
}

/// consuelo.txt: answers come as `{data: …, meta: …}`; take `data` when present, else the body.
fn unwrap_data(body: &Value) -> &Value {
    match body.get("data") {
        Some(data) if !data.is_null() => data,
        _ => body,
    }
}

fn workspace_group(id: String) -> Group {
    Group {
        id,
        name: None,
        kind: "workspace".into(),
    }
}

/// Maps one Consuelo contact (consuelo.txt's list item) to the unified contact.
pub fn to_contact(raw: &Value, region: Option<Region>) -> Result<Contact, ProviderError> {
    let text = |k: &str| non_empty(raw.get(k).and_then(Value::as_str));
    let id = raw
        .get("id")
        .and_then(string_or_number)
        .ok_or_else(|| ProviderError::unparseable(ProviderId::Consuelo, "contact without an id"))?;
    let mut contact = Contact::new(ProviderId::Consuelo, id, raw.clone());
    let first = text("firstName");
    let last = text("lastName");
    contact.name = PersonName::from_parts(first.as_deref(), None, last.as_deref());
    if contact.name.is_empty() {
        contact.name = PersonName::from_full(text("name").as_deref());
    }
    if let Some(address) = text("email") {
        contact.emails.push(Email {
            address,
            kind: None,
            primary: true,
        });
    }
    if let Some(number) = raw.get("phone").and_then(string_or_number) {
        contact.phones.push(Phone {
            e164: phone::to_e164(&number, region),
            number,
            kind: None,
            primary: true,
        });
    }
    contact.company = text("company");
    // consuelo.txt: `notes` is shown only on PATCH; read it when a record carries it.
    contact.notes = text("notes");
    if let Some(workspace) = raw.get("workspaceId").and_then(string_or_number) {
        contact.groups.push(workspace_group(workspace));
    }
    if let Some(custom) = raw.get("customFields").and_then(Value::as_object) {
        contact.custom_fields = custom.clone();
    }
    contact.created_at = raw.get("createdAt").and_then(parse_timestamp);
    contact.updated_at = raw.get("updatedAt").and_then(parse_timestamp);
    Ok(contact)
}

#[cfg(test)]
use super::testing;

#[cfg(test)]
mod tests {
    use super::*;

    /// consuelo.txt, "List Contacts" response.
    fn listing() -> Value {
        json!({
            "data": [
                {
                    "id": "contact_123",
                    "firstName": "John",
                    "lastName": "Smith",
                    "phone": "+14155551234",
                    "email": "john@example.com",
                    "company": "Acme Inc",
                    "createdAt": "2024-01-15T10:30:00Z",
                    "updatedAt": "2024-01-15T10:30:00Z"
                }
            ],
            "meta": { "total": 150, "hasMore": true }
        })
    }

    fn john() -> Value {
        listing()["data"][0].clone()
    }

    #[test]
    fn maps_the_documented_list_item() {
        let contact = to_contact(&john(), phone::parse_region("US")).expect("maps");
        insta::with_settings!({ sort_maps => true }, {
            insta::assert_json_snapshot!(contact);
        });
    }

    #[test]
    fn data_is_unwrapped_when_present() {
        let wrapped = json!({ "data": john(), "meta": { "requestId": "r1" } });
        assert_eq!(unwrap_data(&wrapped), &john());
        assert_eq!(unwrap_data(&john()), &john());
        assert_eq!(unwrap_data(&listing()), &listing()["data"]);
    }

    #[test]
    fn nulls_and_missing_fields_are_tolerated_and_an_id_is_required() {
        let raw = json!({ "id": "contact_1", "firstName": null, "email": "", "phone": null, "extra": [1] });
        let contact = to_contact(&raw, None).expect("maps");
        assert!(contact.name.is_empty() && contact.emails.is_empty() && contact.phones.is_empty());
        assert_eq!(contact.consent, None, "Consuelo's DNC cannot be read back");
        assert!(to_contact(&json!({ "firstName": "x" }), None).is_err());
    }

    #[tokio::test]
    async fn get_and_list_send_the_documented_requests() {
        let up = testing::spawn(ProviderId::Consuelo, "US", |req| match req.path.as_str() {
            "/v1/contacts" => (200, listing()),
            "/v1/contacts/contact_123" => {
                (200, json!({ "data": john(), "meta": { "requestId": "r" } }))
            }
            _ => (
                404,
                json!({ "error": { "code": "NOT_FOUND", "message": "no" } }),
            ),
        })
        .await;
        let adapter = Consuelo::new(up.client.clone(), "ws_abc123".into());

        let contact = adapter
            .get("contact_123")
            .await
            .expect("get")
            .expect("found");
        assert_eq!(contact.name.full.as_deref(), Some("John Smith"));
        assert_eq!(contact.groups[0].id, "ws_abc123");
        assert_eq!(contact.groups[0].kind, "workspace");
        assert_eq!(adapter.get("nope").await.expect("404 is none"), None);

        let chunk = adapter
            .list(&ListQuery::default(), 20, 1)
            .await
            .expect("list");
        assert_eq!(chunk.contacts.len(), 1);
        assert_eq!(chunk.total, Some(150));
        assert!(!chunk.exhausted, "meta.hasMore is true");

        let requests = up.requests();
        assert_eq!(requests[0].method, Method::GET);
        assert_eq!(requests[0].path, "/v1/contacts/contact_123");
        assert_eq!(
            requests[0].header("authorization"),
            Some("Bearer test-key-123")
        );
        assert_eq!(
            requests[0].param("workspaceId"),
            None,
            "get is scoped by the token"
        );
        let list = &requests[2];
        assert_eq!(list.method, Method::GET);
        assert_eq!(list.path, "/v1/contacts");
        assert_eq!(list.header("authorization"), Some("Bearer test-key-123"));
        assert_eq!(list.param("workspaceId"), Some("ws_abc123"));
        assert_eq!(list.param("limit"), Some("1"));
        assert_eq!(list.param("offset"), Some("20"));
    }

    #[tokio::test]
    async fn search_posts_a_json_body() {
        let up = testing::spawn(ProviderId::Consuelo, "US", |_| {
            (
                200,
                json!({ "data": [john()], "meta": { "total": 1, "hasMore": false } }),
            )
        })
        .await;
        let adapter = Consuelo::new(up.client.clone(), "ws_abc123".into());
        let query = ListQuery {
            email: Some("john@example.com".into()),
            company: Some("Acme Inc".into()),
            ..Default::default()
        };
        let chunk = adapter.list(&query, 0, 10).await.expect("search");
        assert_eq!(chunk.contacts.len(), 1);
        assert!(chunk.exhausted);
        let requests = up.requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].method, Method::POST);
        assert_eq!(requests[0].path, "/v1/contacts/search");
        assert_eq!(requests[0].header("content-type"), Some("application/json"));
        assert_eq!(
            requests[0].body,
            Some(json!({
                "workspaceId": "ws_abc123",
                "query": "john@example.com",
                "filters": { "company": "Acme Inc" },
                "limit": 10,
                "offset": 0
            }))
        );
    }

    #[tokio::test]
    async fn search_falls_back_to_get_on_405_and_remembers_it() {
        let up = testing::spawn(ProviderId::Consuelo, "US", |req| {
            if req.method == Method::POST {
                (
                    405,
                    json!({ "error": { "code": "METHOD_NOT_ALLOWED", "message": "use GET" } }),
                )
            } else {
                (
                    200,
                    json!({ "data": [john()], "meta": { "total": 1, "hasMore": false } }),
                )
            }
        })
        .await;
        let adapter = Consuelo::new(up.client.clone(), "ws_abc123".into());
        let query = ListQuery {
            search: Some("John Smith".into()),
            phone: Some("+14155551234".into()),
            ..Default::default()
        };
        let chunk = adapter.list(&query, 5, 10).await.expect("search");
        assert_eq!(chunk.contacts.len(), 1);
        adapter.list(&query, 0, 10).await.expect("second search");
        let requests = up.requests();
        let methods: Vec<_> = requests.iter().map(|r| r.method.clone()).collect();
        assert_eq!(methods, [Method::POST, Method::GET, Method::GET]);
        let get = &requests[1];
        assert_eq!(get.path, "/v1/contacts/search");
        assert_eq!(get.param("workspaceId"), Some("ws_abc123"));
        assert_eq!(get.param("query"), Some("John Smith"));
        assert_eq!(get.param("limit"), Some("10"));
        assert_eq!(get.param("offset"), Some("5"));
        assert_eq!(get.header("authorization"), Some("Bearer test-key-123"));
    }

    #[tokio::test]
    async fn search_falls_back_to_get_on_404() {
        let up = testing::spawn(ProviderId::Consuelo, "US", |req| {
            if req.method == Method::POST {
                (404, json!({}))
            } else {
                (
                    200,
                    json!({ "data": [], "meta": { "total": 0, "hasMore": false } }),
                )
            }
        })
        .await;
        let adapter = Consuelo::new(up.client.clone(), String::new());
        let query = ListQuery {
            search: Some("nobody".into()),
            ..Default::default()
        };
        let chunk = adapter.list(&query, 0, 10).await.expect("search");
        assert!(chunk.contacts.is_empty() && chunk.exhausted);
        let requests = up.requests();
        assert_eq!(requests.len(), 2);
        assert_eq!(
            requests[1].param("workspaceId"),
            None,
            "none configured, none sent"
        );
    }
}
