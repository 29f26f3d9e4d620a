//! Every contact lookup in a request goes through the request's own `DataLoader`
//! (async-graphql's convention: one per request, so what it does is the request's): duplicate
//! ids collapse into one lookup, distinct ids go concurrently, and the batch runs inside the
//! request's span so upstream log lines carry it, under the request's budget. Across requests, the cache's single-flight
//! load makes concurrent misses for one contact one upstream call.

use super::cache::{Lookup, Reads};
use super::Gateway;
use crate::contact::GlobalId;
use crate::providers::request_budget;
use async_graphql::dataloader::{DataLoader, Loader};
use futures::future::join_all;
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

/// A request's loader; its batches run in the span, under the budget and noting the reads
/// current when it is made (the request's): a spawned task inherits none, so each batch is
/// given them.
pub fn for_request(gateway: Arc<Gateway>) -> DataLoader<ContactLoader> {
    let span = tracing::Span::current();
    let budget = request_budget::current();
    let reads = Reads::current();
    DataLoader::new(ContactLoader { gateway }, move |batch| {
        let batch = Reads::scope(reads.clone(), batch);
        tokio::spawn(request_budget::within(budget.clone(), batch).instrument(span.clone()))
    })
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
