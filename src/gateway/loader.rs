//! Every contact lookup in a request goes through the request's own `DataLoader`
//! (async-graphql's convention: one per request, so what it does is the request's): duplicate
//! ids collapse into one lookup, distinct ids go concurrently, and the batch runs inside the
//! request's span so upstream log lines carry it, under the request's budget. Across requests, the cache's single-flight
//! load makes concurrent misses for one contact one upstream call.

use super::cache::Lookup;
use super::Gateway;
use crate::contact::GlobalId;
use crate::providers::request_budget;
use async_graphql::dataloader::{DataLoader, Loader};
use futures::future::{join_all, BoxFuture};
use std::collections::HashMap;
use std::sync::Arc;
use tracing::Instrument;

/// What a lookup asks: the id, and whether the provider must be asked even when the contact
/// is cached (`noCache: true`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LookupKey {
    pub id: GlobalId,
    pub fresh: bool,
}

pub struct ContactLoader {
    gateway: Arc<Gateway>,
}

/// A request's loader; its batches run as the request's own work (`request_spawner`).
pub fn for_request(gateway: Arc<Gateway>) -> DataLoader<ContactLoader> {
    DataLoader::new(ContactLoader { gateway }, request_spawner())
}

/// How a request's loaders run their batches: in spawned tasks (a `DataLoader` spawns them),
/// each given the span and the budget current when this is called (the request's), which a
/// spawned task inherits neither of. Every loader that calls upstream for a request uses it.
pub fn request_spawner(
) -> impl Fn(BoxFuture<'static, ()>) -> tokio::task::JoinHandle<()> + Send + Sync + 'static {
    let span = tracing::Span::current();
    let budget = request_budget::current();
    move |batch| {
        tokio::spawn(request_budget::within(budget.clone(), batch).instrument(span.clone()))
    }
}

impl Loader<LookupKey> for ContactLoader {
    /// Kept per id, so one failing provider does not fail a whole batch.
    type Value = Lookup;
    type Error = std::convert::Infallible;

    async fn load(&self, keys: &[LookupKey]) -> Result<HashMap<LookupKey, Lookup>, Self::Error> {
        let lookups = keys
            .iter()
            .map(|key| async move { (key.clone(), self.gateway.lookup(&key.id, key.fresh).await) });
        Ok(join_all(lookups).await.into_iter().collect())
    }
}
