//! Mainbrainer CRM (mainbrainer.txt): write-only. The document has an upsert endpoint and no read
//! endpoint, so get, list and search answer `UNSUPPORTED_BY_PROVIDER` (NOTES.md Decision 5).
//! `to_contact` reads the upsert record shape (what the gateway sent, plus the returned id).
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

use super::http::UpstreamClient;
use super::{Capabilities, Provider, ProviderError};
use crate::contact::{
    non_empty, string_or_number, Consent, Contact, Email, Group, PersonName, Phone, ProviderId,
};
use crate::phone;
use crate::write::{ContactPatch, DoNotContact, NewContact, Patch, WriteFields};
use phonenumber::country::Id as Region;
use reqwest::Method;
use serde_json::{json, Map, Value};

const UPSERT: &str = "/contacts/insertupdate";
/// Property names of the unified fields (mainbrainer.txt's example).
const FIRST_NAME: &str = "firstname";
const LAST_NAME: &str = "lastname";
const COMPANY: &str = "company";

pub struct Mainbrainer {
    client: UpstreamClient,
    /// The configured list a create joins when the input names none.
    list_id: Option<String>,
}

impl Mainbrainer {
    pub fn new(client: UpstreamClient, list_id: Option<String>) -> Self {
        Mainbrainer { client, list_id }
    }

    /// `mobileCountryCode` and `mobileNumber` (JSON integers) from an E.164 phone, split with
    /// libphonenumber (NOTES 5.7.3). A national number with a leading zero (Italy) cannot be
    /// held as an integer: refused rather than stored wrong.
    fn mobile(&self, phone: &Phone) -> Result<(u16, u64), ProviderError> {
        let text = phone.e164.as_deref().unwrap_or(&phone.number);
        let parsed = phonenumber::parse(None, text).map_err(|_| {
            self.rejected(
                422,
                format!("`{text}` cannot be split into mobileCountryCode and mobileNumber"),
            )
        })?;
        if parsed.national().zeros() > 0 {
            return Err(self.rejected(
                422,
                format!(
                    "`{text}` has a national number with a leading zero, which Mainbrainer's \
                     integer mobileNumber cannot hold"
                ),
            ));
        }
        Ok((parsed.code().value(), parsed.national().value()))
    }

    /// The upsert body of a create or an upsert: `listId` (the input's group, else the
    /// configured list, else none), email and mobile together, both opt-ins explicit (from the
    /// input, else `false`: no consent is never assumed; Decision 5), `propertyFields`.
    fn new_body(&self, input: &NewContact) -> Result<Map<String, Value>, ProviderError> {
        let mut body = Map::new();
        if let Some(list) = input.group_ids.first().or(self.list_id.as_ref()) {
            body.insert("listId".into(), json!(list));
        }
        if let Some(email) = input.primary_email() {
            body.insert("email".into(), json!(email.address));
        }
        if let Some(phone) = input.primary_phone() {
            let (code, number) = self.mobile(phone)?;
            body.insert("mobileCountryCode".into(), json!(code));
            body.insert("mobileNumber".into(), json!(number));
        }
        body.insert(
            "mobileOptIn".into(),
            json!(input.sms_opt_in.unwrap_or(false)),
        );
        body.insert(
            "emailOptIn".into(),
            json!(input.email_opt_in.unwrap_or(false)),
        );
        let mut properties = Vec::new();
        let mut put = |name: &str, value: Option<&String>| {
            if let Some(value) = non_empty(value.map(String::as_str)) {
                properties.push(property(name, Value::String(value)));
            }
        };
        put(FIRST_NAME, input.first_name.as_ref());
        put(LAST_NAME, input.last_name.as_ref());
        put(COMPANY, input.company.as_ref());
        for (name, value) in &input.custom_fields {
            if !value.is_null() {
                properties.push(self.custom_property(name, value)?);
            }
        }
        if !properties.is_empty() {
            body.insert("propertyFields".into(), Value::Array(properties));
        }
        Ok(body)
    }

