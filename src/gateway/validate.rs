//! Validation of write input, before any upstream call: emails parse, phones parse to E.164
//! in the provider's region, sizes are bounded, required fields are there, and a field the
//! provider cannot hold is refused (`FIELD_NOT_SUPPORTED`), never dropped.

use crate::contact::{Email, Phone};
use crate::phone;
use crate::write::{ContactPatch, DoNotContact, Field, NewContact, Patch, WriteFields};
use phonenumber::country::Id as Region;
use serde_json::{Map, Value};
use std::str::FromStr;

/// Something the caller can fix, with the path of the input field it is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserError {
    pub field: Vec<String>,
    pub message: String,
    pub code: &'static str,
}

impl UserError {
    pub fn new(field: &[&str], code: &'static str, message: impl Into<String>) -> Self {
        UserError {
            field: field.iter().map(|s| s.to_string()).collect(),
            message: message.into(),
            code,
        }
    }
}

const MAX_NAME: usize = 200;
const MAX_TEXT: usize = 10_000;
const MAX_LIST: usize = 50;
const MAX_TAG: usize = 100;
const MAX_CUSTOM_BYTES: usize = 16 * 1024;

#[derive(Clone, Debug, Default)]
pub struct EmailDraft {
    pub address: String,
    pub kind: Option<String>,
    pub primary: Option<bool>,
}

#[derive(Clone, Debug, Default)]
pub struct PhoneDraft {
    pub number: String,
    pub kind: Option<String>,
    pub primary: Option<bool>,
}

/// Write input as the caller gave it. For a create, `Clear` counts as not given.
#[derive(Clone, Debug, Default)]
pub struct ContactDraft {
    pub first_name: Patch<String>,
    pub middle_name: Patch<String>,
    pub last_name: Patch<String>,
    pub emails: Patch<Vec<EmailDraft>>,
    pub phones: Patch<Vec<PhoneDraft>>,
    pub company: Patch<String>,
    pub notes: Patch<String>,
    pub tags: Patch<Vec<String>>,
    pub stage: Patch<String>,
    pub group_ids: Patch<Vec<String>>,
    pub custom_fields: Patch<Value>,
    pub email_opt_in: Patch<bool>,
    pub sms_opt_in: Patch<bool>,
    pub is_test: Patch<bool>,
}

/// Collects the errors of one input; `prefix` is the path of the input object (`["input"]`).
struct Checker<'a> {
    prefix: &'a [&'a str],
    fields: &'a WriteFields,
    provider: &'a str,
    errors: Vec<UserError>,
}

