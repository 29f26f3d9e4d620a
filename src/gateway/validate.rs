//! Validation of write input, before any upstream call: each field by its kind (the table in
//! `fields.rs`: emails parse, phones parse to E.164 in the provider's region, sizes are
//! bounded, a field the provider cannot hold is refused with `FIELD_NOT_SUPPORTED`, never
//! dropped), then what a provider requires of a whole contact.

use crate::contact::Phone;
use crate::fields::{shown, valid_email, writable_phone, Checker};
use crate::write::{
    ContactDraft, ContactPatch, DoNotContact, NewContact, Patch, UserError, UserErrorCode,
    WriteFields,
};
use phonenumber::country::Id as Region;

const MAX_TEXT: usize = 10_000;

/// Validates a draft into a patch for a provider that holds `fields`.
pub fn patch(
    draft: ContactDraft,
    fields: &WriteFields,
    provider: &str,
    region: Option<Region>,
    prefix: &[&str],
) -> Result<ContactPatch, Vec<UserError>> {
    let mut c = Checker {
        prefix,
        fields,
        provider,
        region,
        errors: Vec::new(),
    };
    let patch = draft.check(&mut c);
    if !c.errors.is_empty() {
        return Err(c.errors);
    }
    // Clearing some name parts is fine while others remain (the gateway checks the merged
    // name against the current one); clearing every part of a required name is refused here.
    let cleared = |p: &Patch<String>| matches!(p, Patch::Clear);
    if fields.requires_name
        && cleared(&patch.first_name)
        && cleared(&patch.last_name)
        && !matches!(patch.middle_name, Patch::Set(_))
    {
        c.error(
            &["firstName"],
            UserErrorCode::Required,
            format!("{provider} requires a name; it cannot be cleared"),
        );
    }
    if fields.requires_phone && matches!(patch.phones, Patch::Clear) {
        c.error(
            &["phones"],
            UserErrorCode::Required,
            format!("{provider} requires a phone; it cannot be cleared"),
        );
    }
    if c.errors.is_empty() {
        Ok(patch)
    } else {
        Err(c.errors)
    }
}

/// Validates a draft into a new contact for a provider that holds `fields`.
pub fn new_contact(
    draft: ContactDraft,
    fields: &WriteFields,
    provider: &str,
    region: Option<Region>,
    prefix: &[&str],
) -> Result<NewContact, Vec<UserError>> {
    let contact = patch(draft, fields, provider, region, prefix)?.into_new();
    let mut errors = Vec::new();
    let mut require = |field: &str, message: String| {
        let path: Vec<&str> = prefix.iter().copied().chain([field]).collect();
        errors.push(UserError::new(&path, UserErrorCode::Required, message));
    };
    let has_name = contact.full_name().is_some();
    if fields.requires_name && !has_name {
        require("firstName", format!("{provider} requires a name"));
    }
    if fields.requires_phone && contact.phones.is_empty() {
        require("phones", format!("{provider} requires a phone number"));
    }
    if fields.requires_email_or_phone && contact.emails.is_empty() && contact.phones.is_empty() {
        require(
            "emails",
            format!("{provider} requires an email or a phone number"),
        );
    }
    let nothing = !has_name && contact.emails.is_empty() && contact.phones.is_empty();
    if nothing && !fields.requires_name && !fields.requires_email_or_phone {
        require(
            "firstName",
            "a contact needs a name, an email or a phone".into(),
        );
    }
    if errors.is_empty() {
        Ok(contact)
    } else {
        Err(errors)
    }
}

