//! The read cache (moka): contact records by global id and list windows by (provider, query,
//! window), each stored under a write stamp.
//!
//! Every write takes the next value of one clock once its provider has answered it, and
//! publishes it as the stamp of its provider (list windows) and of the record it wrote, before
//! the gateway acknowledges the write. A read looks entries up under the stamps current when
//! it starts. What makes a read after a write see it: **an entry is stored under stamp `s`
//! only if it holds an answer to a request sent after every write stamped `s` or lower had
//! been answered** (a write takes its stamp after its answer, so once `s` is taken every write
//! stamped `s` or lower has been answered). A read that starts after a write was acknowledged looks under
//! a stamp at least that write's, so it finds only entries read after the write, or loads.
//! Nothing is needed before a write is sent: a read overlapping it is stored under a stamp
//! lower than the write's, where no read after the write looks.
//!
//! The stamp is part of the key, so nothing is checked and then inserted: an answer obtained
//! before a write is stored under the stamp it was read under, where a read after the write
//! no longer looks, however the insert and the write interleave; a load in flight under an
//! old stamp is not joined by a read under the new one. A hit costs a hash of the id and one
//! atomic load more than a plain lookup, and no lock.
//!
//! A read that must ask the provider (`noCache`) takes a stamp too, before it is sent: what was
//! cached before it retires, here and in the response cache.
//!
//! **What a request read** (`Reads`): while a request runs under `Reads::scope`, every lookup
//! here notes the stamp it looked under (read before the data, as above) and when the entry it
//! returns was fetched; the do-not-contact registry's readers note the registry's version the
//! same way. The response cache keeps that beside a whole answer and serves the answer only
//! while `still_current` says no stamp has moved since, so every invalidation here retires the
//! answers built on what it invalidates, exactly, with no list of answers to walk.
//!
//! **The shared tier** (`shared_cache`, with `[cache] redis_url`) sits behind this one. Its
//! shared versions obey the rule above across processes, and one more order keeps the two
//! tiers together: **a write bumps the shared versions before it takes its local stamp** (and
//! another replica applies it, through `peers`, only after it was published, after the bump).
//! A miss here asks the shared tier after the local stamp was read, so what the shared tier
//! answers as current was read after every write stamped up to that stamp here: it is cached
//! here under that stamp, sound by the same rule. The shared tier's hits fill entries with the
//! shared version their data was read under (`SharedStamp`), and a request's `Reads` note
//! those too (`SharedReads`): an answer is kept in the shared tier only when every read had
//! one, under one epoch; each replica that serves it checks them there. An answer found there
//! is kept here under the clock read before the lookup (`ReadSet::at_most`): any write
//! stamped up to it had bumped the shared versions before the lookup, and any later one
//! stamps past it, so `still_current` compares "not past" rather than "equal" (the same for a
//! stripe's own stamp, which only grows).

use super::peers::{Announcer, Change};
use super::shared_cache::{ContactLookup, Shared, SharedStamp, Version};
use crate::config::CacheConfig;
use crate::contact::{Contact, GlobalId, ProviderId};
use crate::providers::{request_budget, ListQuery, ProviderError};
use moka::future::Cache;
use std::future::Future;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    Contact { id: GlobalId, stamp: u64 },
    Window { key: WindowKey, stamp: u64 },
}

/// A cached answer, with when it was fetched (what a response built on it may not outlive)
/// and the shared version it was read under (`None`: the shared tier was not usable then).
#[derive(Clone)]
enum Entry {
    Contact(Arc<Contact>, Instant, Option<SharedStamp>),
    Window(Arc<Window>, Instant, Option<SharedStamp>),
}

/// An entry lives `ttl_secs` from when its data was fetched: from its insert, or less for
/// one the shared tier had kept a while.
struct UntilStale(Duration);

impl moka::Expiry<Key, Entry> for UntilStale {
    fn expire_after_create(&self, _: &Key, entry: &Entry, _: Instant) -> Option<Duration> {
        let (Entry::Contact(_, fetched, _) | Entry::Window(_, fetched, _)) = entry;
        Some(self.0.saturating_sub(fetched.elapsed()))
    }

    /// Replaced: the new data's age, as a fixed `time_to_live` would restart on an update.
    fn expire_after_update(
        &self,
        key: &Key,
        entry: &Entry,
        updated_at: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        self.expire_after_create(key, entry, updated_at)
    }
}

impl Entry {
    /// Its weight against `[cache] max_bytes`: its estimated size, computed once, when stored.
    fn weight(&self, floor: Option<u64>) -> u32 {
        use super::cache_weight::{contact, weight, window};
        let bytes = match self {
            Entry::Contact(c, ..) => contact(c),
            Entry::Window(w, ..) => window(w),
        };
        weight(bytes, floor)
    }
}

/// Record stamps are kept per stripe of ids (a write to one id also retires the few others
/// hashing to its stripe): 512 KiB, so a write retires about one other cached contact in
/// 65,536.
const RECORD_STRIPES: usize = 1 << 16;

