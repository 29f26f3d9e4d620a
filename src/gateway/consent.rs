//! The do-not-contact registry as readers see it: `Contact.consent.doNotContact`,
//! `isDoNotContact` and `doNotContactEntries`. A request's registry lookups go through its own
//! `DataLoader` (made where its contact loader is), so however many contacts a request shows,
//! their phones and emails are looked up in one store query.

use super::cache::Reads;
use super::outbox::{error_from_kind, status_of};
use super::writes::{DoNotContactResult, DoNotContactStatus};
use super::Gateway;
use crate::contact::{Contact, ProviderId};
use crate::store::dnc::{Entry, EntryFilter, Position, Propagation};
use crate::store::{Store, StoreError};
use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, TimeZone, Utc};
use std::collections::HashMap;
use std::sync::Arc;
use tracing::Instrument;

/// A key of the registry: an E.164 phone or a lower-cased email.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RegistryKey {
    Phone(String),
    Email(String),
}

/// The registry keys of a contact: its phones that read as E.164, its emails lower-cased.
pub fn keys_of(contact: &Contact) -> Vec<RegistryKey> {
    let phones = contact
        .phones
        .iter()
        .filter_map(|p| p.e164.clone())
        .map(RegistryKey::Phone);
    let emails = contact
        .emails
        .iter()
        .map(|e| RegistryKey::Email(e.address.trim().to_lowercase()));
    phones.chain(emails).collect()
}

/// Looks registry keys up, a request's worth at a time.
pub struct RegistryLoader {
    store: Option<Store>,
}

/// A request's registry loader; its batches run in the request's span, noting its reads. It
/// remembers what it found for the request, so keys `prefetch`ed for a page of contacts are
/// not read again.
pub fn for_request(gateway: &Gateway) -> DataLoader<RegistryLoader, HashMapCache> {
    let span = tracing::Span::current();
    let reads = Reads::current();
    let loader = RegistryLoader {
        store: gateway.store.clone(),
    };
    DataLoader::with_cache(
        loader,
        move |batch| tokio::spawn(Reads::scope(reads.clone(), batch).instrument(span.clone())),
        HashMapCache::default(),
    )
}

/// A request's registry loader, as resolvers find it among the request's data.
pub type RequestRegistry = DataLoader<RegistryLoader, HashMapCache>;

impl Loader<RegistryKey> for RegistryLoader {
    /// Whether the key is in the registry (every key asked gets an answer, so each is
    /// remembered).
    type Value = bool;
    type Error = Arc<StoreError>;

    async fn load(&self, keys: &[RegistryKey]) -> Result<HashMap<RegistryKey, bool>, Self::Error> {
        let Some(store) = &self.store else {
            return Ok(keys.iter().map(|key| (key.clone(), false)).collect());
        };
        let (mut phones, mut emails) = (Vec::new(), Vec::new());
        for key in keys {
            match key {
                RegistryKey::Phone(p) => phones.push(p.clone()),
                RegistryKey::Email(e) => emails.push(e.clone()),
            }
        }
        // The version before the registry itself: a change committed after this read bumps it.
        let version = store.registry_version();
        Reads::note(|reads| reads.registry(version));
        let found = store.registered(&phones, &emails).await.map_err(Arc::new)?;
        Ok(keys
            .iter()
            .map(|key| {
                let registered = match key {
                    RegistryKey::Phone(p) => found.phones.contains(p),
                    RegistryKey::Email(e) => found.emails.contains(e),
                };
                (key.clone(), registered)
            })
            .collect())
    }
}

/// Whether any of `keys` is in the registry.
pub async fn any_registered(
    loader: &RequestRegistry,
    keys: Vec<RegistryKey>,
) -> Result<bool, Arc<StoreError>> {
    if keys.is_empty() {
        return Ok(false);
    }
    Ok(loader.load_many(keys).await?.into_values().any(|hit| hit))
}

/// Looks up the keys of every contact of a page at once, before their fields resolve: the
/// `DataLoader` alone would batch by timing, and a page resolved over several scheduler turns
/// would take several queries. A failure is left for each contact's own lookup to report.
pub async fn prefetch<'a>(loader: &RequestRegistry, contacts: impl Iterator<Item = &'a Contact>) {
    let keys: Vec<RegistryKey> = contacts.flat_map(keys_of).collect();
    if !keys.is_empty() {
        let _ = loader.load_many(keys).await;
    }
}

