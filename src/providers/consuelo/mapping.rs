//! Consuelo's record ↔ the unified contact: `to_contact` reads a record, `create_body` and
//! `patch_body` write the unified input as the documented bodies.

use super::wire::{ContactRecord, CreateBody, PatchBody};
use crate::contact::{non_empty, primary, Contact, Email, Group, PersonName, Phone, ProviderId};
use crate::providers::{wire, ProviderError};
use crate::write::{ContactPatch, NewContact, Patch};
use phonenumber::country::Id as Region;
use serde_json::Value;

/// Maps one Consuelo contact (consuelo.txt's list item), as received, to the unified contact.
pub fn to_contact(raw: Value, region: Option<Region>) -> Result<Contact, ProviderError> {
    let record: ContactRecord = wire::from_object(&raw).unwrap_or_default();
    let id = record
        .id
        .ok_or_else(|| ProviderError::unparseable(ProviderId::Consuelo, "contact without an id"))?;
    let mut contact = Contact::new(ProviderId::Consuelo, id, raw);
    contact.name = PersonName::from_parts(
        record.first_name.as_deref(),
        None,
        record.last_name.as_deref(),
    );
    if contact.name.is_empty() {
        contact.name = PersonName::from_full(record.name.as_deref());
    }
    if let Some(address) = record.email {
        contact.emails.push(Email::only(address));
    }
    if let Some(number) = record.phone {
        contact.phones.push(Phone::only(number, region));
    }
    contact.company = record.company;
    contact.notes = record.notes;
    if let Some(workspace) = record.workspace_id {
        contact.groups.push(workspace_group(workspace));
    }
    contact.custom_fields = record.custom_fields.unwrap_or_default();
    contact.created_at = record.created_at;
    contact.updated_at = record.updated_at;
    Ok(contact)
}

/// The workspace a contact belongs to, as its group.
pub fn workspace_group(id: String) -> Group {
    Group {
        id,
        name: None,
        kind: "workspace".into(),
    }
}

/// The create body: `workspaceId` and the given fields. `notes` is documented only on PATCH
/// (consuelo.txt), so it is not part of it.
pub fn create_body(input: &NewContact, workspace_id: Option<String>) -> CreateBody {
    CreateBody {
        workspace_id,
        first_name: non_empty(input.first_name.as_deref()),
        last_name: non_empty(input.last_name.as_deref()),
        phone: input.primary_phone().map(|p| p.best().to_string()),
        email: input.primary_email().map(|e| e.address.clone()),
        company: non_empty(input.company.as_deref()),
    }
}

/// The PATCH body: only the changed fields; a cleared one (or a blank text, or an empty list)
/// is sent as `null`. Consuelo holds one email and one phone: the primary one (else the first)
/// of a list is sent.
pub fn patch_body(patch: &ContactPatch) -> PatchBody {
    PatchBody {
        first_name: text_change(&patch.first_name),
        last_name: text_change(&patch.last_name),
        company: text_change(&patch.company),
        notes: text_change(&patch.notes),
        email: first_change(&patch.emails, |emails| {
            primary(emails, |e| e.primary).map(|e| e.address.clone())
        }),
        phone: first_change(&patch.phones, |phones| {
            primary(phones, |p| p.primary).map(|p| p.best().to_string())
        }),
    }
}

/// A text patch as the value to send: `None` keeps, `Some(None)` clears (blank clears too).
fn text_change(patch: &Patch<String>) -> Option<Option<String>> {
    patch.change().map(|v| v.and_then(|s| non_empty(Some(s))))
}

/// A list patch reduced to the one value Consuelo holds; an empty list clears.
fn first_change<T>(
    patch: &Patch<Vec<T>>,
    pick: impl Fn(&[T]) -> Option<String>,
) -> Option<Option<String>> {
    patch.change().map(|v| v.and_then(|items| pick(items)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phone;
    use serde_json::json;

    /// consuelo.txt, "List Contacts" response, its one item.
    fn john() -> Value {
        json!({
            "id": "contact_123",
            "firstName": "John",
            "lastName": "Smith",
            "phone": "+14155551234",
            "email": "john@example.com",
            "company": "Acme Inc",
            "createdAt": "2024-01-15T10:30:00Z",
            "updatedAt": "2024-01-15T10:30:00Z"
        })
    }

    #[test]
    fn maps_the_documented_list_item() {
        let contact = to_contact(john(), phone::parse_region("US")).expect("maps");
        insta::with_settings!({ sort_maps => true }, {
            insta::assert_json_snapshot!(contact);
        });
    }

    #[test]
    fn nulls_and_missing_fields_are_tolerated_and_an_id_is_required() {
        let raw = json!({ "id": "contact_1", "firstName": null, "email": "", "phone": null, "extra": [1] });
        let contact = to_contact(raw.clone(), None).expect("maps");
        assert!(contact.name.is_empty() && contact.emails.is_empty() && contact.phones.is_empty());
        assert_eq!(contact.consent, None, "Consuelo's DNC cannot be read back");
        assert!(to_contact(json!({ "firstName": "x" }), None).is_err());
    }

    #[test]
    fn a_name_string_custom_fields_and_a_workspace_are_read_when_present() {
        let raw = json!({
            "id": "contact_1", "name": "Ada King Lovelace", "workspaceId": "ws_1",
            "customFields": { "tier": "gold" }, "notes": " n1 "
        });
        let contact = to_contact(raw.clone(), None).expect("maps");
        assert_eq!(contact.name.middle.as_deref(), Some("King"));
        assert_eq!(contact.groups, [workspace_group("ws_1".into())]);
        assert_eq!(contact.custom_fields.get("tier"), Some(&json!("gold")));
        assert_eq!(contact.notes.as_deref(), Some("n1"));
        assert_eq!(contact.raw, raw, "raw is the record as received");
    }
}
