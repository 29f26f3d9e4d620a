//! MaiAgent wire ↔ unified: a record to a `Contact`, and the unified write input to the body
//! of a create or a partial update.

use super::wire::{ContactRecord, ContactWrite, InboxRef, CREDENTIAL_FIELDS};
use crate::contact::{primary, Contact, Email, Group, PersonName, Phone, ProviderId};
use crate::providers::{wire, ProviderError};
use crate::write::{ContactPatch, NewContact, Patch};
use phonenumber::country::Id as Region;
use serde_json::Value;

/// Maps one MaiAgent contact (maiagent.txt's response model) to the unified contact. `raw` is
/// the record as received minus `CREDENTIAL_FIELDS`; `avatar`, `sourceId` and `queryMetadata`
/// stay there only. A record without an id (or not an object) is unparseable.
pub fn to_contact(raw: Value, region: Option<Region>) -> Result<Contact, ProviderError> {
    let record: ContactRecord = wire::from_object(&raw).unwrap_or_default();
    let id = record
        .id
        .ok_or_else(|| ProviderError::unparseable(ProviderId::Maiagent, "contact without an id"))?;
    let mut contact = Contact::new(ProviderId::Maiagent, id, without_credentials(raw));
    contact.name = PersonName::from_full(record.name.as_deref());
    if let Some(address) = record.email {
        contact.emails.push(Email::only(address));
    }
    // maiagent.txt: phoneNumber arrives as an integer; read its digits in the default region.
    if let Some(number) = record.phone_number {
        contact.phones.push(Phone::only(number, region));
    }
    // maiagent.txt: `inbox` is the legacy single inbox, ignored when `inboxes` is present.
    let inboxes = match record.inboxes {
        Some(inboxes) => inboxes,
        None => record.inbox.into_iter().collect(),
    };
    contact.groups = inboxes
        .into_iter()
        .filter_map(|inbox| {
            Some(Group {
                id: inbox.id?,
                name: inbox.name,
                kind: "inbox".into(),
            })
        })
        .collect();
    contact.created_at = record.created_at;
    contact.updated_at = record.updated_at;
    Ok(contact)
}

/// The record without the fields that carry credentials (Decision 6).
fn without_credentials(mut raw: Value) -> Value {
    if let Value::Object(fields) = &mut raw {
        for key in CREDENTIAL_FIELDS {
            fields.remove(*key);
        }
    }
    raw
}

/// `POST /api/contacts/ {name, phoneNumber, email, inboxes: [{id}]}`: the given keys only.
pub fn create_body(input: &NewContact) -> ContactWrite {
    ContactWrite {
        name: input.full_name(),
        phone_number: input.primary_phone().map(|p| p.best().to_string()),
        email: input.primary_email().map(|e| e.address.clone()),
        inboxes: (!input.group_ids.is_empty()).then(|| inbox_refs(&input.group_ids)),
    }
}

/// `PATCH /api/contacts/{id}/` with the keys the patch changes. `name` is the whole name
/// after the patch, when it changes (the caller reads the current one first if needed). A
/// cleared phone or email is sent as `""` (NOTES 4.5.6), cleared inboxes as `[]`.
pub fn patch_body(patch: &ContactPatch, name: Option<String>) -> ContactWrite {
    let email = patch.emails.change().map(|emails| {
        emails
            .and_then(|list| primary(list, |e| e.primary))
            .map(|e| e.address.clone())
            .unwrap_or_default()
    });
    let phone_number = patch.phones.change().map(|phones| {
        phones
            .and_then(|list| primary(list, |p| p.primary))
            .map(|p| p.best().to_string())
            .unwrap_or_default()
    });
    let inboxes = match &patch.group_ids {
        Patch::Keep => None,
        Patch::Clear => Some(Vec::new()),
        Patch::Set(ids) => Some(inbox_refs(ids)),
    };
    ContactWrite {
        name,
        phone_number,
        email,
        inboxes,
    }
}