pub struct ReadCache {
    entries: Cache<Key, Entry>,
    /// The last stamp taken by a write.
    clock: AtomicU64,
    /// Per provider, the stamp of its latest write: its list windows are keyed by it.
    lists: [AtomicU64; ProviderId::ALL.len()],
    /// Per stripe of record ids, the stamp of the latest write to a record hashing there.
    records: Box<[AtomicU64]>,
    /// Fixed keys: a record's stripe is the same in every run (a collision costs a miss).
    stripe_hasher: BuildHasherDefault<DefaultHasher>,
    /// Where the writes' invalidations are announced to other replicas (`gateway::peers`),
    /// and the shared tier behind this one (`gateway::shared_cache`).
    pub announcer: Announcer,
    /// `[cache] ttl_secs`.
    ttl_secs: u64,
    /// Test seam: the next insert waits here (`hold_next_insert`).
    #[cfg(test)]
    insert_gate: std::sync::Mutex<Option<tokio::sync::oneshot::Receiver<()>>>,
    /// Test seam: the next write waits here, between its shared bump and its local stamp.
    #[cfg(test)]
    stamp_gate: std::sync::Mutex<Option<tokio::sync::oneshot::Receiver<()>>>,
}

/// Taken before an upstream list read: the provider's stamp then, and its shared version.
#[derive(Clone, Copy)]
pub struct Ticket {
    stamp: u64,
    shared: Option<SharedStamp>,
}

impl ReadCache {
    pub fn new(config: &CacheConfig) -> Self {
        // `[cache] max_bytes` and `max_entries` together (`cache_weight::bounds`).
        let (capacity, floor) = super::cache_weight::bounds(config);
        ReadCache {
            entries: Cache::builder()
                .max_capacity(capacity)
                .weigher(move |_: &Key, entry: &Entry| entry.weight(floor))
                .expire_after(UntilStale(Duration::from_secs(config.ttl_secs)))
                .build(),
            clock: AtomicU64::new(0),
            lists: Default::default(),
            records: (0..RECORD_STRIPES).map(|_| AtomicU64::new(0)).collect(),
            stripe_hasher: Default::default(),
            announcer: Default::default(),
            ttl_secs: config.ttl_secs,
            #[cfg(test)]
            insert_gate: Default::default(),
            #[cfg(test)]
            stamp_gate: Default::default(),
        }
    }

    /// `[cache] ttl_secs`: how long an entry lives, here and in the shared tier.
    pub fn ttl_secs(&self) -> u64 {
        self.ttl_secs
    }

    /// The shared tier, when it may be used now.
    fn shared(&self) -> Option<&Shared> {
        self.announcer.shared.usable()
    }

    pub fn ticket(&self, provider: ProviderId) -> Ticket {
        Ticket {
            stamp: self.lists[provider.index()].load(Ordering::Acquire),
            shared: None,
        }
    }

    /// The ticket of an upstream list read, with the provider's shared list version (read
    /// after the local stamp, before the read is sent), noted in the request's reads.
    pub async fn list_ticket(&self, provider: ProviderId) -> Ticket {
        let mut ticket = self.ticket(provider);
        if let Some(shared) = self.shared() {
            ticket.shared = shared.version(Version::List(provider)).await;
        }
        Reads::note(|reads| reads.shared.list(provider, ticket.shared));
        ticket
    }

    /// The last stamp taken: every stamp in use is at most this (`ReadSet::at_most`).
    pub fn clock_now(&self) -> u64 {
        self.clock.load(Ordering::Acquire)
    }

    fn stripe(&self, id: &GlobalId) -> usize {
        self.stripe_hasher.hash_one(id) as usize % RECORD_STRIPES
    }

    fn record(&self, id: &GlobalId) -> &AtomicU64 {
        &self.records[self.stripe(id)]
    }

    /// The key `id` is looked up under now.
    fn contact_key(&self, id: &GlobalId) -> Key {
        Key::Contact {
            id: id.clone(),
            stamp: self.record(id).load(Ordering::Acquire),
        }
    }

    /// Whether no stamp `reads` noted has moved past what it noted: no write (or fresh read)
    /// has touched what it read since. (A noted stamp is a stripe's or provider's own, so
    /// "not past" is "equal"; or the clock read before a shared-tier lookup, `ReadSet::at_most`,
    /// past which every later write stamps.) The registry's version is the store's to check.
    pub fn still_current(&self, reads: &ReadSet) -> bool {
        reads
            .records
            .iter()
            .all(|&(stripe, stamp)| self.records[stripe].load(Ordering::Acquire) <= stamp)
            && ProviderId::ALL.iter().all(|p| {
                reads.lists[p.index()]
                    .is_none_or(|stamp| self.lists[p.index()].load(Ordering::Acquire) <= stamp)
            })
    }

    /// The cached contact, else `load`'s answer. Concurrent misses for one id, from any
    /// request, share one `load` (moka's single-flight `try_get_with`) when they started
    /// under the same stamp, i.e. with no write to the id acknowledged between them. The
    /// answer is cached when it is a contact, under that stamp, so `load` must not have
    /// started (an async block not yet polled): it is sent after the stamp is read.
    ///
    /// The request's `Reads` note the stamp and the entry's age; an answer that is not cached
    /// here (no such contact, a failure) makes the request's answer one not to cache either.
    ///
    /// On a miss here the shared tier is asked next (`shared_cache`), after the local stamp
    /// was read: a write stamped up to it bumped the shared version first, so what the shared
    /// tier holds as current is an answer read after that write, and is cached here under the
    /// stamp. What the provider answers goes to the shared tier under the shared version read
    /// before it was asked.
    pub async fn contact_or_load<F>(&self, id: &GlobalId, load: F) -> Lookup
    where
        F: Future<Output = Lookup>,
    {
        self.contact_or_load_as(id, load, false).await
    }

    /// `contact_or_load` for a read that must ask the provider (`noCache`, after
    /// `refresh_contact`): the shared tier's copy is not used, only refreshed.
    pub async fn fresh_contact<F>(&self, id: &GlobalId, load: F) -> Lookup
    where
        F: Future<Output = Lookup>,
    {
        self.contact_or_load_as(id, load, true).await
    }

