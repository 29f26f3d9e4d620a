//! Mainbrainer CRM (mainbrainer.txt): write-only. The document has an upsert endpoint and no read
//! endpoint (NOTES.md Decision 5), so every write is recorded in the gateway's ledger (`ledger`)
//! and get and list serve the ledger's copies (`ContactSource::GatewayLedger`); an id the
//! gateway never wrote answers `UNSUPPORTED_BY_PROVIDER`, and there is no search. Without a
//! store there is no ledger, and nothing is read. `to_contact` reads the upsert record shape
//! (what the gateway sent, plus the returned id).
//!
//! Every write is `POST /contacts/insertupdate` with camelCase keys. Its matching rules
//! (mainbrainer.txt, NOTES 5.5) decide which record a body touches:
//! - `contactId` → that record; when none has it, a **new** record is created;
//! - email + mobile → the record holding both; else a new one;
//! - mobile only → the record with that mobile and **no email**; else a new one;
//! - email only → the record with that email and **no mobile**; else a new one.
//!
//! So updates always go by `contactId`, creates and upserts send email and mobile together
//! when both are known, and the do-not-contact body is built knowing which rule it hits.

mod ledger;
mod mapping;
mod wire;

pub use ledger::Ledger;

use super::http::{Call, UpstreamClient};
use super::{Capabilities, ListChunk, ListQuery, Provider, ProviderError};
use crate::contact::{non_empty, Contact};
use crate::fields::{Field, FieldAccess, FieldSet};
use crate::write::{ContactPatch, DoNotContact, NewContact, WriteFields};
use mapping::{mobile, new_body, strip_invalid, to_contact, update_body};
use reqwest::Method;
use serde_json::{json, Value};
use wire::{AnyCase, InvalidProperty, UpsertAnswer, UpsertBody};

const UPSERT: &str = "/contacts/insertupdate";

pub struct Mainbrainer {
    client: UpstreamClient,
    /// The configured list a create joins when the input names none.
    list_id: Option<String>,
    /// Where every write is recorded and reads are served from; none without a store.
    ledger: Option<Ledger>,
}

impl Mainbrainer {
    pub fn new(client: UpstreamClient, list_id: Option<String>) -> Self {
        Mainbrainer {
            client,
            list_id,
            ledger: None,
        }
    }

    /// Recording its writes in `ledger` and serving reads from it.
    pub fn with_ledger(mut self, ledger: Option<Ledger>) -> Self {
        self.ledger = ledger;
        self
    }

    /// Sends one upsert body; answers the contact id Mainbrainer reports and the properties
    /// it did not store.
    async fn send(&self, body: &UpsertBody) -> Result<Answer, ProviderError> {
        let response = self
            .client
            .send_expecting(Call::Write, Method::POST, UPSERT, &[], Some(&json!(body)))
            .await?;
        let answered = response.body.clone();
        // mainbrainer.txt / NOTES 5.7.2: the answer's keys in any casing; a body that is not
        // an object reads as an empty answer.
        let AnyCase(answer) =
            serde_json::from_value::<AnyCase<UpsertAnswer>>(response.body).unwrap_or_default();
        // NOTES 5.6: any 2xx, and `status` must say Success. Its message is quoted as every
        // provider message is: the key redacted, then cut.
        if let Some(message) = answer.failure() {
            return Err(self.rejected(response.status, self.client.message(message)));
        }
        let data = answer.data.map(|AnyCase(data)| data).unwrap_or_default();
        let id = data
            .contact_id
            .clone()
            .ok_or_else(|| ProviderError::unparseable(self.id(), "no ContactId in the answer"))?;
        Ok(Answer {
            id,
            invalid: data.invalid(),
            answered,
        })
    }

    /// Records the write in the ledger (`operation` names it there); answers the contact as
    /// the ledger now holds it, else (no ledger) as written: the body sent, without the
    /// properties Mainbrainer reported invalid, plus the id. The write happened, so invalid
    /// properties are no error: the gateway compares this contact with the input and warns
    /// (FIELD_NOT_STORED) about what it lacks.
    async fn written(
        &self,
        operation: &str,
        body: &UpsertBody,
        answer: &Answer,
    ) -> Result<Contact, ProviderError> {
        let mut stored = body.clone();
        if !answer.invalid.is_empty() {
            let invalid: Vec<Option<String>> =
                answer.invalid.iter().map(InvalidProperty::name).collect();
            tracing::warn!(
                provider = %self.id(),
                contact = %answer.id,
                invalid = ?invalid,
                "Mainbrainer did not store some properties"
            );
            strip_invalid(&mut stored, &answer.invalid);
        }
        if let Some(ledger) = &self.ledger {
            let region = self.client.region();
            return ledger
                .record(
                    operation,
                    &answer.id,
                    body,
                    &answer.answered,
                    &stored,
                    region,
                )
                .await;
        }
        let mut raw = json!(stored);
        let id = answer
            .id
            .parse::<i64>()
            .map_or(json!(answer.id), |n| json!(n));
        raw["contactId"] = id;
        to_contact(raw, self.client.region())
    }

