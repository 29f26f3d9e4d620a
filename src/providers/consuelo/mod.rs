//! Consuelo (consuelo.txt): offset listing, get by id, and search (POST with a JSON body,
//! falling back once to GET with query parameters: NOTES.md Decision 2); writes: create
//! (`POST /v1/contacts`, `workspaceId` in the body), partial update (`PATCH /v1/contacts/{id}`),
//! delete, and the write-only do-not-call list (`POST /v1/dnc`).

mod mapping;
mod wire;

use super::http::{Call, UpstreamClient, UpstreamResponse};
use super::{window_from_offset, Capabilities, ListChunk, ListQuery, Provider, ProviderError};
use crate::contact::{non_empty, Contact};
use crate::fields::{Field, FieldAccess, FieldSet};
use crate::write::{ContactPatch, DoNotContact, NewContact, WriteFields};
use mapping::{create_body, patch_body, to_contact, workspace_group};
use reqwest::Method;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use wire::{is_record, Answer, DncBody, PatchBody, SearchBody, SearchFilters};

const CONTACTS: &str = "/v1/contacts";
const SEARCH: &str = "/v1/contacts/search";
const DNC: &str = "/v1/dnc";

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

    /// The configured `workspaceId`, if any.
    fn workspace(&self) -> Option<String> {
        non_empty(Some(&self.workspace_id))
    }

    /// `workspaceId` as a query parameter, when one is configured.
    fn workspace_param(&self) -> Option<(&'static str, String)> {
        self.workspace().map(|id| ("workspaceId", id))
    }

    /// The contact a single-record answer holds (under `data`, or the body itself).
    fn contact_in(&self, body: Value) -> Result<Contact, ProviderError> {
        self.contact_from(Answer::from_body(body).data)
    }

    /// The contact, with the configured workspace as its group when the record names none.
    fn contact_from(&self, record: Value) -> Result<Contact, ProviderError> {
        let mut contact = to_contact(record, self.client.region())?;
        if contact.groups.is_empty() {
            if let Some(workspace) = self.workspace() {
                contact.groups.push(workspace_group(workspace));
            }
        }
        Ok(contact)
    }

    /// `PATCH /v1/contacts/{id}` with `changes`, answering the contact as Consuelo stored it.
    /// A field missing from the answer is not an error here: the update happened, and the
    /// gateway compares the answer with the patch and warns (FIELD_NOT_STORED, NOTES 4.5 /
    /// 7.3). An answer that is not a record (empty, 204, or only an id) is followed by a GET.
    async fn patch(&self, native_id: &str, changes: &PatchBody) -> Result<Contact, ProviderError> {
        let path = self.client.contact_path(CONTACTS, native_id)?;
        let response = self
            .client
            .send_expecting(
                Call::Write,
                Method::PATCH,
                &path,
                &[],
                Some(&json!(changes)),
            )
            .await?;
        let answer = Answer::from_body(response.body);
        if is_record(&answer.data) {
            return self.contact_from(answer.data);
        }
        // The PATCH was taken: a failed read-back must not read as an update not made.
        self.get(native_id)
            .await
            .map_err(ProviderError::after_applied_write)?
            .ok_or_else(|| ProviderError::not_found(self.id()).after_applied_write())
    }

    /// consuelo.txt documents `{workspaceId, query, filters: {company}, limit}` and no offset:
    /// `limit` here is what the caller must ask for (its offset plus its limit), and the
    /// caller skips the first `offset` records itself.
    async fn search(
        &self,
        query: &ListQuery,
        limit: u64,
    ) -> Result<UpstreamResponse, ProviderError> {
        // consuelo.txt: search takes one `query` string; email and phone go through it too.
        let text = query
            .search
            .clone()
            .or_else(|| query.email.clone())
            .or_else(|| query.phone.clone());
        if !self.search_via_get.load(Ordering::Relaxed) {
            let body = json!(SearchBody {
                workspace_id: self.workspace(),
                query: text.clone(),
                filters: query
                    .company
                    .clone()
                    .map(|company| SearchFilters { company }),
                limit,
            });
            // A search sent as POST changes nothing: a read, retried like one.
            match self
                .client
                .send(Call::Read, Method::POST, SEARCH, &[], Some(&body))
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
        let response = self
            .client
            .send_expecting(Call::Read, Method::GET, SEARCH, &params, None)
            .await?;
        self.search_via_get.store(true, Ordering::Relaxed);
        Ok(response)
    }
}

