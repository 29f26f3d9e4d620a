//! Automatic persisted queries, Apollo's protocol: a client sends
//! `extensions.persistedQuery { version: 1, sha256Hash }` and no query once the gateway knows
//! the hash; the first time (or after `PERSISTED_QUERY_NOT_FOUND`) it sends both, and the
//! gateway checks the hash before keeping the query. Kept in the in-process cache tier.

use async_graphql::{ErrorExtensions, ServerError};
use sha2::{Digest, Sha256};

/// Queries by the SHA-256 of their text.
#[derive(Clone)]
pub struct PersistedQueries(moka::sync::Cache<String, String>);

impl Default for PersistedQueries {
    fn default() -> Self {
        PersistedQueries(moka::sync::Cache::new(10_000))
    }
}

impl PersistedQueries {
    /// Gives `request` its query from the hash it names, or keeps its query under the hash.
    /// A request without the extension is left as it is.
    pub fn resolve(&self, request: &mut async_graphql::Request) -> Result<(), ServerError> {
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
            return match self.0.get(&hash) {
                Some(query) => {
                    request.query = query;
                    Ok(())
                }
                // Apollo's clients look for this message and code, then send the query.
                None => Err(coded("PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND")),
            };
        }
        let actual = format!("{:x}", Sha256::digest(request.query.as_bytes()));
        if actual != hash {
            return Err(coded(
                "`extensions.persistedQuery.sha256Hash` is not the SHA-256 of the query",
                "BAD_USER_INPUT",
            ));
        }
        self.0.insert(hash, request.query.clone());
        Ok(())
    }
}

fn coded(message: &str, code: &'static str) -> ServerError {
    async_graphql::Error::new(message)
        .extend_with(|_, ext| ext.set("code", code))
        .into_server_error(Default::default())
}
