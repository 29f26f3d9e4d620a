//! Mutations, provider-independent: validate first (no upstream call on bad input), check
//! the capability, call the adapter, turn provider refusals into user errors, and invalidate
//! what the write touched so the next read shows it.

use super::filter::Filter;
use super::validate::{self, ContactDraft, UserError};
use super::Gateway;
use crate::contact::{Contact, Email, GlobalId, Phone, ProviderId};
use crate::providers::{Capability, Provider, ProviderError};
use crate::write::{ContactPatch, DoNotContact, NewContact, Patch};
use futures::future::join_all;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Weak};

/// One write at a time per contact. Whautomate and MagicBlocks updates are read-merge-write
/// (their PUT replaces the record), so two concurrent patches of one contact would otherwise
/// lose one of them (NOTES 3.5.1). Within this process; several gateways still race.
#[derive(Default)]
pub struct ContactLocks(std::sync::Mutex<HashMap<GlobalId, Weak<tokio::sync::Mutex<()>>>>);

impl ContactLocks {
    pub async fn lock(&self, id: &GlobalId) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.0.lock().unwrap_or_else(|e| e.into_inner());
            // Drop the entries of contacts nobody is writing, so the map stays small.
            if locks.len() > 1024 {
                locks.retain(|_, lock| lock.strong_count() > 0);
            }
            match locks.get(id).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    let lock = Arc::new(tokio::sync::Mutex::new(()));
                    locks.insert(id.clone(), Arc::downgrade(&lock));
                    lock
                }
            }
        };
        lock.lock_owned().await
    }
}

/// Why a write did not happen: something the caller can fix, or the provider failing.
#[derive(Debug)]
pub enum WriteError {
    User(Vec<UserError>),
    Provider(ProviderError),
}

impl From<Vec<UserError>> for WriteError {
    fn from(errors: Vec<UserError>) -> Self {
        WriteError::User(errors)
    }
}

/// A provider's answer to a write: 404 and 400/422 are the caller's to fix, the rest is the
/// provider failing.
fn refused(error: ProviderError, id_path: &[&str], refusal_code: &'static str) -> WriteError {
    match error {
        ProviderError::Rejected {
            status: 404,
            provider,
            message,
        } => {
            // Keep what the provider said (Mainbrainer says which contact it created instead).
            let detail = if message.is_empty() || message == "not found" {
                String::new()
            } else {
                format!(": {message}")
            };
            WriteError::User(vec![UserError::new(
                id_path,
                "NOT_FOUND",
                format!("{} has no such contact{detail}", provider.display_name()),
            )])
        }
        ProviderError::Rejected {
            provider, message, ..
        } => WriteError::User(vec![UserError::new(
            &[],
            refusal_code,
            format!("{} refused it: {message}", provider.display_name()),
        )]),
        other => WriteError::Provider(other),
    }
}

/// A contact as the provider answered a write, and what it asked for that the answer does
/// not show (`FIELD_NOT_STORED`): the write happened, so these are warnings, not errors.
pub struct Written {
    pub contact: Arc<Contact>,
    pub warnings: Vec<UserError>,
}

/// How `upsertContact` matched.
pub struct Upserted {
    pub written: Written,
    /// `Some(true)` created, `Some(false)` updated a match, `None` the provider did not say.
    pub created: Option<bool>,
}

/// One provider's outcome of a do-not-contact request.
pub struct DoNotContactResult {
    pub provider: ProviderId,
    pub status: DoNotContactStatus,
    pub message: String,
    /// The failure, when `status` is `Failed`.
    pub error: Option<ProviderError>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DoNotContactStatus {
    Applied,
    Unsupported,
    Failed,
}

impl Gateway {
    /// The adapter for `id`, if it can do `capability` (checked before any call).
    pub(crate) fn capable(
        &self,
        id: ProviderId,
        capability: Capability,
        operation: &'static str,
    ) -> Result<&Arc<dyn Provider>, ProviderError> {
        let provider = self.registry.require(id)?;
        if provider.capabilities().has(capability) {
            Ok(provider)
        } else {
            Err(provider.unsupported(operation))
        }
    }