    async fn contact_or_load_as<F>(&self, id: &GlobalId, load: F, fresh: bool) -> Lookup
    where
        F: Future<Output = Lookup>,
    {
        let key = self.contact_key(id);
        let stripe = self.stripe(id);
        if let Key::Contact { stamp, .. } = key {
            Reads::note(|reads| reads.record(stripe, stamp));
        }
        let missed = std::sync::atomic::AtomicBool::new(false);
        let loaded = self
            .entries
            .try_get_with(key, async {
                missed.store(true, Ordering::Relaxed);
                // Checked after the local stamp was read (see above).
                let shared = self.shared();
                let mut shared_stamp = None;
                if let Some(shared) = shared {
                    match shared.contact(&id.to_string(), stripe).await {
                        Some(ContactLookup::Hit(contact, stamp, age)) if !fresh => {
                            crate::metrics::cache_request("redis", true);
                            let now = Instant::now();
                            let fetched = now.checked_sub(age).unwrap_or(now);
                            self.before_insert().await;
                            return Ok(Entry::Contact(contact, fetched, Some(stamp)));
                        }
                        Some(ContactLookup::Hit(_, stamp, _) | ContactLookup::Miss(stamp)) => {
                            if !fresh {
                                crate::metrics::cache_request("redis", false);
                            }
                            shared_stamp = Some(stamp);
                        }
                        None => {}
                    }
                }
                match load.await {
                    Ok(Some(contact)) => {
                        if let (Some(shared), Some(stamp)) = (shared, shared_stamp) {
                            shared.put_contact(stripe, stamp, &contact).await;
                        }
                        self.before_insert().await;
                        Ok(Entry::Contact(contact, Instant::now(), shared_stamp))
                    }
                    // Shared with the other waiters, but not kept.
                    uncached => Err(uncached),
                }
            })
            .await;
        let hit = !missed.load(Ordering::Relaxed);
        crate::metrics::cache_request("read", hit);
        request_budget::diagnose(|d| d.cache(id.provider, hit));
        match loaded {
            Ok(Entry::Contact(contact, stored, shared)) => {
                Reads::note(|reads| {
                    reads.fetched(stored);
                    reads.shared.record(stripe, shared);
                });
                Ok(Some(contact))
            }
            Ok(Entry::Window(..)) => Ok(None),
            Err(uncached) => {
                Reads::note(ReadSet::not_to_keep);
                (*uncached).clone()
            }
        }
    }

    /// Caches a contact read under `ticket` (taken before the read was sent), unless a write
    /// to it took a stamp since. Under the record's stamp `s` read here: `s <= ticket` means
    /// every write stamped `s` or lower was answered before the ticket was taken. A write
    /// coming after this check stamps past `s`, where later reads look.
    pub async fn put_contact(&self, ticket: Ticket, contact: Arc<Contact>) {
        let key = self.contact_key(&contact.global_id());
        if matches!(key, Key::Contact { stamp, .. } if stamp <= ticket.stamp) {
            self.before_insert().await;
            self.entries
                .insert(key, Entry::Contact(contact, Instant::now(), None))
                .await;
        }
    }

    /// The cached window. The request's `Reads` note the provider's stamp looked under (hit or
    /// miss: a miss is read from the provider next, after this) and the window's age.
    pub async fn window(&self, key: &WindowKey) -> Option<Arc<Window>> {
        let provider = key.provider;
        let stamp = self.ticket(provider).stamp;
        Reads::note(|reads| reads.list(provider, stamp));
        let key = Key::Window {
            key: key.clone(),
            stamp,
        };
        let found = match self.entries.get(&key).await {
            Some(Entry::Window(w, stored, shared)) => {
                Reads::note(|reads| {
                    reads.fetched(stored);
                    reads.shared.list(provider, shared);
                });
                Some(w)
            }
            _ => None,
        };
        crate::metrics::cache_request("read", found.is_some());
        request_budget::diagnose(|d| d.cache(provider, found.is_some()));
        found
    }

    /// Caches a window read under `ticket` (and each contact in it, for later lookups).
    pub async fn put_window(&self, ticket: Ticket, key: WindowKey, window: Arc<Window>) {
        // Only saves the room: a window stored under an old stamp is never found.
        if self.ticket(key.provider).stamp != ticket.stamp {
            return;
        }
        for contact in &window.contacts {
            self.put_contact(ticket, contact.clone()).await;
        }
        let key = Key::Window {
            key,
            stamp: ticket.stamp,
        };
        self.before_insert().await;
        self.entries
            .insert(key, Entry::Window(window, Instant::now(), ticket.shared))
            .await;
    }

