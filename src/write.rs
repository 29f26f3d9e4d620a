//! The unified write model: what a mutation asks of a provider, already validated by the
//! gateway (emails well-formed, phones parsed to E.164, sizes checked, fields the provider
//! cannot hold refused). Plain Rust, no GraphQL, no HTTP.

use crate::contact::Phone;
use serde_json::{Map, Value};

pub use crate::fields::{ContactDraft, ContactPatch, Field, NewContact, WriteFields, MANY};

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

/// The phone (or email) a do-not-contact request names; at least one is set. The phone is
/// E.164.
#[derive(Clone, Debug, PartialEq)]
pub struct DoNotContact {
    pub phone: Option<Phone>,
    pub email: Option<String>,
    pub reason: Option<String>,
}

/// What a caller can fix, as `userErrors.code` (and `warnings.code`) spell it. Clients match
/// on these strings: never rename one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserErrorCode {
    InvalidEmail,
    InvalidPhone,
    Required,
    TooLong,
    TooMany,
    Invalid,
    FieldNotSupported,
    InvalidId,
    NotFound,
    AmbiguousMatch,
    CannotDelete,
    /// The provider's own 400/422, with its message.
    ProviderValidation,
    InvalidCsv,
    MalformedRow,
    /// A warning: the write happened, but the provider's answer does not show this value.
    FieldNotStored,
    /// A warning: the write happened, but the contact could not be read back after it (the
    /// payload's `contact` is null).
    ReadBackFailed,
    /// The write would opt in (`smsOptIn`/`emailOptIn: true`) a phone or email that is in the
    /// gateway's do-not-contact registry.
    DoNotContact,
}

impl UserErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            UserErrorCode::InvalidEmail => "INVALID_EMAIL",
            UserErrorCode::InvalidPhone => "INVALID_PHONE",
            UserErrorCode::Required => "REQUIRED",
            UserErrorCode::TooLong => "TOO_LONG",
            UserErrorCode::TooMany => "TOO_MANY",
            UserErrorCode::Invalid => "INVALID",
            UserErrorCode::FieldNotSupported => "FIELD_NOT_SUPPORTED",
            UserErrorCode::InvalidId => "INVALID_ID",
            UserErrorCode::NotFound => "NOT_FOUND",
            UserErrorCode::AmbiguousMatch => "AMBIGUOUS_MATCH",
            UserErrorCode::CannotDelete => "CANNOT_DELETE",
            UserErrorCode::ProviderValidation => "PROVIDER_VALIDATION",
            UserErrorCode::InvalidCsv => "INVALID_CSV",
            UserErrorCode::MalformedRow => "MALFORMED_ROW",
            UserErrorCode::FieldNotStored => "FIELD_NOT_STORED",
            UserErrorCode::ReadBackFailed => "READ_BACK_FAILED",
            UserErrorCode::DoNotContact => "DO_NOT_CONTACT",
        }
    }
}

/// Something the caller can fix (or, as a warning, should know), with the path of the input
/// field it is about (empty when it is about the whole input).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserError {
    pub field: Vec<String>,
    pub message: String,
    pub code: UserErrorCode,
}

impl UserError {
    pub fn new(field: &[&str], code: UserErrorCode, message: impl Into<String>) -> Self {
        UserError {
            field: field.iter().map(|s| s.to_string()).collect(),
            message: message.into(),
            code,
        }
    }
}