    /// A custom field as a property, its value as a string (a `null` value clears it). A name
    /// that is one of the unified fields' properties is refused: it would overwrite them.
    fn custom_property(&self, name: &str, value: &Value) -> Result<Value, ProviderError> {
        if [FIRST_NAME, LAST_NAME, COMPANY]
            .iter()
            .any(|p| p.eq_ignore_ascii_case(name.trim()))
        {
            return Err(self.rejected(
                422,
                format!("custom field `{name}` is the property of a named field; set that field instead"),
            ));
        }
        let value = match value {
            Value::Null => Value::Null,
            Value::String(s) => Value::String(s.clone()),
            other => Value::String(other.to_string()),
        };
        Ok(property(name, value))
    }

    /// Sends one upsert body; answers the contact id Mainbrainer reports and the properties
    /// it did not store.
    async fn send(&self, body: &Map<String, Value>) -> Result<Answer, ProviderError> {
        let response = self
            .client
            .send_expecting(
                Method::POST,
                UPSERT,
                &[],
                Some(&Value::Object(body.clone())),
            )
            .await?;
        let answer = response.body.as_object().cloned().unwrap_or_default();
        // NOTES 5.6: any 2xx, and `status` must say Success.
        let status = field(&answer, "status").and_then(Value::as_str);
        if status.is_some_and(|s| !s.eq_ignore_ascii_case("success")) {
            let message = field(&answer, "message")
                .and_then(Value::as_str)
                .unwrap_or("no message");
            return Err(self.rejected(response.status, message.to_string()));
        }
        let data = field(&answer, "data")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let id = field(&data, "contactId")
            .and_then(string_or_number)
            .ok_or_else(|| ProviderError::unparseable(self.id(), "no ContactId in the answer"))?;
        // mainbrainer.txt `InvalidProperties` / OpenAPI `invalidPropertiesList`: not stored.
        let invalid = field(&data, "invalidProperties")
            .or_else(|| field(&data, "invalidPropertiesList"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        Ok(Answer { id, invalid })
    }

    /// The contact as written: the body sent, without the properties Mainbrainer reported
    /// invalid, plus the id (Mainbrainer has no read endpoint). The write happened, so invalid
    /// properties are no error: the gateway compares this contact with the input and warns
    /// (FIELD_NOT_STORED) about what it lacks.
    fn written(
        &self,
        body: &Map<String, Value>,
        answer: &Answer,
    ) -> Result<Contact, ProviderError> {
        let mut raw = body.clone();
        if !answer.invalid.is_empty() {
            let invalid = Value::Array(answer.invalid.clone());
            tracing::warn!(
                provider = %self.id(),
                contact = %answer.id,
                invalid = %invalid,
                "Mainbrainer did not store some properties"
            );
            strip_invalid(&mut raw, &answer.invalid);
        }
        let id = answer
            .id
            .parse::<i64>()
            .map_or(json!(answer.id), |n| json!(n));
        raw.insert("contactId".into(), id);
        to_contact(&Value::Object(raw), self.client.region())
    }
}

/// What an upsert answered.
struct Answer {
    /// `ContactId`, the record the body touched.
    id: String,
    /// `InvalidProperties` / `invalidPropertiesList`: properties not stored.
    invalid: Vec<Value>,
}

/// Removes from `body.propertyFields` the properties Mainbrainer reported invalid, matched by
/// name (an item may be a name or a `{propertyId, propertyName, propertyValue}` object). An
/// item naming no property sent cannot be placed: every property is removed then, so the
/// gateway warns about all of them rather than claim one stored that was not.
fn strip_invalid(body: &mut Map<String, Value>, invalid: &[Value]) {
    let Some(Value::Array(properties)) = body.get_mut("propertyFields") else {
        return;
    };
    let name_of = |item: &Value| -> Option<String> {
        let name = match item {
            Value::String(name) => Some(name.as_str()),
            Value::Object(object) => field(object, "propertyName").and_then(Value::as_str),
            _ => None,
        };
        name.map(|n| n.trim().to_lowercase())
    };
    let sent: Vec<String> = properties.iter().filter_map(name_of).collect();
    let names: Vec<Option<String>> = invalid.iter().map(name_of).collect();
    if names
        .iter()
        .any(|name| name.as_ref().is_none_or(|n| !sent.contains(n)))
    {
        properties.clear();
    } else {
        properties.retain(|p| name_of(p).is_none_or(|n| !names.contains(&Some(n))));
    }
    if properties.is_empty() {
        body.remove("propertyFields");
    }
}

/// `{propertyName, propertyValue}` (OpenAPI camelCase, NOTES 5.7.1).
fn property(name: &str, value: Value) -> Value {
    json!({ "propertyName": name, "propertyValue": value })
}

/// An opt-in change as sent: only a given value. The field is `bool|null`, so a cleared
/// opt-in is not sent as `""`; the gateway refuses clearing an opt-in before any call.
fn opt_in(patch: &Patch<bool>) -> Option<Value> {
    match patch {
        Patch::Set(b) => Some(json!(b)),
        Patch::Keep | Patch::Clear => None,
    }
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

    /// Writes only: reads never will be (no read endpoint is documented), nor delete.
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            create: true,
            update: true,
            native_upsert: true,
            do_not_contact: true,
            holds_email: true,
            holds_company: true,
            ..Default::default()
        }
    }

