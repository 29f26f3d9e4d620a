//! The read cache (moka): contact records by global id and list windows by (provider, query,
//! window). A write bumps its provider's generation, which retires every list window of that
//! provider at once (their keys carry the generation), and drops the record it touched.

use crate::config::CacheConfig;
use crate::contact::{Contact, GlobalId, ProviderId};
use crate::providers::{ListQuery, ProviderError};
use moka::future::Cache;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// One lookup's outcome: the contact, `None` when the provider has no such contact, or why
/// the provider failed.
pub type Lookup = Result<Option<Arc<Contact>>, ProviderError>;

/// A window of a provider's listing, shared between the cache and the requests reading it.
#[derive(Debug)]
pub struct Window {
    pub contacts: Vec<Arc<Contact>>,
    pub exhausted: bool,
    pub total: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WindowKey {
    pub provider: ProviderId,
    pub query: ListQuery,
    pub offset: u64,
    pub limit: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    Contact(GlobalId),
    Window { key: WindowKey, generation: u64 },
}

#[derive(Clone)]
enum Entry {
    Contact(Arc<Contact>),
    Window(Arc<Window>),
}

pub struct ReadCache {
    entries: Cache<Key, Entry>,
    generations: [AtomicU64; ProviderId::ALL.len()],
}

/// Taken before an upstream read; a write to the same provider since makes the result too
/// old to cache.
#[derive(Clone, Copy)]
pub struct Ticket {
    provider: ProviderId,
    generation: u64,
}

impl ReadCache {
    pub fn new(config: &CacheConfig) -> Self {
        ReadCache {
            entries: Cache::builder()
                .max_capacity(config.max_entries)
                .time_to_live(Duration::from_secs(config.ttl_secs))
                .build(),
            generations: Default::default(),
        }
    }

    pub fn ticket(&self, provider: ProviderId) -> Ticket {
        Ticket {
            provider,
            generation: self.generations[provider.index()].load(Ordering::Acquire),
        }
    }

    fn still_current(&self, ticket: Ticket) -> bool {
        self.generations[ticket.provider.index()].load(Ordering::Acquire) == ticket.generation
    }

    /// The cached contact, else `load`'s answer. Concurrent misses for one id, from any
    /// request, share one `load` (moka's single-flight `try_get_with`). The answer is cached
    /// only when it is a contact and no write to its provider came while it was loading.
    pub async fn contact_or_load<F>(&self, id: &GlobalId, load: F) -> Lookup
    where
        F: Future<Output = Lookup>,
    {
        let ticket = self.ticket(id.provider);
        let loaded = self
            .entries
            .try_get_with(Key::Contact(id.clone()), async {
                match load.await {
                    Ok(Some(contact)) if self.still_current(ticket) => Ok(Entry::Contact(contact)),
                    // Shared with the other waiters, but not kept.
                    uncached => Err(uncached),
                }
            })
            .await;
        match loaded {
            Ok(Entry::Contact(contact)) => Ok(Some(contact)),
            Ok(Entry::Window(_)) => Ok(None),
            Err(uncached) => (*uncached).clone(),
        }
    }

    /// Caches a contact read under `ticket`, unless a write to its provider came since.
    pub async fn put_contact(&self, ticket: Ticket, contact: Arc<Contact>) {
        if self.still_current(ticket) {
            let key = Key::Contact(contact.global_id());
            self.entries.insert(key, Entry::Contact(contact)).await;
        }
    }

    pub async fn window(&self, key: &WindowKey) -> Option<Arc<Window>> {
        let generation = self.ticket(key.provider).generation;
        let key = Key::Window {
            key: key.clone(),
            generation,
        };
        match self.entries.get(&key).await {
            Some(Entry::Window(w)) => Some(w),
            _ => None,
        }
    }

    /// Caches a window read under `ticket` (and each contact in it, for later lookups).
    pub async fn put_window(&self, ticket: Ticket, key: WindowKey, window: Arc<Window>) {
        if !self.still_current(ticket) {
            return;
        }
        for contact in &window.contacts {
            self.put_contact(ticket, contact.clone()).await;
        }
        let key = Key::Window {
            key,
            generation: ticket.generation,
        };
        self.entries.insert(key, Entry::Window(window)).await;
    }

    /// After a write: the record it touched and every list window of its provider.
    pub async fn invalidate(&self, id: &GlobalId) {
        self.invalidate_provider(id.provider);
        self.invalidate_contact(id).await;
    }

    /// Drops one cached contact (its provider's list windows stay).
    pub async fn invalidate_contact(&self, id: &GlobalId) {
        self.entries.invalidate(&Key::Contact(id.clone())).await;
    }

    /// After a write whose record id is not known (e.g. an upsert that may have matched).
    pub fn invalidate_provider(&self, provider: ProviderId) {
        self.generations[provider.index()].fetch_add(1, Ordering::AcqRel);
    }
}