    /// Validates `draft` for `provider` as a new contact.
    pub fn new_contact(
        &self,
        provider: &dyn Provider,
        draft: ContactDraft,
        prefix: &[&str],
    ) -> Result<NewContact, Vec<UserError>> {
        validate::new_contact(
            draft,
            &provider.write_fields(),
            provider.id().display_name(),
            provider.region(),
            prefix,
        )
    }

    pub async fn create_contact(
        &self,
        id: ProviderId,
        draft: ContactDraft,
    ) -> Result<Written, WriteError> {
        let provider = self
            .capable(id, Capability::Create, "create")
            .map_err(WriteError::Provider)?;
        let input = self.new_contact(provider.as_ref(), draft, &["input"])?;
        self.create_validated(provider.as_ref(), &input).await
    }

    async fn create_validated(
        &self,
        provider: &dyn Provider,
        input: &NewContact,
    ) -> Result<Written, WriteError> {
        let result = provider.create(input).await;
        // Even a failed create may have been applied upstream: never serve a stale list.
        self.cache.invalidate_provider(provider.id());
        let contact = Arc::new(result.map_err(|e| refused(e, &["input"], "PROVIDER_VALIDATION"))?);
        self.cache.invalidate(&contact.global_id()).await;
        let warnings = unstored(&Asked::from_new(input), &contact);
        Ok(Written { contact, warnings })
    }

    pub async fn update_contact(
        &self,
        id: &GlobalId,
        draft: ContactDraft,
    ) -> Result<Written, WriteError> {
        let provider = self
            .capable(id.provider, Capability::Update, "update")
            .map_err(WriteError::Provider)?;
        check_native_id(provider.as_ref(), id)?;
        let patch = validate::patch(
            draft,
            &provider.write_fields(),
            id.provider.display_name(),
            provider.region(),
            &["input"],
        )?;
        self.update_validated(provider.as_ref(), id, &patch).await
    }

    async fn update_validated(
        &self,
        provider: &dyn Provider,
        id: &GlobalId,
        patch: &ContactPatch,
    ) -> Result<Written, WriteError> {
        let _one_writer = self.write_locks.lock(id).await;
        let result = provider.update(&id.native_id, patch).await;
        self.cache.invalidate(id).await;
        let contact = Arc::new(result.map_err(|e| refused(e, &["id"], "PROVIDER_VALIDATION"))?);
        let warnings = unstored(&Asked::from_patch(patch), &contact);
        Ok(Written { contact, warnings })
    }

    pub async fn delete_contact(&self, id: &GlobalId) -> Result<(), WriteError> {
        let provider = self
            .capable(id.provider, Capability::Delete, "delete")
            .map_err(WriteError::Provider)?;
        check_native_id(provider.as_ref(), id)?;
        let _one_writer = self.write_locks.lock(id).await;
        let result = provider.delete(&id.native_id).await;
        self.cache.invalidate(id).await;
        result.map_err(|e| refused(e, &["id"], "CANNOT_DELETE"))
    }

    /// Adds (`add`) or removes tags; returns the contact as the provider now holds it.
    pub async fn change_tags(
        &self,
        id: &GlobalId,
        tags: Vec<String>,
        add: bool,
    ) -> Result<Arc<Contact>, WriteError> {
        let provider = self
            .capable(id.provider, Capability::Tags, "tags")
            .map_err(WriteError::Provider)?;
        check_native_id(provider.as_ref(), id)?;
        // Reuse the tag rules of a patch (trimmed, non-empty, bounded, deduplicated).
        let draft = ContactDraft {
            tags: Patch::Set(tags),
            ..ContactDraft::default()
        };
        let patch = validate::patch(
            draft,
            &provider.write_fields(),
            id.provider.display_name(),
            provider.region(),
            &[],
        )
        .map_err(|errors| {
            errors
                .into_iter()
                .map(|mut e| {
                    e.field = vec!["tags".into()];
                    e
                })
                .collect::<Vec<_>>()
        })?;
        let Patch::Set(tags) = patch.tags else {
            return Err(WriteError::User(vec![UserError::new(
                &["tags"],
                "REQUIRED",
                "give at least one tag",
            )]));
        };
        let _one_writer = self.write_locks.lock(id).await;
        let result = if add {
            provider.add_tags(&id.native_id, &tags).await
        } else {
            provider.remove_tags(&id.native_id, &tags).await
        };
        self.cache.invalidate(id).await;
        result.map_err(|e| refused(e, &["id"], "PROVIDER_VALIDATION"))?;
        // The payload is the whole contact, fresh from the provider.
        match self.contact(id, false).await {
            Ok(Some(contact)) => Ok(contact),
            Ok(None) => Err(WriteError::User(vec![UserError::new(
                &["id"],
                "NOT_FOUND",
                format!("{} has no such contact", id.provider.display_name()),
            )])),
            Err(e) => Err(WriteError::Provider(e)),
        }
    }