    /// Names as the `firstname`/`lastname` properties (no middle), one email, one mobile, the
    /// `company` property, custom fields as further properties, one list, both opt-ins.
    fn write_fields(&self) -> WriteFields {
        WriteFields {
            name: true,
            max_emails: 1,
            max_phones: 1,
            company: true,
            max_groups: 1,
            custom_fields: true,
            email_opt_in: true,
            sms_opt_in: true,
            // mainbrainer.txt: "The request body must include either an email address, a
            // mobile number, or a contactID."
            requires_email_or_phone: true,
            ..WriteFields::default()
        }
    }

    /// An insertupdate without `contactId`. By the matching rules this may update instead of
    /// create: with only an email, an existing contact holding that email and no mobile is
    /// updated (with only a mobile, one holding that mobile and no email; with both, one
    /// holding both). The answer does not say which happened. Never retried.
    async fn create(&self, input: &NewContact) -> Result<Contact, ProviderError> {
        let body = self.new_body(input)?;
        let answer = self.send(&body).await?;
        self.written(&body, &answer)
    }

    /// The native upsert: the same body as a create (email and mobile together when both are
    /// known, so the both-match rule applies), matched by Mainbrainer's rules. Both opt-ins
    /// are sent (the input's, else `false`), as on a create: the call may create a record,
    /// and no consent is never assumed.
    async fn upsert(&self, input: &NewContact) -> Result<Contact, ProviderError> {
        self.create(input).await
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
        let unsupported = |operation| Err(self.unsupported(operation));
        let Ok(contact_id) = native_id.trim().parse::<i64>() else {
            return Err(self.rejected(404, "not found (Mainbrainer ids are integers)"));
        };
        let mut body = Map::new();
        body.insert("contactId".into(), json!(contact_id));
        match &patch.group_ids {
            Patch::Keep => {}
            Patch::Set(ids) if !ids.is_empty() => {
                body.insert("listId".into(), json!(ids[0]));
            }
            _ => return unsupported("removing a contact from its list"),
        }
        match patch.emails.change() {
            None => {}
            Some(Some(list)) if !list.is_empty() => {
                let email = list.iter().find(|e| e.primary).unwrap_or(&list[0]);
                body.insert("email".into(), json!(email.address));
            }
            Some(_) => return unsupported("clearing the email"),
        }
        match patch.phones.change() {
            None => {}
            Some(Some(list)) if !list.is_empty() => {
                let phone = list.iter().find(|p| p.primary).unwrap_or(&list[0]);
                let (code, number) = self.mobile(phone)?;
                body.insert("mobileCountryCode".into(), json!(code));
                body.insert("mobileNumber".into(), json!(number));
            }
            Some(_) => return unsupported("clearing the mobile"),
        }
        if let Some(value) = opt_in(&patch.sms_opt_in) {
            body.insert("mobileOptIn".into(), value);
        }
        if let Some(value) = opt_in(&patch.email_opt_in) {
            body.insert("emailOptIn".into(), value);
        }
        let mut properties = Vec::new();
        for (name, change) in [
            (FIRST_NAME, &patch.first_name),
            (LAST_NAME, &patch.last_name),
            (COMPANY, &patch.company),
        ] {
            if let Some(value) = change.change() {
                let value = non_empty(value.map(String::as_str));
                properties.push(property(name, value.map_or(Value::Null, Value::String)));
            }
        }
        match &patch.custom_fields {
            Patch::Keep => {}
            Patch::Clear => return unsupported("clearing all custom fields"),
            Patch::Set(changes) => {
                for (name, value) in changes {
                    properties.push(self.custom_property(name, value)?);
                }
            }
        }
        if !properties.is_empty() {
            body.insert("propertyFields".into(), Value::Array(properties));
        }
        let answer = self.send(&body).await?;
        let id = &answer.id;
        if *id != contact_id.to_string() {
            return Err(self.rejected(
                404,
                format!(
                    "Mainbrainer has no contact {contact_id}; by its matching rules it created \
                     contact {id} instead"
                ),
            ));
        }
        self.written(&body, &answer)
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
        let (code, number) = self.mobile(phone)?;
        let body =
            json!({ "mobileCountryCode": code, "mobileNumber": number, "mobileOptIn": false });
        let answer = self.send(body.as_object().expect("an object")).await?;
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

/// The value under `key`, its spelling's case ignored. mainbrainer.txt writes `propertyfields`,
/// `ContactId`; its OpenAPI page `propertyFields`, `contactId` (NOTES.md 5.7.2).
fn field<'a>(record: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    record.get(key).or_else(|| {
        record
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// Maps one Mainbrainer contact record (the upsert body's fields, and `contactId`/`ContactId`)
/// to the unified contact.
pub fn to_contact(raw: &Value, region: Option<Region>) -> Result<Contact, ProviderError> {
    let missing_id =
        || ProviderError::unparseable(ProviderId::Mainbrainer, "contact without an id");
    let record = raw.as_object().ok_or_else(missing_id)?;
    let get = |key: &str| field(record, key).filter(|v| !v.is_null());
    // mainbrainer.txt: `ContactId` is a string in responses, an integer in requests.
    let id = get("contactId")
        .and_then(string_or_number)
        .ok_or_else(missing_id)?;
    let mut contact = Contact::new(ProviderId::Mainbrainer, id, raw.clone());

    if let Some(address) = non_empty(get("email").and_then(Value::as_str)) {
        contact.emails.push(Email {
            address,
            kind: None,
            primary: true,
        });
    }
    // mainbrainer.txt: the mobile is a dialing code (int32) and a national number (int64).
    let country_code = get("mobileCountryCode").and_then(string_or_number);
    if let Some(national) = get("mobileNumber").and_then(string_or_number) {
        let number = match &country_code {
            Some(cc) => format!("+{}{}", phone::digits(cc), phone::digits(&national)),
            None => national,
        };
        contact.phones.push(Phone {
            e164: phone::to_e164(&number, region),
            number,
            kind: Some("mobile".into()),
            primary: true,
        });
    }
    let email_opt_in = get("emailOptIn").and_then(Value::as_bool);
    let sms_opt_in = get("mobileOptIn").and_then(Value::as_bool);
    if email_opt_in.is_some() || sms_opt_in.is_some() {
        contact.consent = Some(Consent {
            email_opt_in,
            sms_opt_in,
            do_not_contact: None,
        });
    }
    if let Some(list) = get("listId").and_then(string_or_number) {
        contact.groups.push(Group {
            id: list,
            name: None,
            kind: "list".into(),
        });
    }

    // Named properties: first/last name and company are unified fields, the rest custom fields.
    // A property given only by id stays in `raw`: its name is unknown.
    let (mut first, mut last) = (None, None);
    for property in get("propertyFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(property) = property.as_object() else {
            continue;
        };
        let Some(name) = non_empty(field(property, "propertyName").and_then(Value::as_str)) else {
            continue;
        };
        let value = field(property, "propertyValue").and_then(string_or_number);
        match name.to_ascii_lowercase().as_str() {
            "firstname" => first = value,
            "lastname" => last = value,
            "company" => contact.company = value,
            _ => {
                contact
                    .custom_fields
                    .insert(name, value.map(Value::String).unwrap_or(Value::Null));
            }
        }
    }
    contact.name = PersonName::from_parts(first.as_deref(), None, last.as_deref());
    Ok(contact)
}

#[cfg(test)]
use super::testing;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ProviderConfig, Secret};
    use crate::providers::ListQuery;
    use serde_json::json;

    /// mainbrainer.txt, the upsert request example (lower-case keys as printed).
    fn documented() -> Value {
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

    #[test]
    fn maps_the_documented_upsert_record() {
        let contact = to_contact(&documented(), phone::parse_region("US")).expect("maps");
        insta::with_settings!({ sort_maps => true }, {
            insta::assert_json_snapshot!(contact);
        });
    }

    #[test]
    fn opt_ins_become_consent_and_the_mobile_e164() {
        let contact = to_contact(&documented(), None).expect("maps");
        let consent = contact.consent.expect("consent");
        assert_eq!(consent.email_opt_in, Some(true));
        assert_eq!(consent.sms_opt_in, Some(true));
        assert_eq!(consent.do_not_contact, None);
        assert_eq!(contact.phones[0].e164.as_deref(), Some("+4790812501"));
        let quiet = json!({ "contactId": "1", "emailOptIn": null });
        assert_eq!(to_contact(&quiet, None).expect("maps").consent, None);
    }

    #[test]
    fn the_documented_response_id_reads_in_either_casing() {
        // mainbrainer.txt's response (its trailing comma removed: the sample is not valid JSON).
        let response = json!({
            "status": "Success",
            "message": "Contact added/updated successfully",
            "data": { "ContactId": "1329318", "InvalidProperties": [], "InvalidContactIds": [] }
        });
        let contact = to_contact(&response["data"], None).expect("maps");
        assert_eq!(contact.native_id, "1329318");
        let camel = json!({ "contactId": 1329318, "propertyFields": [ { "propertyName": "FirstName", "propertyValue": "Ann" } ] });
        let contact = to_contact(&camel, None).expect("maps");
        assert_eq!(contact.native_id, "1329318");
        assert_eq!(contact.name.first.as_deref(), Some("Ann"));
        assert!(to_contact(&json!({ "email": "a@b.io" }), None).is_err());
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
            Err(ProviderError::Rejected {
                status: 404,
                message,
                ..
            }) => assert!(message.contains("created contact"), "{message}"),
            other => panic!("expected a 404, got {other:?}"),
        }
        control.reset_requests();
        assert!(matches!(
            adapter.update("not-a-number", &patch).await,
            Err(ProviderError::Rejected { status: 404, .. })
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

    #[test]
    fn an_invalid_property_that_names_nothing_sent_strips_them_all() {
        let mut body = Map::new();
        body.insert(
            "propertyFields".into(),
            json!([
                property("firstname", json!("Ann")),
                property("city", json!("Oslo"))
            ]),
        );
        let mut named = body.clone();
        strip_invalid(&mut named, &[json!("City")]);
        assert_eq!(
            named["propertyFields"],
            json!([property("firstname", json!("Ann"))])
        );
        strip_invalid(&mut body, &[json!({ "propertyId": "p9" })]);
        assert!(body.get("propertyFields").is_none());
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
}
