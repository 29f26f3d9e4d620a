//! MaiAgent (maiagent.txt): `GET /api/contacts/?page=&pageSize=&search=`,
//! `GET /api/contacts/{id}/`; writes `POST /api/contacts/`, `PATCH /api/contacts/{id}/`,
//! `DELETE /api/contacts/{id}/`. Every path ends in `/`; `phoneNumber` is sent as an E.164
//! string (NOTES.md Decision 4). Its JSON is in `wire`, the mapping in `mapping`.

mod mapping;
mod wire;

use super::http::{Call, UpstreamClient};
use super::{
    window_from_pages, Capabilities, ListChunk, ListQuery, NumberedPage, Provider, ProviderError,
};
use crate::contact::{Contact, PersonName};
use crate::fields::{Field, FieldAccess, FieldSet};
use crate::phone;
use crate::write::{join_name, ContactPatch, NewContact, WriteFields, MANY};
use mapping::{create_body, patch_body, to_contact};
use reqwest::Method;
use serde_json::json;
use wire::ContactList;

/// With its trailing `/`, which `http::record_path` keeps on the record paths.
const CONTACTS: &str = "/api/contacts/";

pub struct MaiAgent {
    client: UpstreamClient,
}

impl MaiAgent {
    pub fn new(client: UpstreamClient) -> Self {
        MaiAgent { client }
    }

    /// The name after a patch that changes some of its parts. When a part is kept, the
    /// current name is read first (`GET`) and split the way the read side splits it.
    async fn patched_name(
        &self,
        native_id: &str,
        patch: &ContactPatch,
    ) -> Result<String, ProviderError> {
        let all_given = !(patch.first_name.is_keep()
            || patch.middle_name.is_keep()
            || patch.last_name.is_keep());
        let current = if all_given {
            PersonName::default()
        } else {
            let contact = self
                .get(native_id)
                .await?
                .ok_or_else(|| ProviderError::not_found(self.id()))?;
            PersonName::from_full(contact.name.full.as_deref())
        };
        let first = patch.first_name.apply(current.first);
        let middle = patch.middle_name.apply(current.middle);
        let last = patch.last_name.apply(current.last);
        // A name with every part cleared is sent blank: MaiAgent says whether it takes it.
        Ok(join_name(first.as_deref(), middle.as_deref(), last.as_deref()).unwrap_or_default())
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
        let response = if page == 1 {
            // The first page always exists (empty when nothing matches): a 404 here is no
            // listing at all (a wrong `base_url`), never an empty one.
            self.client
                .send_expecting(Call::Read, Method::GET, CONTACTS, &params, None)
                .await?
        } else {
            let Some(response) = self
                .client
                .send(Call::Read, Method::GET, CONTACTS, &params, None)
                .await?
            else {
                // A page past the end answers 404 ("Invalid page."): nothing follows.
                return Ok(NumberedPage {
                    contacts: Vec::new(),
                    total: None,
                    has_more: Some(false),
                });
            };
            response
        };
        let list = ContactList::from_body(response.body)
            .map_err(|_| ProviderError::unparseable(self.id(), "no `results` array"))?;
        let region = self.client.region();
        let contacts = list
            .records
            .into_iter()
            .map(|r| to_contact(r, region))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(NumberedPage {
            contacts,
            total: list.count,
            // maiagent.txt: `next` points at another host; read it only as "more follow".
            has_more: list.has_next,
        })
    }
}

#[async_trait::async_trait]
impl Provider for MaiAgent {
    fn client(&self) -> &UpstreamClient {
        &self.client
    }

