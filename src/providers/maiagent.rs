//! MaiAgent (maiagent.txt): `GET /api/contacts/?page=&pageSize=&search=`,
//! `GET /api/contacts/{id}/`; writes `POST /api/contacts/`, `PATCH /api/contacts/{id}/`,
//! `DELETE /api/contacts/{id}/`. Every path ends in `/`; `phoneNumber` is sent as an E.164
//! string (NOTES.md Decision 4).

use super::http::{path_segment, UpstreamClient};
use super::{
    window_from_pages, Capabilities, ListChunk, ListQuery, NumberedPage, Provider, ProviderError,
};
use crate::contact::{
    non_empty, parse_timestamp, string_or_number, Contact, Email, Group, PersonName, Phone,
    ProviderId,
};
use crate::phone;
use crate::write::{join_name, ContactPatch, NewContact, Patch, WriteFields};
use phonenumber::country::Id as Region;
use reqwest::Method;
use serde_json::{json, Map, Value};

const CONTACTS: &str = "/api/contacts/";

pub struct MaiAgent {
    client: UpstreamClient,
}

impl MaiAgent {
    pub fn new(client: UpstreamClient) -> Self {
        MaiAgent { client }
    }

    /// The `/api/contacts/{id}/` path, or a 404 for an id no record can have.
    fn contact_path(&self, native_id: &str) -> Result<String, ProviderError> {
        let segment = path_segment(native_id).ok_or_else(|| ProviderError::not_found(self.id()))?;
        Ok(format!("{CONTACTS}{segment}/"))
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
            name: true,
            middle_name: true,
            max_emails: 1,
            max_phones: 1,
            max_groups: usize::MAX,
            requires_name: true,
            ..WriteFields::default()
        }
    }

    /// `POST /api/contacts/ {name, phoneNumber (E.164 string), email, inboxes: [{id}]}`, only
    /// the given keys. The contact is answered as MaiAgent stored it: the gateway compares it
    /// with the input and warns about what is missing (NOTES 4.5.5).
    async fn create(&self, input: &NewContact) -> Result<Contact, ProviderError> {
        let mut body = Map::new();
        if let Some(name) = input.full_name() {
            body.insert("name".into(), json!(name));
        }
        if let Some(phone) = input.primary_phone() {
            body.insert("phoneNumber".into(), json!(phone_text(phone)));
        }
        if let Some(email) = input.primary_email() {
            body.insert("email".into(), json!(email.address));
        }
        if !input.group_ids.is_empty() {
            body.insert("inboxes".into(), inboxes(&input.group_ids));
        }
        let response = self
            .client
            .send_expecting(Method::POST, CONTACTS, &[], Some(&Value::Object(body)))
            .await?;
        // The contact exists: answer it as MaiAgent stored it. The gateway compares it with
        // the input and warns (FIELD_NOT_STORED) about anything missing; never an error here.
        to_contact(&response.body, self.client.region())
    }

    /// `PATCH /api/contacts/{id}/` with the changed keys. A name change touching only some
    /// parts reads the current name first. `phoneNumber` and `email` are missing from the
    /// document's update table but in its examples: they are sent, and the answer is returned
    /// as is; the gateway warns (FIELD_NOT_STORED) when it lacks them (NOTES 4.5.5), since
    /// the update happened. A cleared phone or email is sent as `""`
    /// (NOTES 4.5.6), cleared inboxes as `[]`. An empty patch sends nothing and answers the
    /// contact as it is.
    async fn update(
        &self,
        native_id: &str,
        patch: &ContactPatch,
    ) -> Result<Contact, ProviderError> {
        let path = self.contact_path(native_id)?;
        let mut body = Map::new();
        if patch.changes_name() {
            let name = self.patched_name(native_id, patch).await?;
            body.insert("name".into(), json!(name));
        }
        if let Some(email) = patch.emails.change() {
            let email = email.and_then(|list| list.iter().find(|e| e.primary).or(list.first()));
            body.insert(
                "email".into(),
                json!(email.map(|e| e.address.clone()).unwrap_or_default()),
            );
        }
        if let Some(phone) = patch.phones.change() {
            let phone = phone.and_then(|list| list.iter().find(|p| p.primary).or(list.first()));
            body.insert(
                "phoneNumber".into(),
                json!(phone.map(phone_text).unwrap_or_default()),
            );
        }
        match &patch.group_ids {
            Patch::Keep => {}
            Patch::Clear => {
                body.insert("inboxes".into(), json!([]));
            }
            Patch::Set(ids) => {
                body.insert("inboxes".into(), inboxes(ids));
            }
        }
        if body.is_empty() {
            return self
                .get(native_id)
                .await?
                .ok_or_else(|| ProviderError::not_found(self.id()));
        }
        let response = self
            .client
            .send_expecting(Method::PATCH, &path, &[], Some(&Value::Object(body)))
            .await?;
        // The update happened: a field missing from the answer is the gateway's warning.
        to_contact(&response.body, self.client.region())
    }

    /// `DELETE /api/contacts/{id}/` → 204. maiagent.txt: its 400 means "the contact still has
    /// associated conversations and cannot be deleted"; that reason leads the message.
    async fn delete(&self, native_id: &str) -> Result<(), ProviderError> {
        let path = self.contact_path(native_id)?;
        match self
            .client
            .send_expecting(Method::DELETE, &path, &[], None)
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
        let Ok(path) = self.contact_path(native_id) else {
            return Ok(None);
        };
        let record = self.client.get_record(&path).await?;
        record
            .map(|r| to_contact(&r, self.client.region()))
            .transpose()
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

/// The phone as sent: an E.164 string (Decision 4; the gateway sets `e164` on written phones).
fn phone_text(phone: &Phone) -> String {
    phone.e164.clone().unwrap_or_else(|| phone.number.clone())
}

/// maiagent.txt: `inboxes: [{id}]`.
fn inboxes(ids: &[String]) -> Value {
    Value::Array(ids.iter().map(|id| json!({ "id": id })).collect())
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

/// The records of a list answer. maiagent.txt: the example nests `results` (`[[{…},{…}]]`)
/// where the schema says a flat array; flatten one level. Not `http::records_under`: only
/// `results` is read, `results: null` is no records, and an empty body is no listing.
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
    use crate::write::{ContactPatch, NewContact, Patch};

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
                Err(ProviderError::Rejected { status: 404, .. })
            ));
        }
        assert!(matches!(
            adapter.delete(&missing).await,
            Err(ProviderError::Rejected { status: 404, .. })
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
        assert!(fields.name && fields.middle_name && fields.max_groups > 1 && fields.requires_name);
        let caps = adapter.capabilities();
        assert!(caps.create && caps.update && caps.delete);
        assert!(!caps.native_upsert && !caps.do_not_contact);
    }
}
