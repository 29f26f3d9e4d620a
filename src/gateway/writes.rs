//! Mutations, provider-independent: validate first (no upstream call on bad input), check
//! the capability, call the adapter, turn provider refusals into user errors, and invalidate
//! what the write touched so the next read shows it.

use super::filter::Filter;
use super::validate;
use super::Gateway;
use crate::change::ChangeKind;
use crate::contact::{shown, Contact, ContactSource, GlobalId, ProviderId};
use crate::providers::{Capability, Provider, ProviderError};
use crate::write::{
    ContactDraft, ContactPatch, DoNotContact, Field, NewContact, Patch, UserError, UserErrorCode,
};
use futures::future::join_all;
use std::collections::HashMap;
use std::sync::{Arc, Weak};

/// What a write holds while it runs, so writes that would race take turns (within this
/// process; several gateways can still race until the store holds these claims).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WriteKey {
    /// One contact: Whautomate and MagicBlocks updates are read-merge-write (their PUT
    /// replaces the record), so two concurrent patches would otherwise lose one (NOTES 3.5.1).
    Contact(GlobalId),
    /// A match key of a provider (normalized email or E.164): two upserts finding no match for
    /// the same new email would otherwise both create.
    Match(ProviderId, String),
}

impl WriteKey {
    /// Its name among the store's claims.
    fn claim_name(&self) -> String {
        match self {
            WriteKey::Contact(id) => format!("contact:{id}"),
            WriteKey::Match(provider, key) => format!("match:{provider}:{key}"),
        }
    }
}

/// One writer at a time per `WriteKey`.
#[derive(Default)]
pub struct WriteLocks(std::sync::Mutex<HashMap<WriteKey, Weak<tokio::sync::Mutex<()>>>>);

