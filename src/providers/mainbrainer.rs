//! Mainbrainer CRM (mainbrainer.txt): write-only. The document has an upsert endpoint and no read
//! endpoint, so get, list and search answer `UNSUPPORTED_BY_PROVIDER` (NOTES.md Decision 5).
//! `to_contact` reads the upsert record shape (what the gateway sent, plus the returned id).

use super::http::UpstreamClient;
use super::{Capabilities, Provider, ProviderError};
use crate::contact::{
    non_empty, string_or_number, Consent, Contact, Email, Group, PersonName, Phone, ProviderId,
};
use crate::phone;
use phonenumber::country::Id as Region;
use serde_json::{Map, Value};

pub struct Mainbrainer {
    client: UpstreamClient,
    #[allow(dead_code)]
    list_id: Option<String>,
}

impl Mainbrainer {
    pub fn new(client: UpstreamClient, list_id: Option<String>) -> Self {
        Mainbrainer { client, list_id }
    }
}

#[async_trait::async_trait]
impl Provider for Mainbrainer {
    fn id(&self) -> ProviderId {
        self.client.provider()
    }

    /// Nothing is implemented yet; reads never will be (no read endpoint is documented).
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            holds_email: true,
            ..Default::default()
        }
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
        assert!(caps.listed().is_empty(), "no capability is listed");
        assert!(caps.holds_email && !caps.holds_tags);
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
}
