//! What is provider-independent: lookups (batched per request by the loader), the read cache, the `contacts`
//! fan-out across providers with its cursor, filters, and one person across providers (`people`).

pub mod cache;
mod cache_weight;
pub mod changes;
pub mod consent;
pub mod cursor;
pub mod filter;
pub mod import;
pub mod listing;
pub mod loader;
pub mod outbox;
pub mod peers;
pub mod people;
pub mod shared_cache;
pub mod validate;
pub mod writes;

use crate::config::{CacheConfig, LimitsConfig};
use crate::contact::GlobalId;
use crate::providers::request_budget::{self, RequestBudget};
use crate::providers::{Capability, ListQuery, Provider, ProviderError, Registry};
use crate::store::Store;
use cache::{Lookup, ReadCache, ReadSet, Reads, Window, WindowKey};
use cursor::CursorKey;
use std::sync::Arc;
use std::time::Duration;

/// The provider-independent core the GraphQL layer calls.
pub struct Gateway {
    pub registry: Registry,
    pub cache: ReadCache,
    write_locks: writes::WriteLocks,
    limits: Limits,
    /// Signs and checks `contacts` cursors.
    cursor_key: CursorKey,
    /// What each provider's listing holds, so a page asks only the providers it needs.
    listing_sizes: listing::ListingSizes,
    /// The durable state: claims across processes (and more). `None` only for a gateway
    /// built without one (unit tests).
    pub store: Option<Store>,
    /// Names this process in claims it holds in the store.
    pub process_id: String,
    /// Where this replica's invalidations are announced (`peers`); the read cache and the
    /// store hold it too.
    pub announcer: peers::Announcer,
    /// With `[cache] redis_url`: the Redis side (`Peers::ping` for readiness).
    pub peers: std::sync::OnceLock<Arc<peers::Peers>>,
    /// Change events: published by writes, passed to subscribers, replicas and webhooks.
    pub changes: changes::Changes,
}

/// The `[limits]` the gateway itself enforces.
#[derive(Clone, Copy, Debug)]
struct Limits {
    max_upstream_calls: u64,
    request_timeout: Duration,
    max_scan: u64,
    max_import_rows: u64,
}

impl From<&LimitsConfig> for Limits {
    fn from(config: &LimitsConfig) -> Self {
        Limits {
            max_upstream_calls: config.max_upstream_calls,
            request_timeout: Duration::from_millis(config.request_timeout_ms),
            max_scan: config.max_scan,
            max_import_rows: config.max_import_rows,
        }
    }
}

/// What `GET /readyz` answers: ready, and each part's state (`"ok"` or why not).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Readiness {
    pub ready: bool,
    pub parts: std::collections::BTreeMap<&'static str, String>,
}

/// How long one readiness check may take before its part counts as not answering.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

impl Gateway {
    /// Whether the parts this gateway needs answer: the store (one `SELECT 1`). A further
    /// part (the shared cache tier) adds its own check here, under its own name.
    pub async fn ready(&self) -> Readiness {
        let mut parts = std::collections::BTreeMap::new();
        if let Some(store) = &self.store {
            let answer = match tokio::time::timeout(READY_TIMEOUT, store.ping()).await {
                Ok(Ok(())) => "ok".to_string(),
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer within {}s", READY_TIMEOUT.as_secs()),
            };
            parts.insert("store", answer);
        }
        if let Some(peers) = self.peers.get() {
            let answer = if peers.ping().await {
                "ok".to_string()
            } else {
                "Redis does not answer PING".to_string()
            };
            parts.insert("redis", answer);
        }
        Readiness {
            ready: parts.values().all(|state| state == "ok"),
            parts,
        }
    }

    /// A gateway with the default `[limits]` and a random cursor key.
    pub fn new(registry: Registry, cache: &CacheConfig) -> Self {
        let announcer = peers::Announcer::default();
        let mut cache = ReadCache::new(cache);
        cache.announcer = announcer.clone();
        let process_id = format!("{}-{:016x}", std::process::id(), rand_u64());
        Gateway {
            announcer,
            peers: Default::default(),
            registry,
            cache,
            write_locks: Default::default(),
            limits: Limits::from(&LimitsConfig::default()),
            cursor_key: CursorKey::random(),
            listing_sizes: Default::default(),
            store: None,
            changes: changes::Changes::new(process_id.clone()),
            process_id,
        }
    }

    /// Sharing change events through its store with the other replicas, with the configured
    /// webhooks and pollers (call after `with_store`).
    pub fn with_changes(mut self, config: &crate::config::Config) -> Self {
        if let Some(store) = &self.store {
            self.changes =
                changes::Changes::new(self.process_id.clone()).shared(store.clone(), config);
        }
        self
    }