#[async_trait::async_trait]
impl Provider for Consuelo {
    fn client(&self) -> &UpstreamClient {
        &self.client
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            list: true,
            get: true,
            search: true,
            // consuelo.txt: one `query` string, which email and phone go through too
            // (NOTES 2.6: query + local match).
            search_email: true,
            search_phone: true,
            create: true,
            update: true,
            delete: true,
            do_not_contact: true,
            holds_email: true,
            holds_company: true,
            ..Default::default()
        }
    }

    /// consuelo.txt: `firstName`, `lastName`, `phone`, `email`, `company` (create) and `notes`
    /// (the PATCH example). No middle name, one email, one phone, nothing else.
    fn write_fields(&self) -> WriteFields {
        WriteFields {
            first_name: 1,
            last_name: 1,
            emails: 1,
            phones: 1,
            company: 1,
            notes: 1,
            ..WriteFields::default()
        }
    }

    /// Reads show the name parts, the email, the phone, company, notes, the workspace as the
    /// group and the custom fields (the last two cannot be written); PATCH clears with `null`.
    fn field_access(&self) -> FieldAccess {
        use Field::*;
        FieldAccess {
            read: FieldSet::of(&[
                FirstName,
                LastName,
                Emails,
                Phones,
                Company,
                Notes,
                GroupIds,
                CustomFields,
            ]),
            clear: FieldSet::of(&[FirstName, LastName, Emails, Phones, Company, Notes]),
        }
    }

    /// `POST /v1/contacts {workspaceId, firstName, lastName, phone, email, company}` (only the
    /// given keys). `notes` is documented only on PATCH (consuelo.txt), so it is never sent on
    /// the create: given notes follow as `PATCH /v1/contacts/{id} {notes}` (a PATCH is not a
    /// create, so this is no retry), and that answer is returned. Once the contact exists
    /// nothing is an error: a failed notes PATCH returns the created contact as answered
    /// (without notes), and the gateway warns that they were not stored. Never retried.
    async fn create(&self, input: &NewContact) -> Result<Contact, ProviderError> {
        let body = json!(create_body(input, self.workspace()));
        let response = self
            .client
            .send_expecting(Call::Write, Method::POST, CONTACTS, &[], Some(&body))
            .await?;
        let created = self.contact_in(response.body)?;
        let Some(notes) = non_empty(input.notes.as_deref()) else {
            return Ok(created);
        };
        let changes = PatchBody {
            notes: Some(Some(notes)),
            ..PatchBody::default()
        };
        match self.patch(&created.native_id, &changes).await {
            Ok(patched) => Ok(patched),
            Err(e) => {
                tracing::warn!(
                    provider = %self.id(),
                    contact = %created.native_id,
                    error = %e,
                    "Consuelo created the contact but storing its notes failed"
                );
                Ok(created)
            }
        }
    }

    /// `PATCH /v1/contacts/{id}` with only the changed keys (`null` clears one). An empty patch
    /// sends nothing and answers the contact as it is.
    async fn update(
        &self,
        native_id: &str,
        patch: &ContactPatch,
    ) -> Result<Contact, ProviderError> {
        let changes = patch_body(patch);
        if changes.is_empty() {
            return self
                .get(native_id)
                .await?
                .ok_or_else(|| ProviderError::not_found(self.id()));
        }
        self.patch(native_id, &changes).await
    }

    /// `DELETE /v1/contacts/{id}`.
    async fn delete(&self, native_id: &str) -> Result<(), ProviderError> {
        let path = self.client.contact_path(CONTACTS, native_id)?;
        self.client
            .send_expecting(Call::Write, Method::DELETE, &path, &[], None)
            .await?;
        Ok(())
    }

    /// `POST /v1/dnc {workspaceId, phone (E.164), reason}`. Consuelo's DNC is a phone list:
    /// a request naming only an email is `Unsupported`; with a phone and an email, the phone
    /// is listed and the answer says the email was not. `reason` is sent when given (the
    /// document does not say it is required). Write-only: nothing can be read back.
    async fn do_not_contact(&self, request: &DoNotContact) -> Result<String, ProviderError> {
        let Some(phone) = &request.phone else {
            return Err(
                self.unsupported("do-not-contact by email (Consuelo's DNC is a phone list)")
            );
        };
        let e164 = phone.best().to_string();
        let body = json!(DncBody {
            workspace_id: self.workspace(),
            phone: e164.clone(),
            reason: non_empty(request.reason.as_deref()),
        });
        self.client
            .send_expecting(Call::Write, Method::POST, DNC, &[], Some(&body))
            .await?;
        let mut said = format!(
            "applied: {e164} added to Consuelo's do-not-call list (write-only: Consuelo cannot report it back)"
        );
        if let Some(email) = &request.email {
            said.push_str(&format!(
                "; {email} not applied: Consuelo's do-not-call list holds phones only"
            ));
        }
        Ok(said)
    }

    async fn get(&self, native_id: &str) -> Result<Option<Contact>, ProviderError> {
        self.client
            .get_contact(CONTACTS, native_id, |r| self.contact_in(r))
            .await
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
        // Search has no documented offset: ask for the first `offset + limit` matches and skip
        // the first `offset` here. The plain listing pages with `limit`/`offset` upstream.
        let asked = offset + u64::from(limit);
        let response = if narrowed {
            self.search(query, asked).await?
        } else {
            let mut params: Vec<(&str, String)> = self.workspace_param().into_iter().collect();
            params.push(("limit", limit.to_string()));
            params.push(("offset", offset.to_string()));
            self.client
                .send_expecting(Call::Read, Method::GET, CONTACTS, &params, None)
                .await?
        };
        let (records, meta) = wire::listing(response.body)
            .map_err(|what| ProviderError::unparseable(self.id(), what))?;
        let (total, has_more) = (meta.total, meta.has_more);
        if !narrowed {
            return window_from_offset(records, offset, limit, total, has_more, |r| {
                self.contact_from(r)
            });
        }
        let received = records.len() as u64;
        let contacts = records
            .into_iter()
            .skip(usize::try_from(offset).unwrap_or(usize::MAX))
            .take(limit as usize)
            .map(|r| self.contact_from(r))
            .collect::<Result<Vec<_>, _>>()?;
        // A search answer shorter than asked while Consuelo says more match: it capped
        // `limit`, and without an offset the rest cannot be reached. Say so, never end early.
        if received < asked && (has_more == Some(true) || total.is_some_and(|t| t > received)) {
            return Err(ProviderError::unavailable(
                self.id(),
                format!(
                    "its search returns at most {received} matches and documents no offset; \
                     narrow the filter to page further"
                ),
            ));
        }
        // The answer starts at the first match, so `total` is compared with all it holds.
        let exhausted =
            has_more == Some(false) || received < asked || total.is_some_and(|t| received >= t);
        Ok(ListChunk {
            contacts,
            // More than asked came back (the surplus was dropped): not the end.
            exhausted: exhausted && received <= asked,
            total,
        })
    }
}