    /// The next write stamp. Call it only after the provider answered the write (or the call
    /// ended): stamps are then in answer order.
    fn next_stamp(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// After a write, once its provider answered: the record it touched and every list
    /// window of its provider. Done when this returns: acknowledge the write after it.
    /// Announced to other replicas.
    ///
    /// With the shared tier, its versions of the record's stripe and the provider's lists move
    /// first (before the local stamp: see `contact_or_load`).
    pub async fn invalidate(&self, id: &GlobalId) {
        let versions = [Version::Record(self.stripe(id)), Version::List(id.provider)];
        self.announcer.bump_shared(&versions).await;
        self.between_bump_and_stamp().await;
        self.invalidate_here(id).await;
        self.announcer.announce(Change::contact(id));
    }

    async fn invalidate_here(&self, id: &GlobalId) {
        let stamp = self.next_stamp();
        self.lists[id.provider.index()].fetch_max(stamp, Ordering::AcqRel);
        self.retire_record(id, stamp).await;
    }

    /// Before a read of `id` that must ask the provider (`noCache`): what was read of it
    /// before retires (here and in the response cache); its provider's list windows stay.
    /// The stamp is taken before the read is sent, so its answer is stored under it.
    pub async fn refresh_contact(&self, id: &GlobalId) {
        let stamp = self.next_stamp();
        self.retire_record(id, stamp).await;
    }

    /// Moves `id`'s record stamp to `stamp`: what was cached of it retires.
    async fn retire_record(&self, id: &GlobalId, stamp: u64) {
        let previous = self.record(id).fetch_max(stamp, Ordering::AcqRel);
        // Only frees the room: what is stored under an older stamp is never found.
        self.entries
            .invalidate(&Key::Contact {
                id: id.clone(),
                stamp: previous,
            })
            .await;
    }

    /// Before a listing of `provider` that must ask it (`noCache`): its list windows read
    /// before retire (here and in the response cache); cached records stay.
    pub fn refresh_provider(&self, provider: ProviderId) {
        self.invalidate_provider_here(provider);
    }

    /// After a write whose record id is not known, once its provider answered: every list
    /// window of the provider. Cached records stay, so it suits a write that cannot have
    /// changed one: a create, or a provider that reads nothing (Mainbrainer's upsert).
    /// Announced to other replicas, after the shared version of its lists moved.
    pub async fn invalidate_provider(&self, provider: ProviderId) {
        self.announcer.bump_shared(&[Version::List(provider)]).await;
        self.invalidate_provider_here(provider);
        self.announcer.announce(Change::Provider(provider));
    }

    fn invalidate_provider_here(&self, provider: ProviderId) {
        let stamp = self.next_stamp();
        self.lists[provider.index()].fetch_max(stamp, Ordering::AcqRel);
    }

    /// Everything cached so far retires (records, windows, and the answers built on them):
    /// every stamp moves past it. Not announced.
    pub fn retire_all(&self) {
        let stamp = self.next_stamp();
        for list in &self.lists {
            list.fetch_max(stamp, Ordering::AcqRel);
        }
        for record in self.records.iter() {
            record.fetch_max(stamp, Ordering::AcqRel);
        }
        // Only frees the room.
        self.entries.invalidate_all();
    }

    /// Another replica's invalidation (`gateway::peers`), applied as if the write had been
    /// made here, and not announced again. `Registry` is the store's.
    pub async fn apply(&self, change: &Change) {
        match change {
            Change::Contact(id) => match GlobalId::parse(id) {
                Ok(id) => self.invalidate_here(&id).await,
                Err(_) => self.retire_all(),
            },
            Change::Provider(provider) => self.invalidate_provider_here(*provider),
            Change::All => self.retire_all(),
            Change::Registry => {}
        }
    }

    /// Test seam: whatever is about to be cached waits here, after every decision to cache it.
    async fn before_insert(&self) {
        #[cfg(test)]
        {
            let gate = self.insert_gate.lock().unwrap().take();
            if let Some(release) = gate {
                let _ = release.await;
            }
        }
    }

    /// Test seam: a write waits here between its shared bump and its local stamp.
    async fn between_bump_and_stamp(&self) {
        #[cfg(test)]
        {
            let gate = self.stamp_gate.lock().unwrap().take();
            if let Some(release) = gate {
                let _ = release.await;
            }
        }
    }

    /// Holds the next write between its shared bump and its local stamp.
    #[cfg(test)]
    fn hold_next_stamp(&self) -> tokio::sync::oneshot::Sender<()> {
        let (release, gate) = tokio::sync::oneshot::channel();
        *self.stamp_gate.lock().unwrap() = Some(gate);
        release
    }

    /// Test seam: the estimated bytes of every entry held, once moka has settled.
    #[cfg(test)]
    pub(super) async fn held_bytes(&self) -> usize {
        self.entries.run_pending_tasks().await;
        self.entries
            .iter()
            .map(|(_, e)| e.weight(Some(0)) as usize)
            .sum()
    }

    /// Test seam: how many entries are held, once moka has settled.
    #[cfg(test)]
    pub(super) async fn held_entries(&self) -> u64 {
        self.entries.run_pending_tasks().await;
        self.entries.entry_count()
    }

    /// Holds the next insert just before it happens, until the returned sender is used.
    #[cfg(test)]
    fn hold_next_insert(&self) -> tokio::sync::oneshot::Sender<()> {
        let (release, gate) = tokio::sync::oneshot::channel();
        *self.insert_gate.lock().unwrap() = Some(gate);
        release
    }
}

tokio::task_local! {
    /// What the request the current task works for has read, when its answer may be cached.
    static READS: Option<Arc<Reads>>;
}

/// What one request read of the state the gateway invalidates: noted as it reads, by the read
/// cache and the do-not-contact registry's readers, for the response cache.
#[derive(Default)]
pub struct Reads(Mutex<ReadSet>);

/// The stamps a request's answer was built under, and how old its oldest data was.
#[derive(Clone, Debug, Default)]
pub struct ReadSet {
    /// (stripe, stamp) of each contact record read, the lowest stamp per stripe.
    records: Vec<(usize, u64)>,
    /// Per provider, the stamp its list windows were read under.
    lists: [Option<u64>; ProviderId::ALL.len()],
    /// The do-not-contact registry's version before its first read (`Store::registry_version`).
    pub registry: Option<u64>,
    /// When the oldest cached entry read was stored: the answer may not outlive it.
    pub oldest: Option<Instant>,
    /// Something was read that the read cache does not keep (a contact that is not there, a
    /// failure) or that had to be fresh (`noCache`): the answer is not to be cached.
    pub not_to_keep: bool,
    /// The shared versions of what was read, for the shared tier.
    pub shared: SharedReads,
}

/// The shared versions (`shared_cache`) an answer was built under: each entry's own, read
/// before its data was (by whichever replica read it), and every one under one epoch.
#[derive(Clone, Debug, Default)]
pub struct SharedReads {
    /// (stripe, version) of each contact record read.
    records: Vec<(usize, u64)>,
    /// Per provider, the version its list windows were read under.
    lists: [Option<u64>; ProviderId::ALL.len()],
    /// The epoch every entry read was read under.
    epoch: Option<u64>,
    /// Something was read without a shared version (the tier was not usable then), or under
    /// two epochs: the answer is not for the shared tier.
    incomplete: bool,
}

/// Before a request ran, read with the shared tier's lookup of its answer: the registry's
/// shared version (read before any registry read of the request) and the epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SharedStart {
    pub registry: u64,
    pub epoch: u64,
}