impl WriteLocks {
    pub async fn lock(&self, id: &WriteKey) -> tokio::sync::OwnedMutexGuard<()> {
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
    /// The store failed, or a claim could not be had in time: nothing was written.
    Store(String),
}

/// How long a claim on a match key lasts unless released (a process that dies mid-write
/// releases it so), and how long a writer waits for another's.
const CLAIM_LEASE: std::time::Duration = std::time::Duration::from_secs(60);
const CLAIM_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

impl From<Vec<UserError>> for WriteError {
    fn from(errors: Vec<UserError>) -> Self {
        WriteError::User(errors)
    }
}

/// A provider's answer to a write: 404 and 400/422 are the caller's to fix, the rest is the
/// provider failing.
fn refused(error: ProviderError, id_path: &[&str], refusal_code: UserErrorCode) -> WriteError {
    match error {
        ProviderError::NotFound { provider, detail } => {
            // Keep what the provider said (Mainbrainer says which contact it created instead).
            let detail = detail.map(|d| format!(": {d}")).unwrap_or_default();
            WriteError::User(vec![UserError::new(
                id_path,
                UserErrorCode::NotFound,
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

/// What a tag change answers: the change was applied; the contact as read back after it, or
/// none, with a warning, when that read failed.
pub struct TagsChanged {
    pub contact: Option<Arc<Contact>>,
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
    /// The last failure, when `status` is `Failed`, `Pending` or `Unsupported`.
    pub error: Option<ProviderError>,
    /// Calls made to the provider so far.
    pub attempts: u64,
    /// When the outbox sends it again (`Pending` only).
    pub next_attempt_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// What became of a do-not-contact request at one provider.
#[derive(async_graphql::Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DoNotContactStatus {
    /// The provider's do-not-contact mechanism took the request.
    Applied,
    /// The provider documents no mechanism for this request (the gateway's registry still
    /// covers its contacts).
    Unsupported,
    /// The provider refused it for good (a 4xx); `code` says how. Adding the entry again
    /// tries again.
    Failed,
    /// Not applied yet (a timeout, a connection failure, a 5xx or a 429): the gateway's
    /// outbox sends it again, with backoff, until the provider takes it.
    Pending,
}

/// A do-not-contact entry and what a request did with it.
pub struct Registration {
    pub entry: super::consent::DoNotContactEntry,
    /// One per provider the request concerned, in `ProviderId` order.
    pub results: Vec<DoNotContactResult>,
}

impl Gateway {
    /// What a native upsert (Mainbrainer's, which does not say whether it created) did: a
    /// record the gateway's ledger holds from this write only is new to the gateway.
    pub(crate) async fn upserted_kind(&self, contact: &Contact) -> ChangeKind {
        let Some(store) = &self.store else {
            return ChangeKind::Updated;
        };
        match store
            .ledger_record(contact.provider, &contact.native_id)
            .await
        {
            Ok(Some(held)) if held.created_ms == held.updated_ms => ChangeKind::Created,
            _ => ChangeKind::Updated,
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
            .registry
            .capable(id, Capability::Create)
            .map_err(WriteError::Provider)?;
        let input = self.new_contact(provider.as_ref(), draft, &["input"])?;
        self.refuse_registered_opt_ins(&input.as_patch(), None, &["input"])
            .await?;
        self.create_validated(provider.as_ref(), &input).await
    }

    async fn create_validated(
        &self,
        provider: &dyn Provider,
        input: &NewContact,
    ) -> Result<Written, WriteError> {
        let result = provider.create(input).await;
        // Even a failed create may have been applied upstream: never serve a stale list.
        self.cache.invalidate_provider(provider.id()).await;
        let contact = Arc::new(
            result.map_err(|e| refused(e, &["input"], UserErrorCode::ProviderValidation))?,
        );
        self.cache.invalidate(&contact.global_id()).await;
        self.publish_contact(ChangeKind::Created, &contact).await;
        let warnings = input.as_patch().unstored(&contact);
        Ok(Written { contact, warnings })
    }

    pub async fn update_contact(
        &self,
        id: &GlobalId,
        draft: ContactDraft,
    ) -> Result<Written, WriteError> {
        let provider = self
            .registry
            .capable(id.provider, Capability::Update)
            .map_err(WriteError::Provider)?;
        check_native_id(provider.as_ref(), id)?;
        let patch = validate::patch(
            draft,
            &provider.write_fields(),
            id.provider.display_name(),
            provider.region(),
            &["input"],
        )?;
        let current = self.current_for_opt_ins(id, &patch).await?;
        self.refuse_registered_opt_ins(&patch, current.as_deref(), &["input"])
            .await?;
        self.update_validated(provider.as_ref(), id, &patch).await
    }

    async fn update_validated(
        &self,
        provider: &dyn Provider,
        id: &GlobalId,
        patch: &ContactPatch,
    ) -> Result<Written, WriteError> {
        let _one_writer = self.write_locks.lock(&WriteKey::Contact(id.clone())).await;
        self.keeps_a_name(provider, id, patch).await?;
        let result = provider.update(&id.native_id, patch).await;
        self.cache.invalidate(id).await;
        let contact =
            Arc::new(result.map_err(|e| refused(e, &["id"], UserErrorCode::ProviderValidation))?);
        self.publish_contact(ChangeKind::Updated, &contact).await;
        let warnings = patch.unstored(&contact);
        Ok(Written { contact, warnings })
    }

    /// A patch that clears name parts must leave a name where the provider requires one. The
    /// gateway checks it against the current name before any write, for every provider alike
    /// (MaiAgent would otherwise be sent `name: ""`, Whautomate a PUT without a name).
    async fn keeps_a_name(
        &self,
        provider: &dyn Provider,
        id: &GlobalId,
        patch: &ContactPatch,
    ) -> Result<(), WriteError> {
        let parts = [
            (&patch.first_name, Field::FirstName),
            (&patch.middle_name, Field::MiddleName),
            (&patch.last_name, Field::LastName),
        ];
        let Some(cleared) = parts.iter().find(|(p, _)| matches!(p, Patch::Clear)) else {
            return Ok(());
        };
        let sets_one = parts.iter().any(|(p, _)| matches!(p, Patch::Set(_)));
        if !provider.write_fields().requires_name || sets_one {
            return Ok(());
        }
        // A missing contact is the update's to report.
        let Some(current) = self.lookup(id, true).await.map_err(WriteError::Provider)? else {
            return Ok(());
        };
        let name = &current.name;
        let kept = |patch: &Patch<String>, part: &Option<String>| patch.is_keep() && part.is_some();
        if kept(&patch.first_name, &name.first)
            || kept(&patch.middle_name, &name.middle)
            || kept(&patch.last_name, &name.last)
        {
            return Ok(());
        }
        let field = cleared.1.input_name();
        Err(WriteError::User(vec![UserError::new(
            &["input", field],
            UserErrorCode::Required,
            format!(
                "{} requires a name: clearing `{field}` would leave the contact without one",
                id.provider.display_name()
            ),
        )]))
    }

    pub async fn delete_contact(&self, id: &GlobalId) -> Result<(), WriteError> {
        let provider = self
            .registry
            .capable(id.provider, Capability::Delete)
            .map_err(WriteError::Provider)?;
        check_native_id(provider.as_ref(), id)?;
        let _one_writer = self.write_locks.lock(&WriteKey::Contact(id.clone())).await;
        let result = provider.delete(&id.native_id).await;
        self.cache.invalidate(id).await;
        result.map_err(|e| refused(e, &["id"], UserErrorCode::CannotDelete))?;
        self.publish_deleted(id).await;
        Ok(())
    }

    /// Adds (`add`) or removes tags; returns the contact as the provider now holds it. Once the
    /// provider took the change it is the answer: a read-back that fails or finds nothing
    /// leaves the contact out and says so in a warning (`READ_BACK_FAILED`), never an error.
    pub async fn change_tags(
        &self,
        id: &GlobalId,
        tags: Vec<String>,
        add: bool,
    ) -> Result<TagsChanged, WriteError> {
        let provider = self
            .registry
            .capable(id.provider, Capability::Tags)
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
                UserErrorCode::Required,
                "give at least one tag",
            )]));
        };
        let _one_writer = self.write_locks.lock(&WriteKey::Contact(id.clone())).await;
        let result = if add {
            provider.add_tags(&id.native_id, &tags).await
        } else {
            provider.remove_tags(&id.native_id, &tags).await
        };
        self.cache.invalidate(id).await;
        result.map_err(|e| refused(e, &["id"], UserErrorCode::ProviderValidation))?;
        // Applied. The payload is the whole contact, fresh from the provider, when it can be
        // read: a failure of that read is not the write's.
        let why = match self.lookup(id, true).await {
            Ok(Some(contact)) => {
                self.publish_contact(ChangeKind::Updated, &contact).await;
                return Ok(TagsChanged {
                    contact: Some(contact),
                    warnings: Vec::new(),
                });
            }
            Ok(None) => "it was not found".to_string(),
            Err(e) => e.to_string(),
        };
        self.publish_unread(ChangeKind::Updated, id).await;
        let provider = id.provider.display_name();
        Ok(TagsChanged {
            contact: None,
            warnings: vec![UserError::new(
                &[],
                UserErrorCode::ReadBackFailed,
                format!(
                    "{provider} applied the tag change, but reading the contact back for this \
                     answer failed ({why}): read it with `contact(id:)`"
                ),
            )],
        })
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
            .registry
            .capable(id, Capability::Upsert)
            .map_err(WriteError::Provider)?;
        let input = self.new_contact(provider.as_ref(), draft.clone(), &["input"])?;
        self.refuse_registered_opt_ins(&input.as_patch(), None, &["input"])
            .await?;
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
                UserErrorCode::Required,
                "an upsert matches by email or phone: give one of those it matches by",
            )]));
        }
        // Upserts sharing an email or phone take turns, so the later one finds what the
        // earlier created. Keys are taken in one order: two upserts never wait crosswise.
        let mut keys: Vec<WriteKey> = [email.clone(), phone.clone()]
            .into_iter()
            .flatten()
            .map(|key| WriteKey::Match(id, key))
            .collect();
        keys.sort();
        let mut _turns = Vec::with_capacity(keys.len());
        for key in &keys {
            _turns.push(self.write_locks.lock(key).await);
        }
        // Across processes sharing the store, the same turns are claims in it.
        let claimed = self.claim_all(&keys).await?;
        let outcome = async {
            if provider.capabilities().native_upsert {
                // A native upsert may create (no consent may be assumed) or update (a default
                // would overwrite the match's consent): the caller states the opt-ins it holds.
                let fields = provider.write_fields();
                let missing: Vec<&str> = [
                    (
                        fields.email_opt_in > 0 && input.email_opt_in.is_none(),
                        "emailOptIn",
                    ),
                    (
                        fields.sms_opt_in > 0 && input.sms_opt_in.is_none(),
                        "smsOptIn",
                    ),
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
                            UserError::new(&["input", name], UserErrorCode::Required, message)
                        })
                        .collect();
                    return Err(WriteError::User(errors));
                }
                let result = provider.upsert(&input).await;
                self.cache.invalidate_provider(id).await;
                let contact = Arc::new(
                    result.map_err(|e| refused(e, &["input"], UserErrorCode::ProviderValidation))?,
                );
                self.cache.invalidate(&contact.global_id()).await;
                self.publish_contact(self.upserted_kind(&contact).await, &contact)
                    .await;
                let warnings = input.as_patch().unstored(&contact);
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
                        UserErrorCode::AmbiguousMatch,
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
                    // The match's own phones and emails, where the input gives none.
                    self.refuse_registered_opt_ins(&patch, Some(&existing), &["input"])
                        .await?;
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
        .await;
        self.release_all(&claimed).await;
        outcome
    }

    /// Claims each key in the store (in order), waiting for other processes' claims to end.
    async fn claim_all(&self, keys: &[WriteKey]) -> Result<Vec<String>, WriteError> {
        let Some(store) = &self.store else {
            return Ok(Vec::new());
        };
        let mut claimed = Vec::new();
        for key in keys {
            let name = key.claim_name();
            match store
                .claim(&name, &self.process_id, CLAIM_LEASE, CLAIM_WAIT)
                .await
            {
                Ok(true) => claimed.push(name),
                outcome => {
                    self.release_all(&claimed).await;
                    let why = match outcome {
                        Err(e) => e.to_string(),
                        _ => format!("another gateway has held `{name}` for over {CLAIM_WAIT:?}"),
                    };
                    return Err(WriteError::Store(why));
                }
            }
        }
        Ok(claimed)
    }

    async fn release_all(&self, claimed: &[String]) {
        if let Some(store) = &self.store {
            for name in claimed {
                if let Err(e) = store.release(name, &self.process_id).await {
                    // Its lease runs out on its own.
                    tracing::warn!(claim = %name, error = %e, "cannot release a claim");
                }
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

    /// What the registry says against a write that sets `smsOptIn` (`emailOptIn`) to true:
    /// one `DO_NOT_CONTACT` userError per registered phone (email) it would opt in. The phones
    /// and emails are those the write gives, else `current`'s. `Err`: the store failed.
    pub async fn registered_opt_ins(
        &self,
        patch: &ContactPatch,
        current: Option<&Contact>,
        prefix: &[&str],
    ) -> Result<Vec<UserError>, String> {
        let Some(store) = &self.store else {
            return Ok(Vec::new());
        };
        let sms = matches!(patch.sms_opt_in, Patch::Set(true));
        let email = matches!(patch.email_opt_in, Patch::Set(true));
        let mut phones: Vec<String> = match (&patch.phones, current) {
            _ if !sms => Vec::new(),
            (Patch::Set(given), _) => given.iter().filter_map(|p| p.e164.clone()).collect(),
            (Patch::Keep, Some(c)) => c.phones.iter().filter_map(|p| p.e164.clone()).collect(),
            _ => Vec::new(),
        };
        let mut emails: Vec<String> = match (&patch.emails, current) {
            _ if !email => Vec::new(),
            (Patch::Set(given), _) => given
                .iter()
                .map(|e| e.address.trim().to_lowercase())
                .collect(),
            (Patch::Keep, Some(c)) => c
                .emails
                .iter()
                .map(|e| e.address.trim().to_lowercase())
                .collect(),
            _ => Vec::new(),
        };
        phones.sort();
        phones.dedup();
        emails.sort();
        emails.dedup();
        if phones.is_empty() && emails.is_empty() {
            return Ok(Vec::new());
        }
        let found = store
            .registered(&phones, &emails)
            .await
            .map_err(|e| e.to_string())?;
        let path =
            |field: &'static str| -> Vec<&str> { prefix.iter().copied().chain([field]).collect() };
        let refused = |key: &String, field| {
            UserError::new(
                &path(field),
                UserErrorCode::DoNotContact,
                format!(
                    "{key} is on the do-not-contact list: `{field}` cannot be set to true for it"
                ),
            )
        };
        Ok(phones
            .iter()
            .filter(|p| found.phones.contains(*p))
            .map(|p| refused(p, "smsOptIn"))
            .chain(
                emails
                    .iter()
                    .filter(|e| found.emails.contains(*e))
                    .map(|e| refused(e, "emailOptIn")),
            )
            .collect())
    }

    /// `registered_opt_ins` as a write's refusal.
    async fn refuse_registered_opt_ins(
        &self,
        patch: &ContactPatch,
        current: Option<&Contact>,
        prefix: &[&str],
    ) -> Result<(), WriteError> {
        match self.registered_opt_ins(patch, current, prefix).await {
            Ok(errors) if errors.is_empty() => Ok(()),
            Ok(errors) => Err(WriteError::User(errors)),
            Err(why) => Err(WriteError::Store(why)),
        }
    }

    /// The contact as it stands, when `patch` opts in without giving the phones (emails) to
    /// check against the registry. A provider that cannot be read (Mainbrainer) cannot be
    /// checked beyond its ledger copy's phones (emails): the caller is asked to give them.
    async fn current_for_opt_ins(
        &self,
        id: &GlobalId,
        patch: &ContactPatch,
    ) -> Result<Option<Arc<Contact>>, WriteError> {
        let unknown = [
            (
                &patch.sms_opt_in,
                patch.phones.is_keep(),
                "smsOptIn",
                "phones",
            ),
            (
                &patch.email_opt_in,
                patch.emails.is_keep(),
                "emailOptIn",
                "emails",
            ),
        ]
        .into_iter()
        .filter(|(opt_in, keep, _, _)| matches!(opt_in, Patch::Set(true)) && *keep)
        .map(|(_, _, opt_in, list)| (opt_in, list))
        .collect::<Vec<_>>();
        if unknown.is_empty() || self.store.is_none() {
            return Ok(None);
        }
        let required = |unknown: Vec<(&str, &str)>, in_ledger: bool| {
            WriteError::User(
                unknown
                    .into_iter()
                    .map(|(opt_in, list)| {
                        let why = if in_ledger {
                            format!(
                                " and the gateway never wrote {list} for this contact (its \
                                 ledger holds only what the gateway wrote)"
                            )
                        } else {
                            String::new()
                        };
                        UserError::new(
                            &["input", list],
                            UserErrorCode::Required,
                            format!(
                                "{} cannot be read{why}, so the gateway cannot check the \
                                 contact's {list} against the do-not-contact registry: give \
                                 `{list}` with `{opt_in}: true`",
                                id.provider.display_name()
                            ),
                        )
                    })
                    .collect(),
            )
        };
        match self.lookup(id, false).await {
            // The ledger holds only what the gateway wrote: a list it lacks may still be held
            // by the provider, unchecked.
            Ok(Some(found)) if found.source == ContactSource::GatewayLedger => {
                let lacking: Vec<(&str, &str)> = unknown
                    .into_iter()
                    .filter(|(_, list)| match *list {
                        "phones" => found.phones.is_empty(),
                        _ => found.emails.is_empty(),
                    })
                    .collect();
                if lacking.is_empty() {
                    Ok(Some(found))
                } else {
                    Err(required(lacking, true))
                }
            }
            Ok(found) => Ok(found),
            Err(ProviderError::Unsupported { .. }) => Err(required(unknown, false)),
            Err(e) => Err(WriteError::Provider(e)),
        }
    }

    /// Records `request` in the do-not-contact registry (or finds the live entry holding the
    /// same phone and email), then propagates it to each provider concerned, concurrently:
    /// what is not applied yet is sent now unless another holder is sending it. One result
    /// per provider: applied, pending (the outbox sends it again), unsupported or failed.
    pub async fn do_not_contact(
        &self,
        request: &DoNotContact,
        providers: Option<Vec<ProviderId>>,
    ) -> Result<Registration, WriteError> {
        let store = self.registry_store().map_err(WriteError::Store)?;
        let ids = self.dnc_providers(providers);
        let (phone, email) = registry_keys(request);
        let (entry, made) = store
            .add_dnc_entry(
                phone.as_deref(),
                email.as_deref(),
                request.reason.as_deref(),
            )
            .await
            .map_err(|e| WriteError::Store(e.to_string()))?;
        if made {
            self.publish_do_not_contact(&entry, true).await;
        }
        let sent = join_all(
            ids.iter()
                .map(|id| self.propagate_inline(store, &entry, *id)),
        )
        .await;
        if let Some(Err(e)) = sent.into_iter().find(Result::is_err) {
            return Err(WriteError::Store(e.to_string()));
        }
        self.registration(store, entry, &ids, |r| r)
            .await
            .map_err(WriteError::Store)
    }

    /// Removes every live entry holding the phone or the email from the gateway's registry.
    /// Providers are not called: none documents a way to undo its own entry, and opting back
    /// in would assume consent; their results say so (`Unsupported`).
    pub async fn remove_from_do_not_contact(
        &self,
        request: &DoNotContact,
        providers: Option<Vec<ProviderId>>,
    ) -> Result<Registration, WriteError> {
        let store = self.registry_store().map_err(WriteError::Store)?;
        let ids = self.dnc_providers(providers);
        let (phone, email) = registry_keys(request);
        let mut removed = store
            .remove_dnc_entries(phone.as_deref(), email.as_deref())
            .await
            .map_err(|e| WriteError::Store(e.to_string()))?;
        for entry in &removed {
            self.publish_do_not_contact(entry, false).await;
        }
        // The entry holding exactly these keys, else the oldest removed.
        let Some(at) = removed
            .iter()
            .position(|e| e.phone == phone && e.email == email)
            .or((!removed.is_empty()).then_some(0))
        else {
            let named = [phone, email].into_iter().flatten().collect::<Vec<_>>();
            return Err(WriteError::User(vec![UserError::new(
                &["input"],
                UserErrorCode::NotFound,
                format!("no do-not-contact entry holds {}", named.join(" or ")),
            )]));
        };
        let entry = removed.swap_remove(at);
        self.registration(store, entry, &ids, |mut r| {
            r.status = DoNotContactStatus::Unsupported;
            r.message = format!(
                "removed from the gateway's registry only: {} documents no way to undo its own \
                 do-not-contact entry, and opting back in would assume consent",
                r.provider.display_name()
            );
            r.error = None;
            r.next_attempt_at = None;
            r
        })
        .await
        .map_err(WriteError::Store)
    }

    /// `entry` as it now stands, with one result per provider of `ids` (those it has no
    /// propagation to are unsupported), each passed through `shown`.
    async fn registration(
        &self,
        store: &crate::store::Store,
        entry: crate::store::dnc::Entry,
        ids: &[ProviderId],
        shown: impl Fn(DoNotContactResult) -> DoNotContactResult,
    ) -> Result<Registration, String> {
        let entry = self
            .entry_views(store, vec![entry])
            .await
            .map_err(|e| e.to_string())?
            .pop()
            .ok_or("the entry vanished from the store")?;
        let results = ids
            .iter()
            .map(|id| {
                let held = entry.results.iter().find(|r| r.provider == *id);
                shown(match held {
                    Some(r) => DoNotContactResult {
                        provider: r.provider,
                        status: r.status,
                        message: r.message.clone(),
                        error: r.error.clone(),
                        attempts: r.attempts,
                        next_attempt_at: r.next_attempt_at,
                    },
                    None => DoNotContactResult {
                        provider: *id,
                        status: DoNotContactStatus::Unsupported,
                        message: format!("{} was not asked", id.display_name()),
                        error: None,
                        attempts: 0,
                        next_attempt_at: None,
                    },
                })
            })
            .collect();
        Ok(Registration { entry, results })
    }
}

/// The registry's keys of a request: the phone as E.164, the email lower-cased.
fn registry_keys(request: &DoNotContact) -> (Option<String>, Option<String>) {
    let phone = request.phone.as_ref().map(|p| p.best().to_string());
    let email = request.email.as_ref().map(|e| e.trim().to_lowercase());
    (phone, email)
}

/// An id a provider cannot have (a MaiAgent id that is not a UUID, a Mainbrainer id that is
/// not a number) is the caller's mistake, refused before any call.
fn check_native_id(provider: &dyn Provider, id: &GlobalId) -> Result<(), WriteError> {
    if provider.accepts_native_id(&id.native_id) {
        Ok(())
    } else {
        Err(WriteError::User(vec![UserError::new(
            &["id"],
            UserErrorCode::InvalidId,
            format!(
                "`{}` is not a {} contact id",
                shown(&id.to_string()),
                id.provider.display_name()
            ),
        )]))
    }
}