/// An entry of the registry, with where each provider's propagation stands.
pub struct DoNotContactEntry {
    pub phone: Option<String>,
    pub email: Option<String>,
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Set once the entry is removed from the registry.
    pub removed_at: Option<DateTime<Utc>>,
    /// One per provider the entry was propagated to, in `ProviderId` order.
    pub results: Vec<DoNotContactResult>,
}

/// A page of `doNotContactEntries`.
pub struct EntriesPage {
    /// Each entry with its cursor.
    pub entries: Vec<(String, DoNotContactEntry)>,
    pub has_next_page: bool,
    pub end_cursor: Option<String>,
    /// When asked for.
    pub total_count: Option<u64>,
}

fn time(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// A stored propagation as a result.
pub fn result_of(propagation: &Propagation) -> DoNotContactResult {
    let status = status_of(propagation);
    let message = propagation.message.clone().unwrap_or_else(|| match status {
        DoNotContactStatus::Pending => format!(
            "not applied yet: the gateway is sending it to {}",
            propagation.provider.display_name()
        ),
        _ => String::new(),
    });
    DoNotContactResult {
        provider: propagation.provider,
        status,
        error: propagation
            .error_code
            .as_deref()
            .filter(|_| status != DoNotContactStatus::Applied)
            .map(|kind| error_from_kind(propagation.provider, kind, &message)),
        message,
        attempts: propagation.attempts.max(0) as u64,
        next_attempt_at: (status == DoNotContactStatus::Pending)
            .then(|| time(propagation.next_attempt_ms)),
    }
}

/// A cursor of `doNotContactEntries`: the entry's place in the registry's order.
pub fn encode_cursor(position: &Position) -> String {
    URL_SAFE_NO_PAD.encode(format!("dnc:{}:{}", position.created_ms, position.id))
}

/// `None` when `cursor` is not one `encode_cursor` made.
pub fn decode_cursor(cursor: &str) -> Option<Position> {
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(cursor.trim()).ok()?).ok()?;
    let (created_ms, id) = text.strip_prefix("dnc:")?.split_once(':')?;
    Some(Position {
        created_ms: created_ms.parse().ok()?,
        id: id.to_string(),
    })
}

impl Gateway {
    /// The store, or why there is none.
    pub(crate) fn registry_store(&self) -> Result<&Store, String> {
        self.store
            .as_ref()
            .ok_or_else(|| "this gateway runs without a store".to_string())
    }

    /// Entries with their propagations (one query for all of them).
    pub(crate) async fn entry_views(
        &self,
        store: &Store,
        entries: Vec<Entry>,
    ) -> Result<Vec<DoNotContactEntry>, StoreError> {
        let ids: Vec<String> = entries.iter().map(|e| e.id.clone()).collect();
        let mut by_entry: HashMap<String, Vec<DoNotContactResult>> = HashMap::new();
        for propagation in store.dnc_propagations(&ids).await? {
            by_entry
                .entry(propagation.entry_id.clone())
                .or_default()
                .push(result_of(&propagation));
        }
        Ok(entries
            .into_iter()
            .map(|entry| {
                let mut results = by_entry.remove(&entry.id).unwrap_or_default();
                results.sort_by_key(|r| r.provider);
                DoNotContactEntry {
                    phone: entry.phone,
                    email: entry.email,
                    reason: entry.reason,
                    created_at: time(entry.created_ms),
                    removed_at: entry.removed_ms.map(time),
                    results,
                }
            })
            .collect())
    }