    /// Keeping its state in `store`.
    pub fn with_store(mut self, store: Store) -> Self {
        self.store = Some(store);
        self
    }

    /// Everything this replica cached retires: the read cache, the answers built on it, and
    /// what was read of the do-not-contact registry (`peers`, when Redis was lost).
    pub fn retire_all_cached(&self) {
        self.cache.retire_all();
        if let Some(store) = &self.store {
            store.registry_changed_elsewhere();
        }
    }

    /// Another replica's invalidation (`peers`).
    pub async fn apply_peer_change(&self, change: &peers::Change) {
        match change {
            peers::Change::Registry => {
                if let Some(store) = &self.store {
                    store.registry_changed_elsewhere();
                }
            }
            peers::Change::All => self.retire_all_cached(),
            change => self.cache.apply(change).await,
        }
    }

    /// With the configured `[limits]`, signing cursors with `cursor_key`.
    pub fn with_limits(mut self, limits: &LimitsConfig, cursor_key: CursorKey) -> Self {
        self.limits = Limits::from(limits);
        self.cursor_key = cursor_key;
        self
    }

    /// A fresh budget for one GraphQL request: `max_upstream_calls` calls within
    /// `request_timeout_ms` from now. Run the request under it with `request_budget::within`.
    pub fn request_budget(&self) -> Arc<RequestBudget> {
        RequestBudget::new(self.limits.max_upstream_calls, self.limits.request_timeout)
    }

    /// One contact by global id; `Ok(None)` when the provider has no such contact. With
    /// `fresh` the provider is asked even when the record is cached (and the cache is
    /// refreshed with the answer). Requests look contacts up through their loader
    /// (`loader::for_request`), which batches their lookups and calls this.
    ///
    /// An id whose format the provider's document fixes and that breaks it (a MaiAgent id
    /// that is not a UUID, a Mainbrainer id that is not an integer) is refused here, before
    /// any call and before the capability check: `ProviderError::InvalidId`.
    pub async fn lookup(&self, id: &GlobalId, fresh: bool) -> Lookup {
        if !self
            .registry
            .require(id.provider)?
            .accepts_native_id(&id.native_id)
        {
            return Err(ProviderError::InvalidId {
                provider: id.provider,
                native_id: id.native_id.clone(),
            });
        }
        let provider = self.registry.capable(id.provider, Capability::Get)?;
        let load = || async { Ok(provider.get(&id.native_id).await?.map(Arc::new)) };
        if provider.capabilities().ledger {
            // The gateway's own ledger is read where it is kept, never cached: writes the
            // cache does not see (a do-not-contact opt-out, another replica's) change it; so
            // is an answer that read it.
            Reads::note(ReadSet::not_to_keep);
            return load().await;
        }
        let found = if fresh {
            Reads::note(ReadSet::not_to_keep);
            self.cache.refresh_contact(id).await;
            self.cache.fresh_contact(id, load()).await
        } else {
            self.cache.contact_or_load(id, load()).await
        };
        match found {
            // The shared load was another request's, cut by that request's budget while this
            // one still has room: ask again, for this request.
            Err(ProviderError::BudgetExceeded { .. } | ProviderError::RequestTimeout { .. })
                if request_budget::current().is_none_or(|b| b.has_room()) =>
            {
                let ticket = self.cache.ticket(id.provider);
                let found = load().await;
                if let Ok(Some(contact)) = &found {
                    self.cache.put_contact(ticket, contact.clone()).await;
                }
                found
            }
            found => found,
        }
    }

    /// Records `offset .. offset + limit` of a provider's listing for `query`, from the cache
    /// when allowed and present.
    async fn window(
        &self,
        provider: &dyn Provider,
        query: &ListQuery,
        offset: u64,
        limit: u32,
        use_cache: bool,
    ) -> Result<Arc<Window>, ProviderError> {
        let key = WindowKey {
            provider: provider.id(),
            query: query.clone(),
            offset,
            limit,
        };
        // As in `lookup`: the ledger is never cached.
        let ledger = provider.capabilities().ledger;
        if use_cache && !ledger {
            if let Some(window) = self.cache.window(&key).await {
                return Ok(window);
            }
        } else {
            Reads::note(ReadSet::not_to_keep);
            self.cache.refresh_provider(provider.id());
        }
        let ticket = self.cache.list_ticket(provider.id()).await;
        let chunk = provider.list(query, offset, limit).await?;
        let window = Arc::new(Window {
            contacts: chunk.contacts.into_iter().map(Arc::new).collect(),
            exhausted: chunk.exhausted,
            total: chunk.total,
        });
        if !ledger {
            self.cache.put_window(ticket, key, window.clone()).await;
        }
        Ok(window)
    }
}

/// A random number, to tell processes apart.
fn rand_u64() -> u64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).unwrap_or_default();
    u64::from_le_bytes(bytes)
}
