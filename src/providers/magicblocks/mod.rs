//! MagicBlocks (magicblocks.txt), read side. The document lost the method and path cells of its
//! "Retrieve Contact Data" table; the paths here are the conventional ones settled by NOTES.md
//! Decision 1: `GET /v1/contacts?limit=&offset=[&email=|&phone=]` and `GET /v1/contacts/{id}`.
//!
//! Write side (Decision 1): create is `POST /v1/contacts` with the nested body only (`name{}`,
//! `emails[]`, `phones[]`, `custom{}`, `isTest`); update is `GET` then `PUT /v1/contacts/{id}`
//! with the whole record as read, the patch applied (Decision 6: fields the unified contact does
//! not hold, such as `userKnowledge`, survive). No delete and no tags (not documented).

mod mapping;
mod wire;

use super::http::{Call, UpstreamClient};
use super::{window_from_offset, Capabilities, ListChunk, ListQuery, Provider, ProviderError};
use crate::contact::Contact;
use crate::fields::{Field, FieldAccess, FieldSet};
use crate::write::{ContactPatch, NewContact, WriteFields, MANY};
use mapping::{create_body, to_contact, update_body};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use wire::{Listing, Single, StoredContact};

const CONTACTS: &str = "/v1/contacts";

pub struct MagicBlocks {
    client: UpstreamClient,
}

impl MagicBlocks {
    pub fn new(client: UpstreamClient) -> Self {
        MagicBlocks { client }
    }

    /// An answer body read as its wire type; `what` says what it failed to hold.
    fn read<T: DeserializeOwned>(&self, body: Value, what: &str) -> Result<T, ProviderError> {
        serde_json::from_value(body).map_err(|_| ProviderError::unparseable(self.id(), what))
    }

    /// The contact a single-record answer holds (the record, or `{data: {record}}`).
    fn contact_in(&self, body: Value) -> Result<Contact, ProviderError> {
        let Single(record) = self.read(body, "no contact in the answer")?;
        to_contact(record, self.client.region())
    }
}

#[async_trait::async_trait]
impl Provider for MagicBlocks {
    fn client(&self) -> &UpstreamClient {
        &self.client
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            list: true,
            get: true,
            // By email and by phone (Decision 1); no text search is documented.
            search: true,
            // `?email=` and `?phone=` (E.164), exact matches (Decision 1).
            search_email: true,
            search_phone: true,
            create: true,
            // Read-merge-write through `PUT /v1/contacts/{id}` (Decision 1).
            update: true,
            holds_email: true,
            // `custom.company` (the unified company field).
            holds_company: true,
            ..Default::default()
        }
    }

    fn write_fields(&self) -> WriteFields {
        WriteFields {
            // `name{first, middle, last}`.
            first_name: 1,
            last_name: 1,
            middle_name: 1,
            // magicblocks.txt gives no limit on `emails[]` / `phones[]`.
            emails: MANY,
            phones: MANY,
            // Stored as `custom.company`, which the read side maps back to `company`.
            company: 1,
            custom_fields: 1,
            is_test: 1,
            // The document only says "400 Invalid or missing data"; a contact with a name and
            // no email or phone is valid (the simulator answers 400 only when name, emails and
            // phones are all empty, which these flags cannot express): the provider decides.
            requires_email_or_phone: false,
            ..WriteFields::default()
        }
    }

    /// Reads show the nested name, the email and phone lists, `custom.company` as the company,
    /// the other custom fields and `isTest`; the update PUTs the whole merged record, so each
    /// can be cleared (`isTest` to false: a boolean cannot be absent upstream).
    fn field_access(&self) -> FieldAccess {
        use Field::*;
        FieldAccess {
            read: FieldSet::of(&[
                FirstName,
                MiddleName,
                LastName,
                Emails,
                Phones,
                Company,
                CustomFields,
                IsTest,
            ]),
            clear: FieldSet::of(&[
                FirstName,
                MiddleName,
                LastName,
                Emails,
                Phones,
                Company,
                CustomFields,
                IsTest,
            ]),
        }
    }

    async fn create(&self, input: &NewContact) -> Result<Contact, ProviderError> {
        let body = json!(create_body(input));
        let response = self
            .client
            .send_expecting(Call::Write, Method::POST, CONTACTS, &[], Some(&body))
            .await?;
        self.contact_in(response.body)
    }

    async fn update(
        &self,
        native_id: &str,
        patch: &ContactPatch,
    ) -> Result<Contact, ProviderError> {
        let path = self.client.contact_path(CONTACTS, native_id)?;
        let Some(current) = self.client.get_record(&path).await? else {
            return Err(ProviderError::no_contact(self.id(), native_id));
        };
        let Single(record) = self.read(current, "the contact is not an object")?;
        let stored: StoredContact = self.read(record, "the contact is not an object")?;
        let body = json!(update_body(stored, patch));
        let response = self
            .client
            .send_expecting(Call::Write, Method::PUT, &path, &[], Some(&body))
            .await?;
        self.contact_in(response.body)
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
            .send(Call::Read, Method::GET, CONTACTS, &params, None)
            .await?
        else {
            // A lookup by email or phone may answer 404 for "no such contact".
            if filtered {
                return Ok(ListChunk::empty());
            }
            return Err(ProviderError::rejected(
                provider,
                404,
                "the contact listing was not found",
            ));
        };
        let listing = Listing::from_body(response.body)
            .map_err(|what| ProviderError::unparseable(provider, what))?;
        let region = self.client.region();
        if listing.single {
            // A lookup answered with the one record itself: it is the whole listing.
            let contacts = match listing.records.into_iter().next() {
                Some(record) if offset == 0 && limit > 0 => vec![to_contact(record, region)?],
                _ => Vec::new(),
            };
            return Ok(ListChunk {
                contacts,
                exhausted: true,
                total: None,
            });
        }
        // magicblocks.txt documents no paging parameters: never return more than asked.
        window_from_offset(
            listing.records,
            offset,
            limit,
            listing.total,
            listing.has_more,
            |r| to_contact(r, region),
        )
    }
}

