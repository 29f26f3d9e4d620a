//! What is provider-independent: lookups through the loader, the read cache, the `contacts`
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
use crate::contact::{Contact, GlobalId};
use crate::providers::{Capability, ListQuery, Provider, ProviderError, Registry};
use async_graphql::dataloader::DataLoader;
use cache::{ReadCache, Window, WindowKey};
use loader::ContactLoader;
use std::sync::Arc;

/// The provider-independent core the GraphQL layer calls.
pub struct Gateway {
    pub registry: Registry,
    loader: DataLoader<ContactLoader>,
    pub cache: ReadCache,
    write_locks: writes::ContactLocks,
}

impl Gateway {
    pub fn new(registry: Registry, cache: &CacheConfig) -> Self {
        let loader = DataLoader::new(
            ContactLoader {
                registry: registry.clone(),
            },
            tokio::spawn,
        );
        Gateway {
            registry,
            loader,
            cache: ReadCache::new(cache),
            write_locks: Default::default(),
        }
    }

    /// One contact by global id; `Ok(None)` when the provider has no such contact. With
    /// `use_cache` off the provider is asked even when the record is cached (and the cache
    /// is refreshed with the answer).
    pub async fn contact(
        &self,
        id: &GlobalId,
        use_cache: bool,
    ) -> Result<Option<Arc<Contact>>, ProviderError> {
        self.capable(id.provider, Capability::Get, "get")?;
        if use_cache {
            if let Some(contact) = self.cache.contact(id).await {
                return Ok(Some(contact));
            }
        }
        let ticket = self.cache.ticket(id.provider);
        let outcome = match self.loader.load_one(id.clone()).await {
            Ok(Some(outcome)) => outcome,
            Ok(None) => Ok(None),
            Err(e) => Err((*e).clone()),
        };
        if let Ok(Some(contact)) = &outcome {
            self.cache.put_contact(ticket, contact.clone()).await;
        }
        outcome
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