    /// Upserts: natively where the provider matches itself (Mainbrainer), else finds a match by
    /// email and/or phone and updates it, or creates.
    pub async fn upsert_contact(
        &self,
        id: ProviderId,
        draft: ContactDraft,
        match_email: bool,
        match_phone: bool,
    ) -> Result<Upserted, WriteError> {
        let provider = self
            .capable(id, Capability::Upsert, "upsert")
            .map_err(WriteError::Provider)?;
        let input = self.new_contact(provider.as_ref(), draft.clone(), &["input"])?;
        let email = input
            .primary_email()
            .filter(|_| match_email)
            .map(|e| e.address.to_lowercase());
        let phone = input
            .primary_phone()
            .filter(|_| match_phone)
            .and_then(|p| p.e164.clone());
        if email.is_none() && phone.is_none() {
            return Err(WriteError::User(vec![UserError::new(
                &["input", "matchBy"],
                "REQUIRED",
                "an upsert matches by email or phone: give one of those it matches by",
            )]));
        }
        if provider.capabilities().native_upsert {
            // A native upsert may create (no consent may be assumed) or update (a default
            // would overwrite the match's consent): the caller states the opt-ins it holds.
            let fields = provider.write_fields();
            let missing: Vec<&str> = [
                (
                    fields.email_opt_in && input.email_opt_in.is_none(),
                    "emailOptIn",
                ),
                (fields.sms_opt_in && input.sms_opt_in.is_none(), "smsOptIn"),
            ]
            .into_iter()
            .filter_map(|(missing, name)| missing.then_some(name))
            .collect();
            if !missing.is_empty() {
                let errors = missing
                    .into_iter()
                    .map(|name| {
                        let message = format!(
                            "{} upserts by its own matching rules and may update an existing \
                             contact: give `{name}` so consent is neither assumed nor overwritten",
                            id.display_name()
                        );
                        UserError::new(&["input", name], "REQUIRED", message)
                    })
                    .collect();
                return Err(WriteError::User(errors));
            }
            let result = provider.upsert(&input).await;
            self.cache.invalidate_provider(id);
            let contact =
                Arc::new(result.map_err(|e| refused(e, &["input"], "PROVIDER_VALIDATION"))?);
            self.cache.invalidate(&contact.global_id()).await;
            let warnings = unstored(&Asked::from_new(&input), &contact);
            return Ok(Upserted {
                written: Written { contact, warnings },
                created: None,
            });
        }

        let mut matches: Vec<Arc<Contact>> = Vec::new();
        for filter in [
            email.clone().map(|email| Filter {
                email: Some(email),
                ..Filter::default()
            }),
            phone.clone().map(|phone| Filter {
                phone: Some(phone),
                ..Filter::default()
            }),
        ]
        .into_iter()
        .flatten()
        {
            if !filter.can_match(&provider.capabilities()) {
                continue;
            }
            for contact in self
                .find(provider.as_ref(), &filter)
                .await
                .map_err(WriteError::Provider)?
            {
                if !matches.iter().any(|m| m.native_id == contact.native_id) {
                    matches.push(contact);
                }
            }
        }
        // Several candidates: one that matches both email and phone wins; else it is ambiguous.
        if matches.len() > 1 {
            let both: Vec<Arc<Contact>> = matches
                .iter()
                .filter(|c| {
                    Filter {
                        email: email.clone(),
                        phone: phone.clone(),
                        ..Filter::default()
                    }
                    .matches(c)
                })
                .cloned()
                .collect();
            if both.len() == 1 {
                matches = both;
            } else {
                let ids: Vec<String> = matches.iter().map(|c| c.global_id().to_string()).collect();
                return Err(WriteError::User(vec![UserError::new(
                    &["input", "matchBy"],
                    "AMBIGUOUS_MATCH",
                    format!(
                        "{} contacts match ({}); update one by id",
                        ids.len(),
                        ids.join(", ")
                    ),
                )]));
            }
        }
        match matches.pop() {
            None => {
                let written = self.create_validated(provider.as_ref(), &input).await?;
                Ok(Upserted {
                    written,
                    created: Some(true),
                })
            }
            Some(existing) => {
                let patch = validate::patch(
                    draft,
                    &provider.write_fields(),
                    id.display_name(),
                    provider.region(),
                    &["input"],
                )?;
                let written = self
                    .update_validated(provider.as_ref(), &existing.global_id(), &patch)
                    .await?;
                Ok(Upserted {
                    written,
                    created: Some(false),
                })
            }
        }
    }