    /// Live entries holding every key `filter` gives, oldest first: `first` after `after`.
    pub async fn do_not_contact_entries(
        &self,
        filter: EntryFilter,
        first: u64,
        after: Option<Position>,
        want_total: bool,
    ) -> Result<EntriesPage, String> {
        let store = self.registry_store()?;
        let version = store.registry_version();
        Reads::note(|reads| reads.registry(version));
        // `first: 0` reads no entry and says there is no next page, as `contacts` does.
        let mut entries = if first == 0 {
            Vec::new()
        } else {
            store
                .dnc_entries(&filter, after.as_ref(), first + 1)
                .await
                .map_err(|e| e.to_string())?
        };
        let has_next_page = entries.len() as u64 > first;
        entries.truncate(first as usize);
        let cursors: Vec<String> = entries
            .iter()
            .map(|e| encode_cursor(&e.position()))
            .collect();
        let total_count = if want_total {
            Some(
                store
                    .count_dnc_entries(&filter)
                    .await
                    .map_err(|e| e.to_string())?,
            )
        } else {
            None
        };
        let views = self
            .entry_views(store, entries)
            .await
            .map_err(|e| e.to_string())?;
        Ok(EntriesPage {
            end_cursor: cursors.last().cloned(),
            entries: cursors.into_iter().zip(views).collect(),
            has_next_page,
            total_count,
        })
    }

    /// The providers a do-not-contact request concerns: those named, else every enabled one,
    /// in `ProviderId` order.
    pub(crate) fn dnc_providers(&self, providers: Option<Vec<ProviderId>>) -> Vec<ProviderId> {
        let mut ids = match providers {
            Some(ids) => ids,
            None => ProviderId::ALL
                .into_iter()
                .filter(|id| self.registry.get(*id).is_some())
                .collect(),
        };
        ids.sort();
        ids.dedup();
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CacheConfig;
    use crate::contact::{Email, Phone};
    use crate::store::testing;
    use crate::write::{ContactPatch, Patch};

    /// A patch that opts in without giving the phones or emails is checked against the
    /// contact's current ones (the update path; only Mainbrainer holds opt-ins today, and it
    /// cannot be read, so this is not reachable through HTTP yet).
    #[tokio::test]
    async fn an_opt_in_is_checked_against_the_current_phones_and_emails() {
        let (store, _dir) = testing::sqlite().await;
        store
            .add_dnc_entry(Some("+14155550100"), None, None)
            .await
            .unwrap();
        store
            .add_dnc_entry(None, Some("no@example.com"), None)
            .await
            .unwrap();
        let gateway = Gateway::new(Default::default(), &CacheConfig::default()).with_store(store);
        let mut current = Contact::new(ProviderId::Consuelo, "c1", serde_json::Value::Null);
        current.phones = vec![Phone::only("+14155550100".into(), None)];
        current.emails = vec![Email::only("No@Example.com".into())];
        let opt_in = ContactPatch {
            sms_opt_in: Patch::Set(true),
            email_opt_in: Patch::Set(true),
            ..ContactPatch::default()
        };
        let codes = |errors: Vec<crate::write::UserError>| -> Vec<(Vec<String>, &str)> {
            errors
                .into_iter()
                .map(|e| (e.field, e.code.as_str()))
                .collect()
        };
        let errors = gateway
            .registered_opt_ins(&opt_in, Some(&current), &["input"])
            .await
            .unwrap();
        assert_eq!(
            codes(errors),
            [
                (vec!["input".into(), "smsOptIn".into()], "DO_NOT_CONTACT"),
                (vec!["input".into(), "emailOptIn".into()], "DO_NOT_CONTACT")
            ]
        );
        // New phones and emails given replace the current ones; opting out is never refused.
        let replacing = ContactPatch {
            phones: Patch::Set(vec![Phone::only("+14155550101".into(), None)]),
            emails: Patch::Clear,
            ..opt_in.clone()
        };
        assert!(gateway
            .registered_opt_ins(&replacing, Some(&current), &["input"])
            .await
            .unwrap()
            .is_empty());
        let opt_out = ContactPatch {
            sms_opt_in: Patch::Set(false),
            ..ContactPatch::default()
        };
        assert!(gateway
            .registered_opt_ins(&opt_out, Some(&current), &["input"])
            .await
            .unwrap()
            .is_empty());
    }

    #[test]
    fn cursors_round_trip_and_strangers_are_refused() {
        let position = Position {
            created_ms: 1_700_000_000_123,
            id: "0a1b".into(),
        };
        assert_eq!(decode_cursor(&encode_cursor(&position)), Some(position));
        assert_eq!(decode_cursor("nope"), None);
        assert_eq!(decode_cursor(&URL_SAFE_NO_PAD.encode("dnc:x:1")), None);
    }
}