    /// An insertupdate without `contactId` (a create or an upsert, as `operation` says).
    async fn insert(&self, input: &NewContact, operation: &str) -> Result<Contact, ProviderError> {
        let body = new_body(input, self.list_id.as_ref())?;
        let answer = self.send(&body).await?;
        self.written(operation, &body, &answer).await
    }
}

/// What an upsert answered.
struct Answer {
    /// `ContactId`, the record the body touched.
    id: String,
    /// `InvalidProperties` / `invalidPropertiesList`: properties not stored.
    invalid: Vec<InvalidProperty>,
    /// The answer as received, for the ledger.
    answered: Value,
}

#[async_trait::async_trait]
impl Provider for Mainbrainer {
    fn client(&self) -> &UpstreamClient {
        &self.client
    }

    /// mainbrainer.txt: `contactId` is an int64.
    fn accepts_native_id(&self, native_id: &str) -> bool {
        native_id.parse::<i64>().is_ok_and(|n| n > 0)
    }

    /// Writes; reads only from the gateway's ledger of them (no read endpoint is documented),
    /// and no delete.
    fn capabilities(&self) -> Capabilities {
        let ledger = self.ledger.is_some();
        Capabilities {
            list: ledger,
            get: ledger,
            ledger,
            create: true,
            update: true,
            native_upsert: true,
            do_not_contact: true,
            holds_email: true,
            holds_company: true,
            // No `search_email`/`search_phone`: nothing can be searched, so `duplicatesOf`
            // and `person` find no Mainbrainer contact.
            ..Default::default()
        }
    }

    /// The ledger's copy, when the gateway wrote this contact.
    async fn get(&self, native_id: &str) -> Result<Option<Contact>, ProviderError> {
        match &self.ledger {
            Some(ledger) => ledger.get(native_id, self.client.region()).await,
            None => Err(self.unsupported("get")),
        }
    }

    /// The ledger's copies, in the order the gateway first wrote them (the gateway checks the
    /// filter on each).
    async fn list(
        &self,
        _query: &ListQuery,
        offset: u64,
        limit: u32,
    ) -> Result<ListChunk, ProviderError> {
        match &self.ledger {
            Some(ledger) => ledger.list(offset, limit, self.client.region()).await,
            None => Err(self.unsupported("list")),
        }
    }

    /// Names as the `firstname`/`lastname` properties (no middle), one email, one mobile, the
    /// `company` property, custom fields as further properties, one list, both opt-ins.
    fn write_fields(&self) -> WriteFields {
        WriteFields {
            first_name: 1,
            last_name: 1,
            emails: 1,
            phones: 1,
            company: 1,
            group_ids: 1,
            custom_fields: 1,
            email_opt_in: 1,
            sms_opt_in: 1,
            // mainbrainer.txt: "The request body must include either an email address, a
            // mobile number, or a contactID."
            requires_email_or_phone: true,
            ..WriteFields::default()
        }
    }

    /// Reads (from the ledger) show what the upsert record holds. A property is cleared by a
    /// `null` value; the email, the mobile and the list cannot be (`null` reads as omitted and
    /// no removal is documented), nor an opt-in.
    fn field_access(&self) -> FieldAccess {
        use Field::*;
        FieldAccess {
            read: FieldSet::of(&[
                FirstName,
                LastName,
                Emails,
                Phones,
                Company,
                GroupIds,
                CustomFields,
                EmailOptIn,
                SmsOptIn,
            ]),
            clear: FieldSet::of(&[FirstName, LastName, Company, CustomFields]),
        }
    }

    /// An insertupdate without `contactId`. By the matching rules this may update instead of
    /// create: with only an email, an existing contact holding that email and no mobile is
    /// updated (with only a mobile, one holding that mobile and no email; with both, one
    /// holding both). The answer does not say which happened. Never retried.
    async fn create(&self, input: &NewContact) -> Result<Contact, ProviderError> {
        self.insert(input, "create").await
    }

    /// The native upsert: the same body as a create (email and mobile together when both are
    /// known, so the both-match rule applies), matched by Mainbrainer's rules. Both opt-ins
    /// are sent (the input's, else `false`), as on a create: the call may create a record,
    /// and no consent is never assumed.
    async fn upsert(&self, input: &NewContact) -> Result<Contact, ProviderError> {
        self.insert(input, "upsert").await
    }