    /// Every contact of `provider` matching `filter`, fresh from the provider.
    async fn find(
        &self,
        provider: &dyn Provider,
        filter: &Filter,
    ) -> Result<Vec<Arc<Contact>>, ProviderError> {
        const ENOUGH: usize = 10;
        let found = self
            .collect(provider, &filter.to_list_query(), filter, 0, ENOUGH, false)
            .await?;
        Ok(found.matches.into_iter().map(|(_, c)| c).collect())
    }

    /// Puts a phone (or email) on each provider's do-not-contact mechanism, concurrently;
    /// one result per provider, whether it applied, cannot, or failed.
    pub async fn do_not_contact(
        &self,
        request: &DoNotContact,
        providers: Option<Vec<ProviderId>>,
    ) -> Vec<DoNotContactResult> {
        let explicit = providers.is_some();
        let mut ids = providers.unwrap_or_else(|| ProviderId::ALL.to_vec());
        ids.sort();
        ids.dedup();
        let ids: Vec<ProviderId> = ids
            .into_iter()
            .filter(|id| explicit || self.registry.get(*id).is_some())
            .collect();
        join_all(ids.into_iter().map(|id| async move {
            let result = |status, message: String, error| DoNotContactResult {
                provider: id,
                status,
                message,
                error,
            };
            let provider = match self.capable(id, Capability::DoNotContact, "do-not-contact") {
                Ok(p) => p,
                Err(e @ ProviderError::Unsupported { .. }) => {
                    return result(
                        DoNotContactStatus::Unsupported,
                        format!(
                            "{} documents no do-not-contact mechanism",
                            id.display_name()
                        ),
                        Some(e),
                    )
                }
                Err(e) => return result(DoNotContactStatus::Failed, e.to_string(), Some(e)),
            };
            match provider.do_not_contact(request).await {
                Ok(message) => result(DoNotContactStatus::Applied, message, None),
                Err(e @ ProviderError::Unsupported { .. }) => result(
                    DoNotContactStatus::Unsupported,
                    format!("{} cannot take this request: {e}", id.display_name()),
                    Some(e),
                ),
                Err(e) => result(DoNotContactStatus::Failed, e.to_string(), Some(e)),
            }
        }))
        .await
    }
}

/// The values a write set, to compare with the provider's answer.
pub(crate) struct Asked<'a> {
    phones: Option<&'a [Phone]>,
    emails: Option<&'a [Email]>,
    texts: [(&'static str, Option<&'a str>); 3],
    tags: Option<&'a [String]>,
    custom_fields: Option<&'a Map<String, Value>>,
}

impl<'a> Asked<'a> {
    pub(crate) fn from_new(input: &'a NewContact) -> Self {
        Asked {
            phones: Some(&input.phones),
            emails: Some(&input.emails),
            texts: [
                ("company", input.company.as_deref()),
                ("notes", input.notes.as_deref()),
                ("stage", input.stage.as_deref()),
            ],
            tags: Some(&input.tags),
            custom_fields: Some(&input.custom_fields),
        }
    }