#[cfg(test)]
use super::testing;

#[cfg(test)]
mod tests {
    use super::wire::READ_ONLY;
    use super::*;
    use crate::contact::{Email, Phone, ProviderId};
    use crate::providers::ProviderError;
    use crate::write::Patch;
    use serde_json::{json, Map};

    /// magicblocks.txt, "Sample Response" of the create example.
    pub(super) fn created() -> Value {
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

    // ---- write side, against the sandbox simulator (written from the document) ----

    use crate::sandbox::Sandbox;

    const SOPHIE: &str = "con_01HSBX7K2M0000002";

    async fn sandboxed() -> (Sandbox, MagicBlocks) {
        let sandbox = Sandbox::start().await.expect("sandbox");
        let config = sandbox.provider_configs()[&ProviderId::Magicblocks].clone();
        let adapter = MagicBlocks::new(UpstreamClient::new(ProviderId::Magicblocks, &config));
        (sandbox, adapter)
    }

    fn stored(sandbox: &Sandbox, id: &str) -> Value {
        sandbox
            .control(ProviderId::Magicblocks)
            .records()
            .into_iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("{id} is in the store"))
    }

    fn email(address: &str, kind: Option<&str>, primary: bool) -> Email {
        Email {
            address: address.into(),
            kind: kind.map(str::to_string),
            primary,
        }
    }

    fn phone_of(e164: &str, kind: Option<&str>, primary: bool) -> Phone {
        Phone {
            number: e164.into(),
            e164: Some(e164.into()),
            kind: kind.map(str::to_string),
            primary,
        }
    }

    pub(super) fn custom(value: Value) -> Map<String, Value> {
        value.as_object().expect("an object").clone()
    }

    #[test]
    fn write_fields_and_capabilities_are_truthful() {
        let config = crate::config::ProviderConfig::new(
            "http://127.0.0.1:9",
            crate::config::Secret::new("k"),
        );
        let adapter = MagicBlocks::new(UpstreamClient::new(ProviderId::Magicblocks, &config));
        let fields = adapter.write_fields();
        let held = |n: usize| n > 0;
        assert!(held(fields.first_name) && held(fields.middle_name) && held(fields.company));
        assert!(held(fields.custom_fields) && held(fields.is_test));
        assert!(fields.emails > 1 && fields.phones > 1);
        assert_eq!(
            fields.notes + fields.tags + fields.stage + fields.group_ids,
            0
        );
        assert_eq!(fields.email_opt_in + fields.sms_opt_in, 0);
        assert!(!(fields.requires_name || fields.requires_phone || fields.requires_email_or_phone));
        let caps = adapter.capabilities();
        assert!(caps.create && caps.update);
        assert!(!(caps.delete || caps.tags || caps.native_upsert));
        assert!(caps.holds_email && caps.holds_company && !caps.holds_tags);
    }

