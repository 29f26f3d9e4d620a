//! What is provider-independent: lookups (batched per request by the loader), the read cache, the `contacts`
//! fan-out across providers with its cursor, and filters.

pub mod cache;
pub mod cursor;
pub mod filter;
pub mod import;
pub mod listing;
pub mod loader;
pub mod validate;
pub mod writes;

use crate::config::CacheConfig;
use crate::contact::GlobalId;
use crate::providers::{Capability, ListQuery, Provider, ProviderError, Registry};
use cache::{Lookup, ReadCache, Window, WindowKey};
use std::sync::Arc;

/// The provider-independent core the GraphQL layer calls.
pub struct Gateway {
    pub registry: Registry,
    pub cache: ReadCache,
    write_locks: writes::WriteLocks,
}

impl Gateway {
    pub fn new(registry: Registry, cache: &CacheConfig) -> Self {
        Gateway {
            registry,
            cache: ReadCache::new(cache),
            write_locks: Default::default(),
        }
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
        let load = async { Ok(provider.get(&id.native_id).await?.map(Arc::new)) };
        if fresh {
            self.cache.invalidate_contact(id).await;
        }
        self.cache.contact_or_load(id, load).await
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
        if use_cache {
            if let Some(window) = self.cache.window(&key).await {
                return Ok(window);
            }
        }
        let ticket = self.cache.ticket(provider.id());
        let chunk = provider.list(query, offset, limit).await?;
        let window = Arc::new(Window {
            contacts: chunk.contacts.into_iter().map(Arc::new).collect(),
            exhausted: chunk.exhausted,
            total: chunk.total,
        });
        self.cache.put_window(ticket, key, window.clone()).await;
        Ok(window)
    }
}
