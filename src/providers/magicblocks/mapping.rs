//! MagicBlocks' record ↔ the unified contact: `to_contact` reads a record, `create_body` writes
//! a new contact, `update_body` merges a patch onto the record as read.

use super::wire::{
    Channel, ContactRecord, CreateBody, EmailBody, Name, NameBody, PhoneBody, StoredContact,
    UpdateBody, READ_ONLY, SIDE_EFFECTS,
};
use crate::contact::{
    non_empty, primary_index, string_or_number, Contact, Email, PersonName, Phone, ProviderId,
};
use crate::phone;
use crate::providers::{wire, ProviderError};
use crate::write::{merge_custom_fields, ContactPatch, NewContact, Patch};
use phonenumber::country::Id as Region;
use serde::Deserialize;
use serde_json::Value;

/// Maps one MagicBlocks contact (the document's response model), as received, to the unified
/// contact.
pub fn to_contact(raw: Value, region: Option<Region>) -> Result<Contact, ProviderError> {
    let record: ContactRecord = wire::from_object(&raw).unwrap_or_default();
    let id = record.id.ok_or_else(|| {
        ProviderError::unparseable(ProviderId::Magicblocks, "contact without an id")
    })?;
    let mut contact = Contact::new(ProviderId::Magicblocks, id, raw);
    // magicblocks.txt: `generatedName` sits beside `name`; show `name`, else the generated one.
    contact.name = record
        .name
        .map(person_name)
        .filter(|n| !n.is_empty())
        .or_else(|| record.generated_name.map(person_name))
        .unwrap_or_default();
    contact.emails = entries(record.emails, record.primary_email, |item| item.address)
        .into_iter()
        .map(|e| Email {
            address: e.value,
            kind: e.kind,
            primary: e.primary,
        })
        .collect();
    contact.phones = entries(record.phones, record.primary_phone, |item| item.number)
        .into_iter()
        .map(|p| Phone {
            e164: phone::to_e164(&p.value, region),
            number: p.value,
            kind: p.kind,
            primary: p.primary,
        })
        .collect();
    // magicblocks.txt: the request writes `custom`, the response reads `customFields`.
    contact.custom_fields = record.custom_fields.or(record.custom).unwrap_or_default();
    contact.company = contact
        .custom_fields
        .get("company")
        .and_then(string_or_number);
    contact.is_test = record.is_test;
    // magicblocks.txt: `firstSeen` and `modifiedAt` are epoch seconds.
    contact.created_at = record.first_seen;
    contact.updated_at = record.modified_at;
    Ok(contact)
}

fn person_name(name: Name) -> PersonName {
    match name {
        Name::Parts(parts) => PersonName::from_parts(
            parts.first.as_deref(),
            parts.middle.as_deref(),
            parts.last.as_deref(),
        ),
        Name::Full(full) => PersonName::from_full(Some(&full)),
    }
}

/// One item of `emails[]` or `phones[]`.
struct Entry {
    value: String,
    kind: Option<String>,
    primary: bool,
}

/// The items of a list, exactly one of them primary: the one `named` (`primaryEmail` /
/// `primaryPhone`) names, else the first with `primary: true`, else the first (NOTES.md 1.6.8).
/// `value` picks an item object's address or number.
fn entries(
    list: Vec<Channel>,
    named: Option<Channel>,
    value: impl Fn(super::wire::ChannelItem) -> Option<String>,
) -> Vec<Entry> {
    let read = |channel: Channel| -> Option<Entry> {
        match channel {
            Channel::Bare(s) => non_empty(Some(&s)).map(|value| Entry {
                value,
                kind: None,
                primary: false,
            }),
            Channel::Item(item) => {
                let (kind, primary) = (item.kind.clone(), item.primary.unwrap_or(false));
                Some(Entry {
                    value: value(item)?,
                    kind,
                    primary,
                })
            }
        }
    };
    let mut items: Vec<Entry> = list.into_iter().filter_map(read).collect();
    let chosen = match named.and_then(read) {
        Some(named) => match items
            .iter()
            .position(|e| e.value.eq_ignore_ascii_case(&named.value))
        {
            Some(i) => Some(i),
            None => {
                items.insert(0, named);
                Some(0)
            }
        },
        None => primary_index(&items, |e| e.primary),
    };
    for (i, item) in items.iter_mut().enumerate() {
        item.primary = Some(i) == chosen;
    }
    items
}