#[cfg(test)]
use super::testing;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contact::{Phone, ProviderId};

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
    async fn a_search_capped_below_what_was_asked_is_an_error_not_an_early_end() {
        let up = testing::spawn(ProviderId::Consuelo, "US", |_| {
            (
                200,
                json!({ "data": [john(), john()], "meta": { "total": 7, "hasMore": true } }),
            )
        })
        .await;
        let adapter = Consuelo::new(up.client.clone(), "ws_abc123".into());
        let query = ListQuery {
            search: Some("john".into()),
            ..Default::default()
        };
        match adapter.list(&query, 1, 3).await {
            Err(ProviderError::Unavailable { reason, .. }) => assert!(reason.contains("at most 2")),
            other => panic!("expected an error, got {other:?}"),
        }
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
                "limit": 10
            }))
        );
    }

    #[tokio::test]
    async fn search_sends_no_offset_and_pages_by_limit_skipping_locally() {
        // Upstream answers the first `limit` matches of five; no offset is documented.
        let up = testing::spawn(ProviderId::Consuelo, "US", |req| {
            let limit = req
                .body
                .as_ref()
                .and_then(|b| b["limit"].as_u64())
                .unwrap_or(10);
            let all: Vec<Value> = (1..=5)
                .map(|n| json!({ "id": format!("contact_{n}"), "firstName": "John" }))
                .collect();
            let data: Vec<Value> = all.into_iter().take(limit as usize).collect();
            let has_more = (data.len() as u64) < 5;
            (
                200,
                json!({ "data": data, "meta": { "total": 5, "hasMore": has_more } }),
            )
        })
        .await;
        let adapter = Consuelo::new(up.client.clone(), "ws_abc123".into());
        let query = ListQuery {
            search: Some("John".into()),
            ..Default::default()
        };
        let first = adapter.list(&query, 0, 2).await.expect("first page");
        let ids: Vec<_> = first.contacts.iter().map(|c| c.native_id.clone()).collect();
        assert_eq!(ids, ["contact_1", "contact_2"]);
        assert!(!first.exhausted);
        let second = adapter.list(&query, 2, 2).await.expect("second page");
        let ids: Vec<_> = second
            .contacts
            .iter()
            .map(|c| c.native_id.clone())
            .collect();
        assert_eq!(ids, ["contact_3", "contact_4"]);
        assert!(!second.exhausted);
        let last = adapter.list(&query, 4, 2).await.expect("last page");
        let ids: Vec<_> = last.contacts.iter().map(|c| c.native_id.clone()).collect();
        assert_eq!(ids, ["contact_5"]);
        assert!(last.exhausted, "fewer than offset + limit came back");

        let requests = up.requests();
        let bodies: Vec<_> = requests.iter().map(|r| r.body.clone()).collect();
        assert_eq!(
            bodies,
            [
                Some(json!({ "workspaceId": "ws_abc123", "query": "John", "limit": 2 })),
                Some(json!({ "workspaceId": "ws_abc123", "query": "John", "limit": 4 })),
                Some(json!({ "workspaceId": "ws_abc123", "query": "John", "limit": 6 })),
            ],
            "no offset, and no filters without a company"
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
        let chunk = adapter.list(&query, 0, 10).await.expect("search");
        assert_eq!(chunk.contacts.len(), 1);
        let chunk = adapter.list(&query, 5, 10).await.expect("second search");
        assert!(
            chunk.contacts.is_empty() && chunk.exhausted,
            "the one match is skipped"
        );
        let requests = up.requests();
        let methods: Vec<_> = requests.iter().map(|r| r.method.clone()).collect();
        assert_eq!(methods, [Method::POST, Method::GET, Method::GET]);
        let get = &requests[1];
        assert_eq!(get.path, "/v1/contacts/search");
        assert_eq!(get.param("workspaceId"), Some("ws_abc123"));
        assert_eq!(get.param("query"), Some("John Smith"));
        assert_eq!(get.param("limit"), Some("10"));
        assert_eq!(get.param("offset"), None);
        assert_eq!(get.header("authorization"), Some("Bearer test-key-123"));
        let later = &requests[2];
        assert_eq!(later.param("limit"), Some("15"), "offset + limit");
        assert_eq!(later.param("offset"), None);
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

    // ---- writes, against the sandbox simulator (written from consuelo.txt, not from here) ----

    use crate::sandbox::{Sandbox, SimControl};
    use crate::write::{ContactPatch, DoNotContact, NewContact, Patch};

    async fn sandboxed() -> (Sandbox, Consuelo) {
        let sandbox = Sandbox::start().await.expect("sandbox");
        let config = sandbox.provider_configs()[&ProviderId::Consuelo].clone();
        let adapter = Consuelo::new(
            UpstreamClient::new(ProviderId::Consuelo, &config),
            config
                .setting("workspace_id")
                .expect("workspace")
                .to_string(),
        );
        (sandbox, adapter)
    }

    fn stored(control: &SimControl, id: &str) -> Option<Value> {
        control.records().into_iter().find(|r| r["id"] == id)
    }

    fn ada() -> NewContact {
        NewContact {
            first_name: Some("Ada".into()),
            last_name: Some("Lovelace".into()),
            emails: vec![testing::primary_email("ada@analytical.io")],
            phones: vec![testing::primary_phone("+14155550199")],
            company: Some("Analytical Engines".into()),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn create_posts_the_documented_body_with_the_workspace() {
        let (sandbox, adapter) = sandboxed().await;
        let control = sandbox.control(ProviderId::Consuelo);
        control.reset_requests();
        let contact = adapter.create(&ada()).await.expect("create");

        let requests = control.requests();
        assert_eq!(requests.len(), 1, "one call, no follow-up without notes");
        assert_eq!(requests[0].method, "POST");
        assert_eq!(requests[0].path, "/v1/contacts");
        assert_eq!(
            requests[0].body,
            json!({
                "workspaceId": "ws_sandbox",
                "firstName": "Ada",
                "lastName": "Lovelace",
                "phone": "+14155550199",
                "email": "ada@analytical.io",
                "company": "Analytical Engines"
            })
        );
        assert_eq!(contact.name.full.as_deref(), Some("Ada Lovelace"));
        assert_eq!(contact.emails[0].address, "ada@analytical.io");
        assert_eq!(contact.phones[0].e164.as_deref(), Some("+14155550199"));
        assert_eq!(contact.company.as_deref(), Some("Analytical Engines"));
        assert_eq!(contact.groups[0].id, "ws_sandbox");
        let record = stored(control, &contact.native_id).expect("stored");
        assert_eq!(record["email"], "ada@analytical.io");
    }

    #[tokio::test]
    async fn create_with_notes_posts_without_them_then_patches_them() {
        let (sandbox, adapter) = sandboxed().await;
        let control = sandbox.control(ProviderId::Consuelo);
        control.reset_requests();
        let input = NewContact {
            notes: Some("Met at the expo".into()),
            ..ada()
        };
        let contact = adapter.create(&input).await.expect("create");
        let requests = control.requests();
        assert_eq!(requests.len(), 2, "POST, then PATCH {{notes}}");
        assert_eq!(requests[0].method, "POST");
        assert_eq!(requests[0].path, "/v1/contacts");
        assert_eq!(
            requests[0].body.get("notes"),
            None,
            "notes are documented only on PATCH"
        );
        assert_eq!(requests[1].method, "PATCH");
        assert_eq!(
            requests[1].path,
            format!("/v1/contacts/{}", contact.native_id)
        );
        assert_eq!(requests[1].body, json!({ "notes": "Met at the expo" }));
        assert_eq!(contact.notes.as_deref(), Some("Met at the expo"));
        assert_eq!(contact.emails[0].address, "ada@analytical.io");
        let record = stored(control, &contact.native_id).expect("stored");
        assert_eq!(record["notes"], "Met at the expo");
    }

    #[tokio::test]
    async fn a_failed_notes_patch_still_answers_the_created_contact() {
        let up = testing::spawn(ProviderId::Consuelo, "US", |req| {
            if req.method == Method::POST {
                (
                    201,
                    json!({ "data": { "id": "contact_9", "firstName": "Ada" } }),
                )
            } else {
                (
                    400,
                    json!({ "error": { "code": "BAD_REQUEST", "message": "no notes" } }),
                )
            }
        })
        .await;
        let adapter = Consuelo::new(up.client.clone(), "ws_abc123".into());
        let input = NewContact {
            first_name: Some("Ada".into()),
            notes: Some("n1".into()),
            ..Default::default()
        };
        let contact = adapter.create(&input).await.expect("the contact exists");
        assert_eq!(contact.native_id, "contact_9");
        assert_eq!(
            contact.notes, None,
            "the gateway warns that notes were not stored"
        );
        let methods: Vec<_> = up.requests().iter().map(|r| r.method.clone()).collect();
        assert_eq!(
            methods,
            [Method::POST, Method::PATCH],
            "the create is not retried"
        );
    }

    #[tokio::test]
    async fn a_patch_answer_that_is_not_a_record_is_followed_by_a_get() {
        for answer in [
            (204, Value::Null),
            (200, json!({ "data": { "id": "contact_9" } })),
        ] {
            let up = testing::spawn(ProviderId::Consuelo, "US", move |req| {
                if req.method == Method::PATCH {
                    answer.clone()
                } else {
                    (
                        200,
                        json!({ "data": { "id": "contact_9", "firstName": "Liv", "company": "X" } }),
                    )
                }
            })
            .await;
            let adapter = Consuelo::new(up.client.clone(), "ws_abc123".into());
            let patch = ContactPatch {
                first_name: Patch::Set("Liv".into()),
                ..Default::default()
            };
            let contact = adapter.update("contact_9", &patch).await.expect("update");
            assert_eq!(contact.name.first.as_deref(), Some("Liv"));
            assert_eq!(contact.company.as_deref(), Some("X"));
            let requests = up.requests();
            let methods: Vec<_> = requests.iter().map(|r| r.method.clone()).collect();
            assert_eq!(methods, [Method::PATCH, Method::GET]);
            assert_eq!(requests[1].path, "/v1/contacts/contact_9");
        }
    }

    /// The PATCH was taken, then the GET after it failed: the error says the update may have
    /// been applied (a 429 alone would say nothing was done).
    #[tokio::test]
    async fn a_failed_get_after_a_taken_patch_says_it_may_have_been_applied() {
        let up = testing::spawn(ProviderId::Consuelo, "US", |req| {
            if req.method == Method::PATCH {
                (204, Value::Null)
            } else {
                (429, json!({ "error": "rate limit exceeded" }))
            }
        })
        .await;
        let adapter = Consuelo::new(up.client.clone(), "ws_abc123".into());
        let patch = ContactPatch {
            first_name: Patch::Set("Liv".into()),
            ..Default::default()
        };
        let error = adapter.update("contact_9", &patch).await.unwrap_err();
        assert!(error.may_have_been_applied(), "{error:?}");
        let methods: Vec<_> = up.requests().iter().map(|r| r.method.clone()).collect();
        assert_eq!(methods, [Method::PATCH, Method::GET]);
    }

    #[tokio::test]
    async fn a_field_missing_from_the_patch_answer_is_answered_not_refused() {
        let up = testing::spawn(ProviderId::Consuelo, "US", |_| {
            (
                200,
                json!({ "data": { "id": "contact_9", "firstName": "Liv" } }),
            )
        })
        .await;
        let adapter = Consuelo::new(up.client.clone(), "ws_abc123".into());
        let patch = ContactPatch {
            first_name: Patch::Set("Liv".into()),
            company: Patch::Set("Acme".into()),
            ..Default::default()
        };
        let contact = adapter.update("contact_9", &patch).await.expect("update");
        assert_eq!(contact.company, None, "the gateway warns about it");
        assert_eq!(up.requests().len(), 1);
    }

    #[tokio::test]
    async fn create_with_notes_makes_a_post_then_a_patch() {
        let up = testing::spawn(ProviderId::Consuelo, "US", |req| {
            if req.method == Method::POST {
                (
                    201,
                    json!({ "data": { "id": "contact_9", "firstName": "Ada" } }),
                )
            } else {
                (
                    200,
                    json!({ "data": { "id": "contact_9", "firstName": "Ada", "notes": "n1" } }),
                )
            }
        })
        .await;
        let adapter = Consuelo::new(up.client.clone(), "ws_abc123".into());
        let input = NewContact {
            first_name: Some("Ada".into()),
            notes: Some("n1".into()),
            ..Default::default()
        };
        let contact = adapter.create(&input).await.expect("create");
        assert_eq!(contact.notes.as_deref(), Some("n1"));
        let requests = up.requests();
        assert_eq!(requests.len(), 2);
        assert_eq!(requests[0].method, Method::POST);
        assert_eq!(
            requests[0].body,
            Some(json!({ "workspaceId": "ws_abc123", "firstName": "Ada" }))
        );
        assert_eq!(requests[1].method, Method::PATCH);
        assert_eq!(requests[1].path, "/v1/contacts/contact_9");
        assert_eq!(requests[1].body, Some(json!({ "notes": "n1" })));
    }

    #[tokio::test]
    async fn update_patches_only_the_changes_and_the_rest_survives() {
        let (sandbox, adapter) = sandboxed().await;
        let control = sandbox.control(ProviderId::Consuelo);
        let before = control.records()[0].clone();
        let id = before["id"].as_str().expect("id").to_string();
        control.reset_requests();
        let patch = ContactPatch {
            first_name: Patch::Set("Liv".into()),
            notes: Patch::Clear,
            ..Default::default()
        };
        let contact = adapter.update(&id, &patch).await.expect("update");

        let requests = control.requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].method, "PATCH");
        assert_eq!(requests[0].path, format!("/v1/contacts/{id}"));
        assert_eq!(
            requests[0].body,
            json!({ "firstName": "Liv", "notes": null })
        );
        assert_eq!(contact.name.first.as_deref(), Some("Liv"));
        assert_eq!(contact.notes, None);

        // Read back from the simulator's store, not from the answer.
        let after = stored(control, &id).expect("still there");
        assert_eq!(after["firstName"], "Liv");
        assert_eq!(after["notes"], Value::Null);
        for key in ["lastName", "phone", "email", "company", "createdAt"] {
            assert_eq!(after[key], before[key], "{key} survives the patch");
        }
    }

    #[tokio::test]
    async fn update_sets_email_and_phone_and_clears_company() {
        let (sandbox, adapter) = sandboxed().await;
        let control = sandbox.control(ProviderId::Consuelo);
        let before = control.records()[1].clone();
        let id = before["id"].as_str().expect("id").to_string();
        control.reset_requests();
        let patch = ContactPatch {
            emails: Patch::Set(vec![testing::primary_email("new@example.com")]),
            phones: Patch::Set(vec![testing::primary_phone("+14155550100")]),
            company: Patch::Clear,
            ..Default::default()
        };
        adapter.update(&id, &patch).await.expect("update");
        assert_eq!(
            control.requests()[0].body,
            json!({ "email": "new@example.com", "phone": "+14155550100", "company": null })
        );
        let after = stored(control, &id).expect("stored");
        assert_eq!(after["email"], "new@example.com");
        assert_eq!(after["phone"], "+14155550100");
        assert_eq!(after["company"], Value::Null);
        assert_eq!(after["firstName"], before["firstName"]);
        assert_eq!(after["lastName"], before["lastName"]);
    }

    #[tokio::test]
    async fn unknown_ids_are_404_on_update_and_delete() {
        let (_sandbox, adapter) = sandboxed().await;
        let patch = ContactPatch {
            company: Patch::Set("X".into()),
            ..Default::default()
        };
        assert!(matches!(
            adapter.update("contact_nope", &patch).await,
            Err(ProviderError::NotFound { .. })
        ));
        assert!(matches!(
            adapter
                .update("contact_nope", &ContactPatch::default())
                .await,
            Err(ProviderError::NotFound { .. })
        ));
        assert!(matches!(
            adapter.delete("contact_nope").await,
            Err(ProviderError::NotFound { .. })
        ));
    }

    #[tokio::test]
    async fn delete_sends_delete_and_the_record_is_gone() {
        let (sandbox, adapter) = sandboxed().await;
        let control = sandbox.control(ProviderId::Consuelo);
        let id = control.records()[2]["id"].as_str().expect("id").to_string();
        control.reset_requests();
        adapter.delete(&id).await.expect("delete");
        let requests = control.requests();
        assert_eq!(requests[0].method, "DELETE");
        assert_eq!(requests[0].path, format!("/v1/contacts/{id}"));
        assert_eq!(requests[0].body, Value::Null);
        assert!(stored(control, &id).is_none());
    }

    #[tokio::test]
    async fn dnc_posts_workspace_phone_and_reason() {
        let (sandbox, adapter) = sandboxed().await;
        let control = sandbox.control(ProviderId::Consuelo);
        control.reset_requests();
        let said = adapter
            .do_not_contact(&DoNotContact {
                phone: Some(testing::primary_phone("+14155551234")),
                email: None,
                reason: Some("Customer request".into()),
            })
            .await
            .expect("dnc");
        assert!(said.starts_with("applied"), "{said}");
        let requests = control.requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].method, "POST");
        assert_eq!(requests[0].path, "/v1/dnc");
        assert_eq!(
            requests[0].body,
            json!({ "workspaceId": "ws_sandbox", "phone": "+14155551234", "reason": "Customer request" })
        );
    }

    #[tokio::test]
    async fn dnc_with_only_an_email_is_unsupported_before_any_call() {
        let (sandbox, adapter) = sandboxed().await;
        let control = sandbox.control(ProviderId::Consuelo);
        control.reset_requests();
        let result = adapter
            .do_not_contact(&DoNotContact {
                phone: None,
                email: Some("a@b.io".into()),
                reason: None,
            })
            .await;
        assert!(matches!(result, Err(ProviderError::Unsupported { .. })));
        assert_eq!(control.request_count(), 0);
    }

    #[tokio::test]
    async fn a_provider_400_surfaces_with_its_message() {
        let (sandbox, adapter) = sandboxed().await;
        let control = sandbox.control(ProviderId::Consuelo);
        let id = control.records()[0]["id"].as_str().expect("id").to_string();
        // A phone libphonenumber accepts but the simulator cannot read as a number.
        let patch = ContactPatch {
            phones: Patch::Set(vec![Phone {
                number: "not a phone".into(),
                e164: None,
                kind: None,
                primary: true,
            }]),
            ..Default::default()
        };
        match adapter.update(&id, &patch).await {
            Err(ProviderError::Rejected {
                status: 400,
                message,
                ..
            }) => assert!(message.contains("not a valid phone number"), "{message}"),
            other => panic!("expected a 400, got {other:?}"),
        }
        // An empty create: the simulator refuses it with its own words.
        match adapter.create(&NewContact::default()).await {
            Err(ProviderError::Rejected {
                status: 400,
                message,
                ..
            }) => assert!(message.contains("needs a name"), "{message}"),
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn write_fields_and_capabilities_are_truthful() {
        let (_sandbox, adapter) = sandboxed().await;
        let fields = adapter.write_fields();
        assert!(fields.first_name > 0 && fields.notes > 0 && fields.company > 0);
        assert_eq!(fields.middle_name, 0);
        assert_eq!((fields.emails, fields.phones), (1, 1));
        let caps = adapter.capabilities();
        assert!(caps.create && caps.update && caps.delete && caps.do_not_contact);
        assert!(!caps.native_upsert);
        assert!(caps.holds_company && caps.holds_email && !caps.holds_tags);
    }
}