/// What an answer kept in the shared tier was built under: the versions to check (key and
/// value, as text for the check's script) and what they name, to keep a hit here.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SharedVersions {
    pub v: Vec<(String, String)>,
    pub records: Vec<usize>,
    pub lists: Vec<ProviderId>,
    pub registry: bool,
}

impl SharedReads {
    fn under(&mut self, epoch: u64) {
        match self.epoch {
            None => self.epoch = Some(epoch),
            Some(seen) if seen != epoch => self.incomplete = true,
            Some(_) => {}
        }
    }

    fn record(&mut self, stripe: usize, stamp: Option<SharedStamp>) {
        let Some(stamp) = stamp else {
            self.incomplete = true;
            return;
        };
        self.under(stamp.epoch);
        match self.records.iter_mut().find(|(s, _)| *s == stripe) {
            // Two versions of one stripe: the older no longer stands.
            Some((_, seen)) => *seen = (*seen).min(stamp.version),
            None => self.records.push((stripe, stamp.version)),
        }
    }

    fn list(&mut self, provider: ProviderId, stamp: Option<SharedStamp>) {
        let Some(stamp) = stamp else {
            self.incomplete = true;
            return;
        };
        self.under(stamp.epoch);
        let seen = &mut self.lists[provider.index()];
        *seen = Some(seen.map_or(stamp.version, |seen| seen.min(stamp.version)));
    }
}

impl ReadSet {
    /// The shared versions this answer stands on, when every read had one under `start`'s
    /// epoch; `None`: the answer is not for the shared tier.
    pub fn shared_versions(&self, start: SharedStart, shared: &Shared) -> Option<SharedVersions> {
        let key = |version| shared.key(version);
        let reads = &self.shared;
        if self.not_to_keep || reads.incomplete || reads.epoch.is_some_and(|e| e != start.epoch) {
            return None;
        }
        let mut v = vec![(key(Version::Epoch), start.epoch.to_string())];
        for &(stripe, version) in &reads.records {
            v.push((key(Version::Record(stripe)), version.to_string()));
        }
        let mut lists = Vec::new();
        for provider in ProviderId::ALL {
            if let Some(version) = reads.lists[provider.index()] {
                v.push((key(Version::List(provider)), version.to_string()));
                lists.push(provider);
            }
        }
        if self.registry.is_some() {
            v.push((key(Version::Registry), start.registry.to_string()));
        }
        Some(SharedVersions {
            v,
            records: reads.records.iter().map(|&(stripe, _)| stripe).collect(),
            lists,
            registry: self.registry.is_some(),
        })
    }

    /// The reads of an answer found current in the shared tier, to keep it here: its stripes
    /// and lists under `clock` (`ReadCache::clock_now`, read before the lookup: a write
    /// stamped up to it had moved the shared versions before, so the answer is read after it;
    /// one acknowledged later stamps past it); the registry under `registry` (its version
    /// read before the lookup), when the answer read it.
    pub fn at_most(
        clock: u64,
        found: &SharedVersions,
        registry: u64,
        oldest: Instant,
    ) -> Option<ReadSet> {
        let mut reads = ReadSet::default();
        for &stripe in &found.records {
            if stripe >= RECORD_STRIPES {
                return None;
            }
            reads.record(stripe, clock);
        }
        for &provider in &found.lists {
            reads.list(provider, clock);
        }
        if found.registry {
            reads.registry(registry);
        }
        reads.oldest = Some(oldest);
        Some(reads)
    }
}

impl ReadSet {
    fn record(&mut self, stripe: usize, stamp: u64) {
        match self.records.iter_mut().find(|(s, _)| *s == stripe) {
            Some((_, seen)) => *seen = (*seen).min(stamp),
            None => self.records.push((stripe, stamp)),
        }
    }

    fn list(&mut self, provider: ProviderId, stamp: u64) {
        let seen = &mut self.lists[provider.index()];
        *seen = Some(seen.map_or(stamp, |seen| seen.min(stamp)));
    }

    /// The registry's version, read before the registry is.
    pub fn registry(&mut self, version: u64) {
        self.registry = Some(self.registry.map_or(version, |seen| seen.min(version)));
    }

    fn fetched(&mut self, stored: Instant) {
        self.oldest = Some(self.oldest.map_or(stored, |oldest| oldest.min(stored)));
    }

    pub fn not_to_keep(&mut self) {
        self.not_to_keep = true;
    }

    /// How many contact records' stamps it holds.
    pub fn records_len(&self) -> usize {
        self.records.len()
    }
}