    /// maiagent.txt: "A UUID string identifying this Contact".
    fn accepts_native_id(&self, native_id: &str) -> bool {
        uuid_like(native_id)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            list: true,
            get: true,
            search: true,
            // maiagent.txt: `search` is full text; an email, or a phone's national digits
            // (NOTES 4.5.10: search + local match).
            search_email: true,
            search_phone: true,
            create: true,
            update: true,
            delete: true,
            holds_email: true,
            ..Default::default()
        }
    }

    /// maiagent.txt: one `name` string (parts joined, a middle name included), one `email`,
    /// one `phoneNumber`, and `inboxes` (many). The response schema's `name` is not optional
    /// and the create example always sends one: a create needs a name.
    fn write_fields(&self) -> WriteFields {
        WriteFields {
            first_name: 1,
            last_name: 1,
            middle_name: 1,
            emails: 1,
            phones: 1,
            group_ids: MANY,
            requires_name: true,
            ..WriteFields::default()
        }
    }

    /// Reads show the one name string (split into parts), the email, the phone and the
    /// inboxes; PATCH clears the phone and email with `""` and the inboxes with `[]`.
    fn field_access(&self) -> FieldAccess {
        use Field::*;
        FieldAccess {
            read: FieldSet::of(&[FirstName, MiddleName, LastName, Emails, Phones, GroupIds]),
            clear: FieldSet::of(&[FirstName, MiddleName, LastName, Emails, Phones, GroupIds]),
        }
    }

    /// `POST /api/contacts/ {name, phoneNumber (E.164 string), email, inboxes: [{id}]}`, only
    /// the given keys. The contact is answered as MaiAgent stored it: the gateway compares it
    /// with the input and warns about what is missing (NOTES 4.5.5).
    async fn create(&self, input: &NewContact) -> Result<Contact, ProviderError> {
        let body = json!(create_body(input));
        let response = self
            .client
            .send_expecting(Call::Write, Method::POST, CONTACTS, &[], Some(&body))
            .await?;
        // The contact exists: answer it as MaiAgent stored it. The gateway compares it with
        // the input and warns (FIELD_NOT_STORED) about anything missing; never an error here.
        to_contact(response.body, self.client.region())
    }

    /// `PATCH /api/contacts/{id}/` with the changed keys. A name change touching only some
    /// parts reads the current name first. `phoneNumber` and `email` are missing from the
    /// document's update table but in its examples: they are sent, and the answer is returned
    /// as is; the gateway warns (FIELD_NOT_STORED) when it lacks them (NOTES 4.5.5), since
    /// the update happened. An empty patch sends nothing and answers the contact as it is.
    async fn update(
        &self,
        native_id: &str,
        patch: &ContactPatch,
    ) -> Result<Contact, ProviderError> {
        let path = self.client.contact_path(CONTACTS, native_id)?;
        let name = if patch.changes_name() {
            Some(self.patched_name(native_id, patch).await?)
        } else {
            None
        };
        let body = patch_body(patch, name);
        if body.is_empty() {
            return self
                .get(native_id)
                .await?
                .ok_or_else(|| ProviderError::not_found(self.id()));
        }
        let response = self
            .client
            .send_expecting(Call::Write, Method::PATCH, &path, &[], Some(&json!(body)))
            .await?;
        // The update happened: a field missing from the answer is the gateway's warning.
        to_contact(response.body, self.client.region())
    }

    /// `DELETE /api/contacts/{id}/` → 204. maiagent.txt: its 400 means "the contact still has
    /// associated conversations and cannot be deleted"; that reason leads the message.
    async fn delete(&self, native_id: &str) -> Result<(), ProviderError> {
        let path = self.client.contact_path(CONTACTS, native_id)?;
        match self
            .client
            .send_expecting(Call::Write, Method::DELETE, &path, &[], None)
            .await
        {
            Ok(_) => Ok(()),
            Err(ProviderError::Rejected {
                provider,
                status: 400,
                message,
            }) => Err(ProviderError::Rejected {
                provider,
                status: 400,
                message: format!(
                    "the contact still has conversations and cannot be deleted (MaiAgent: {message})"
                ),
            }),
            Err(e) => Err(e),
        }
    }

    async fn get(&self, native_id: &str) -> Result<Option<Contact>, ProviderError> {
        let region = self.client.region();
        self.client
            .get_contact(CONTACTS, native_id, |r| to_contact(r, region))
            .await
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

/// 8-4-4-4-12 hex digits.
fn uuid_like(id: &str) -> bool {
    let groups: Vec<&str> = id.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// maiagent.txt: phoneNumber arrives as an integer (912345678), without country code or trunk
/// `0`, so a phone search sends the national significant number, which such a store contains.
fn national_digits(e164: &str) -> String {
    phone::normalize(e164, None)
        .map(|n| n.national_number.to_string())
        .unwrap_or_else(|| phone::digits(e164))
}

#[cfg(test)]
use super::testing;

#[cfg(test)]
mod tests {
    use super::mapping::tests::detail;
    use super::*;
    use crate::contact::ProviderId;
    use crate::write::{ContactPatch, NewContact, Patch};
    use serde_json::{json, Value};

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

    #[tokio::test]
    async fn a_404_on_the_first_page_is_an_error_and_on_a_later_page_the_end() {
        // A wrong base_url: every path answers 404.
        let up = testing::spawn(ProviderId::Maiagent, "TW", |_| {
            (404, json!({ "detail": "Not found." }))
        })
        .await;
        let adapter = MaiAgent::new(up.client.clone());
        let first = adapter.list(&ListQuery::default(), 0, 2).await;
        assert!(
            matches!(first, Err(ProviderError::NotFound { .. })),
            "{first:?}"
        );
        let later = adapter
            .list(&ListQuery::default(), 2, 2)
            .await
            .expect("page 2: past the end");
        assert!(later.contacts.is_empty() && later.exhausted);
        let pages: Vec<_> = up
            .requests()
            .iter()
            .map(|r| r.param("page").unwrap_or("").to_string())
            .collect();
        assert_eq!(pages, ["1", "2"]);
    }

    // ---- writes, against the sandbox simulator (written from maiagent.txt, not from here) ----

    use crate::sandbox::{seed, Sandbox, SimControl};

    async fn sandboxed() -> (Sandbox, MaiAgent) {
        let sandbox = Sandbox::start().await.expect("sandbox");
        let config = sandbox.provider_configs()[&ProviderId::Maiagent].clone();
        let adapter = MaiAgent::new(UpstreamClient::new(ProviderId::Maiagent, &config));
        (sandbox, adapter)
    }

    fn stored(control: &SimControl, id: &str) -> Option<Value> {
        control.records().into_iter().find(|r| r["id"] == id)
    }

    const WEB: &str = seed::MAIAGENT_INBOXES[1].0;
    const LINE: &str = seed::MAIAGENT_INBOXES[0].0;

    #[tokio::test]
    async fn create_posts_name_string_phone_email_and_inboxes() {
        let (sandbox, adapter) = sandboxed().await;
        let control = sandbox.control(ProviderId::Maiagent);
        control.reset_requests();
        let input = NewContact {
            first_name: Some("Mei".into()),
            middle_name: Some("Ling".into()),
            last_name: Some("Chen".into()),
            emails: vec![testing::primary_email("mei@example.tw")],
            phones: vec![testing::primary_phone("+886912000111")],
            group_ids: vec![WEB.into(), LINE.into()],
            ..Default::default()
        };
        let contact = adapter.create(&input).await.expect("create");

        let requests = control.requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].method, "POST");
        assert_eq!(requests[0].path, "/api/contacts/");
        assert_eq!(
            requests[0].body,
            json!({
                "name": "Mei Ling Chen",
                "phoneNumber": "+886912000111",
                "email": "mei@example.tw",
                "inboxes": [ { "id": WEB }, { "id": LINE } ]
            })
        );
        assert!(requests[0].body["phoneNumber"].is_string(), "Decision 4");
        assert_eq!(contact.name.full.as_deref(), Some("Mei Ling Chen"));
        assert_eq!(contact.emails[0].address, "mei@example.tw");
        assert_eq!(contact.phones[0].e164.as_deref(), Some("+886912000111"));
        let groups: Vec<_> = contact.groups.iter().map(|g| g.id.as_str()).collect();
        assert_eq!(groups, [WEB, LINE]);
        let record = stored(control, &contact.native_id).expect("stored");
        assert_eq!(record["phoneNumber"], json!(912000111));
    }

    #[tokio::test]
    async fn a_partial_name_patch_reads_the_name_and_the_rest_survives() {
        let (sandbox, adapter) = sandboxed().await;
        let control = sandbox.control(ProviderId::Maiagent);
        let id = seed::maiagent_id(2); // "Daniel Lin"
        let before = stored(control, &id).expect("seeded");
        assert_eq!(before["name"], "Daniel Lin");
        control.reset_requests();
        let patch = ContactPatch {
            last_name: Patch::Set("Lindqvist".into()),
            ..Default::default()
        };
        let contact = adapter.update(&id, &patch).await.expect("update");

        let requests = control.requests();
        let calls: Vec<_> = requests
            .iter()
            .map(|r| (r.method.as_str(), r.path.as_str()))
            .collect();
        let path = format!("/api/contacts/{id}/");
        assert_eq!(calls, [("GET", path.as_str()), ("PATCH", path.as_str())]);
        assert_eq!(requests[1].body, json!({ "name": "Daniel Lindqvist" }));
        assert_eq!(contact.name.full.as_deref(), Some("Daniel Lindqvist"));

        let after = stored(control, &id).expect("still there");
        assert_eq!(after["name"], "Daniel Lindqvist");
        for key in [
            "email",
            "phoneNumber",
            "sourceId",
            "inboxes",
            "avatar",
            "createdAt",
        ] {
            assert_eq!(after[key], before[key], "{key} survives the patch");
        }
    }

    #[tokio::test]
    async fn a_whole_name_patch_needs_no_read() {
        let (sandbox, adapter) = sandboxed().await;
        let control = sandbox.control(ProviderId::Maiagent);
        let id = seed::maiagent_id(2);
        control.reset_requests();
        let patch = ContactPatch {
            first_name: Patch::Set("Dan".into()),
            middle_name: Patch::Clear,
            last_name: Patch::Set("Lin".into()),
            ..Default::default()
        };
        adapter.update(&id, &patch).await.expect("update");
        let requests = control.requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].method, "PATCH");
        assert_eq!(requests[0].body, json!({ "name": "Dan Lin" }));
    }

    #[tokio::test]
    async fn phone_email_and_inboxes_are_patched_and_checked_in_the_echo() {
        let (sandbox, adapter) = sandboxed().await;
        let control = sandbox.control(ProviderId::Maiagent);
        let id = seed::maiagent_id(3); // 林怡君
        let before = stored(control, &id).expect("seeded");
        control.reset_requests();
        let patch = ContactPatch {
            phones: Patch::Set(vec![testing::primary_phone("+886911222333")]),
            emails: Patch::Clear,
            group_ids: Patch::Set(vec![WEB.into()]),
            ..Default::default()
        };
        let contact = adapter.update(&id, &patch).await.expect("update");
        assert_eq!(
            control.requests()[0].body,
            json!({ "phoneNumber": "+886911222333", "email": "", "inboxes": [ { "id": WEB } ] })
        );
        assert_eq!(contact.phones[0].e164.as_deref(), Some("+886911222333"));
        assert!(contact.emails.is_empty());
        let after = stored(control, &id).expect("stored");
        assert_eq!(after["phoneNumber"], json!(911222333));
        assert_eq!(after["email"], Value::Null);
        assert_eq!(after["inboxes"][0]["id"], WEB);
        assert_eq!(after["name"], before["name"]);
        assert_eq!(after["sourceId"], before["sourceId"]);
    }

    #[tokio::test]
    async fn a_phone_the_update_did_not_store_is_answered_not_refused() {
        // An upstream that follows the update table literally: it ignores phoneNumber. The
        // update happened, so the contact comes back as answered (the gateway warns).
        let up = testing::spawn(ProviderId::Maiagent, "TW", |_| {
            (
                200,
                json!({ "id": "c1", "name": "New Name", "phoneNumber": 912345678 }),
            )
        })
        .await;
        let adapter = MaiAgent::new(up.client.clone());
        let patch = ContactPatch {
            first_name: Patch::Set("New".into()),
            last_name: Patch::Set("Name".into()),
            middle_name: Patch::Clear,
            phones: Patch::Set(vec![testing::primary_phone("+886900000001")]),
            ..Default::default()
        };
        let contact = adapter
            .update("c1", &patch)
            .await
            .expect("answered, not refused");
        assert_eq!(contact.native_id, "c1");
        assert_eq!(contact.name.full.as_deref(), Some("New Name"));
        assert_eq!(contact.phones[0].e164.as_deref(), Some("+886912345678"));
        let requests = up.requests();
        assert_eq!(requests.len(), 1, "not retried");
        assert_eq!(requests[0].path, "/api/contacts/c1/");
    }

    #[tokio::test]
    async fn unknown_ids_are_404_on_update_and_delete() {
        let (sandbox, adapter) = sandboxed().await;
        let control = sandbox.control(ProviderId::Maiagent);
        control.reset_requests();
        let missing = seed::maiagent_id(999);
        let phone_patch = ContactPatch {
            phones: Patch::Set(vec![testing::primary_phone("+886911222333")]),
            ..Default::default()
        };
        let name_patch = ContactPatch {
            last_name: Patch::Set("X".into()),
            ..Default::default()
        };
        for patch in [phone_patch, name_patch, ContactPatch::default()] {
            assert!(matches!(
                adapter.update(&missing, &patch).await,
                Err(ProviderError::NotFound { .. })
            ));
        }
        assert!(matches!(
            adapter.delete(&missing).await,
            Err(ProviderError::NotFound { .. })
        ));
        assert!(control.requests().iter().all(|r| r.path.ends_with('/')));
    }

    #[tokio::test]
    async fn delete_answers_204_and_the_record_is_gone() {
        let (sandbox, adapter) = sandboxed().await;
        let control = sandbox.control(ProviderId::Maiagent);
        let id = seed::maiagent_id(2); // no conversations
        control.reset_requests();
        adapter.delete(&id).await.expect("delete");
        let requests = control.requests();
        assert_eq!(requests[0].method, "DELETE");
        assert_eq!(requests[0].path, format!("/api/contacts/{id}/"));
        assert!(stored(control, &id).is_none());
    }

    #[tokio::test]
    async fn a_contact_with_conversations_is_not_deleted_and_the_reason_says_why() {
        let (sandbox, adapter) = sandboxed().await;
        let control = sandbox.control(ProviderId::Maiagent);
        let id = seed::maiagent_id(1); // three conversations
        match adapter.delete(&id).await {
            Err(ProviderError::Rejected {
                status: 400,
                message,
                ..
            }) => assert!(
                message.contains("still has conversations and cannot be deleted"),
                "{message}"
            ),
            other => panic!("expected a 400, got {other:?}"),
        }
        assert!(stored(control, &id).is_some(), "the contact is still there");
    }

    #[tokio::test]
    async fn a_provider_400_surfaces_with_its_message() {
        let (_sandbox, adapter) = sandboxed().await;
        let input = NewContact {
            first_name: Some("Ann".into()),
            group_ids: vec!["no-such-inbox".into()],
            ..Default::default()
        };
        match adapter.create(&input).await {
            Err(ProviderError::Rejected {
                status: 400,
                message,
                ..
            }) => assert!(message.contains("Invalid pk"), "{message}"),
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn write_fields_and_capabilities_are_truthful() {
        let (_sandbox, adapter) = sandboxed().await;
        let fields = adapter.write_fields();
        assert!(fields.first_name > 0 && fields.middle_name > 0 && fields.requires_name);
        assert!(fields.group_ids > 1);
        let caps = adapter.capabilities();
        assert!(caps.create && caps.update && caps.delete);
        assert!(!caps.native_upsert && !caps.do_not_contact);
    }
}
