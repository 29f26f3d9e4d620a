//! Whautomate (whautomate.txt), read side: `GET /v1/contacts?page=&limit=` (1-based pages, a bare
//! array, no total) and `GET /v1/contacts/{contactId}`. Contacts have no email field.
//!
//! Write side (Decision 3): `POST /v1/contacts`; updates are read-merge-write (`GET`, the patch
//! merged onto the record as read, `PUT` of the whole record, since PUT needs `name` and
//! `phoneNumber` and replaces); `DELETE /v1/contacts/{id}`; tags through
//! `POST /v1/contacts/{id}/tags/add|remove` with `{"tags": [..]}`, checked, with a PUT fallback.
//! Its JSON is in `wire`, the mapping in `mapping`.

mod mapping;
mod wire;

use super::http::{records_under, Call, UpstreamClient};
use super::{
    window_from_pages, Capabilities, ListChunk, ListQuery, NumberedPage, Provider, ProviderError,
};
use crate::contact::{non_empty, Contact};
use crate::fields::{Field, FieldAccess, FieldSet};
use crate::phone;
use crate::write::{ContactPatch, NewContact, Patch, WriteFields, MANY};
use mapping::{create_body, merged_body, to_contact};
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;
use wire::{ContactBody, DeleteAnswer, TagsAnswer, TagsChange};

const CONTACTS: &str = "/v1/contacts";

/// The config key of the location a create sends when the input names none.
const LOCATION_SETTING: &str = "providers.whautomate.location_id";

pub struct Whautomate {
    client: UpstreamClient,
    /// The configured location a create joins when the input names none (NOTES 3.5.3).
    location_id: Option<String>,
}

impl Whautomate {
    pub fn new(client: UpstreamClient, location_id: Option<String>) -> Self {
        Whautomate {
            client,
            location_id,
        }
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
            .send_expecting(Call::Read, Method::GET, CONTACTS, &params, None)
            .await?;
        // A bare array (whautomate.txt), or the array under `data`/`contacts`/`results`.
        let records = records_under(response.body, &["data", "contacts", "results"])
            .ok_or_else(|| ProviderError::unparseable(self.id(), "no contact array"))?;
        let region = self.client.region();
        let contacts = records
            .into_iter()
            .map(|r| to_contact(r, region))
            .collect::<Result<Vec<_>, _>>()?;
        // whautomate.txt: no total and no next link; a short page is the last.
        Ok(NumberedPage {
            contacts,
            total: None,
            has_more: None,
        })
    }

    /// The record as the provider holds it, read as a PUT body; a missing one is
    /// `NotFound`.
    async fn record(&self, path: &str, native_id: &str) -> Result<ContactBody, ProviderError> {
        let Some(record) = self.client.get_record(path).await? else {
            return Err(ProviderError::no_contact(self.id(), native_id));
        };
        crate::providers::wire::from_object(&record)
            .ok_or_else(|| ProviderError::unparseable(self.id(), "the contact is not an object"))
    }

    /// `PUT` of a whole record; the answer mapped.
    async fn put(&self, path: &str, body: &ContactBody) -> Result<Contact, ProviderError> {
        let response = self
            .client
            .send_expecting(Call::Write, Method::PUT, path, &[], Some(&json!(body)))
            .await?;
        to_contact(response.body, self.client.region())
    }