/// The nested create body (magicblocks.txt "Sample Request"), with only what was given. The
/// company is stored as `custom.company`; custom fields with a `null` value are left out.
pub fn create_body(input: &NewContact) -> CreateBody {
    let name = NameBody {
        first: non_empty(input.first_name.as_deref()),
        middle: non_empty(input.middle_name.as_deref()),
        last: non_empty(input.last_name.as_deref()),
    };
    let given_name = name.first.is_some() || name.middle.is_some() || name.last.is_some();
    let mut custom = input.custom_fields.clone();
    custom.retain(|_, v| !v.is_null());
    if let Some(company) = &input.company {
        custom.insert("company".into(), Value::String(company.clone()));
    }
    CreateBody {
        name: given_name.then_some(name),
        emails: (!input.emails.is_empty()).then(|| emails_body(&input.emails)),
        phones: (!input.phones.is_empty()).then(|| phones_body(&input.phones)),
        custom: (!custom.is_empty()).then_some(custom),
        is_test: input.is_test,
    }
}

/// The PUT body: the record as read, without its read-only fields and its side-effect flags,
/// `customFields` written back as `custom`, and the patch applied. Every other field the record
/// carries (`userKnowledge`, `isTest`, fields this adapter does not know) is sent back
/// unchanged, so the update is right whether PUT replaces or merges (Decision 1, Decision 6).
/// `sendMessageEvents` and `flowEditor*` may start agent workflows (NOTES 1.6.5): like the
/// create, the update never sends them.
pub fn update_body(stored: StoredContact, patch: &ContactPatch) -> UpdateBody {
    let mut kept = stored.other;
    kept.retain(|k, _| !READ_ONLY.contains(&k.as_str()) && !SIDE_EFFECTS.contains(&k.as_str()));

    let name = patch.changes_name().then(|| {
        let current = kept
            .remove("name")
            .and_then(|v| Name::deserialize(v).ok())
            .map(person_name)
            .unwrap_or_default();
        // Every part is sent: an absent or cleared one as "".
        let part = |patch: &Patch<String>, current: Option<String>| {
            Some(patch.apply(current).unwrap_or_default())
        };
        NameBody {
            first: part(&patch.first_name, current.first),
            middle: part(&patch.middle_name, current.middle),
            last: part(&patch.last_name, current.last),
        }
    });
    // Lists are replaced whole (NOTES 1.6.4).
    let emails = patch.emails.change().map(|emails| {
        kept.remove("emails");
        emails.map(|e| emails_body(e)).unwrap_or_default()
    });
    let phones = patch.phones.change().map(|phones| {
        kept.remove("phones");
        phones.map(|p| phones_body(p)).unwrap_or_default()
    });

    let mut custom = stored.custom_fields.or(stored.custom).unwrap_or_default();
    let company = custom.get("company").cloned();
    merge_custom_fields(&mut custom, &patch.custom_fields);
    match &patch.company {
        // `company` is a unified field of its own: clearing the custom fields keeps it.
        Patch::Keep => {
            if let (Patch::Clear, Some(company)) = (&patch.custom_fields, company) {
                custom.insert("company".into(), company);
            }
        }
        Patch::Clear => {
            custom.remove("company");
        }
        Patch::Set(company) => {
            custom.insert("company".into(), Value::String(company.clone()));
        }
    }

    // A boolean cannot be absent upstream; cleared is the default, not a test contact.
    let is_test = patch.is_test.change().map(|t| t.copied().unwrap_or(false));
    if is_test.is_some() {
        kept.remove("isTest");
    }
    UpdateBody {
        kept,
        name,
        emails,
        phones,
        custom,
        is_test,
    }
}

/// `emails[{address, type, primary}]`, exactly one primary (the flagged one, else the first).
fn emails_body(emails: &[Email]) -> Vec<EmailBody> {
    let chosen = primary_index(emails, |e| e.primary);
    emails
        .iter()
        .enumerate()
        .map(|(i, e)| EmailBody {
            address: e.address.clone(),
            kind: non_empty(e.kind.as_deref()),
            primary: Some(i) == chosen,
        })
        .collect()
}