    fn from_patch(patch: &'a ContactPatch) -> Self {
        let set = |p: &'a Patch<String>| match p {
            Patch::Set(v) => Some(v.as_str()),
            _ => None,
        };
        Asked {
            phones: match &patch.phones {
                Patch::Set(v) => Some(v),
                _ => None,
            },
            emails: match &patch.emails {
                Patch::Set(v) => Some(v),
                _ => None,
            },
            texts: [
                ("company", set(&patch.company)),
                ("notes", set(&patch.notes)),
                ("stage", set(&patch.stage)),
            ],
            tags: match &patch.tags {
                Patch::Set(v) => Some(v),
                _ => None,
            },
            custom_fields: match &patch.custom_fields {
                Patch::Set(v) => Some(v),
                _ => None,
            },
        }
    }
}

/// What a write set that the provider's answer does not show: a provider may store a value
/// otherwise (MaiAgent keeps a phone's national digits only) or drop it. Never silent.
pub(crate) fn unstored(asked: &Asked, got: &Contact) -> Vec<UserError> {
    let provider = got.provider.display_name();
    let mut warnings = Vec::new();
    let mut warn = |path: Vec<String>, message: String| {
        warnings.push(UserError {
            field: path,
            message,
            code: "FIELD_NOT_STORED",
        });
    };
    for (i, phone) in asked.phones.unwrap_or_default().iter().enumerate() {
        if !got.phones.iter().any(|p| p.e164 == phone.e164) {
            let stored: Vec<&str> = got
                .phones
                .iter()
                .map(|p| p.e164.as_deref().unwrap_or(&p.number))
                .collect();
            warn(
                vec![
                    "input".into(),
                    "phones".into(),
                    i.to_string(),
                    "number".into(),
                ],
                format!(
                    "{provider} did not store {} as given; it holds {}",
                    phone.number,
                    if stored.is_empty() {
                        "no phone".to_string()
                    } else {
                        stored.join(", ")
                    }
                ),
            );
        }
    }
    for (i, email) in asked.emails.unwrap_or_default().iter().enumerate() {
        if !got
            .emails
            .iter()
            .any(|e| e.address.eq_ignore_ascii_case(&email.address))
        {
            warn(
                vec![
                    "input".into(),
                    "emails".into(),
                    i.to_string(),
                    "address".into(),
                ],
                format!("{provider} did not store {}", email.address),
            );
        }
    }
    let held = [
        got.company.as_deref(),
        got.notes.as_deref(),
        got.stage.as_deref(),
    ];
    for ((name, wanted), held) in asked.texts.iter().zip(held) {
        if let Some(wanted) = wanted {
            if held.map(str::trim) != Some(wanted.trim()) {
                warn(
                    vec!["input".into(), name.to_string()],
                    format!("{provider} did not store `{name}` as given"),
                );
            }
        }
    }
    // A key set to null asks for its removal; the others must be there, with their value
    // (providers that keep strings only, like Mainbrainer, count as the same text).
    for (key, wanted) in asked.custom_fields.into_iter().flatten() {
        let held = got.custom_fields.get(key);
        let same = match (wanted, held) {
            (Value::Null, held) => held.is_none_or(Value::is_null),
            (wanted, Some(held)) => wanted == held || as_text(wanted) == as_text(held),
            (_, None) => false,
        };
        if !same {
            warn(
                vec!["input".into(), "customFields".into(), key.clone()],
                format!("{provider} did not store the custom field `{key}` as given"),
            );
        }
    }
    for tag in asked.tags.unwrap_or_default() {
        if !got.tags.contains(tag) {
            warn(
                vec!["input".into(), "tags".into()],
                format!("{provider} did not store the tag `{tag}`"),
            );
        }
    }
    warnings
}

/// A JSON value as the text a string-only store would keep.
fn as_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// An id a provider cannot have (a MaiAgent id that is not a UUID, a Mainbrainer id that is
/// not a number) is the caller's mistake, refused before any call.
fn check_native_id(provider: &dyn Provider, id: &GlobalId) -> Result<(), WriteError> {
    if provider.accepts_native_id(&id.native_id) {
        Ok(())
    } else {
        Err(WriteError::User(vec![UserError::new(
            &["id"],
            "INVALID_ID",
            format!("`{id}` is not a {} contact id", id.provider.display_name()),
        )]))
    }
}