/// Validates a do-not-contact request: a phone (read in `region`) or an email is required.
pub fn do_not_contact(
    phone_input: Option<String>,
    email: Option<String>,
    reason: Option<String>,
    region: Option<Region>,
) -> Result<DoNotContact, Vec<UserError>> {
    let trimmed = |s: Option<String>| s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let mut errors = Vec::new();
    let phone_input = trimmed(phone_input);
    let email = trimmed(email);
    if phone_input.is_none() && email.is_none() {
        errors.push(UserError::new(
            &["input", "phone"],
            UserErrorCode::Required,
            "give a phone or an email",
        ));
    }
    let phone = phone_input.and_then(|number| match writable_phone(&number, region) {
        Some(e164) => Some(Phone {
            number: e164.clone(),
            e164: Some(e164),
            kind: None,
            primary: true,
        }),
        None => {
            errors.push(UserError::new(
                &["input", "phone"],
                UserErrorCode::InvalidPhone,
                format!("`{}` is not a valid phone number", shown(&number)),
            ));
            None
        }
    });
    if let Some(address) = &email {
        if !valid_email(address) {
            errors.push(UserError::new(
                &["input", "email"],
                UserErrorCode::InvalidEmail,
                format!("`{}` is not an email address", shown(address)),
            ));
        }
    }
    let reason = trimmed(reason);
    if reason
        .as_ref()
        .is_some_and(|r| r.chars().count() > MAX_TEXT)
    {
        errors.push(UserError::new(
            &["input", "reason"],
            UserErrorCode::TooLong,
            format!("`reason` is longer than {MAX_TEXT} characters"),
        ));
    }
    if errors.is_empty() {
        Ok(DoNotContact {
            phone,
            email,
            reason,
        })
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::kind::{EmailDraft, PhoneDraft};
    use crate::write::MANY;
    use serde_json::Value;

    fn everything() -> WriteFields {
        WriteFields {
            first_name: 1,
            last_name: 1,
            middle_name: 1,
            emails: 2,
            phones: 2,
            company: 1,
            notes: 1,
            tags: MANY,
            stage: 1,
            group_ids: 5,
            custom_fields: 1,
            email_opt_in: 1,
            sms_opt_in: 1,
            is_test: 1,
            ..WriteFields::default()
        }
    }

    fn us() -> Option<Region> {
        crate::phone::parse_region("US")
    }

    #[test]
    fn a_good_draft_becomes_a_normalized_contact() {
        let draft = ContactDraft {
            first_name: Patch::Set(" Ada ".into()),
            emails: Patch::Set(vec![EmailDraft {
                address: "ada@example.com".into(),
                ..Default::default()
            }]),
            phones: Patch::Set(vec![PhoneDraft {
                number: "(415) 555-0142".into(),
                ..Default::default()
            }]),
            tags: Patch::Set(vec!["vip".into(), "vip".into(), "beta".into()]),
            ..Default::default()
        };
        let c = new_contact(draft, &everything(), "X", us(), &["input"]).unwrap();
        assert_eq!(c.first_name.as_deref(), Some("Ada"));
        assert_eq!(c.phones[0].e164.as_deref(), Some("+14155550142"));
        assert!(c.phones[0].primary && c.emails[0].primary);
        assert_eq!(c.tags, ["vip", "beta"]);
    }

    #[test]
    fn bad_input_is_named_by_path_and_code() {
        let draft = ContactDraft {
            first_name: Patch::Set("x".repeat(201)),
            emails: Patch::Set(vec![EmailDraft {
                address: "not-an-email".into(),
                ..Default::default()
            }]),
            phones: Patch::Set(vec![PhoneDraft {
                number: "12".into(),
                ..Default::default()
            }]),
            custom_fields: Patch::Set(Value::from(3)),
            ..Default::default()
        };
        let errors = new_contact(draft, &everything(), "X", us(), &["input"]).unwrap_err();
        let got: Vec<(String, &str)> = errors
            .iter()
            .map(|e| (e.field.join("."), e.code.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("input.firstName".to_string(), "TOO_LONG"),
                ("input.emails.0.address".to_string(), "INVALID_EMAIL"),
                ("input.phones.0.number".to_string(), "INVALID_PHONE"),
                ("input.customFields".to_string(), "INVALID"),
            ]
        );
    }

    #[test]
    fn fields_the_provider_cannot_hold_are_refused_not_dropped() {
        let fields = WriteFields {
            first_name: 1,
            last_name: 1,
            phones: 1,
            requires_phone: true,
            requires_name: true,
            ..Default::default()
        };
        let draft = ContactDraft {
            first_name: Patch::Set("Ada".into()),
            emails: Patch::Set(vec![EmailDraft {
                address: "ada@example.com".into(),
                ..Default::default()
            }]),
            phones: Patch::Set(vec![PhoneDraft {
                number: "+14155550142".into(),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let errors = new_contact(draft, &fields, "Whautomate", us(), &["input"]).unwrap_err();
        assert_eq!(errors[0].code, UserErrorCode::FieldNotSupported);
        assert_eq!(errors[0].field, ["input", "emails"]);

        let missing = ContactDraft {
            first_name: Patch::Set("Ada".into()),
            ..Default::default()
        };
        let errors = new_contact(missing, &fields, "Whautomate", us(), &["input"]).unwrap_err();
        assert_eq!(
            (errors[0].field.join("."), errors[0].code.as_str()),
            ("input.phones".into(), "REQUIRED")
        );
    }

    #[test]
    fn dnc_needs_a_valid_phone_or_email() {
        assert!(do_not_contact(None, None, None, us()).is_err());
        assert!(do_not_contact(Some("nope".into()), None, None, us()).is_err());
        let ok = do_not_contact(
            Some("415 555 0142".into()),
            None,
            Some("asked".into()),
            us(),
        )
        .unwrap();
        assert_eq!(ok.phone.unwrap().e164.as_deref(), Some("+14155550142"));
    }
}