impl Checker<'_> {
    fn error(&mut self, path: &[&str], code: &'static str, message: impl Into<String>) {
        let full: Vec<&str> = self.prefix.iter().chain(path).copied().collect();
        self.errors.push(UserError::new(&full, code, message));
    }

    /// Refuses a field the provider cannot hold.
    fn held<T>(&mut self, field: Field, holds: bool, patch: &Patch<T>) {
        if !holds && !patch.is_keep() {
            let name = field.input_name();
            self.error(
                &[name],
                "FIELD_NOT_SUPPORTED",
                format!("{} cannot hold `{name}`; nothing was sent", self.provider),
            );
        }
    }

    fn text(&mut self, field: Field, patch: Patch<String>, max: usize) -> Patch<String> {
        match patch {
            Patch::Set(s) => {
                let s = s.trim().to_string();
                if s.is_empty() {
                    Patch::Clear
                } else if s.chars().count() > max {
                    self.error(
                        &[field.input_name()],
                        "TOO_LONG",
                        format!("`{}` is longer than {max} characters", field.input_name()),
                    );
                    Patch::Keep
                } else {
                    Patch::Set(s)
                }
            }
            other => other,
        }
    }

    fn emails(&mut self, patch: Patch<Vec<EmailDraft>>) -> Patch<Vec<Email>> {
        let Patch::Set(drafts) = patch else {
            return map_unset(patch);
        };
        if drafts.len() > self.fields.max_emails {
            let max = self.fields.max_emails;
            self.error(
                &["emails"],
                "FIELD_NOT_SUPPORTED",
                format!(
                    "{} holds at most {max} email(s); {} given",
                    self.provider,
                    drafts.len()
                ),
            );
            return Patch::Keep;
        }
        let mut emails = Vec::new();
        for (i, draft) in drafts.into_iter().enumerate() {
            let address = draft.address.trim().to_string();
            if email_address::EmailAddress::from_str(&address).is_err() || !address.contains('.') {
                let index = i.to_string();
                self.error(
                    &["emails", &index, "address"],
                    "INVALID_EMAIL",
                    format!("`{address}` is not an email address"),
                );
                continue;
            }
            emails.push(Email {
                address,
                kind: trimmed(draft.kind),
                primary: draft.primary.unwrap_or(false),
            });
        }
        let primaries = emails.iter().filter(|e| e.primary).count();
        if primaries > 1 {
            self.error(&["emails"], "INVALID", "at most one email can be primary");
        }
        if primaries == 0 {
            if let Some(first) = emails.first_mut() {
                first.primary = true;
            }
        }
        if emails.is_empty() {
            Patch::Clear
        } else {
            Patch::Set(emails)
        }
    }

    fn phones(
        &mut self,
        patch: Patch<Vec<PhoneDraft>>,
        region: Option<Region>,
    ) -> Patch<Vec<Phone>> {
        let Patch::Set(drafts) = patch else {
            return map_unset(patch);
        };
        if drafts.len() > self.fields.max_phones {
            let max = self.fields.max_phones;
            self.error(
                &["phones"],
                "FIELD_NOT_SUPPORTED",
                format!(
                    "{} holds at most {max} phone(s); {} given",
                    self.provider,
                    drafts.len()
                ),
            );
            return Patch::Keep;
        }
        let mut phones = Vec::new();
        for (i, draft) in drafts.into_iter().enumerate() {
            let number = draft.number.trim().to_string();
            match phone::normalize(&number, region).filter(plausible) {
                Some(n) => phones.push(Phone {
                    number: n.e164.clone(),
                    e164: Some(n.e164),
                    kind: trimmed(draft.kind),
                    primary: draft.primary.unwrap_or(false),
                }),
                _ => {
                    let index = i.to_string();
                    self.error(
                        &["phones", &index, "number"],
                        "INVALID_PHONE",
                        format!("`{number}` is not a valid phone number (national numbers are read as {})", region.map(|r| r.as_ref().to_string()).unwrap_or_else(|| "international".into())),
                    );
                }
            }
        }
        let primaries = phones.iter().filter(|p| p.primary).count();
        if primaries > 1 {
            self.error(&["phones"], "INVALID", "at most one phone can be primary");
        }
        if primaries == 0 {
            if let Some(first) = phones.first_mut() {
                first.primary = true;
            }
        }
        if phones.is_empty() {
            Patch::Clear
        } else {
            Patch::Set(phones)
        }
    }

    fn list(
        &mut self,
        field: Field,
        patch: Patch<Vec<String>>,
        max_len: usize,
    ) -> Patch<Vec<String>> {
        let Patch::Set(items) = patch else {
            return patch;
        };
        let name = field.input_name();
        let mut out: Vec<String> = Vec::new();
        for item in items {
            let item = item.trim().to_string();
            if item.is_empty() {
                self.error(&[name], "INVALID", format!("`{name}` has an empty entry"));
            } else if item.chars().count() > max_len {
                self.error(
                    &[name],
                    "TOO_LONG",
                    format!("`{item}` is longer than {max_len} characters"),
                );
            } else if !out.contains(&item) {
                out.push(item);
            }
        }
        if out.len() > MAX_LIST {
            self.error(
                &[name],
                "TOO_MANY",
                format!("`{name}` has more than {MAX_LIST} entries"),
            );
        }
        if out.is_empty() {
            Patch::Clear
        } else {
            Patch::Set(out)
        }
    }

    fn groups(&mut self, patch: Patch<Vec<String>>) -> Patch<Vec<String>> {
        let groups = self.list(Field::GroupIds, patch, MAX_NAME);
        if let Patch::Set(ids) = &groups {
            let max = self.fields.max_groups;
            if ids.len() > max {
                let message = format!(
                    "{} holds at most {max} group(s); {} given",
                    self.provider,
                    ids.len()
                );
                self.error(&["groupIds"], "FIELD_NOT_SUPPORTED", message);
            }
        }
        groups
    }

    /// Consent is a yes or a no: it cannot be cleared to "unknown".
    fn consent(&mut self, field: Field, patch: Patch<bool>) -> Patch<bool> {
        if matches!(patch, Patch::Clear) {
            let name = field.input_name();
            self.error(
                &[name],
                "INVALID",
                format!("`{name}` cannot be cleared; set it to true or false"),
            );
            return Patch::Keep;
        }
        patch
    }

    fn custom(&mut self, patch: Patch<Value>) -> Patch<Map<String, Value>> {
        match patch {
            Patch::Set(Value::Object(map)) => {
                if Value::Object(map.clone()).to_string().len() > MAX_CUSTOM_BYTES {
                    self.error(
                        &["customFields"],
                        "TOO_LONG",
                        format!("`customFields` is larger than {MAX_CUSTOM_BYTES} bytes"),
                    );
                }
                Patch::Set(map)
            }
            Patch::Set(_) => {
                self.error(
                    &["customFields"],
                    "INVALID",
                    "`customFields` must be a JSON object",
                );
                Patch::Keep
            }
            Patch::Keep => Patch::Keep,
            Patch::Clear => Patch::Clear,
        }
    }
}