/// maiagent.txt: `inboxes: [{id}]`.
fn inbox_refs(ids: &[String]) -> Vec<InboxRef> {
    ids.iter().map(|id| InboxRef { id: id.clone() }).collect()
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::wire::ContactList;
    use super::*;
    use crate::phone;
    use crate::providers::testing;
    use serde::Deserialize;
    use serde_json::json;

    fn tw() -> Option<Region> {
        phone::parse_region("TW")
    }

    /// maiagent.txt, "List Contacts" response example, nested `results` and all.
    pub(in crate::providers::maiagent) fn listing() -> Value {
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
    pub(in crate::providers::maiagent) fn detail() -> Value {
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

    fn records(body: Value) -> Vec<Value> {
        ContactList::deserialize(&body).expect("a listing").records
    }

    #[test]
    fn maps_the_documented_contact() {
        let contact = to_contact(detail(), tw()).expect("maps");
        insta::with_settings!({ sort_maps => true }, {
            insta::assert_json_snapshot!(contact);
        });
    }

    #[test]
    fn maps_the_documented_listing() {
        let records = records(listing());
        let contacts = records
            .iter()
            .map(|r| to_contact(r.clone(), tw()))
            .collect::<Result<Vec<_>, _>>()
            .expect("maps");
        insta::with_settings!({ sort_maps => true }, {
            insta::assert_json_snapshot!(contacts);
        });
    }

    #[test]
    fn an_integer_phone_becomes_e164_in_the_default_region() {
        let contact = to_contact(detail(), tw()).expect("maps");
        assert_eq!(contact.phones[0].number, "912345678");
        assert_eq!(contact.phones[0].e164.as_deref(), Some("+886912345678"));
        let raw = json!({ "id": "x", "phoneNumber": "+886912345678" });
        let contact = to_contact(raw.clone(), phone::parse_region("US")).expect("maps");
        assert_eq!(contact.phones[0].e164.as_deref(), Some("+886912345678"));
    }

    #[test]
    fn epoch_millisecond_strings_are_timestamps() {
        let contact = to_contact(detail(), tw()).expect("maps");
        let created = contact.created_at.expect("createdAt");
        assert_eq!(created.timestamp_millis(), 1_751_875_361_000);
    }

    #[test]
    fn inbox_is_read_when_inboxes_is_absent() {
        let raw = json!({ "id": "x", "inbox": { "id": "in_1", "name": "Web" } });
        let contact = to_contact(raw.clone(), tw()).expect("maps");
        assert_eq!(contact.groups.len(), 1);
        assert_eq!(contact.groups[0].id, "in_1");
        assert_eq!(contact.groups[0].kind, "inbox");
        let both = json!({ "id": "x", "inbox": { "id": "old" }, "inboxes": [ { "id": "new" } ] });
        let contact = to_contact(both.clone(), tw()).expect("maps");
        let ids: Vec<_> = contact.groups.iter().map(|g| g.id.as_str()).collect();
        assert_eq!(ids, ["new"]);
    }

    #[test]
    fn source_id_and_query_metadata_stay_in_raw() {
        let records = records(listing());
        let contact = to_contact(records[1].clone(), tw()).expect("maps");
        assert!(contact.custom_fields.is_empty());
        assert_eq!(contact.raw["sourceId"], json!("self defined source id"));
        assert!(to_contact(json!({ "name": "no id" }), tw()).is_err());
        assert!(to_contact(json!(["user1_uuid"]), tw()).is_err());
    }

    #[test]
    fn mcp_credentials_never_reach_raw() {
        let mut record = detail();
        record["mcpCredentials"] = json!("mcp-secret-token");
        let contact = to_contact(record.clone(), tw()).expect("maps");
        assert!(
            contact.raw.get("mcpCredentials").is_none(),
            "{}",
            contact.raw
        );
        assert_eq!(contact.raw, detail(), "the rest of the record as received");
    }

    #[test]
    fn a_create_sends_the_given_keys_and_the_phone_as_an_e164_string() {
        let input = NewContact {
            first_name: Some("Mei".into()),
            middle_name: Some("Ling".into()),
            last_name: Some("Chen".into()),
            emails: vec![testing::primary_email("mei@example.tw")],
            phones: vec![testing::primary_phone("+886912000111")],
            group_ids: vec!["in_1".into()],
            ..Default::default()
        };
        assert_eq!(
            json!(create_body(&input)),
            json!({ "name": "Mei Ling Chen", "phoneNumber": "+886912000111",
                    "email": "mei@example.tw", "inboxes": [ { "id": "in_1" } ] })
        );
        let bare = NewContact {
            first_name: Some("Ann".into()),
            ..Default::default()
        };
        assert_eq!(json!(create_body(&bare)), json!({ "name": "Ann" }));
    }

    #[test]
    fn a_patch_sends_what_changes_and_clears_with_empty_values() {
        assert!(patch_body(&ContactPatch::default(), None).is_empty());
        let patch = ContactPatch {
            emails: Patch::Clear,
            phones: Patch::Set(vec![testing::primary_phone("+886911222333")]),
            group_ids: Patch::Clear,
            ..Default::default()
        };
        assert_eq!(
            json!(patch_body(&patch, Some("Dan Lin".into()))),
            json!({ "name": "Dan Lin", "phoneNumber": "+886911222333", "email": "", "inboxes": [] })
        );
    }
}
