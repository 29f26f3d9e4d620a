//! Every contact lookup in a request goes through one `DataLoader`: duplicate ids collapse
//! into one upstream call, distinct ids go concurrently (each provider's client bounds how
//! many are in flight).

use crate::contact::{Contact, GlobalId};
use crate::providers::{ProviderError, Registry};
use async_graphql::dataloader::Loader;
use futures::future::join_all;
use std::collections::HashMap;
use std::sync::Arc;

/// One id's outcome: the contact, `None` when the provider has no such contact, or why the
/// provider failed. Kept per id so one failing provider does not fail a whole batch.
pub type Lookup = Result<Option<Arc<Contact>>, ProviderError>;

pub struct ContactLoader {
    pub registry: Registry,
}

impl Loader<GlobalId> for ContactLoader {
    type Value = Lookup;
    type Error = Arc<ProviderError>;

    async fn load(&self, keys: &[GlobalId]) -> Result<HashMap<GlobalId, Lookup>, Self::Error> {
        let lookups = keys.iter().map(|id| async move {
            let outcome = match self.registry.require(id.provider) {
                Ok(provider) => provider.get(&id.native_id).await.map(|c| c.map(Arc::new)),
                Err(e) => Err(e),
            };
            (id.clone(), outcome)
        });
        Ok(join_all(lookups).await.into_iter().collect())
    }
}