    #[tokio::test]
    async fn create_posts_the_nested_body_with_only_what_was_given() {
        let (sandbox, adapter) = sandboxed().await;
        let input = NewContact {
            first_name: Some("Ada".into()),
            last_name: Some("Lovelace".into()),
            emails: vec![
                email("ada@analytical.engine", Some("work"), false),
                email("ada@home.example", None, true),
            ],
            phones: vec![phone_of("+447700900999", Some("mobile"), false)],
            company: Some("Analytical Engines".into()),
            custom_fields: custom(json!({ "plan": "Pro", "dropped": null })),
            is_test: Some(true),
            ..Default::default()
        };
        let contact = adapter.create(&input).await.expect("created");

        let requests = sandbox.control(ProviderId::Magicblocks).requests();
        assert_eq!(requests.len(), 1, "one call, never retried");
        assert_eq!(requests[0].method, "POST");
        assert_eq!(requests[0].path, "/v1/contacts");
        assert_eq!(
            requests[0].body,
            json!({
                "name": { "first": "Ada", "last": "Lovelace" },
                "emails": [
                    { "address": "ada@analytical.engine", "type": "work", "primary": false },
                    { "address": "ada@home.example", "primary": true }
                ],
                "phones": [ { "number": "+447700900999", "type": "mobile", "primary": true } ],
                "custom": { "plan": "Pro", "company": "Analytical Engines" },
                "isTest": true
            })
        );

        assert_eq!(contact.provider, ProviderId::Magicblocks);
        assert!(contact.native_id.starts_with("con_"));
        assert_eq!(contact.name.full.as_deref(), Some("Ada Lovelace"));
        assert_eq!(
            contact.primary_email().map(|e| e.address.as_str()),
            Some("ada@home.example")
        );
        assert_eq!(contact.emails.len(), 2);
        assert_eq!(contact.phones[0].e164.as_deref(), Some("+447700900999"));
        assert_eq!(contact.company.as_deref(), Some("Analytical Engines"));
        assert_eq!(contact.custom_fields.get("plan"), Some(&json!("Pro")));
        assert_eq!(contact.is_test, Some(true));
        assert!(contact.created_at.is_some());

        let record = stored(&sandbox, &contact.native_id);
        assert_eq!(
            record["customFields"],
            json!({ "plan": "Pro", "company": "Analytical Engines" })
        );
        assert_eq!(record["isTest"], json!(true));
    }

    #[tokio::test]
    async fn create_of_a_name_only_sends_just_the_name() {
        let (sandbox, adapter) = sandboxed().await;
        let input = NewContact {
            first_name: Some("Solo".into()),
            ..Default::default()
        };
        let contact = adapter.create(&input).await.expect("created");
        let requests = sandbox.control(ProviderId::Magicblocks).requests();
        assert_eq!(requests[0].body, json!({ "name": { "first": "Solo" } }));
        assert_eq!(contact.name.full.as_deref(), Some("Solo"));
        assert!(contact.emails.is_empty() && contact.phones.is_empty());
    }

    #[tokio::test]
    async fn a_provider_400_surfaces_as_rejected_with_its_message() {
        let (sandbox, adapter) = sandboxed().await;
        let err = adapter
            .create(&NewContact::default())
            .await
            .expect_err("nothing to create");
        match err {
            ProviderError::Rejected {
                provider,
                status,
                message,
            } => {
                assert_eq!(provider, ProviderId::Magicblocks);
                assert_eq!(status, 400);
                assert_eq!(message, "A contact needs a name, an email or a phone");
            }
            other => panic!("expected Rejected, got {other:?}"),
        }
        assert_eq!(sandbox.control(ProviderId::Magicblocks).request_count(), 1);
    }

