//! Whautomate wire ↔ unified: a record to a `Contact`, a new contact to the create body, and
//! a patch merged onto the record as read into the replace (`PUT`) body.

use super::wire::{ContactBody, ContactRecord, Location, READ_ONLY};
use crate::contact::{json_or_encoded, primary, Contact, Group, PersonName, Phone, ProviderId};
use crate::providers::{wire, ProviderError};
use crate::write::{join_name, merge_custom_fields, ContactPatch, NewContact, Patch};
use phonenumber::country::Id as Region;
use serde_json::{Map, Value};

/// Maps one Whautomate contact (whautomate.txt's contact, plus the webhook's timestamps) to the
/// unified contact. `raw` is the record as received. A record without an id (or not an
/// object) is unparseable.
pub fn to_contact(raw: Value, region: Option<Region>) -> Result<Contact, ProviderError> {
    let record: ContactRecord = wire::from_object(&raw).unwrap_or_default();
    let id = record.id.ok_or_else(|| {
        ProviderError::unparseable(ProviderId::Whautomate, "contact without an id")
    })?;
    let mut contact = Contact::new(ProviderId::Whautomate, id, raw);
    contact.name = PersonName::from_full(record.name.as_deref());
    if let Some(number) = record.phone_number {
        contact.phones.push(Phone::only(number, region));
    }
    if let Some(Location {
        id: Some(id),
        title,
    }) = record.location
    {
        contact.groups.push(Group {
            id,
            name: title,
            kind: "location".into(),
        });
    }
    contact.stage = record.stage;
    contact.notes = record.notes;
    contact.tags = record.tags.unwrap_or_default();
    // whautomate webhooks send `customFields` as a JSON-encoded string.
    if let Some(Value::Object(custom)) = record.custom_fields {
        contact.custom_fields = custom;
    }
    contact.created_at = record.created_at;
    contact.updated_at = record.updated_at;
    Ok(contact)
}

/// The create body (whautomate.txt: `name` and `phoneNumber` required; `stage`, `notes`,
/// `customFields`, `tags`; `location{id}` from the example body: the input's group id, else
/// `location_id`, the configured one, NOTES 3.5.3). Never an `id`. A missing name or phone is
/// left to the provider's 400 (`requires_name`/`requires_phone` make the gateway refuse it
/// first).
pub fn create_body(input: &NewContact, location_id: Option<&String>) -> ContactBody {
    let mut custom = input.custom_fields.clone();
    custom.retain(|_, v| !v.is_null());
    ContactBody {
        name: input.full_name(),
        // E.164 ("with country code", NOTES 3.3).
        phone_number: input.primary_phone().map(|p| p.best().to_string()),
        location: input.group_ids.first().or(location_id).map(|id| Location {
            id: Some(id.clone()),
            title: None,
        }),
        stage: input.stage.clone(),
        notes: input.notes.clone(),
        custom_fields: (!custom.is_empty()).then_some(Value::Object(custom)),
        tags: (!input.tags.is_empty()).then(|| input.tags.clone()),
        other: Map::new(),
    }
}

const NEEDS_NAME: &str = "a Whautomate contact needs a name: it cannot be cleared";