    /// An insertupdate by `contactId` (an integer) with only the changed fields and only the
    /// opt-ins given (omitted fields keep their values). Cleared name, company or custom
    /// fields are sent as `propertyValue: null` (the OpenAPI types it `string|null`); a cleared
    /// opt-in is not sent (the field is `bool|null`; the gateway refuses clearing one). An email, a
    /// mobile, a list or all custom fields cannot be cleared: `null` reads as "omitted", and no
    /// removal is documented, so those are `Unsupported`. An id Mainbrainer does not know makes
    /// it create a new record (mainbrainer.txt): that is reported as a 404 naming the new id.
    /// The returned contact holds what was sent (no read endpoint).
    async fn update(
        &self,
        native_id: &str,
        patch: &ContactPatch,
    ) -> Result<Contact, ProviderError> {
        let Ok(contact_id) = native_id.trim().parse::<i64>() else {
            return Err(ProviderError::NotFound {
                provider: self.id(),
                detail: Some("Mainbrainer ids are integers".into()),
            });
        };
        let body = update_body(contact_id, patch)?;
        let answer = self.send(&body).await?;
        let id = &answer.id;
        if *id != contact_id.to_string() {
            // Both facts go in the ledger: the new record holds what was sent, and the one
            // asked for is gone.
            if let Some(ledger) = &self.ledger {
                self.written("update", &body, &answer).await?;
                ledger
                    .forget(&contact_id.to_string(), &body, &answer.answered)
                    .await?;
            }
            return Err(ProviderError::NotFound {
                provider: self.id(),
                detail: Some(format!(
                    "Mainbrainer has no contact {contact_id}; by its matching rules it created \
                     contact {id} instead"
                )),
            });
        }
        self.written("update", &body, &answer).await
    }

    /// Decision 5: the phone as `{mobileCountryCode, mobileNumber, mobileOptIn: false}` and
    /// nothing else. An email is never sent: by the email-only matching rule it would touch
    /// only a record holding that email and no mobile, and create a new opted-out record for a
    /// contact that has a mobile. So an email-only request is `Unsupported` (no call), and with
    /// a phone and an email the phone is applied and the answer says the email was not.
    async fn do_not_contact(&self, request: &DoNotContact) -> Result<String, ProviderError> {
        let email = non_empty(request.email.as_deref());
        let Some(phone) = &request.phone else {
            if email.is_some() {
                return Err(self.unsupported(
                    "do-not-contact by email (Mainbrainer's email-only matching would create \
                     a new record for a contact that has a mobile)",
                ));
            }
            return Err(self.rejected(422, "a do-not-contact request needs a phone"));
        };
        let (code, number) = mobile(phone)?;
        let body = UpsertBody {
            mobile_country_code: Some(code),
            mobile_number: Some(number),
            mobile_opt_in: Some(false),
            ..UpsertBody::default()
        };
        let answer = self.send(&body).await?;
        // The record it touched now holds the opt-out.
        if self.ledger.is_some() {
            self.written("do_not_contact", &body, &answer).await?;
        }
        let mut said = format!(
            "applied: mobileOptIn=false for +{code}{number} (Mainbrainer contact {}); by the \
             mobile-only matching rule this opts out the contact holding that mobile and no \
             email, or creates an opted-out record for the number (a contact holding the \
             mobile and an email is not matched)",
            answer.id
        );
        if let Some(email) = email {
            said.push_str(&format!(
                "; {email} not applied: Mainbrainer's email-only matching would create a new \
                 record for a contact that has a mobile"
            ));
        }
        Ok(said)
    }
}