    #[tokio::test]
    async fn clearing_fields_the_record_cannot_hold_is_a_no_op() {
        let (_sandbox, adapter) = sandboxed().await;
        // Clearing what the record cannot hold changes nothing and is accepted.
        let patch = ContactPatch {
            tags: Patch::Clear,
            notes: Patch::Clear,
            ..Default::default()
        };
        adapter
            .update(SOPHIE, &patch)
            .await
            .expect("a no-op update");
    }

    #[tokio::test]
    async fn update_puts_the_whole_record_as_read_with_the_patch_applied() {
        let (sandbox, adapter) = sandboxed().await;
        let before = stored(&sandbox, SOPHIE);
        let patch = ContactPatch {
            last_name: Patch::Set("Tran-Nguyen".into()),
            custom_fields: Patch::Set(custom(json!({ "plan": "Enterprise", "timezone": null }))),
            ..Default::default()
        };
        let contact = adapter.update(SOPHIE, &patch).await.expect("updated");

        let requests = sandbox.control(ProviderId::Magicblocks).requests();
        assert_eq!(requests.len(), 2);
        assert_eq!(
            (requests[0].method.as_str(), requests[0].path.as_str()),
            ("GET", "/v1/contacts/con_01HSBX7K2M0000002")
        );
        assert_eq!(
            (requests[1].method.as_str(), requests[1].path.as_str()),
            ("PUT", "/v1/contacts/con_01HSBX7K2M0000002")
        );
        assert_eq!(
            requests[1].body,
            json!({
                "name": { "first": "Sophie", "middle": "", "last": "Tran-Nguyen" },
                "emails": [
                    { "address": "sophie.tran@koalalogistics.com.au", "type": "work", "primary": true }
                ],
                "phones": [ { "number": "+61491570156", "type": "mobile", "primary": true } ],
                "isTest": false,
                "userKnowledge": "Runs a 40-truck fleet in NSW; evaluating route notifications.",
                "custom": { "company": "Koala Logistics", "country": "Australia", "plan": "Enterprise" }
            })
        );
        for read_only in READ_ONLY {
            assert!(
                requests[1].body.get(read_only).is_none(),
                "{read_only} sent"
            );
        }
        assert!(requests[1].body.get("customFields").is_none());

        assert_eq!(contact.name.full.as_deref(), Some("Sophie Tran-Nguyen"));
        assert_eq!(contact.company.as_deref(), Some("Koala Logistics"));
        assert_eq!(
            contact.custom_fields.get("plan"),
            Some(&json!("Enterprise"))
        );
        assert_eq!(contact.custom_fields.get("timezone"), None);

        // What the patch did not name survived, read back from the store.
        let after = stored(&sandbox, SOPHIE);
        for kept in [
            "emails",
            "phones",
            "isTest",
            "userKnowledge",
            "firstSeen",
            "sessionCount",
        ] {
            assert_eq!(after[kept], before[kept], "{kept} survived");
        }
        assert_eq!(after["name"]["first"], "Sophie");
        assert_eq!(
            after["customFields"],
            json!({ "company": "Koala Logistics", "country": "Australia", "plan": "Enterprise" })
        );
    }