/// The PUT body: the record as read (without the server-owned fields and nulls), `tags` and
/// `customFields` decoded from JSON-encoded strings to real JSON, and the patch applied. Every
/// field the patch does not name (`location`, `stage`, `tags`, custom field keys, fields this
/// adapter does not know) is sent back, since PUT replaces the record (Decision 3, Decision 6).
/// A patch that would leave no name is refused (`Err` with the reason).
pub fn merged_body(mut body: ContactBody, patch: &ContactPatch) -> Result<ContactBody, String> {
    body.other
        .retain(|k, v| !READ_ONLY.contains(&k.as_str()) && !v.is_null());

    if patch.changes_name() {
        let current = PersonName::from_full(body.name.as_deref());
        let name = join_name(
            patch.first_name.apply(current.first).as_deref(),
            patch.middle_name.apply(current.middle).as_deref(),
            patch.last_name.apply(current.last).as_deref(),
        )
        .ok_or_else(|| NEEDS_NAME.to_string())?;
        body.name = Some(name);
    }
    if let Patch::Set(phones) = &patch.phones {
        if let Some(phone) = primary(phones, |p| p.primary) {
            body.phone_number = Some(phone.best().to_string());
        }
    }
    // PUT replaces the record: a cleared field is left out.
    body.notes = patch.notes.apply(body.notes);
    body.stage = patch.stage.apply(body.stage);
    match &patch.group_ids {
        Patch::Keep => {}
        Patch::Clear => body.location = None,
        Patch::Set(ids) => {
            let current = body.location.take();
            body.location = ids.first().map(|id| match current {
                // The same location goes back as read (with its title).
                Some(current) if current.id.as_deref() == Some(id.as_str()) => current,
                _ => Location {
                    id: Some(id.clone()),
                    title: None,
                },
            });
        }
    }
    match &patch.tags {
        Patch::Keep => {}
        Patch::Clear => body.tags = Some(Vec::new()),
        Patch::Set(tags) => body.tags = Some(tags.clone()),
    }
    // `customFields` as an object, decoded when it arrived as a JSON-encoded string. One that
    // decodes to no object is sent back as it came unless the patch changes the custom fields.
    let current = match &body.custom_fields {
        None => Some(Map::new()),
        Some(value) => match json_or_encoded(value) {
            Value::Object(fields) => Some(fields),
            _ => None,
        },
    };
    match (current, &patch.custom_fields) {
        (None, Patch::Keep) => {}
        (current, change) => {
            let mut fields = current.unwrap_or_default();
            merge_custom_fields(&mut fields, change);
            // A record without custom fields gets none unless the patch gives some.
            if !(change.is_keep() && body.custom_fields.is_none()) {
                body.custom_fields = Some(Value::Object(fields));
            }
        }
    }
    Ok(body)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::phone;
    use serde::Deserialize;
    use serde_json::json;

    /// whautomate.txt, the contact of every example response.
    fn documented() -> Value {
        json!({
            "id": "text",
            "name": "text",
            "phoneNumber": "text",
            "location": { "id": "text", "title": "text" },
            "stage": "Subscriber",
            "notes": "text",
            "customFields": {},
            "tags": [ "text" ]
        })
    }

    /// The webhook's shape (NOTES.md 3.3): timestamps, and tags/customFields JSON-encoded.
    pub(in crate::providers::whautomate) fn webhook() -> Value {
        json!({
            "id": "c_81",
            "name": "Maria de la Cruz",
            "phoneNumber": "+1234567890",
            "location": { "id": "loc_1", "title": "Downtown" },
            "stage": "Lead",
            "notes": "called twice",
            "customFields": "{\"plan\":\"gold\",\"visits\":3}",
            "tags": "[\"vip\",\"spring\"]",
            "channel": "Whatsapp",
            "createdAt": "2024-03-01T09:00:00.000Z",
            "updatedAt": "2024-03-02T10:30:00.000Z"
        })
    }

    #[test]
    fn maps_the_documented_contact() {
        let contact = to_contact(documented(), phone::parse_region("US")).expect("maps");
        assert_eq!(contact.phones[0].e164, None, "`text` is no phone");
        insta::with_settings!({ sort_maps => true }, {
            insta::assert_json_snapshot!(contact);
        });
    }

    #[test]
    fn maps_a_webhook_shaped_contact() {
        let contact = to_contact(webhook(), phone::parse_region("US")).expect("maps");
        insta::with_settings!({ sort_maps => true }, {
            insta::assert_json_snapshot!(contact);
        });
    }

    #[test]
    fn encoded_tags_and_custom_fields_are_decoded() {
        let contact = to_contact(webhook(), None).expect("maps");
        assert_eq!(contact.tags, ["vip", "spring"]);
        assert_eq!(contact.custom_fields.get("plan"), Some(&json!("gold")));
        assert_eq!(contact.custom_fields.get("visits"), Some(&json!(3)));
        // Every form `tags` arrives in: wire::tests::tags_arrive_as_arrays_encoded_arrays_or_comma_lists.
    }

    #[test]
    fn names_split_and_groups_come_from_the_location() {
        let contact = to_contact(webhook(), None).expect("maps");
        assert_eq!(contact.name.first.as_deref(), Some("Maria"));
        assert_eq!(contact.name.last.as_deref(), Some("Cruz"));
        assert_eq!(contact.groups[0].kind, "location");
        assert_eq!(contact.groups[0].name.as_deref(), Some("Downtown"));
        assert_eq!(contact.stage.as_deref(), Some("Lead"));
        assert!(contact.emails.is_empty());
        assert!(contact.created_at.is_some() && contact.updated_at.is_some());
    }

    #[test]
    fn nulls_are_tolerated_and_an_id_is_required() {
        let raw = json!({ "id": "c", "name": null, "location": null, "tags": null, "customFields": "not json" });
        let contact = to_contact(raw.clone(), None).expect("maps");
        assert!(
            contact.tags.is_empty()
                && contact.custom_fields.is_empty()
                && contact.groups.is_empty()
        );
        assert!(to_contact(json!({ "name": "x" }), None).is_err());
    }

    fn body(record: Value) -> ContactBody {
        ContactBody::deserialize(&record).expect("an object reads")
    }

    fn fields(value: Value) -> Map<String, Value> {
        value.as_object().cloned().expect("an object")
    }

    #[test]
    fn a_patch_merges_onto_the_record_as_read() {
        let record = body(json!({
            "id": "c_1", "name": "Maria de la Cruz", "phoneNumber": "+1234567890",
            "location": { "id": "loc_1", "title": "Downtown" }, "stage": "Lead", "notes": null,
            "customFields": "{\"plan\":\"gold\"}", "tags": "[\"old\"]", "channel": "Whatsapp",
            "createdAt": "2024-03-01T09:00:00.000Z", "lastActivity": "2024-03-02T09:00:00.000Z"
        }));
        let patch = ContactPatch {
            stage: Patch::Clear,
            custom_fields: Patch::Set(fields(json!({ "visits": 3 }))),
            group_ids: Patch::Set(vec!["loc_1".into()]),
            ..Default::default()
        };
        let merged = merged_body(record, &patch).expect("merged");
        assert_eq!(
            json!(merged),
            json!({
                "name": "Maria de la Cruz",
                "phoneNumber": "+1234567890",
                "location": { "id": "loc_1", "title": "Downtown" },
                "customFields": { "plan": "gold", "visits": 3 },
                "tags": ["old"],
                "channel": "Whatsapp"
            })
        );
    }

    #[test]
    fn custom_fields_that_decode_to_no_object_go_back_as_they_came_unless_patched() {
        let record = json!({ "name": "A", "phoneNumber": "+1", "customFields": "not json" });
        let kept = merged_body(body(record.clone()), &ContactPatch::default()).expect("merged");
        assert_eq!(kept.custom_fields, Some(json!("not json")));
        let patch = ContactPatch {
            custom_fields: Patch::Set(fields(json!({ "plan": "gold" }))),
            ..Default::default()
        };
        let changed = merged_body(body(record), &patch).expect("merged");
        assert_eq!(changed.custom_fields, Some(json!({ "plan": "gold" })));
        let without = merged_body(body(json!({ "name": "A" })), &ContactPatch::default());
        assert_eq!(
            without.expect("merged").custom_fields,
            None,
            "none given, none sent"
        );
    }

    #[test]
    fn a_patch_leaving_no_name_is_refused() {
        let patch = ContactPatch {
            first_name: Patch::Clear,
            ..Default::default()
        };
        let refused = merged_body(body(json!({ "name": "Cher", "phoneNumber": "+1" })), &patch);
        assert_eq!(refused.err().as_deref(), Some(NEEDS_NAME));
    }

    #[test]
    fn a_create_joins_the_configured_location_unless_the_input_names_one() {
        let configured = "loc_sf".to_string();
        let mut input = NewContact {
            first_name: Some("Ada".into()),
            ..Default::default()
        };
        let sent = json!(create_body(&input, Some(&configured)));
        assert_eq!(sent["location"], json!({ "id": "loc_sf" }));
        input.group_ids = vec!["loc_london".into()];
        let sent = json!(create_body(&input, Some(&configured)));
        assert_eq!(
            sent["location"],
            json!({ "id": "loc_london" }),
            "groupIds win"
        );
        input.group_ids.clear();
        let sent = json!(create_body(&input, None));
        assert!(
            sent.get("location").is_none(),
            "nothing configured, none sent"
        );
    }
}