#[cfg(test)]
use super::testing;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ProviderConfig, Secret};
    use crate::contact::ProviderId;
    use crate::providers::ListQuery;
    use serde_json::{json, Map, Value};

    /// mainbrainer.txt, the upsert request example (lower-case keys as printed).
    pub(super) fn documented() -> Value {
        json!({
            "listId": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
            "contactId": 234567,
            "mobileCountryCode": 47,
            "mobileNumber": 90812501,
            "mobileOptIn": true,
            "email": "[email protected]",
            "emailOptIn": true,
            "propertyfields": [
                { "propertyid": "3fa85f64-5717-4562-b3fc-2c963f66afa6", "propertyname": "firstname", "propertyvalue": "jennifer" },
                { "propertyname": "lastname", "propertyvalue": "merg" },
                { "propertyname": "interest", "propertyvalue": "ice hockey" },
                { "propertyname": "company", "propertyvalue": "MainBrainer" },
                { "propertyname": "Street", "propertyvalue": "16 Av Street" },
                { "propertyname": "city", "propertyvalue": "Oslo" },
                { "propertyname": "state", "propertyvalue": "Oslo" },
                { "propertyid": "3fa85f64-5717-4562-b3fc-123123d23dds", "propertyvalue": "0236" }
            ]
        })
    }

    fn adapter() -> Mainbrainer {
        let config = ProviderConfig::new("http://127.0.0.1:9", Secret::new("k"));
        Mainbrainer::new(UpstreamClient::new(ProviderId::Mainbrainer, &config), None)
    }

    #[tokio::test]
    async fn reads_are_unsupported_and_capabilities_say_so() {
        let adapter = adapter();
        let caps = adapter.capabilities();
        use crate::providers::Capability::*;
        assert_eq!(
            caps.listed(),
            [Create, Update, Upsert, DoNotContact, Import],
            "writes only: no list, get, search, delete or tags"
        );
        assert!(caps.holds_email && caps.holds_company && !caps.holds_tags);
        // Without a ledger (no store) its fields are written, never read nor filtered.
        let fields = crate::providers::field_support(&adapter);
        assert!(fields.iter().all(|f| !f.read && !f.filter), "{fields:?}");
        assert!(fields.iter().any(|f| f.write && f.clear));
        assert!(matches!(
            adapter.get("1329318").await,
            Err(ProviderError::Unsupported {
                operation: "get",
                ..
            })
        ));
        assert!(matches!(
            adapter.list(&ListQuery::default(), 0, 10).await,
            Err(ProviderError::Unsupported {
                operation: "list",
                ..
            })
        ));
    }

    // ---- writes, against the sandbox simulator (written from mainbrainer.txt, not from here) ----

    use crate::sandbox::{Sandbox, SimControl, MAINBRAINER_LIST_ID};
    use crate::write::{ContactPatch, DoNotContact, NewContact, Patch};

    async fn sandboxed() -> (Sandbox, Mainbrainer) {
        let sandbox = Sandbox::start().await.expect("sandbox");
        let config = sandbox.provider_configs()[&ProviderId::Mainbrainer].clone();
        let adapter = Mainbrainer::new(
            UpstreamClient::new(ProviderId::Mainbrainer, &config),
            config.setting("list_id").map(str::to_string),
        );
        (sandbox, adapter)
    }

    fn stored(control: &SimControl, id: i64) -> Option<Value> {
        control.records().into_iter().find(|r| r["contactId"] == id)
    }

    fn property_of(record: &Value, name: &str) -> Value {
        record["propertyFields"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["propertyName"] == name)
            .map_or(Value::Null, |p| p["propertyValue"].clone())
    }

    // Seeded ids (sandbox/seed.rs): James (email + mobile), Ingrid (email + mobile),
    // Rachel (email, no mobile), Victor (mobile, no email).
    const JAMES: i64 = 1_329_301;
    const INGRID: i64 = 1_329_302;
    const RACHEL: i64 = 1_329_303;
    const VICTOR: i64 = 1_329_304;

    #[tokio::test]
    async fn create_sends_both_opt_ins_false_without_consent_and_camel_case_keys() {
        let (sandbox, adapter) = sandboxed().await;
        let control = sandbox.control(ProviderId::Mainbrainer);
        let count = control.records().len();
        control.reset_requests();
        let input = NewContact {
            first_name: Some("Nora".into()),
            last_name: Some("Berg".into()),
            emails: vec![testing::primary_email("nora@berg.no")],
            phones: vec![testing::primary_phone("+4791234567")],
            company: Some("Berg AS".into()),
            custom_fields: [
                ("interest".to_string(), json!("skiing")),
                ("score".to_string(), json!(7)),
            ]
            .into_iter()
            .collect(),
            ..Default::default()
        };
        let contact = adapter.create(&input).await.expect("create");

        let requests = control.requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].method, "POST");
        assert_eq!(requests[0].path, "/contacts/insertupdate");
        assert_eq!(
            requests[0].body,
            json!({
                "listId": MAINBRAINER_LIST_ID,
                "email": "nora@berg.no",
                "mobileCountryCode": 47,
                "mobileNumber": 91234567,
                "mobileOptIn": false,
                "emailOptIn": false,
                "propertyFields": [
                    { "propertyName": "firstname", "propertyValue": "Nora" },
                    { "propertyName": "lastname", "propertyValue": "Berg" },
                    { "propertyName": "company", "propertyValue": "Berg AS" },
                    { "propertyName": "interest", "propertyValue": "skiing" },
                    { "propertyName": "score", "propertyValue": "7" }
                ]
            })
        );
        let new_id: i64 = contact.native_id.parse().expect("integer id");
        assert_eq!(control.records().len(), count + 1, "a new record");
        assert_eq!(contact.name.full.as_deref(), Some("Nora Berg"));
        assert_eq!(contact.company.as_deref(), Some("Berg AS"));
        assert_eq!(contact.emails[0].address, "nora@berg.no");
        assert_eq!(contact.phones[0].e164.as_deref(), Some("+4791234567"));
        assert_eq!(contact.groups[0].id, MAINBRAINER_LIST_ID);
        assert_eq!(contact.custom_fields["score"], json!("7"));
        let consent = contact.consent.clone().expect("consent");
        assert_eq!(
            (consent.email_opt_in, consent.sms_opt_in),
            (Some(false), Some(false))
        );
        assert_eq!(contact.raw["contactId"], json!(new_id));

        let record = stored(control, new_id).expect("stored");
        assert_eq!(record["mobileOptIn"], false);
        assert_eq!(record["emailOptIn"], false);
        assert_eq!(record["mobileNumber"], 91234567);
        assert_eq!(property_of(&record, "firstname"), "Nora");
    }

    #[tokio::test]
    async fn create_takes_the_inputs_list_and_consent() {
        let (sandbox, adapter) = sandboxed().await;
        let control = sandbox.control(ProviderId::Mainbrainer);
        control.reset_requests();
        let list = "0b5e4a6c-1111-4222-8333-444455556666";
        let input = NewContact {
            emails: vec![testing::primary_email("opted@in.io")],
            group_ids: vec![list.into()],
            email_opt_in: Some(true),
            ..Default::default()
        };
        adapter.create(&input).await.expect("create");
        let body = &control.requests()[0].body;
        assert_eq!(body["listId"], list);
        assert_eq!(body["emailOptIn"], true);
        assert_eq!(body["mobileOptIn"], false);
        assert!(body.get("propertyFields").is_none(), "no properties given");
    }

    #[tokio::test]
    async fn an_email_only_create_updates_the_contact_with_that_email_and_no_mobile() {
        // The documented matching rule, not a bug: "create" is an insertupdate.
        let (sandbox, adapter) = sandboxed().await;
        let control = sandbox.control(ProviderId::Mainbrainer);
        let count = control.records().len();
        let input = NewContact {
            emails: vec![testing::primary_email("rachel.kim@cedarpartners.com")],
            ..Default::default()
        };
        let contact = adapter.create(&input).await.expect("create");
        assert_eq!(contact.native_id, RACHEL.to_string());
        assert_eq!(control.records().len(), count, "no new record");
    }

    #[tokio::test]
    async fn update_goes_by_contact_id_with_only_the_changes_and_the_given_opt_in() {
        let (sandbox, adapter) = sandboxed().await;
        let control = sandbox.control(ProviderId::Mainbrainer);
        let before = stored(control, INGRID).expect("seeded");
        let count = control.records().len();
        control.reset_requests();
        let patch = ContactPatch {
            company: Patch::Set("FjordTech ASA".into()),
            email_opt_in: Patch::Set(true),
            ..Default::default()
        };
        let contact = adapter
            .update(&INGRID.to_string(), &patch)
            .await
            .expect("update");

        let requests = control.requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].path, "/contacts/insertupdate");
        assert_eq!(
            requests[0].body,
            json!({
                "contactId": INGRID,
                "emailOptIn": true,
                "propertyFields": [ { "propertyName": "company", "propertyValue": "FjordTech ASA" } ]
            })
        );
        assert!(
            requests[0].body.get("mobileOptIn").is_none(),
            "not given, not sent"
        );
        assert_eq!(contact.native_id, INGRID.to_string());
        assert_eq!(contact.company.as_deref(), Some("FjordTech ASA"));

        let after = stored(control, INGRID).expect("still there");
        assert_eq!(control.records().len(), count, "no duplicate");
        assert_eq!(after["emailOptIn"], true);
        assert_eq!(property_of(&after, "company"), "FjordTech ASA");
        for key in [
            "email",
            "mobileCountryCode",
            "mobileNumber",
            "mobileOptIn",
            "listIds",
        ] {
            assert_eq!(after[key], before[key], "{key} survives the update");
        }
        for name in ["firstname", "lastname", "city", "interest"] {
            assert_eq!(
                property_of(&after, name),
                property_of(&before, name),
                "{name} survives"
            );
        }
    }

    #[tokio::test]
    async fn a_new_email_for_a_contact_with_a_mobile_updates_it_instead_of_duplicating() {
        let (sandbox, adapter) = sandboxed().await;
        let control = sandbox.control(ProviderId::Mainbrainer);
        let before = stored(control, JAMES).expect("seeded");
        let count = control.records().len();
        let patch = ContactPatch {
            emails: Patch::Set(vec![testing::primary_email("james@harbourline.example")]),
            last_name: Patch::Clear,
            ..Default::default()
        };
        adapter
            .update(&JAMES.to_string(), &patch)
            .await
            .expect("update");
        let body = control.requests().last().expect("sent").body.clone();
        assert_eq!(body["contactId"], JAMES, "always by contactId");
        assert_eq!(
            body["propertyFields"],
            json!([ { "propertyName": "lastname", "propertyValue": null } ])
        );
        assert_eq!(control.records().len(), count, "no duplicate");
        let after = stored(control, JAMES).expect("stored");
        assert_eq!(after["email"], "james@harbourline.example");
        assert_eq!(after["mobileNumber"], before["mobileNumber"]);
        assert_eq!(after["mobileOptIn"], before["mobileOptIn"]);
        assert_eq!(property_of(&after, "lastname"), Value::Null);
        assert_eq!(property_of(&after, "firstname"), "James");
    }

    #[tokio::test]
    async fn an_unknown_contact_id_is_a_404_naming_what_mainbrainer_did() {
        let (sandbox, adapter) = sandboxed().await;
        let control = sandbox.control(ProviderId::Mainbrainer);
        let patch = ContactPatch {
            company: Patch::Set("X".into()),
            ..Default::default()
        };
        match adapter.update("999999", &patch).await {
            Err(ProviderError::NotFound {
                detail: Some(detail),
                ..
            }) => assert!(detail.contains("created contact"), "{detail}"),
            other => panic!("expected a 404, got {other:?}"),
        }
        control.reset_requests();
        assert!(matches!(
            adapter.update("not-a-number", &patch).await,
            Err(ProviderError::NotFound { .. })
        ));
        assert_eq!(control.request_count(), 0, "no call for an impossible id");
        assert!(matches!(
            adapter.delete("1329301").await,
            Err(ProviderError::Unsupported { .. })
        ));
    }

    #[tokio::test]
    async fn upsert_sends_email_and_mobile_together_and_matches_the_record_with_both() {
        let (sandbox, adapter) = sandboxed().await;
        let control = sandbox.control(ProviderId::Mainbrainer);
        let count = control.records().len();
        control.reset_requests();
        let input = NewContact {
            emails: vec![testing::primary_email("ingrid.solberg@fjordtech.no")],
            phones: vec![testing::primary_phone("+4790812501")],
            sms_opt_in: Some(true),
            email_opt_in: Some(true),
            ..Default::default()
        };
        let contact = adapter.upsert(&input).await.expect("upsert");
        assert_eq!(contact.native_id, INGRID.to_string());
        assert_eq!(control.records().len(), count, "matched, not created");
        let body = &control.requests()[0].body;
        assert!(body.get("contactId").is_none());
        assert_eq!(body["email"], "ingrid.solberg@fjordtech.no");
        assert_eq!(
            (
                body["mobileCountryCode"].clone(),
                body["mobileNumber"].clone()
            ),
            (json!(47), json!(90812501))
        );
        assert_eq!(stored(control, INGRID).expect("stored")["emailOptIn"], true);
    }

    #[tokio::test]
    async fn dnc_sends_only_the_mobile_and_mobile_opt_in_false() {
        let (sandbox, adapter) = sandboxed().await;
        let control = sandbox.control(ProviderId::Mainbrainer);
        let count = control.records().len();
        control.reset_requests();
        let said = adapter
            .do_not_contact(&DoNotContact {
                phone: Some(testing::primary_phone("+14155550182")),
                email: None,
                reason: Some("asked us to stop".into()),
            })
            .await
            .expect("dnc");
        assert!(said.starts_with("applied"), "{said}");
        assert!(said.contains("mobile and no email"), "{said}");
        let requests = control.requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].path, "/contacts/insertupdate");
        assert_eq!(
            requests[0].body,
            json!({ "mobileCountryCode": 1, "mobileNumber": 4155550182_u64, "mobileOptIn": false })
        );
        assert_eq!(control.records().len(), count, "Victor matched");
        let victor = stored(control, VICTOR).expect("stored");
        assert_eq!(victor["mobileOptIn"], false);
        assert_eq!(property_of(&victor, "firstname"), "Victor");
    }

    #[tokio::test]
    async fn dnc_by_email_only_is_unsupported_before_any_call() {
        let (sandbox, adapter) = sandboxed().await;
        let control = sandbox.control(ProviderId::Mainbrainer);
        control.reset_requests();
        let result = adapter
            .do_not_contact(&DoNotContact {
                phone: None,
                email: Some("rachel.kim@cedarpartners.com".into()),
                reason: None,
            })
            .await;
        assert!(
            matches!(result, Err(ProviderError::Unsupported { .. })),
            "{result:?}"
        );
        assert_eq!(control.request_count(), 0);
    }

    #[tokio::test]
    async fn dnc_with_phone_and_email_applies_the_phone_only_and_says_so() {
        let (sandbox, adapter) = sandboxed().await;
        let control = sandbox.control(ProviderId::Mainbrainer);
        control.reset_requests();
        let said = adapter
            .do_not_contact(&DoNotContact {
                phone: Some(testing::primary_phone("+14155550182")),
                email: Some("victor@example.com".into()),
                reason: None,
            })
            .await
            .expect("dnc");
        assert!(said.starts_with("applied"), "{said}");
        assert!(said.contains("victor@example.com not applied"), "{said}");
        let requests = control.requests();
        assert_eq!(requests.len(), 1, "no email call");
        assert_eq!(
            requests[0].body,
            json!({ "mobileCountryCode": 1, "mobileNumber": 4155550182_u64, "mobileOptIn": false })
        );
    }

    #[tokio::test]
    async fn invalid_properties_are_left_out_of_the_answer_not_an_error() {
        let up = testing::spawn(ProviderId::Mainbrainer, "US", |_| {
            (
                200,
                json!({
                    "status": "Success",
                    "message": "Contact added/updated successfully",
                    "data": {
                        "ContactId": "1329318",
                        "InvalidProperties": [
                            { "propertyId": null, "propertyName": "tier", "propertyValue": "gold" }
                        ],
                        "InvalidContactIds": []
                    }
                }),
            )
        })
        .await;
        let adapter = Mainbrainer::new(up.client.clone(), None);
        let mut custom_fields = Map::new();
        custom_fields.insert("tier".into(), json!("gold"));
        custom_fields.insert("city".into(), json!("Oslo"));
        let input = NewContact {
            first_name: Some("Ann".into()),
            company: Some("Acme".into()),
            emails: vec![testing::primary_email("ann@acme.io")],
            custom_fields,
            ..Default::default()
        };
        let contact = adapter.create(&input).await.expect("written, so no error");
        assert_eq!(contact.native_id, "1329318");
        assert_eq!(contact.name.first.as_deref(), Some("Ann"));
        assert_eq!(contact.company.as_deref(), Some("Acme"));
        assert_eq!(contact.custom_fields.get("city"), Some(&json!("Oslo")));
        assert!(
            !contact.custom_fields.contains_key("tier"),
            "the gateway warns about it"
        );
        assert_eq!(up.requests().len(), 1, "not retried");
    }

    #[tokio::test]
    async fn a_2xx_answer_whose_status_is_not_success_is_rejected_with_its_message() {
        let up = testing::spawn(ProviderId::Mainbrainer, "US", |_| {
            (
                200,
                json!({ "Status": "Error", "Message": "Daily quota reached", "Data": null }),
            )
        })
        .await;
        let adapter = Mainbrainer::new(up.client.clone(), None);
        let input = NewContact {
            emails: vec![testing::primary_email("ann@acme.io")],
            ..Default::default()
        };
        match adapter.create(&input).await {
            Err(ProviderError::Rejected {
                status: 200,
                message,
                ..
            }) => assert_eq!(message, "Daily quota reached"),
            other => panic!("expected Rejected, got {other:?}"),
        }
        assert_eq!(up.requests().len(), 1, "not retried");
    }

    #[tokio::test]
    async fn a_cleared_opt_in_is_not_sent() {
        let (sandbox, adapter) = sandboxed().await;
        let control = sandbox.control(ProviderId::Mainbrainer);
        control.reset_requests();
        let patch = ContactPatch {
            company: Patch::Set("FjordTech ASA".into()),
            sms_opt_in: Patch::Clear,
            email_opt_in: Patch::Clear,
            ..Default::default()
        };
        adapter
            .update(&INGRID.to_string(), &patch)
            .await
            .expect("update");
        let body = &control.requests()[0].body;
        assert!(body.get("mobileOptIn").is_none(), "{body}");
        assert!(body.get("emailOptIn").is_none(), "{body}");
    }

    #[tokio::test]
    async fn a_provider_400_surfaces_with_its_message() {
        let (_sandbox, adapter) = sandboxed().await;
        // No email, no mobile (the gateway refuses this first; the provider's words surface).
        let input = NewContact {
            first_name: Some("Nobody".into()),
            ..Default::default()
        };
        match adapter.create(&input).await {
            Err(ProviderError::Rejected {
                status: 400,
                message,
                ..
            }) => assert!(
                message.contains("must include either an email"),
                "{message}"
            ),
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn what_cannot_be_expressed_is_refused_before_any_call() {
        let (sandbox, adapter) = sandboxed().await;
        let control = sandbox.control(ProviderId::Mainbrainer);
        control.reset_requests();
        let id = JAMES.to_string();
        for patch in [
            ContactPatch {
                emails: Patch::Clear,
                ..Default::default()
            },
            ContactPatch {
                phones: Patch::Set(vec![]),
                ..Default::default()
            },
            ContactPatch {
                group_ids: Patch::Clear,
                ..Default::default()
            },
            ContactPatch {
                custom_fields: Patch::Clear,
                ..Default::default()
            },
        ] {
            assert!(
                matches!(
                    adapter.update(&id, &patch).await,
                    Err(ProviderError::Unsupported { .. })
                ),
                "{patch:?}"
            );
        }
        let italian = NewContact {
            phones: vec![testing::primary_phone("+390612345678")],
            ..Default::default()
        };
        assert!(matches!(
            adapter.create(&italian).await,
            Err(ProviderError::Rejected { status: 422, .. })
        ));
        assert_eq!(control.request_count(), 0);
        let caps = adapter.capabilities();
        assert!(caps.create && caps.update && caps.native_upsert && caps.do_not_contact);
        assert!(!caps.delete && !caps.list && !caps.get);
        assert!(adapter.write_fields().requires_email_or_phone);
    }

    // ---- the ledger: what the gateway wrote, read back ----

    use crate::contact::ContactSource;
    use crate::store::Store;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// An adapter keeping its ledger in a fresh store, against `up`.
    async fn ledgered(up: &testing::Upstream) -> (Mainbrainer, Store, tempfile::TempDir) {
        let (store, dir) = crate::store::testing::sqlite().await;
        let adapter =
            Mainbrainer::new(up.client.clone(), None).with_ledger(Some(Ledger::new(store.clone())));
        (adapter, store, dir)
    }

    /// Answers every upsert with the next id from `first` on, reporting `invalid` not stored.
    async fn numbering(first: u64, invalid: Value) -> testing::Upstream {
        let next = AtomicU64::new(first);
        testing::spawn(ProviderId::Mainbrainer, "US", move |_| {
            let id = next.fetch_add(1, Ordering::SeqCst);
            (
                201,
                json!({ "status": "Success", "message": "Contact added/updated successfully",
                    "data": { "ContactId": id.to_string(), "InvalidProperties": invalid, "InvalidContactIds": [] } }),
            )
        })
        .await
    }

    #[tokio::test]
    async fn writes_are_recorded_as_sent_and_answered_and_read_back_as_the_ledgers_copy() {
        let up = numbering(555, json!(["tier"])).await;
        let (adapter, store, _dir) = ledgered(&up).await;
        let caps = adapter.capabilities();
        assert!(caps.list && caps.get && caps.ledger && !caps.search && !caps.delete);
        let input = NewContact {
            first_name: Some("Ann".into()),
            emails: vec![testing::primary_email("ann@acme.io")],
            custom_fields: [
                ("tier".to_string(), json!("gold")),
                ("city".to_string(), json!("Oslo")),
            ]
            .into_iter()
            .collect(),
            ..Default::default()
        };
        let written = adapter.create(&input).await.expect("create");
        assert_eq!(written.source, ContactSource::GatewayLedger);
        let read = adapter.get("555").await.expect("read").expect("held");
        assert_eq!(read, written);
        assert_eq!(read.custom_fields.get("city"), Some(&json!("Oslo")));
        assert!(
            !read.custom_fields.contains_key("tier"),
            "Mainbrainer did not store it"
        );
        assert!(read.updated_at.is_some());
        let writes = store
            .ledger_writes(ProviderId::Mainbrainer, "555")
            .await
            .unwrap();
        assert_eq!(writes.len(), 1);
        assert_eq!(writes[0].operation, "create");
        assert_eq!(writes[0].sent, up.requests()[0].body.clone().unwrap());
        assert_eq!(
            writes[0].answered["data"]["InvalidProperties"],
            json!(["tier"])
        );
        assert_eq!(up.requests().len(), 1, "reads never call Mainbrainer");

        // Ids are integers: another spelling of 555 is 555; one never written is unsupported.
        assert_eq!(adapter.get("0555").await.unwrap().unwrap().native_id, "555");
        assert!(matches!(
            adapter.get("777").await,
            Err(ProviderError::Unsupported {
                operation: ledger::NOT_WRITTEN,
                ..
            })
        ));
        let listed = adapter.list(&ListQuery::default(), 0, 10).await.unwrap();
        assert_eq!(listed.contacts, [read]);
        assert_eq!((listed.total, listed.exhausted), (Some(1), true));
    }

    #[tokio::test]
    async fn an_update_by_an_id_mainbrainer_no_longer_has_forgets_it_and_records_the_new_one() {
        let up = numbering(555, json!([])).await;
        let (adapter, store, _dir) = ledgered(&up).await;
        let input = NewContact {
            emails: vec![testing::primary_email("ann@acme.io")],
            ..Default::default()
        };
        adapter.create(&input).await.expect("create: 555");
        // Mainbrainer answers 556: it had no 555 any more, so it created 556.
        let patch = ContactPatch {
            company: Patch::Set("Acme".into()),
            ..Default::default()
        };
        match adapter.update("555", &patch).await {
            Err(ProviderError::NotFound {
                detail: Some(detail),
                ..
            }) => assert!(detail.contains("created contact 556"), "{detail}"),
            other => panic!("expected a 404, got {other:?}"),
        }
        assert_eq!(adapter.get("555").await.unwrap(), None, "known to be gone");
        let new = adapter.get("556").await.unwrap().expect("recorded");
        assert_eq!(new.company.as_deref(), Some("Acme"));
        assert!(new.emails.is_empty(), "only what was sent");
        let listed = adapter.list(&ListQuery::default(), 0, 10).await.unwrap();
        let ids: Vec<&str> = listed
            .contacts
            .iter()
            .map(|c| c.native_id.as_str())
            .collect();
        assert_eq!(ids, ["556"]);
        let operations: Vec<String> = store
            .ledger_writes(ProviderId::Mainbrainer, "555")
            .await
            .unwrap()
            .into_iter()
            .map(|w| w.operation)
            .collect();
        assert_eq!(operations, ["create", "update"]);
    }

    #[tokio::test]
    async fn a_do_not_contact_opt_out_is_recorded_on_the_record_it_touched() {
        let (sandbox, adapter) = sandboxed().await;
        let (store, _dir) = crate::store::testing::sqlite().await;
        let adapter = adapter.with_ledger(Some(Ledger::new(store)));
        // Victor: seeded with a mobile and no email, never written through the gateway.
        adapter
            .do_not_contact(&DoNotContact {
                phone: Some(testing::primary_phone("+14155550182")),
                email: None,
                reason: None,
            })
            .await
            .expect("dnc");
        assert_eq!(
            stored(sandbox.control(ProviderId::Mainbrainer), VICTOR).unwrap()["mobileOptIn"],
            false
        );
        let copy = adapter
            .get(&VICTOR.to_string())
            .await
            .unwrap()
            .expect("recorded");
        assert_eq!(copy.consent.and_then(|c| c.sms_opt_in), Some(false));
        assert_eq!(copy.phones[0].e164.as_deref(), Some("+14155550182"));
        assert!(
            copy.name.is_empty(),
            "the gateway never wrote Victor's name"
        );
    }
}