    #[tokio::test]
    async fn update_replaces_lists_whole_and_keeps_company_in_custom() {
        let (sandbox, adapter) = sandboxed().await;
        let id = "con_01HSBX7K2M0000007"; // Hannah: one email, two phones
        let before = stored(&sandbox, id);
        let patch = ContactPatch {
            middle_name: Patch::Set("J".into()),
            emails: Patch::Set(vec![email("h.k@brightpath.example", Some("work"), true)]),
            phones: Patch::Clear,
            company: Patch::Set("BrightPath Schools".into()),
            custom_fields: Patch::Clear,
            is_test: Patch::Set(true),
            ..Default::default()
        };
        let contact = adapter.update(id, &patch).await.expect("updated");
        let put = &sandbox.control(ProviderId::Magicblocks).requests()[1];
        assert_eq!(
            put.body["name"],
            json!({ "first": "Hannah", "middle": "J", "last": "Kowalski" })
        );
        assert_eq!(
            put.body["emails"],
            json!([{ "address": "h.k@brightpath.example", "type": "work", "primary": true }])
        );
        assert_eq!(put.body["phones"], json!([]));
        assert_eq!(
            put.body["custom"],
            json!({ "company": "BrightPath Schools" })
        );
        assert_eq!(put.body["isTest"], json!(true));
        assert_eq!(contact.company.as_deref(), Some("BrightPath Schools"));
        assert!(contact.phones.is_empty());

        let after = stored(&sandbox, id);
        assert_eq!(after["userKnowledge"], before["userKnowledge"]);
        assert_eq!(
            after["customFields"],
            json!({ "company": "BrightPath Schools" })
        );
        assert!(after.get("primaryPhone").is_none());

        // Clearing the custom fields alone keeps the company; clearing the company drops it.
        let patch = ContactPatch {
            custom_fields: Patch::Clear,
            ..Default::default()
        };
        adapter.update(SOPHIE, &patch).await.expect("updated");
        assert_eq!(
            stored(&sandbox, SOPHIE)["customFields"],
            json!({ "company": "Koala Logistics" })
        );
        let patch = ContactPatch {
            company: Patch::Clear,
            first_name: Patch::Clear,
            ..Default::default()
        };
        let contact = adapter.update(SOPHIE, &patch).await.expect("updated");
        assert_eq!(contact.company, None);
        let after = stored(&sandbox, SOPHIE);
        assert_eq!(after["customFields"], json!({}));
        assert_eq!(
            after["name"],
            json!({ "first": "", "middle": "", "last": "Tran" })
        );
        assert_eq!(after["phones"][0]["number"], "+61491570156");
    }

    #[tokio::test]
    async fn update_of_an_unknown_id_is_rejected_404_without_a_put() {
        let (sandbox, adapter) = sandboxed().await;
        let patch = ContactPatch {
            first_name: Patch::Set("X".into()),
            ..Default::default()
        };
        for id in ["con_nope", ".."] {
            let err = adapter.update(id, &patch).await.expect_err("unknown");
            assert!(matches!(err, ProviderError::NotFound { .. }), "{err:?}");
        }
        let requests = sandbox.control(ProviderId::Magicblocks).requests();
        assert_eq!(requests.len(), 1, "only the GET; `..` made no call");
        assert_eq!(requests[0].method, "GET");
        assert!(adapter.delete("con_nope").await.is_err());
        assert!(adapter.add_tags(SOPHIE, &["x".into()]).await.is_err());
    }

    #[tokio::test]
    async fn unknown_fields_survive_an_update_but_flow_flags_are_not_re_sent() {
        // The simulator keeps no flow settings; a recording upstream serves a record with them.
        let mut record = created();
        record["sendMessageEvents"] = json!(true);
        record["flowEditorName"] = json!("Agent Welcome Flow");
        record["flowEditorLink"] = json!("https://app.magicblocks.ai/flow/agent-welcome");
        record["somethingNew"] = json!({ "x": 1 });
        let served = record.clone();
        let up = testing::spawn(ProviderId::Magicblocks, "AU", move |_| {
            (200, served.clone())
        })
        .await;
        let adapter = MagicBlocks::new(up.client.clone());
        let patch = ContactPatch {
            company: Patch::Set("MagicBlocks Pty Ltd".into()),
            ..Default::default()
        };
        adapter
            .update("con_01HRWJ0HAN8F6X9Z7", &patch)
            .await
            .expect("updated");
        let requests = up.requests();
        assert_eq!(requests[1].method, Method::PUT);
        let body = requests[1].body.clone().expect("a body");
        for kept in [
            "somethingNew",
            "userKnowledge",
            "isTest",
            "emails",
            "phones",
            "name",
        ] {
            assert_eq!(body[kept], record[kept], "{kept} sent back unchanged");
        }
        for read_only in READ_ONLY {
            assert!(body.get(read_only).is_none(), "{read_only} sent");
        }
        for flag in ["sendMessageEvents", "flowEditorName", "flowEditorLink"] {
            assert!(
                body.get(flag).is_none(),
                "{flag} may start agent workflows: not re-sent"
            );
        }
        assert_eq!(body["custom"]["company"], "MagicBlocks Pty Ltd");
        assert_eq!(body["custom"]["utm_source"], "founder-referral");
    }
}