    /// Adds or removes tags through the tag endpoints, checks the answer, and falls back to a
    /// read-merge-write of `tags` when the change is not in it (NOTES 3.5.4).
    async fn change_tags(
        &self,
        native_id: &str,
        tags: &[String],
        add: bool,
    ) -> Result<Vec<String>, ProviderError> {
        let path = self.client.contact_path(CONTACTS, native_id)?;
        let mut wanted: Vec<String> = Vec::new();
        for tag in tags.iter().filter_map(|t| non_empty(Some(t))) {
            if !wanted.contains(&tag) {
                wanted.push(tag);
            }
        }
        if wanted.is_empty() {
            // Nothing to change: the contact's tags as they are.
            let record = self.record(&path, native_id).await?;
            return Ok(record.tags.unwrap_or_default());
        }
        let action = if add { "add" } else { "remove" };
        let response = self
            .client
            .send_expecting(
                Call::Write,
                Method::POST,
                &format!("{path}/tags/{action}"),
                &[],
                Some(&json!(TagsChange { tags: &wanted })),
            )
            .await?;
        let answered = TagsAnswer::deserialize(&response.body)
            .ok()
            .and_then(|answer| answer.tags);
        if let Some(answered) = answered {
            if tags_applied(&answered, &wanted, add) {
                return Ok(answered);
            }
        }
        // The answer does not show the change: read the record and write the tags through PUT.
        tracing::warn!(
            target: "upstream",
            provider = %self.id(),
            action,
            "the tag answer did not show the change; falling back to PUT"
        );
        // The tag call was taken (2xx): it may have applied the change after all.
        let record = self
            .record(&path, native_id)
            .await
            .map_err(ProviderError::after_applied_write)?;
        let mut current = record.tags.clone().unwrap_or_default();
        if tags_applied(&current, &wanted, add) {
            return Ok(current);
        }
        if add {
            for tag in &wanted {
                if !current.contains(tag) {
                    current.push(tag.clone());
                }
            }
        } else {
            current.retain(|t| !wanted.contains(t));
        }
        let patch = ContactPatch {
            tags: Patch::Set(current),
            ..Default::default()
        };
        let body = merged_body(record, &patch).map_err(|m| self.rejected(400, m))?;
        let contact = self.put(&path, &body).await?;
        if !tags_applied(&contact.tags, &wanted, add) {
            // The PUT was taken: the change may be there in part.
            return Err(ProviderError::Unavailable {
                provider: self.id(),
                reason: format!(
                    "Whautomate did not store the tag change ({action} {})",
                    wanted.join(", ")
                ),
                retryable: false,
                may_have_been_applied: true,
            });
        }
        Ok(contact.tags)
    }
}

/// Whether `tags` shows the change: every added tag present, every removed tag absent. Tag
/// names are exact, as Whautomate's own `tags` filter and the gateway's filter match them:
/// `VIP` is not `vip`.
fn tags_applied(tags: &[String], changed: &[String], add: bool) -> bool {
    changed.iter().all(|c| tags.contains(c) == add)
}