impl Reads {
    /// Runs `future` noting its reads in `reads` (`None`: not noted). A task it spawns does
    /// not inherit them: carry `Reads::current()` into it (the loaders do).
    pub async fn scope<F: Future>(reads: Option<Arc<Reads>>, future: F) -> F::Output {
        READS.scope(reads, future).await
    }

    /// The reads of the request the current task works for, if they are noted.
    pub fn current() -> Option<Arc<Reads>> {
        READS.try_with(Clone::clone).ok().flatten()
    }

    /// Notes a read in the current request's reads, if they are noted.
    pub fn note(f: impl FnOnce(&mut ReadSet)) {
        let _ = READS.try_with(|reads| {
            if let Some(reads) = reads {
                f(&mut reads.0.lock().unwrap_or_else(|e| e.into_inner()));
            }
        });
    }

    /// What was read so far.
    pub fn snapshot(&self) -> ReadSet {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::future::{ready, BoxFuture, FutureExt};
    use futures::poll;
    use std::task::Poll;
    use tokio::sync::oneshot;

    const PROVIDER: ProviderId = ProviderId::Consuelo;

    fn cache() -> ReadCache {
        ReadCache::new(&CacheConfig::default())
    }

    fn id(native: &str) -> GlobalId {
        GlobalId::new(PROVIDER, native)
    }

    /// The contact `native` as a provider answers it, with `company` as its state.
    fn contact(native: &str, company: &str) -> Arc<Contact> {
        let mut contact = Contact::new(PROVIDER, native, serde_json::Value::Null);
        contact.company = Some(company.into());
        Arc::new(contact)
    }

    /// A load answering at once with `company`.
    fn answered(native: &str, company: &str) -> BoxFuture<'static, Lookup> {
        ready(Ok(Some(contact(native, company)))).boxed()
    }

    /// A load that answers what the test sends, when it sends it.
    fn held_load() -> (BoxFuture<'static, Lookup>, oneshot::Sender<Lookup>) {
        let (answer, answered) = oneshot::channel();
        (async { answered.await.unwrap() }.boxed(), answer)
    }

    fn company(found: &Lookup) -> &str {
        found
            .as_ref()
            .unwrap()
            .as_ref()
            .unwrap()
            .company
            .as_deref()
            .unwrap()
    }

    /// What a read of `native` that starts now shows: the cached contact, else the provider's
    /// current state, `now`.
    async fn read_now(cache: &ReadCache, native: &str, now: &str) -> String {
        company(
            &cache
                .contact_or_load(&id(native), answered(native, now))
                .await,
        )
        .to_string()
    }

    fn window_key() -> WindowKey {
        WindowKey {
            provider: PROVIDER,
            query: ListQuery::default(),
            offset: 0,
            limit: 20,
        }
    }

    /// Answered `before`, held just before it is cached; a write acknowledged there.
    #[tokio::test]
    async fn a_write_acknowledged_between_a_loads_answer_and_its_insert_is_seen_next() {
        let (cache, c1) = (cache(), id("c1"));
        let release = cache.hold_next_insert();
        let mut read = cache.contact_or_load(&c1, answered("c1", "before")).boxed();
        assert!(poll!(&mut read).is_pending(), "held before the insert");
        cache.invalidate(&id("c1")).await;
        release.send(()).unwrap();
        // It began before the write: either state is right for it.
        read.await.unwrap();
        assert_eq!(read_now(&cache, "c1", "after").await, "after");
    }

    /// A read that starts after a write was acknowledged must not take the answer of a load
    /// that began before it (single-flight).
    #[tokio::test]
    async fn a_read_after_a_write_does_not_share_a_load_begun_before_it() {
        let (cache, c1) = (cache(), id("c1"));
        let (load, answer) = held_load();
        let mut first = cache.contact_or_load(&c1, load).boxed();
        assert!(poll!(&mut first).is_pending(), "its load is out");
        cache.invalidate(&id("c1")).await;
        let mut second = cache.contact_or_load(&c1, answered("c1", "after")).boxed();
        let early = poll!(&mut second);
        answer.send(Ok(Some(contact("c1", "before")))).unwrap();
        let (_, second) = match early {
            Poll::Ready(second) => (first.await, second),
            Poll::Pending => futures::join!(first, second),
        };
        assert_eq!(company(&second), "after");
        assert_eq!(read_now(&cache, "c1", "after").await, "after");
    }

    /// `put_contact` (a lookup retried for its own request) held just before its insert.
    #[tokio::test]
    async fn a_write_acknowledged_just_before_a_put_contact_is_seen_next() {
        let cache = cache();
        let ticket = cache.ticket(PROVIDER);
        let release = cache.hold_next_insert();
        let mut put = cache.put_contact(ticket, contact("c1", "before")).boxed();
        assert!(poll!(&mut put).is_pending(), "held before the insert");
        cache.invalidate(&id("c1")).await;
        release.send(()).unwrap();
        put.await;
        assert_eq!(read_now(&cache, "c1", "after").await, "after");
    }

    /// A window's contacts go into the contact cache: one held just before its insert.
    #[tokio::test]
    async fn a_windows_contact_cached_across_a_write_is_not_served_after_it() {
        let cache = cache();
        let ticket = cache.ticket(PROVIDER);
        let window = Arc::new(Window {
            contacts: vec![contact("c1", "before")],
            exhausted: true,
            total: Some(1),
        });
        let release = cache.hold_next_insert();
        let mut put = cache.put_window(ticket, window_key(), window).boxed();
        assert!(poll!(&mut put).is_pending(), "held before the first insert");
        cache.invalidate(&id("c1")).await;
        release.send(()).unwrap();
        put.await;
        assert_eq!(read_now(&cache, "c1", "after").await, "after");
    }