/// `phones[{number, type, primary}]` with the E.164 number (magicblocks.txt example
/// "+61412345678"), exactly one primary.
fn phones_body(phones: &[Phone]) -> Vec<PhoneBody> {
    let chosen = primary_index(phones, |p| p.primary);
    phones
        .iter()
        .enumerate()
        .map(|(i, p)| PhoneBody {
            number: p.best().to_string(),
            kind: non_empty(p.kind.as_deref()),
            primary: Some(i) == chosen,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::tests::{created, custom};
    use super::*;
    use serde_json::json;

    fn au() -> Option<Region> {
        phone::parse_region("AU")
    }

    /// magicblocks.txt, "Success response (200 OK)" of the update example.
    fn updated() -> Value {
        json!({
            "id": "con_01HRW1X9F5A9QZ7",
            "firstSeen": 1730253452,
            "modifiedAt": 1730256720,
            "lastSeen": 1730256720,
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
            "customFields": { "company": "MagicBlocks Pty Ltd", "plan": "Enterprise" },
            "link": "https://app.magicblocks.ai/contacts/con_01HRW1X9F5A9QZ7",
            "preview": false
        })
    }

    #[test]
    fn maps_the_documented_create_response() {
        let contact = to_contact(created(), au()).expect("maps");
        insta::with_settings!({ sort_maps => true }, {
            insta::assert_json_snapshot!(contact);
        });
    }

    #[test]
    fn maps_the_documented_update_response() {
        let contact = to_contact(updated(), au()).expect("maps");
        assert_eq!(contact.company.as_deref(), Some("MagicBlocks Pty Ltd"));
        insta::with_settings!({ sort_maps => true }, {
            insta::assert_json_snapshot!(contact);
        });
    }

    #[test]
    fn generated_name_stands_in_for_an_empty_name() {
        let raw = json!({
            "id": "con_1",
            "name": { "first": "", "middle": "", "last": "" },
            "generatedName": { "first": "Quiet", "middle": "", "last": "Otter" }
        });
        let contact = to_contact(raw.clone(), au()).expect("maps");
        assert_eq!(contact.name.full.as_deref(), Some("Quiet Otter"));
        assert_eq!(contact.name.first.as_deref(), Some("Quiet"));
        let raw = json!({ "id": "con_2", "generatedName": { "first": "Only" } });
        assert_eq!(
            to_contact(raw.clone(), au())
                .expect("maps")
                .name
                .full
                .as_deref(),
            Some("Only")
        );
    }

    #[test]
    fn custom_is_read_when_custom_fields_is_absent() {
        let raw = json!({ "id": "con_1", "custom": { "company": "Acme", "plan": "Pro" } });
        let contact = to_contact(raw.clone(), au()).expect("maps");
        assert_eq!(contact.company.as_deref(), Some("Acme"));
        assert_eq!(contact.custom_fields.get("plan"), Some(&json!("Pro")));
        // `customFields` wins when both arrive.
        let raw = json!({ "id": "con_1", "custom": { "plan": "Old" }, "customFields": { "plan": "New" } });
        let contact = to_contact(raw.clone(), au()).expect("maps");
        assert_eq!(contact.custom_fields.get("plan"), Some(&json!("New")));
        assert_eq!(contact.company, None);
    }

    #[test]
    fn primary_email_chooses_the_primary_else_the_flag_else_the_first() {
        let raw = json!({
            "id": "con_1",
            "emails": [
                { "address": "a@x.io", "primary": true },
                { "address": "b@x.io" }
            ],
            "primaryEmail": { "address": "B@x.io" }
        });
        let contact = to_contact(raw.clone(), au()).expect("maps");
        let primaries: Vec<_> = contact.emails.iter().map(|e| e.primary).collect();
        assert_eq!(primaries, [false, true]);
        let raw = json!({ "id": "c", "emails": [ { "address": "a@x.io" }, { "address": "b@x.io", "primary": true } ] });
        let contact = to_contact(raw.clone(), au()).expect("maps");
        assert_eq!(
            contact.primary_email().map(|e| e.address.as_str()),
            Some("b@x.io")
        );
        let raw = json!({ "id": "c", "emails": [ { "address": "a@x.io" }, { "address": "b@x.io" } ], "primaryEmail": null });
        let contact = to_contact(raw.clone(), au()).expect("maps");
        assert!(contact.emails[0].primary && !contact.emails[1].primary);
    }

    #[test]
    fn nulls_and_unknown_fields_are_tolerated_and_an_id_is_required() {
        let raw = json!({
            "id": "con_1", "name": null, "emails": null, "phones": [null, 3], "customFields": null,
            "isTest": true, "firstSeen": null, "somethingNew": { "x": 1 }
        });
        let contact = to_contact(raw.clone(), au()).expect("maps");
        assert!(contact.name.is_empty() && contact.emails.is_empty() && contact.phones.is_empty());
        assert_eq!(contact.is_test, Some(true));
        assert!(to_contact(json!({ "name": { "first": "x" } }), au()).is_err());
    }

    #[test]
    fn bare_strings_a_named_primary_and_a_one_string_name_are_read() {
        let raw = json!({
            "id": "con_1", "name": "Ada King Lovelace",
            "phones": ["+61412345678", { "number": 61400000000_u64, "type": "home" }],
            "primaryPhone": "+61499999999"
        });
        let contact = to_contact(raw.clone(), au()).expect("maps");
        assert_eq!(contact.name.middle.as_deref(), Some("King"));
        let numbers: Vec<_> = contact.phones.iter().map(|p| p.number.as_str()).collect();
        assert_eq!(numbers, ["+61499999999", "+61412345678", "61400000000"]);
        assert!(contact.phones[0].primary && !contact.phones[1].primary);
        assert_eq!(contact.phones[2].kind.as_deref(), Some("home"));
    }

    fn stored(value: Value) -> StoredContact {
        serde_json::from_value(value).expect("an object")
    }

    #[test]
    fn the_update_body_keeps_what_the_patch_does_not_name() {
        let mut record = created();
        record["sendMessageEvents"] = json!(true);
        let patch = ContactPatch {
            last_name: Patch::Set("Gregory".into()),
            custom_fields: Patch::Set(custom(json!({ "plan": "Pro", "timezone": null }))),
            ..Default::default()
        };
        let body = serde_json::to_value(update_body(stored(record.clone()), &patch)).unwrap();
        assert_eq!(
            body,
            json!({
                "name": { "first": "Johan", "middle": "", "last": "Gregory" },
                "emails": record["emails"],
                "phones": record["phones"],
                "isTest": false,
                "userKnowledge": record["userKnowledge"],
                "custom": {
                    "utm_source": "founder-referral",
                    "utm_campaign": "onboarding-internal",
                    "role": "Co-Founder",
                    "country": "Australia",
                    "plan": "Pro"
                }
            })
        );
    }

    #[test]
    fn the_update_body_replaces_what_the_patch_names() {
        let patch = ContactPatch {
            emails: Patch::Clear,
            phones: Patch::Set(vec![Phone {
                number: "0412 345 678".into(),
                e164: Some("+61412345678".into()),
                kind: None,
                primary: false,
            }]),
            is_test: Patch::Clear,
            company: Patch::Set("Acme".into()),
            ..Default::default()
        };
        let body = serde_json::to_value(update_body(stored(created()), &patch)).unwrap();
        assert_eq!(body["emails"], json!([]));
        assert_eq!(
            body["phones"],
            json!([{ "number": "+61412345678", "primary": true }])
        );
        assert_eq!(body["isTest"], json!(false));
        assert_eq!(body["custom"]["company"], "Acme");
        assert_eq!(body["name"], created()["name"], "sent back as read");
    }

    #[test]
    fn the_create_body_holds_only_what_was_given() {
        let body = serde_json::to_value(create_body(&NewContact::default())).unwrap();
        assert_eq!(body, json!({}));
        let input = NewContact {
            middle_name: Some(" ".into()),
            company: Some("Acme".into()),
            custom_fields: custom(json!({ "gone": null })),
            is_test: Some(false),
            ..Default::default()
        };
        let body = serde_json::to_value(create_body(&input)).unwrap();
        assert_eq!(
            body,
            json!({ "custom": { "company": "Acme" }, "isTest": false })
        );
    }
}