/// A number that parses to an E.164 of plausible length. libphonenumber's stricter validity
/// would refuse numbers providers already hold (reserved fictional ranges, new allocations).
fn plausible(n: &phone::Normalized) -> bool {
    n.valid || (8..=15).contains(&phone::digits(&n.e164).len())
}

fn map_unset<T, U>(patch: Patch<T>) -> Patch<U> {
    match patch {
        Patch::Clear => Patch::Clear,
        _ => Patch::Keep,
    }
}

fn trimmed(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

fn set<T>(patch: Patch<T>) -> Option<T> {
    match patch {
        Patch::Set(v) => Some(v),
        _ => None,
    }
}

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
        errors: Vec::new(),
    };
    c.held(Field::FirstName, fields.name, &draft.first_name);
    c.held(Field::MiddleName, fields.middle_name, &draft.middle_name);
    c.held(Field::LastName, fields.name, &draft.last_name);
    c.held(Field::Emails, fields.max_emails > 0, &draft.emails);
    c.held(Field::Phones, fields.max_phones > 0, &draft.phones);
    c.held(Field::Company, fields.company, &draft.company);
    c.held(Field::Notes, fields.notes, &draft.notes);
    c.held(Field::Tags, fields.tags, &draft.tags);
    c.held(Field::Stage, fields.stage, &draft.stage);
    c.held(Field::GroupIds, fields.max_groups > 0, &draft.group_ids);
    c.held(
        Field::CustomFields,
        fields.custom_fields,
        &draft.custom_fields,
    );
    c.held(Field::EmailOptIn, fields.email_opt_in, &draft.email_opt_in);
    c.held(Field::SmsOptIn, fields.sms_opt_in, &draft.sms_opt_in);
    c.held(Field::IsTest, fields.is_test, &draft.is_test);
    if !c.errors.is_empty() {
        return Err(c.errors);
    }
    let patch = ContactPatch {
        first_name: c.text(Field::FirstName, draft.first_name, MAX_NAME),
        middle_name: c.text(Field::MiddleName, draft.middle_name, MAX_NAME),
        last_name: c.text(Field::LastName, draft.last_name, MAX_NAME),
        emails: c.emails(draft.emails),
        phones: c.phones(draft.phones, region),
        company: c.text(Field::Company, draft.company, MAX_NAME),
        notes: c.text(Field::Notes, draft.notes, MAX_TEXT),
        tags: c.list(Field::Tags, draft.tags, MAX_TAG),
        stage: c.text(Field::Stage, draft.stage, MAX_TAG),
        group_ids: c.groups(draft.group_ids),
        custom_fields: c.custom(draft.custom_fields),
        email_opt_in: c.consent(Field::EmailOptIn, draft.email_opt_in),
        sms_opt_in: c.consent(Field::SmsOptIn, draft.sms_opt_in),
        is_test: draft.is_test,
    };
    // Clearing some name parts is fine while others remain (the adapter checks the merged
    // name); clearing every part of a required name is refused here.
    let cleared = |p: &Patch<String>| matches!(p, Patch::Clear);
    if fields.requires_name
        && cleared(&patch.first_name)
        && cleared(&patch.last_name)
        && !matches!(patch.middle_name, Patch::Set(_))
    {
        c.error(
            &["firstName"],
            "REQUIRED",
            format!("{provider} requires a name; it cannot be cleared"),
        );
    }
    if fields.requires_phone && matches!(patch.phones, Patch::Clear) {
        c.error(
            &["phones"],
            "REQUIRED",
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
    let p = patch(draft, fields, provider, region, prefix)?;
    let contact = NewContact {
        first_name: set(p.first_name),
        middle_name: set(p.middle_name),
        last_name: set(p.last_name),
        emails: set(p.emails).unwrap_or_default(),
        phones: set(p.phones).unwrap_or_default(),
        company: set(p.company),
        notes: set(p.notes),
        tags: set(p.tags).unwrap_or_default(),
        stage: set(p.stage),
        group_ids: set(p.group_ids).unwrap_or_default(),
        custom_fields: set(p.custom_fields).unwrap_or_default(),
        email_opt_in: set(p.email_opt_in),
        sms_opt_in: set(p.sms_opt_in),
        is_test: set(p.is_test),
    };
    let mut errors = Vec::new();
    let mut require = |field: &str, message: String| {
        let path: Vec<&str> = prefix.iter().copied().chain([field]).collect();
        errors.push(UserError::new(&path, "REQUIRED", message));
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
    let mut errors = Vec::new();
    let phone_input = trimmed(phone_input);
    let email = trimmed(email);
    if phone_input.is_none() && email.is_none() {
        errors.push(UserError::new(
            &["input", "phone"],
            "REQUIRED",
            "give a phone or an email",
        ));
    }
    let phone =
        phone_input.and_then(
            |number| match phone::normalize(&number, region).filter(plausible) {
                Some(n) => Some(Phone {
                    number: n.e164.clone(),
                    e164: Some(n.e164),
                    kind: None,
                    primary: true,
                }),
                _ => {
                    errors.push(UserError::new(
                        &["input", "phone"],
                        "INVALID_PHONE",
                        format!("`{number}` is not a valid phone number"),
                    ));
                    None
                }
            },
        );
    if let Some(address) = &email {
        if email_address::EmailAddress::from_str(address).is_err() {
            errors.push(UserError::new(
                &["input", "email"],
                "INVALID_EMAIL",
                format!("`{address}` is not an email address"),
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
            "TOO_LONG",
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

    fn everything() -> WriteFields {
        WriteFields {
            name: true,
            middle_name: true,
            max_emails: 2,
            max_phones: 2,
            company: true,
            notes: true,
            tags: true,
            stage: true,
            max_groups: 5,
            custom_fields: true,
            email_opt_in: true,
            sms_opt_in: true,
            is_test: true,
            ..WriteFields::default()
        }
    }

    fn us() -> Option<Region> {
        phone::parse_region("US")
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
        let got: Vec<(String, &str)> = errors.iter().map(|e| (e.field.join("."), e.code)).collect();
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
            name: true,
            max_phones: 1,
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
        assert_eq!(errors[0].code, "FIELD_NOT_SUPPORTED");
        assert_eq!(errors[0].field, ["input", "emails"]);

        let missing = ContactDraft {
            first_name: Patch::Set("Ada".into()),
            ..Default::default()
        };
        let errors = new_contact(missing, &fields, "Whautomate", us(), &["input"]).unwrap_err();
        assert_eq!(
            (errors[0].field.join("."), errors[0].code),
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
