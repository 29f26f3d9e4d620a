//! Mainbrainer's record ↔ the unified contact: `to_contact` reads a record as the upsert
//! writes it, `new_body` writes a create or an upsert and `update_body` a patch by
//! `contactId`, `strip_invalid` drops from a sent body what Mainbrainer did not store.

use super::wire::{ContactRecord, InvalidProperty, Property, UpsertBody};
use crate::contact::{
    non_empty, primary, Consent, Contact, Email, Group, PersonName, Phone, ProviderId,
};
use crate::phone;
use crate::providers::ProviderError;
use crate::write::{ContactPatch, NewContact, Patch};
use phonenumber::country::Id as Region;
use serde_json::Value;

/// Property names of the unified fields (mainbrainer.txt's example).
const FIRST_NAME: &str = "firstname";
const LAST_NAME: &str = "lastname";
const COMPANY: &str = "company";

const PROVIDER: ProviderId = ProviderId::Mainbrainer;

/// Maps one Mainbrainer contact record (the upsert body's fields, and `contactId`/`ContactId`)
/// to the unified contact.
pub fn to_contact(raw: Value, region: Option<Region>) -> Result<Contact, ProviderError> {
    let record = ContactRecord::read(&raw).unwrap_or_default();
    // mainbrainer.txt: `ContactId` is a string in responses, an integer in requests.
    let id = record
        .contact_id
        .ok_or_else(|| ProviderError::unparseable(PROVIDER, "contact without an id"))?;
    let mut contact = Contact::new(PROVIDER, id, raw);

    if let Some(address) = record.email {
        contact.emails.push(Email::only(address));
    }
    // mainbrainer.txt: the mobile is a dialing code (int32) and a national number (int64).
    if let Some(national) = record.mobile_number {
        let number = match &record.mobile_country_code {
            Some(cc) => format!("+{}{}", phone::digits(cc), phone::digits(&national)),
            None => national,
        };
        contact.phones.push(Phone {
            kind: Some("mobile".into()),
            ..Phone::only(number, region)
        });
    }
    let (email_opt_in, sms_opt_in) = (record.email_opt_in, record.mobile_opt_in);
    if email_opt_in.is_some() || sms_opt_in.is_some() {
        contact.consent = Some(Consent {
            email_opt_in,
            sms_opt_in,
            do_not_contact: None,
        });
    }
    for list in record.list_id.into_iter().chain(record.list_ids) {
        if !contact.groups.iter().any(|g| g.id == list) {
            contact.groups.push(Group {
                id: list,
                name: None,
                kind: "list".into(),
            });
        }
    }

    // Named properties: first/last name and company are unified fields, the rest custom fields.
    // A property given only by id stays in `raw`: its name is unknown.
    let (mut first, mut last) = (None, None);
    for property in record.property_fields {
        let Some(name) = property.0.property_name else {
            continue;
        };
        let value = property.0.property_value;
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

/// The upsert body of a create or an upsert: `listId` (the input's group, else the
/// configured list, else none), email and mobile together, both opt-ins explicit (from the
/// input, else `false`: no consent is never assumed; Decision 5), `propertyFields`.
pub fn new_body(input: &NewContact, list_id: Option<&String>) -> Result<UpsertBody, ProviderError> {
    let (mobile_country_code, mobile_number) = match input.primary_phone() {
        Some(phone) => {
            let (code, number) = mobile(phone)?;
            (Some(code), Some(number))
        }
        None => (None, None),
    };
    let mut properties = Vec::new();
    let mut put = |name: &str, value: Option<&String>| {
        if let Some(value) = non_empty(value.map(String::as_str)) {
            properties.push(property(name, Some(value)));
        }
    };
    put(FIRST_NAME, input.first_name.as_ref());
    put(LAST_NAME, input.last_name.as_ref());
    put(COMPANY, input.company.as_ref());
    for (name, value) in &input.custom_fields {
        if !value.is_null() {
            properties.push(custom_property(name, value)?);
        }
    }
    Ok(UpsertBody {
        list_id: input.group_ids.first().or(list_id).cloned(),
        email: input.primary_email().map(|e| e.address.clone()),
        mobile_country_code,
        mobile_number,
        mobile_opt_in: Some(input.sms_opt_in.unwrap_or(false)),
        email_opt_in: Some(input.email_opt_in.unwrap_or(false)),
        property_fields: properties,
        ..UpsertBody::default()
    })
}

/// The upsert body of an update by `contactId` (an integer) with only the changed fields and
/// only the opt-ins given. Cleared name, company or custom fields are sent as `propertyValue:
/// null`; a cleared opt-in is not sent (the field is `bool|null`; the gateway refuses clearing
/// one). An email, a mobile, a list or all custom fields cannot be cleared: `null` reads as
/// "omitted", and no removal is documented, so those are `Unsupported`.
pub fn update_body(contact_id: i64, patch: &ContactPatch) -> Result<UpsertBody, ProviderError> {
    let unsupported = |operation| {
        Err(ProviderError::Unsupported {
            provider: PROVIDER,
            operation,
        })
    };
    let mut body = UpsertBody {
        contact_id: Some(contact_id),
        ..UpsertBody::default()
    };
    match &patch.group_ids {
        Patch::Keep => {}
        Patch::Set(ids) if !ids.is_empty() => body.list_id = Some(ids[0].clone()),
        _ => return unsupported("removing a contact from its list"),
    }
    if let Some(change) = patch.emails.change() {
        match change.and_then(|list| primary(list, |e| e.primary)) {
            Some(email) => body.email = Some(email.address.clone()),
            None => return unsupported("clearing the email"),
        }
    }
    if let Some(change) = patch.phones.change() {
        let Some(phone) = change.and_then(|list| primary(list, |p| p.primary)) else {
            return unsupported("clearing the mobile");
        };
        let (code, number) = mobile(phone)?;
        body.mobile_country_code = Some(code);
        body.mobile_number = Some(number);
    }
    body.mobile_opt_in = opt_in(&patch.sms_opt_in);
    body.email_opt_in = opt_in(&patch.email_opt_in);
    for (name, change) in [
        (FIRST_NAME, &patch.first_name),
        (LAST_NAME, &patch.last_name),
        (COMPANY, &patch.company),
    ] {
        if let Some(value) = change.change() {
            let value = non_empty(value.map(String::as_str));
            body.property_fields.push(property(name, value));
        }
    }
    match &patch.custom_fields {
        Patch::Keep => {}
        Patch::Clear => return unsupported("clearing all custom fields"),
        Patch::Set(changes) => {
            for (name, value) in changes {
                body.property_fields.push(custom_property(name, value)?);
            }
        }
    }
    Ok(body)
}

/// `mobileCountryCode` and `mobileNumber` (JSON integers) from an E.164 phone, split with
/// libphonenumber (NOTES 5.7.3). A national number with a leading zero (Italy) cannot be
/// held as an integer: refused rather than stored wrong.
pub fn mobile(phone: &Phone) -> Result<(u16, u64), ProviderError> {
    let text = phone.best();
    let parsed = phonenumber::parse(None, text).map_err(|_| {
        ProviderError::rejected(
            PROVIDER,
            422,
            format!("`{text}` cannot be split into mobileCountryCode and mobileNumber"),
        )
    })?;
    if parsed.national().zeros() > 0 {
        return Err(ProviderError::rejected(
            PROVIDER,
            422,
            format!(
                "`{text}` has a national number with a leading zero, which Mainbrainer's \
                 integer mobileNumber cannot hold"
            ),
        ));
    }
    Ok((parsed.code().value(), parsed.national().value()))
}

/// A custom field as a property, its value as a string (a `null` value clears it). A name
/// that is one of the unified fields' properties is refused: it would overwrite them.
fn custom_property(name: &str, value: &Value) -> Result<Property, ProviderError> {
    if [FIRST_NAME, LAST_NAME, COMPANY]
        .iter()
        .any(|p| p.eq_ignore_ascii_case(name.trim()))
    {
        return Err(ProviderError::rejected(
            PROVIDER,
            422,
            format!(
                "custom field `{name}` is the property of a named field; set that field instead"
            ),
        ));
    }
    let value = match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    };
    Ok(property(name, value))
}

fn property(name: &str, value: Option<String>) -> Property {
    Property {
        property_name: name.to_string(),
        property_value: value,
    }
}

/// An opt-in change as sent: only a given value. The field is `bool|null`, so a cleared
/// opt-in is not sent as `""`; the gateway refuses clearing an opt-in before any call.
fn opt_in(patch: &Patch<bool>) -> Option<bool> {
    match patch {
        Patch::Set(b) => Some(*b),
        Patch::Keep | Patch::Clear => None,
    }
}

/// Removes from `body.propertyFields` the properties Mainbrainer reported invalid, matched by
/// name. An entry naming no property sent cannot be placed: every property is removed then,
/// so the gateway warns about all of them rather than claim one stored that was not.
pub fn strip_invalid(body: &mut UpsertBody, invalid: &[InvalidProperty]) {
    let name_of = |p: &Property| p.property_name.trim().to_lowercase();
    let sent: Vec<String> = body.property_fields.iter().map(name_of).collect();
    let names: Vec<Option<String>> = invalid.iter().map(InvalidProperty::name).collect();
    if names
        .iter()
        .any(|name| name.as_ref().is_none_or(|n| !sent.contains(n)))
    {
        body.property_fields.clear();
    } else {
        body.property_fields
            .retain(|p| !names.contains(&Some(name_of(p))));
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::documented;
    use super::*;
    use serde_json::json;

    #[test]
    fn maps_the_documented_upsert_record() {
        let contact = to_contact(documented(), phone::parse_region("US")).expect("maps");
        insta::with_settings!({ sort_maps => true }, {
            insta::assert_json_snapshot!(contact);
        });
    }

    #[test]
    fn opt_ins_become_consent_and_the_mobile_e164() {
        let contact = to_contact(documented(), None).expect("maps");
        let consent = contact.consent.expect("consent");
        assert_eq!(consent.email_opt_in, Some(true));
        assert_eq!(consent.sms_opt_in, Some(true));
        assert_eq!(consent.do_not_contact, None);
        assert_eq!(contact.phones[0].e164.as_deref(), Some("+4790812501"));
        let quiet = json!({ "contactId": "1", "emailOptIn": null });
        assert_eq!(to_contact(quiet.clone(), None).expect("maps").consent, None);
    }

    #[test]
    fn the_documented_response_id_reads_in_either_casing() {
        // mainbrainer.txt's response (its trailing comma removed: the sample is not valid JSON).
        let response = json!({
            "status": "Success",
            "message": "Contact added/updated successfully",
            "data": { "ContactId": "1329318", "InvalidProperties": [], "InvalidContactIds": [] }
        });
        let contact = to_contact(response["data"].clone(), None).expect("maps");
        assert_eq!(contact.native_id, "1329318");
        let camel = json!({ "contactId": 1329318, "propertyFields": [ { "propertyName": "FirstName", "propertyValue": "Ann" } ] });
        let contact = to_contact(camel.clone(), None).expect("maps");
        assert_eq!(contact.native_id, "1329318");
        assert_eq!(contact.name.first.as_deref(), Some("Ann"));
        assert!(to_contact(json!({ "email": "a@b.io" }), None).is_err());
    }

    #[test]
    fn odd_properties_are_skipped_and_a_record_is_an_object() {
        let raw = json!({
            "CONTACTID": 5, "propertyFields": [3, { "propertyId": "p1", "propertyValue": "x" },
                { "PROPERTYNAME": "Tier", "propertyvalue": 2 }]
        });
        let contact = to_contact(raw.clone(), None).expect("maps");
        assert_eq!(contact.native_id, "5");
        assert_eq!(contact.custom_fields.get("Tier"), Some(&json!("2")));
        assert_eq!(
            contact.custom_fields.len(),
            1,
            "the id-only property stays in raw"
        );
        assert!(to_contact(json!(["5"]), None).is_err());
    }

    #[test]
    fn an_invalid_property_that_names_nothing_sent_strips_them_all() {
        let mut body = UpsertBody {
            property_fields: vec![
                property("firstname", Some("Ann".into())),
                property("city", Some("Oslo".into())),
            ],
            ..Default::default()
        };
        let mut named = body.clone();
        strip_invalid(&mut named, &[InvalidProperty::Name("City".into())]);
        assert_eq!(
            named.property_fields,
            [property("firstname", Some("Ann".into()))]
        );
        let unnamed: InvalidProperty =
            serde_json::from_value(json!({ "propertyId": "p9" })).unwrap();
        strip_invalid(&mut body, &[unnamed]);
        assert!(body.property_fields.is_empty());
        assert!(serde_json::to_value(&body)
            .unwrap()
            .get("propertyFields")
            .is_none());
    }
}