    /// The hot path: a cached contact is served without a load, and writes to other contacts
    /// of its provider leave it cached.
    #[tokio::test]
    async fn a_cached_contact_survives_writes_to_other_contacts() {
        let cache = cache();
        read_now(&cache, "c1", "first").await;
        let other = (2..)
            .map(|n| id(&format!("c{n}")))
            .find(|other| !std::ptr::eq(cache.record(other), cache.record(&id("c1"))))
            .unwrap();
        cache.invalidate(&other).await;
        cache.invalidate_provider(PROVIDER).await;
        assert_eq!(read_now(&cache, "c1", "second").await, "first");
        cache.invalidate(&id("c1")).await;
        assert_eq!(read_now(&cache, "c1", "third").await, "third");
    }

    /// The window itself, held just before its insert while a write to its provider is
    /// acknowledged.
    #[tokio::test]
    async fn a_window_cached_across_a_write_is_not_served_after_it() {
        let cache = cache();
        let ticket = cache.ticket(PROVIDER);
        let window = Arc::new(Window {
            contacts: Vec::new(),
            exhausted: true,
            total: Some(0),
        });
        let release = cache.hold_next_insert();
        let mut put = cache.put_window(ticket, window_key(), window).boxed();
        assert!(poll!(&mut put).is_pending(), "held before the insert");
        cache.invalidate_provider(PROVIDER).await;
        release.send(()).unwrap();
        put.await;
        assert!(cache.window(&window_key()).await.is_none());
    }

    /// What `f` reads, noted as a request's would be.
    async fn noted<F: Future>(f: F) -> (F::Output, ReadSet) {
        let reads = Arc::new(Reads::default());
        let out = Reads::scope(Some(reads.clone()), f).await;
        (out, reads.snapshot())
    }

    /// The response cache's check: an answer whose read overlapped a write no longer stands,
    /// whichever way the write and the read interleave (the stamp is read before the data).
    #[tokio::test]
    async fn an_answer_read_across_a_write_does_not_stand() {
        let (cache, c1) = (cache(), id("c1"));
        let (load, answer) = held_load();
        let mut read = noted(cache.contact_or_load(&c1, load)).boxed();
        assert!(poll!(&mut read).is_pending(), "its load is out");
        cache.invalidate(&c1).await;
        answer.send(Ok(Some(contact("c1", "before")))).unwrap();
        let (_, reads) = read.await;
        assert!(!cache.still_current(&reads));
        // Read after the write: it stands until the next one.
        let (_, reads) = noted(cache.contact_or_load(&c1, answered("c1", "after"))).await;
        assert!(cache.still_current(&reads));
        cache.invalidate(&c1).await;
        assert!(!cache.still_current(&reads));
    }

    /// An answer stands through writes to what it did not read, and records its oldest data.
    #[tokio::test]
    async fn an_answer_stands_until_what_it_read_is_written() {
        let cache = cache();
        read_now(&cache, "c1", "first").await;
        let ticket = cache.ticket(PROVIDER);
        let window = Arc::new(Window {
            contacts: Vec::new(),
            exhausted: true,
            total: Some(0),
        });
        cache.put_window(ticket, window_key(), window).await;
        let started = Instant::now();
        let ((contact, window), reads) = noted(async {
            let contact = read_now(&cache, "c1", "second").await;
            (contact, cache.window(&window_key()).await)
        })
        .await;
        assert_eq!(contact, "first", "from the cache");
        assert!(window.is_some());
        assert!(reads.oldest.is_some_and(|oldest| oldest <= started));
        assert!(!reads.not_to_keep);
        let other = (2..)
            .map(|n| id(&format!("c{n}")))
            .find(|other| !std::ptr::eq(cache.record(other), cache.record(&id("c1"))))
            .unwrap();
        cache.invalidate_provider(ProviderId::Maiagent).await;
        assert!(cache.still_current(&reads), "another provider's write");
        cache.invalidate_provider(PROVIDER).await;
        assert!(!cache.still_current(&reads), "its provider's lists changed");
        let (_, reads) = noted(read_now(&cache, "c1", "third")).await;
        cache.invalidate(&other).await;
        assert!(cache.still_current(&reads), "another contact's write");
        cache.invalidate(&id("c1")).await;
        assert!(!cache.still_current(&reads), "its own");
        // A lookup that finds nothing is not one to keep.
        let (_, reads) = noted(cache.contact_or_load(&id("none"), ready(Ok(None)).boxed())).await;
        assert!(reads.not_to_keep);
    }

    fn stamp(version: u64, epoch: u64) -> Option<SharedStamp> {
        Some(SharedStamp { version, epoch })
    }

