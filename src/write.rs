//! The unified write model: what a mutation asks of a provider, already validated by the
//! gateway (emails well-formed, phones parsed to E.164, sizes checked, fields the provider
//! cannot hold refused). Plain Rust, no GraphQL, no HTTP.

use crate::contact::{primary, Email, Phone};
use serde_json::{Map, Value};

/// One field of an update: absent keeps the value, `Clear` is an explicit `null`.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Patch<T> {
    #[default]
    Keep,
    Clear,
    Set(T),
}

impl<T> Patch<T> {
    pub fn is_keep(&self) -> bool {
        matches!(self, Patch::Keep)
    }

    /// The new value: `Some(None)` to clear, `None` to keep.
    pub fn change(&self) -> Option<Option<&T>> {
        match self {
            Patch::Keep => None,
            Patch::Clear => Some(None),
            Patch::Set(v) => Some(Some(v)),
        }
    }

    /// The value after the patch, given the current one.
    pub fn apply(&self, current: Option<T>) -> Option<T>
    where
        T: Clone,
    {
        match self {
            Patch::Keep => current,
            Patch::Clear => None,
            Patch::Set(v) => Some(v.clone()),
        }
    }
}

/// A contact to create (or to upsert). Every `Phone` has its `e164` set; every `Email` is
/// well-formed. Empty lists and `None` mean "not given".
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NewContact {
    pub first_name: Option<String>,
    pub middle_name: Option<String>,
    pub last_name: Option<String>,
    pub emails: Vec<Email>,
    pub phones: Vec<Phone>,
    pub company: Option<String>,
    pub notes: Option<String>,
    pub tags: Vec<String>,
    pub stage: Option<String>,
    /// MaiAgent inbox ids, the Whautomate location id, the Mainbrainer list id.
    pub group_ids: Vec<String>,
    pub custom_fields: Map<String, Value>,
    pub email_opt_in: Option<bool>,
    pub sms_opt_in: Option<bool>,
    pub is_test: Option<bool>,
}

impl NewContact {
    /// "first middle last", for providers that hold one name string.
    pub fn full_name(&self) -> Option<String> {
        join_name(
            self.first_name.as_deref(),
            self.middle_name.as_deref(),
            self.last_name.as_deref(),
        )
    }

    /// The primary email (else the first).
    pub fn primary_email(&self) -> Option<&Email> {
        primary(&self.emails, |e| e.primary)
    }

    /// The primary phone (else the first).
    pub fn primary_phone(&self) -> Option<&Phone> {
        primary(&self.phones, |p| p.primary)
    }
}

/// Joins name parts with single spaces; `None` when all are absent.
pub fn join_name(first: Option<&str>, middle: Option<&str>, last: Option<&str>) -> Option<String> {
    let parts: Vec<&str> = [first, middle, last]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// A partial update. Lists (emails, phones, tags, groups) are replaced whole when given;
/// `custom_fields` is merged key by key (a `null` value removes that key).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ContactPatch {
    pub first_name: Patch<String>,
    pub middle_name: Patch<String>,
    pub last_name: Patch<String>,
    pub emails: Patch<Vec<Email>>,
    pub phones: Patch<Vec<Phone>>,
    pub company: Patch<String>,
    pub notes: Patch<String>,
    pub tags: Patch<Vec<String>>,
    pub stage: Patch<String>,
    pub group_ids: Patch<Vec<String>>,
    pub custom_fields: Patch<Map<String, Value>>,
    pub email_opt_in: Patch<bool>,
    pub sms_opt_in: Patch<bool>,
    pub is_test: Patch<bool>,
}

impl ContactPatch {
    /// Whether any name part changes.
    pub fn changes_name(&self) -> bool {
        !(self.first_name.is_keep() && self.middle_name.is_keep() && self.last_name.is_keep())
    }
}

/// Merges a custom-fields patch onto the current fields: keys set, `null` values removed.
pub fn merge_custom_fields(current: &mut Map<String, Value>, patch: &Patch<Map<String, Value>>) {
    match patch {
        Patch::Keep => {}
        Patch::Clear => current.clear(),
        Patch::Set(changes) => {
            for (key, value) in changes {
                if value.is_null() {
                    current.remove(key);
                } else {
                    current.insert(key.clone(), value.clone());
                }
            }
        }
    }
}

/// A field of the unified contact, as writes name it (and as `userErrors.field` spells it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    FirstName,
    MiddleName,
    LastName,
    Emails,
    Phones,
    Company,
    Notes,
    Tags,
    Stage,
    GroupIds,
    CustomFields,
    EmailOptIn,
    SmsOptIn,
    IsTest,
}

impl Field {
    /// The GraphQL input field name.
    pub fn input_name(self) -> &'static str {
        match self {
            Field::FirstName => "firstName",
            Field::MiddleName => "middleName",
            Field::LastName => "lastName",
            Field::Emails => "emails",
            Field::Phones => "phones",
            Field::Company => "company",
            Field::Notes => "notes",
            Field::Tags => "tags",
            Field::Stage => "stage",
            Field::GroupIds => "groupIds",
            Field::CustomFields => "customFields",
            Field::EmailOptIn => "emailOptIn",
            Field::SmsOptIn => "smsOptIn",
            Field::IsTest => "isTest",
        }
    }
}

/// What a provider's record can hold, so the gateway refuses (never drops) the rest before
/// any upstream call. Filled by each adapter with `..WriteFields::default()` (holds nothing).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteFields {
    /// First and last name (one string or separate parts: the adapter joins or splits).
    pub name: bool,
    /// A middle name (providers with one name string take it joined; those with only first
    /// and last parts cannot hold it).
    pub middle_name: bool,
    pub max_emails: usize,
    pub max_phones: usize,
    pub company: bool,
    pub notes: bool,
    pub tags: bool,
    pub stage: bool,
    /// Group ids a record can hold (MaiAgent inboxes: many; a Whautomate location or a
    /// Mainbrainer list: one).
    pub max_groups: usize,
    pub custom_fields: bool,
    pub email_opt_in: bool,
    pub sms_opt_in: bool,
    pub is_test: bool,
    /// A create needs a name.
    pub requires_name: bool,
    /// A create needs a phone.
    pub requires_phone: bool,
    /// A create needs an email or a phone.
    pub requires_email_or_phone: bool,
}

/// The phone (or email) a do-not-contact request names; at least one is set. The phone is
/// E.164.
#[derive(Clone, Debug, PartialEq)]
pub struct DoNotContact {
    pub phone: Option<Phone>,
    pub email: Option<String>,
    pub reason: Option<String>,
}