#[async_trait::async_trait]
impl Provider for Whautomate {
    fn client(&self) -> &UpstreamClient {
        &self.client
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            list: true,
            get: true,
            // `searchText` (text, and a phone's digits) and `tags`.
            search: true,
            // The phone's digits through `searchText` (NOTES 3.5.7); no email field to search.
            search_phone: true,
            create: true,
            // Read-merge-write: PUT needs `name` and `phoneNumber` and replaces the record.
            update: true,
            delete: true,
            tags: true,
            holds_tags: true,
            ..Default::default()
        }
    }

    fn write_fields(&self) -> WriteFields {
        WriteFields {
            // One `name` string: the parts joined (a middle name too).
            first_name: 1,
            last_name: 1,
            middle_name: 1,
            // whautomate.txt: no email field; one `phoneNumber`.
            emails: 0,
            phones: 1,
            notes: 1,
            tags: MANY,
            stage: 1,
            // `location{id}`: a contact has one location, so at most one group id.
            group_ids: 1,
            custom_fields: 1,
            requires_name: true,
            requires_phone: true,
            ..WriteFields::default()
        }
    }

    /// Reads show the one name string (split into parts), the phone, notes, tags, stage, the
    /// location as the group and the custom fields; the read-merge-write PUT leaves out what
    /// is cleared, except the phone a PUT needs.
    fn field_access(&self) -> FieldAccess {
        use Field::*;
        FieldAccess {
            read: FieldSet::of(&[
                FirstName,
                MiddleName,
                LastName,
                Phones,
                Notes,
                Tags,
                Stage,
                GroupIds,
                CustomFields,
            ]),
            clear: FieldSet::of(&[
                FirstName,
                MiddleName,
                LastName,
                Notes,
                Tags,
                Stage,
                GroupIds,
                CustomFields,
            ]),
        }
    }

    /// `POST /v1/contacts`, with `location: {id}` from the input's group id, else from
    /// `location_id`. NOTES 3.5.3: some accounts require a location; a 400 to a body without
    /// one says how to configure it.
    async fn create(&self, input: &NewContact) -> Result<Contact, ProviderError> {
        let body = create_body(input, self.location_id.as_ref());
        let response = self
            .client
            .send_expecting(Call::Write, Method::POST, CONTACTS, &[], Some(&json!(body)))
            .await
            .map_err(|e| match e {
                ProviderError::Rejected {
                    provider,
                    status: 400,
                    message,
                } if body.location.is_none() => ProviderError::Rejected {
                    provider,
                    status: 400,
                    message: format!(
                        "{message} (no location was sent: if the Whautomate account requires \
                         one, set `{LOCATION_SETTING}` in the gateway config, or give a groupId)"
                    ),
                },
                e => e,
            })?;
        to_contact(response.body, self.client.region())
    }

    async fn update(
        &self,
        native_id: &str,
        patch: &ContactPatch,
    ) -> Result<Contact, ProviderError> {
        let path = self.client.contact_path(CONTACTS, native_id)?;
        let record = self.record(&path, native_id).await?;
        let body = merged_body(record, patch).map_err(|m| self.rejected(400, m))?;
        self.put(&path, &body).await
    }

    async fn delete(&self, native_id: &str) -> Result<(), ProviderError> {
        let path = self.client.contact_path(CONTACTS, native_id)?;
        let Some(response) = self
            .client
            .send(Call::Write, Method::DELETE, &path, &[], None)
            .await?
        else {
            return Err(ProviderError::no_contact(self.id(), native_id));
        };
        // whautomate.txt: 200 `{"success": true}`.
        let answer = DeleteAnswer::deserialize(&response.body).unwrap_or_default();
        if answer.success == Some(false) {
            return Err(self.rejected(
                response.status,
                "Whautomate answered success: false to the delete",
            ));
        }
        Ok(())
    }

    async fn add_tags(
        &self,
        native_id: &str,
        tags: &[String],
    ) -> Result<Vec<String>, ProviderError> {
        self.change_tags(native_id, tags, true).await
    }

    async fn remove_tags(
        &self,
        native_id: &str,
        tags: &[String],
    ) -> Result<Vec<String>, ProviderError> {
        self.change_tags(native_id, tags, false).await
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

#[cfg(test)]
use super::testing;

#[cfg(test)]
mod tests {
    use super::mapping::tests::webhook;
    use super::*;
    use crate::contact::{Phone, ProviderId};
    use serde_json::{json, Value};

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
        let adapter = Whautomate::new(up.client.clone(), None);
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
    async fn get_uses_the_id_path_and_a_404_is_none() {
        let up = testing::spawn(ProviderId::Whautomate, "US", |req| {
            if req.path.ends_with("gone") {
                (404, json!({}))
            } else {
                (200, webhook())
            }
        })
        .await;
        let adapter = Whautomate::new(up.client.clone(), None);
        let contact = adapter.get("c 81").await.expect("get").expect("found");
        assert_eq!(contact.native_id, "c_81");
        assert_eq!(adapter.get("gone").await.expect("404 is none"), None);

        let requests = up.requests();
        assert_eq!(requests.len(), 2);
        assert_eq!(requests[0].method, Method::GET);
        assert_eq!(requests[0].path, "/v1/contacts/c%2081");
        assert_eq!(requests[0].header("x-api-key"), Some("test-key-123"));
    }

    // ---- write side, against the sandbox simulator (written from the document) ----

    use crate::sandbox::Sandbox;
    use crate::write::{NewContact, Patch};

    const CHEN: &str = "64f1a2b3c4d5e6f7a8b9c001";
    /// Emily Clarke: `tags` and `customFields` stored as JSON-encoded strings.
    const EMILY: &str = "64f1a2b3c4d5e6f7a8b9c004";
    const FATIMA: &str = "64f1a2b3c4d5e6f7a8b9c006";

    async fn sandboxed() -> (Sandbox, Whautomate) {
        let sandbox = Sandbox::start().await.expect("sandbox");
        let config = sandbox.provider_configs()[&ProviderId::Whautomate].clone();
        let adapter = Whautomate::new(UpstreamClient::new(ProviderId::Whautomate, &config), None);
        (sandbox, adapter)
    }

    fn stored(sandbox: &Sandbox, id: &str) -> Option<Value> {
        sandbox
            .control(ProviderId::Whautomate)
            .records()
            .into_iter()
            .find(|r| r["id"] == id)
    }

    fn e164(number: &str) -> Phone {
        Phone {
            number: number.into(),
            e164: Some(number.into()),
            kind: Some("mobile".into()),
            primary: true,
        }
    }

    fn rejected_400(err: ProviderError, needle: &str) {
        match err {
            ProviderError::Rejected {
                provider,
                status: 400,
                message,
            } => {
                assert_eq!(provider, ProviderId::Whautomate);
                assert!(message.contains(needle), "`{message}` lacks `{needle}`");
            }
            other => panic!("expected a 400 Rejected, got {other:?}"),
        }
    }

    #[test]
    fn write_fields_and_capabilities_are_truthful() {
        let config = crate::config::ProviderConfig::new(
            "http://127.0.0.1:9",
            crate::config::Secret::new("k"),
        );
        let adapter = Whautomate::new(UpstreamClient::new(ProviderId::Whautomate, &config), None);
        let fields = adapter.write_fields();
        let held = |n: usize| n > 0;
        assert!(held(fields.first_name) && held(fields.middle_name) && held(fields.notes));
        assert!(fields.tags == MANY && held(fields.stage) && held(fields.custom_fields));
        assert_eq!((fields.emails, fields.phones, fields.group_ids), (0, 1, 1));
        assert_eq!(
            fields.company + fields.is_test + fields.email_opt_in + fields.sms_opt_in,
            0
        );
        assert!(fields.requires_name && fields.requires_phone);
        let caps = adapter.capabilities();
        assert!(caps.create && caps.update && caps.delete && caps.tags && caps.holds_tags);
        assert!(!(caps.native_upsert || caps.holds_email));
    }

    #[tokio::test]
    async fn create_posts_the_documented_body_without_an_id() {
        let (sandbox, adapter) = sandboxed().await;
        let control = sandbox.control(ProviderId::Whautomate);
        // The store holds records whose tags/customFields are JSON-encoded strings.
        let encoded_before = stored(&sandbox, EMILY).expect("seeded");
        assert!(encoded_before["tags"].is_string());
        let input = NewContact {
            first_name: Some("Ada".into()),
            middle_name: Some("K".into()),
            last_name: Some("Lovelace".into()),
            phones: vec![e164("+447700900999")],
            stage: Some("Lead".into()),
            notes: Some("Met at the engine demo".into()),
            custom_fields: json!({ "plan": "gold", "gone": null })
                .as_object()
                .cloned()
                .expect("object"),
            tags: vec!["vip".into(), "engines".into()],
            group_ids: vec!["loc_london".into()],
            ..Default::default()
        };
        let contact = adapter.create(&input).await.expect("created");

        let requests = control.requests();
        assert_eq!(requests.len(), 1, "one call, never retried");
        assert_eq!(requests[0].method, "POST");
        assert_eq!(requests[0].path, "/v1/contacts");
        assert_eq!(
            requests[0].body,
            json!({
                "name": "Ada K Lovelace",
                "phoneNumber": "+447700900999",
                "location": { "id": "loc_london" },
                "stage": "Lead",
                "notes": "Met at the engine demo",
                "customFields": { "plan": "gold" },
                "tags": ["vip", "engines"]
            })
        );

        assert_eq!(contact.provider, ProviderId::Whautomate);
        assert_eq!(contact.name.full.as_deref(), Some("Ada K Lovelace"));
        assert_eq!(contact.name.middle.as_deref(), Some("K"));
        assert_eq!(contact.phones[0].e164.as_deref(), Some("+447700900999"));
        assert_eq!(contact.groups[0].id, "loc_london");
        assert_eq!(
            contact.groups[0].name.as_deref(),
            Some("London Wellness Centre")
        );
        assert_eq!(contact.stage.as_deref(), Some("Lead"));
        assert_eq!(contact.tags, ["vip", "engines"]);
        assert_eq!(contact.custom_fields.get("plan"), Some(&json!("gold")));
        let record = stored(&sandbox, &contact.native_id).expect("stored");
        assert_eq!(record["tags"], json!(["vip", "engines"]));
        // The encoded records were not touched.
        assert_eq!(stored(&sandbox, EMILY), Some(encoded_before));
    }

    #[tokio::test]
    async fn a_provider_400_surfaces_as_rejected_with_its_message() {
        let (sandbox, adapter) = sandboxed().await;
        let input = NewContact {
            phones: vec![e164("+447700900999")],
            ..Default::default()
        };
        let err = adapter.create(&input).await.expect_err("no name");
        rejected_400(err, "name is required");
        let requests = sandbox.control(ProviderId::Whautomate).requests();
        assert_eq!(requests[0].body, json!({ "phoneNumber": "+447700900999" }));
    }

    #[tokio::test]
    async fn an_account_requiring_a_location_takes_the_configured_one() {
        let (sandbox, adapter) = sandboxed().await;
        let control = sandbox.control(ProviderId::Whautomate);
        control.set_account_setting(crate::sandbox::WHAUTOMATE_LOCATION_REQUIRED, true);
        let input = NewContact {
            first_name: Some("Ada".into()),
            phones: vec![e164("+447700900999")],
            ..Default::default()
        };
        let err = adapter.create(&input).await.expect_err("no location");
        rejected_400(err, "set `providers.whautomate.location_id`");
        assert_eq!(control.requests()[0].body.get("location"), None);

        let config = sandbox.provider_configs()[&ProviderId::Whautomate].clone();
        let client = UpstreamClient::new(ProviderId::Whautomate, &config);
        let located = Whautomate::new(client, Some("loc_sydney".into()));
        let contact = located.create(&input).await.expect("created");
        assert_eq!(
            control.requests()[1].body["location"],
            json!({ "id": "loc_sydney" })
        );
        assert_eq!(contact.groups[0].id, "loc_sydney");
        let record = stored(&sandbox, &contact.native_id).expect("stored");
        assert_eq!(record["location"]["id"], "loc_sydney");
    }

    #[tokio::test]
    async fn update_puts_the_whole_record_as_read_with_the_patch_applied() {
        let (sandbox, adapter) = sandboxed().await;
        let before = stored(&sandbox, CHEN).expect("seeded");
        let patch = ContactPatch {
            notes: Patch::Set("Moved to fortnightly sessions".into()),
            ..Default::default()
        };
        let contact = adapter.update(CHEN, &patch).await.expect("updated");

        let requests = sandbox.control(ProviderId::Whautomate).requests();
        assert_eq!(requests.len(), 2);
        assert_eq!(
            (requests[0].method.as_str(), requests[0].path.as_str()),
            ("GET", "/v1/contacts/64f1a2b3c4d5e6f7a8b9c001")
        );
        assert_eq!(
            (requests[1].method.as_str(), requests[1].path.as_str()),
            ("PUT", "/v1/contacts/64f1a2b3c4d5e6f7a8b9c001")
        );
        assert_eq!(
            requests[1].body,
            json!({
                "name": "Chen Mei-Ling",
                "phoneNumber": "+886912345678",
                "location": { "id": "loc_taipei", "title": "Taipei Clinic" },
                "stage": "Customer",
                "notes": "Moved to fortnightly sessions",
                "customFields": { "preferredLanguage": "zh-TW" },
                "tags": ["vip", "line"]
            })
        );
        assert_eq!(
            contact.notes.as_deref(),
            Some("Moved to fortnightly sessions")
        );
        assert_eq!(contact.tags, ["vip", "line"]);

        let after = stored(&sandbox, CHEN).expect("stored");
        for kept in [
            "name",
            "phoneNumber",
            "location",
            "stage",
            "tags",
            "customFields",
            "createdAt",
        ] {
            assert_eq!(after[kept], before[kept], "{kept} survived");
        }
    }

    #[tokio::test]
    async fn encoded_tags_and_custom_fields_are_decoded_merged_and_sent_as_json() {
        let (sandbox, adapter) = sandboxed().await;
        let before = stored(&sandbox, EMILY).expect("seeded");
        assert!(before["customFields"].is_string() && before["tags"].is_string());
        let patch = ContactPatch {
            stage: Patch::Set("Customer".into()),
            custom_fields: Patch::Set(
                json!({ "plan": "gold" })
                    .as_object()
                    .cloned()
                    .expect("object"),
            ),
            ..Default::default()
        };
        let contact = adapter.update(EMILY, &patch).await.expect("updated");
        let put = &sandbox.control(ProviderId::Whautomate).requests()[1];
        assert_eq!(put.body["tags"], json!(["trial", "newsletter"]));
        assert_eq!(
            put.body["customFields"],
            json!({ "referral": "friend", "plan": "gold" })
        );
        assert_eq!(contact.stage.as_deref(), Some("Customer"));

        let after = stored(&sandbox, EMILY).expect("stored");
        assert_eq!(after["tags"], json!(["trial", "newsletter"]));
        assert_eq!(
            after["customFields"],
            json!({ "referral": "friend", "plan": "gold" })
        );
        for kept in ["name", "phoneNumber", "location", "notes"] {
            assert_eq!(after[kept], before[kept], "{kept} survived");
        }
    }

    #[tokio::test]
    async fn a_name_part_is_applied_to_the_split_name_and_rejoined() {
        let (sandbox, adapter) = sandboxed().await;
        let patch = ContactPatch {
            last_name: Patch::Set("Haddad".into()),
            ..Default::default()
        };
        let contact = adapter.update(FATIMA, &patch).await.expect("updated");
        assert_eq!(contact.name.full.as_deref(), Some("Fatima Haddad"));
        let patch = ContactPatch {
            middle_name: Patch::Set("Noor".into()),
            ..Default::default()
        };
        adapter.update(FATIMA, &patch).await.expect("updated");
        let after = stored(&sandbox, FATIMA).expect("stored");
        assert_eq!(after["name"], "Fatima Noor Haddad");
        assert_eq!(after["stage"], "Opportunity");
        assert_eq!(after["tags"], json!(["corporate"]));
        assert_eq!(after["customFields"], json!({ "company": "Meridian Law" }));
        assert_eq!(after["location"]["id"], "loc_london");

        // Clearing the one part a one-word name has would leave no name: refused, no PUT.
        let solo = adapter
            .create(&NewContact {
                first_name: Some("Cher".into()),
                phones: vec![e164("+14155550100")],
                ..Default::default()
            })
            .await
            .expect("created");
        let control = sandbox.control(ProviderId::Whautomate);
        control.reset_requests();
        let patch = ContactPatch {
            first_name: Patch::Clear,
            ..Default::default()
        };
        let err = adapter
            .update(&solo.native_id, &patch)
            .await
            .expect_err("no name left");
        rejected_400(err, "needs a name");
        let methods: Vec<_> = control.requests().into_iter().map(|r| r.method).collect();
        assert_eq!(methods, ["GET"]);
    }

    #[tokio::test]
    async fn a_patch_clearing_every_name_part_is_refused_after_the_read_without_a_put() {
        let (sandbox, adapter) = sandboxed().await;
        let control = sandbox.control(ProviderId::Whautomate);
        control.reset_requests();
        let name_cleared = ContactPatch {
            first_name: Patch::Clear,
            middle_name: Patch::Clear,
            last_name: Patch::Clear,
            ..Default::default()
        };
        rejected_400(
            adapter.update(CHEN, &name_cleared).await.expect_err("name"),
            "needs a name",
        );
        let methods: Vec<_> = control.requests().into_iter().map(|r| r.method).collect();
        assert_eq!(methods, ["GET"]);
    }

    #[tokio::test]
    async fn location_notes_phone_and_tags_change_only_when_patched() {
        let (sandbox, adapter) = sandboxed().await;
        let patch = ContactPatch {
            group_ids: Patch::Set(vec!["loc_sf".into()]),
            phones: Patch::Set(vec![e164("+886900000001")]),
            notes: Patch::Clear,
            ..Default::default()
        };
        let contact = adapter.update(CHEN, &patch).await.expect("updated");
        let put = &sandbox.control(ProviderId::Whautomate).requests()[1];
        assert_eq!(put.body["location"], json!({ "id": "loc_sf" }));
        assert_eq!(put.body["phoneNumber"], "+886900000001");
        assert!(
            put.body.get("notes").is_none(),
            "a cleared field is left out"
        );
        assert_eq!(contact.groups[0].id, "loc_sf");
        assert_eq!(contact.notes, None);
        let after = stored(&sandbox, CHEN).expect("stored");
        assert_eq!(after["stage"], "Customer");
        assert_eq!(after["tags"], json!(["vip", "line"]));

        let patch = ContactPatch {
            group_ids: Patch::Clear,
            tags: Patch::Clear,
            ..Default::default()
        };
        let contact = adapter.update(CHEN, &patch).await.expect("updated");
        assert!(contact.groups.is_empty() && contact.tags.is_empty());
        let after = stored(&sandbox, CHEN).expect("stored");
        assert_eq!(after["location"], Value::Null);
        assert_eq!(after["tags"], json!([]));
        assert_eq!(
            after["customFields"],
            json!({ "preferredLanguage": "zh-TW" })
        );
        assert_eq!(after["phoneNumber"], "+886900000001");
    }

    #[tokio::test]
    async fn unknown_ids_are_rejected_404_on_update_delete_and_tags() {
        let (sandbox, adapter) = sandboxed().await;
        let patch = ContactPatch {
            notes: Patch::Set("x".into()),
            ..Default::default()
        };
        let is_404 = |r: Result<(), ProviderError>| {
            assert!(matches!(r, Err(ProviderError::NotFound { .. })), "{r:?}")
        };
        is_404(adapter.update("nope", &patch).await.map(|_| ()));
        is_404(adapter.delete("nope").await);
        is_404(adapter.add_tags("nope", &["a".into()]).await.map(|_| ()));
        is_404(adapter.remove_tags("nope", &["a".into()]).await.map(|_| ()));
        is_404(adapter.delete("..").await);
        let methods: Vec<_> = sandbox
            .control(ProviderId::Whautomate)
            .requests()
            .into_iter()
            .map(|r| r.method)
            .collect();
        assert_eq!(
            methods,
            ["GET", "DELETE", "POST", "POST"],
            "no PUT, no fallback"
        );
    }

    #[tokio::test]
    async fn delete_removes_the_contact() {
        let (sandbox, adapter) = sandboxed().await;
        adapter.delete(FATIMA).await.expect("deleted");
        let requests = sandbox.control(ProviderId::Whautomate).requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].method, "DELETE");
        assert_eq!(requests[0].path, "/v1/contacts/64f1a2b3c4d5e6f7a8b9c006");
        assert_eq!(stored(&sandbox, FATIMA), None);
        assert_eq!(sandbox.control(ProviderId::Whautomate).records().len(), 11);
    }

    #[tokio::test]
    async fn tags_are_added_and_removed_through_the_tag_endpoints() {
        let (sandbox, adapter) = sandboxed().await;
        let control = sandbox.control(ProviderId::Whautomate);
        let before = stored(&sandbox, CHEN).expect("seeded");

        let tags = adapter
            .add_tags(CHEN, &["vip".into(), "spring".into()])
            .await
            .expect("added");
        assert_eq!(tags, ["vip", "line", "spring"]);
        let requests = control.requests();
        assert_eq!(
            requests.len(),
            1,
            "the answer showed the change: no fallback"
        );
        assert_eq!(requests[0].method, "POST");
        assert_eq!(
            requests[0].path,
            "/v1/contacts/64f1a2b3c4d5e6f7a8b9c001/tags/add"
        );
        assert_eq!(requests[0].body, json!({ "tags": ["vip", "spring"] }));

        let tags = adapter
            .remove_tags(CHEN, &["line".into()])
            .await
            .expect("removed");
        assert_eq!(tags, ["vip", "spring"]);
        let remove = &control.requests()[1];
        assert_eq!(
            remove.path,
            "/v1/contacts/64f1a2b3c4d5e6f7a8b9c001/tags/remove"
        );
        assert_eq!(remove.body, json!({ "tags": ["line"] }));

        let after = stored(&sandbox, CHEN).expect("stored");
        assert_eq!(after["tags"], json!(["vip", "spring"]));
        for kept in [
            "name",
            "phoneNumber",
            "location",
            "stage",
            "notes",
            "customFields",
        ] {
            assert_eq!(after[kept], before[kept], "{kept} survived");
        }
    }

    #[tokio::test]
    async fn adding_a_present_tag_or_removing_an_absent_one_changes_nothing() {
        let (sandbox, adapter) = sandboxed().await;
        let control = sandbox.control(ProviderId::Whautomate);
        let before = stored(&sandbox, CHEN).expect("seeded");
        let tags = adapter
            .add_tags(CHEN, &["vip".into()])
            .await
            .expect("no-op");
        assert_eq!(tags, ["vip", "line"]);
        let tags = adapter
            .remove_tags(CHEN, &["absent".into()])
            .await
            .expect("no-op");
        assert_eq!(tags, ["vip", "line"]);
        assert_eq!(control.request_count(), 2, "no fallback");
        let after = stored(&sandbox, CHEN).expect("stored");
        for key in ["tags", "name", "location", "stage", "notes", "customFields"] {
            assert_eq!(after[key], before[key], "{key} unchanged");
        }
        // No tags at all: nothing to send; the contact's tags are read.
        let tags = adapter
            .add_tags(CHEN, &[" ".into()])
            .await
            .expect("nothing");
        assert_eq!(tags, ["vip", "line"]);
        assert_eq!(control.requests()[2].method, "GET");
    }

    #[tokio::test]
    async fn tags_of_an_encoded_record_are_changed_too() {
        let (sandbox, adapter) = sandboxed().await;
        let tags = adapter
            .add_tags(EMILY, &["vip".into()])
            .await
            .expect("added");
        assert_eq!(tags, ["trial", "newsletter", "vip"]);
        let tags = adapter
            .remove_tags(EMILY, &["trial".into()])
            .await
            .expect("removed");
        assert_eq!(tags, ["newsletter", "vip"]);
        let after = stored(&sandbox, EMILY).expect("stored");
        assert_eq!(after["tags"], json!(["newsletter", "vip"]));
        assert!(
            after["customFields"].is_string(),
            "untouched by the tag endpoints"
        );
    }

    /// The tag call was taken but its answer did not show the change, and the read before the
    /// fallback PUT failed: the error says the change may have been applied.
    #[tokio::test]
    async fn a_failed_read_after_a_taken_tag_call_says_it_may_have_been_applied() {
        let up = testing::spawn(ProviderId::Whautomate, "US", |req| {
            match req.method.as_str() {
                "POST" => (200, json!({ "id": "c_1", "tags": ["old"] })),
                _ => (429, json!({ "message": "rate limit exceeded" })),
            }
        })
        .await;
        let adapter = Whautomate::new(up.client.clone(), None);
        let error = adapter.add_tags("c_1", &["new".into()]).await.unwrap_err();
        assert!(error.may_have_been_applied(), "{error:?}");
        let methods: Vec<_> = up.requests().iter().map(|r| r.method.to_string()).collect();
        assert_eq!(methods, ["POST", "GET"]);
    }

    #[tokio::test]
    async fn a_tag_answer_without_the_change_falls_back_to_put() {
        let record = json!({
            "id": "c_1",
            "name": "Maria de la Cruz",
            "phoneNumber": "+1234567890",
            "location": { "id": "loc_1", "title": "Downtown" },
            "stage": "Lead",
            "notes": null,
            "customFields": "{\"plan\":\"gold\"}",
            "tags": "[\"old\"]",
            "createdAt": "2024-03-01T09:00:00.000Z"
        });
        let served = record.clone();
        let up = testing::spawn(ProviderId::Whautomate, "US", move |req| {
            match (req.method.as_str(), req.path.as_str()) {
                // An answer that ignores the body (the body format is not documented).
                ("POST", _) => (200, json!({ "id": "c_1", "tags": ["old"] })),
                ("PUT", _) => {
                    let mut echo = req.body.clone().unwrap_or_default();
                    echo["id"] = json!("c_1");
                    (200, echo)
                }
                _ => (200, served.clone()),
            }
        })
        .await;
        let adapter = Whautomate::new(up.client.clone(), None);
        let tags = adapter
            .add_tags("c_1", &["new".into()])
            .await
            .expect("added");
        assert_eq!(tags, ["old", "new"]);
        let requests = up.requests();
        let calls: Vec<_> = requests
            .iter()
            .map(|r| (r.method.as_str(), r.path.as_str()))
            .collect();
        assert_eq!(
            calls,
            [
                ("POST", "/v1/contacts/c_1/tags/add"),
                ("GET", "/v1/contacts/c_1"),
                ("PUT", "/v1/contacts/c_1")
            ]
        );
        assert_eq!(
            requests[2].body,
            Some(json!({
                "name": "Maria de la Cruz",
                "phoneNumber": "+1234567890",
                "location": { "id": "loc_1", "title": "Downtown" },
                "stage": "Lead",
                "customFields": { "plan": "gold" },
                "tags": ["old", "new"]
            }))
        );
    }

    #[tokio::test]
    async fn tag_names_are_exact_on_remove_and_add() {
        // A stand-in whose tag answer ignores the body, so the add goes through the fallback.
        let up = testing::spawn(ProviderId::Whautomate, "US", |req| {
            match (req.method.as_str(), req.path.as_str()) {
                ("POST", _) => (200, json!({ "id": "c_1", "tags": ["vip"] })),
                ("PUT", _) => {
                    let mut echo = req.body.clone().unwrap_or_default();
                    echo["id"] = json!("c_1");
                    (200, echo)
                }
                _ => (
                    200,
                    json!({ "id": "c_1", "name": "Ann", "phoneNumber": "+1234567890",
                            "tags": ["vip"] }),
                ),
            }
        })
        .await;
        let adapter = Whautomate::new(up.client.clone(), None);
        let tags = adapter
            .remove_tags("c_1", &["VIP".into()])
            .await
            .expect("removed");
        assert_eq!(tags, ["vip"], "`VIP` was never there; `vip` stays");
        assert_eq!(up.requests().len(), 1, "the answer shows it: no fallback");

        let tags = adapter
            .add_tags("c_1", &["VIP".into()])
            .await
            .expect("added");
        assert_eq!(tags, ["vip", "VIP"], "`vip` does not make `VIP` present");
        let requests = up.requests();
        let put = requests.last().expect("a PUT");
        assert_eq!(put.method, Method::PUT);
        assert_eq!(
            put.body.as_ref().map(|b| b["tags"].clone()),
            Some(json!(["vip", "VIP"]))
        );
    }

    #[tokio::test]
    async fn removing_a_tag_in_another_case_keeps_the_stored_one() {
        let (sandbox, adapter) = sandboxed().await;
        let control = sandbox.control(ProviderId::Whautomate);
        let tags = adapter
            .remove_tags(CHEN, &["VIP".into()])
            .await
            .expect("nothing to remove");
        assert_eq!(tags, ["vip", "line"]);
        let methods: Vec<_> = control.requests().into_iter().map(|r| r.method).collect();
        assert_eq!(methods, ["POST"], "no fallback PUT");
        assert_eq!(
            stored(&sandbox, CHEN).expect("stored")["tags"],
            json!(["vip", "line"])
        );
    }
}