    /// What goes to the shared tier: only answers whose every read had a shared version, all
    /// under the epoch read before the query ran; with the versions of what they read.
    #[test]
    fn an_answer_is_for_the_shared_tier_only_when_every_read_had_a_version_under_its_epoch() {
        let shared = Shared::new(Default::default(), "ns", 60);
        let start = SharedStart {
            registry: 7,
            epoch: 3,
        };
        let mut reads = ReadSet::default();
        reads.shared.record(5, stamp(2, 3));
        reads.shared.record(5, stamp(4, 3));
        reads.shared.list(PROVIDER, stamp(9, 3));
        reads.registry(1);
        let versions = reads.shared_versions(start, &shared).unwrap();
        let v = |key: &str, value: &str| (key.to_string(), value.to_string());
        assert_eq!(
            versions.v,
            vec![
                v("contact-gateway:ns:v:epoch", "3"),
                // Two versions of one stripe: the older, which no longer stands.
                v("contact-gateway:ns:v:record:5", "2"),
                v("contact-gateway:ns:v:list:consuelo", "9"),
                v("contact-gateway:ns:v:registry", "7"),
            ]
        );
        assert_eq!(versions.records, vec![5]);
        assert_eq!(versions.lists, vec![PROVIDER]);
        assert!(versions.registry);
        // Read under another epoch than the one looked up under: not shared.
        assert!(reads
            .shared_versions(SharedStart { epoch: 4, ..start }, &shared)
            .is_none());
        // Two epochs among the reads, or a read without a version: not shared.
        let mut two = reads.clone();
        two.shared.record(6, stamp(1, 2));
        assert!(two.shared_versions(start, &shared).is_none());
        let mut without = reads.clone();
        without.shared.list(ProviderId::Maiagent, None);
        assert!(without.shared_versions(start, &shared).is_none());
        let mut not_kept = reads;
        not_kept.not_to_keep();
        assert!(not_kept.shared_versions(start, &shared).is_none());
    }

    /// An answer found in the shared tier is kept here under the clock read before the lookup:
    /// it stands until a write to what it read stamps past that.
    #[tokio::test]
    async fn an_answer_from_the_shared_tier_stands_until_what_it_read_is_written_here() {
        let cache = cache();
        let (c1, other) = (id("c1"), id("c2"));
        cache.invalidate(&c1).await;
        let clock = cache.clock_now();
        let found = SharedVersions {
            v: Vec::new(),
            records: vec![cache.stripe(&c1)],
            lists: vec![ProviderId::Maiagent],
            registry: false,
        };
        let reads = ReadSet::at_most(clock, &found, 0, Instant::now()).unwrap();
        assert!(cache.still_current(&reads));
        if cache.stripe(&other) != cache.stripe(&c1) {
            cache.invalidate(&other).await;
            assert!(cache.still_current(&reads), "another record");
        }
        cache.invalidate_provider(PROVIDER).await;
        assert!(cache.still_current(&reads), "another provider's lists");
        cache.invalidate(&c1).await;
        assert!(!cache.still_current(&reads), "its record");
        let reads = ReadSet::at_most(cache.clock_now(), &found, 0, Instant::now()).unwrap();
        cache.invalidate_provider(ProviderId::Maiagent).await;
        assert!(!cache.still_current(&reads), "its provider's lists");
        let reads = ReadSet::at_most(cache.clock_now(), &found, 0, Instant::now()).unwrap();
        cache.retire_all();
        assert!(!cache.still_current(&reads), "everything retired");
        // A stripe out of range (what Redis holds is not trusted blindly).
        let bad = SharedVersions {
            records: vec![RECORD_STRIPES],
            ..found
        };
        assert!(ReadSet::at_most(0, &bad, 0, Instant::now()).is_none());
    }

    /// A contact the shared tier kept a while lives here only the rest of `ttl_secs`.
    #[test]
    fn an_entry_lives_ttl_secs_from_when_its_data_was_fetched() {
        use moka::Expiry;
        let ttl = Duration::from_secs(60);
        let key = Key::Contact {
            id: id("c1"),
            stamp: 0,
        };
        let now = Instant::now();
        let fresh = Entry::Contact(contact("c1", "x"), now, None);
        let kept = Entry::Contact(contact("c1", "x"), now - Duration::from_secs(45), None);
        let stale = Entry::Contact(contact("c1", "x"), now - Duration::from_secs(90), None);
        let left = |entry: &Entry| UntilStale(ttl).expire_after_create(&key, entry, now);
        assert!(left(&fresh).unwrap() > Duration::from_secs(59));
        assert!(left(&kept).unwrap() <= Duration::from_secs(15));
        assert_eq!(left(&stale), Some(Duration::ZERO));
    }

    /// The order that keeps the tiers together: a write bumps the shared version before it
    /// takes its local stamp. A read in between still finds the local entry (the write is not
    /// acknowledged yet); a read after the write misses here and finds the shared copy
    /// outdated. Bumped after the stamp instead, the read in between would miss here, take the
    /// shared copy as current and cache it under the new stamp, served after the write.
    #[tokio::test]
    async fn a_write_bumps_the_shared_tier_before_its_local_stamp() {
        let Some(shared) = Shared::for_test().await else {
            return;
        };
        let cache = cache();
        cache.announcer.shared.set(shared);
        assert_eq!(read_now(&cache, "c1", "before").await, "before");
        let release = cache.hold_next_stamp();
        let c1 = id("c1");
        let mut write = cache.invalidate(&c1).boxed();
        assert!(poll!(&mut write).is_pending(), "held between the two steps");
        // Redis answers on another task: let the bump through, up to the gate.
        for _ in 0..100 {
            if cache.stamp_gate.lock().unwrap().is_none() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
            assert!(poll!(&mut write).is_pending());
        }
        assert!(
            cache.stamp_gate.lock().unwrap().is_none(),
            "the bump was made"
        );
        // Not acknowledged yet: either state is right for this read.
        read_now(&cache, "c1", "during").await;
        release.send(()).unwrap();
        write.await;
        assert_eq!(read_now(&cache, "c1", "after").await, "after");
        // And from the shared tier, for a replica that has no copy.
        let mut other = ReadCache::new(&CacheConfig::default());
        other.announcer.shared = cache.announcer.shared.clone();
        assert_eq!(read_now(&other, "c1", "provider").await, "after");
    }
}
