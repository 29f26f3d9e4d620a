//! Automatic persisted queries, Apollo's protocol: a client sends
//! `extensions.persistedQuery { version: 1, sha256Hash }` and no query once the gateway knows
//! the hash; the first time (or after `PERSISTED_QUERY_NOT_FOUND`) it sends both, and the
//! gateway checks the hash before keeping the query. Kept in the in-process cache tier, and
//! with `[cache] redis_url` in the shared one too (`contact-gateway:apq:{sha256}`, for
//! `SHARED_TTL`): a query registered through one replica is known by its hash to every other.
//! A hash names its query for good, so nothing needs invalidating; the shared copy is checked
//! against its hash before use all the same.

use crate::gateway::shared_cache::SharedTier;
use async_graphql::{ErrorExtensions, ServerError};
use sha2::{Digest, Sha256};
use std::time::Duration;

/// How long the shared tier keeps a persisted query after it was last registered.
const SHARED_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Queries by the SHA-256 of their text.
#[derive(Clone)]
pub struct PersistedQueries {
    local: moka::sync::Cache<String, String>,
    shared: SharedTier,
}

impl Default for PersistedQueries {
    fn default() -> Self {
        PersistedQueries::new(SharedTier::default())
    }
}

fn shared_key(hash: &str) -> String {
    format!("contact-gateway:apq:{hash}")
}

fn sha256(query: &str) -> String {
    format!("{:x}", Sha256::digest(query.as_bytes()))
}

impl PersistedQueries {
    /// Kept here, and in `shared` when it is usable.
    pub fn new(shared: SharedTier) -> Self {
        PersistedQueries {
            local: moka::sync::Cache::new(10_000),
            shared,
        }
    }

    /// The query under `hash`: here, else in the shared tier (kept here then).
    async fn find(&self, hash: &str) -> Option<String> {
        if let Some(query) = self.local.get(hash) {
            return Some(query);
        }
        let shared = self.shared.usable()?;
        let found = shared
            .get(&shared_key(hash))
            .await
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .filter(|query| sha256(query) == hash);
        crate::metrics::cache_request("redis", found.is_some());
        let query = found?;
        self.local.insert(hash.to_string(), query.clone());
        Some(query)
    }

    /// Gives `request` its query from the hash it names, or keeps its query under the hash.
    /// A request without the extension is left as it is.
    pub async fn resolve(&self, request: &mut async_graphql::Request) -> Result<(), ServerError> {
        let Some(extension) = request.extensions.remove("persistedQuery") else {
            return Ok(());
        };
        let extension = extension.into_json().unwrap_or_default();
        let version = extension.get("version").and_then(|v| v.as_i64());
        let hash = extension.get("sha256Hash").and_then(|v| v.as_str());
        let (Some(1), Some(hash)) = (version, hash) else {
            return Err(coded(
                "`extensions.persistedQuery` needs `version: 1` and a `sha256Hash`",
                "BAD_USER_INPUT",
            ));
        };
        let hash = hash.to_ascii_lowercase();
        if request.query.is_empty() {
            return match self.find(&hash).await {
                Some(query) => {
                    request.query = query;
                    Ok(())
                }
                // Apollo's clients look for this message and code, then send the query.
                None => Err(coded("PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND")),
            };
        }
        if sha256(&request.query) != hash {
            return Err(coded(
                "`extensions.persistedQuery.sha256Hash` is not the SHA-256 of the query",
                "BAD_USER_INPUT",
            ));
        }
        if self.local.get(&hash).is_none() {
            if let Some(shared) = self.shared.usable() {
                shared
                    .put(&shared_key(&hash), request.query.as_bytes(), SHARED_TTL)
                    .await;
            }
            self.local.insert(hash, request.query.clone());
        }
        Ok(())
    }
}

fn coded(message: &str, code: &'static str) -> ServerError {
    async_graphql::Error::new(message)
        .extend_with(|_, ext| ext.set("code", code))
        .into_server_error(Default::default())
}
