//! `Contact-Gateway-Diagnostics: providers`: what one request cost at each provider (calls,
//! time spent in them, cache hits and misses, retries), returned in `extensions.providers`.
//! Carried by the request's budget (`RequestBudget::diagnostics`), which already travels with
//! every task working for the request; nothing is noted when the request did not ask.
//! Only counts and durations: never a path, a key or a contact.

use crate::contact::ProviderId;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

/// The request header, and the one value that turns it on.
pub const HEADER: &str = "contact-gateway-diagnostics";
pub const PROVIDERS: &str = "providers";

tokio::task_local! {
    /// Whether the request the current task answers asked for diagnostics.
    static WANTED: bool;
}

/// Runs `work` for a request that asked (`wanted`) for diagnostics, or not.
pub async fn scope<F: Future>(wanted: bool, work: F) -> F::Output {
    WANTED.scope(wanted, work).await
}

/// Whether the current request asked for diagnostics.
pub fn wanted() -> bool {
    WANTED.try_with(|w| *w).unwrap_or(false)
}

/// Whether `headers` ask for provider diagnostics.
pub fn asked(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get_all(HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.trim().eq_ignore_ascii_case(PROVIDERS))
}

#[derive(Default, Debug)]
struct Counts {
    calls: u64,
    spent: Duration,
    cache_hits: u64,
    cache_misses: u64,
    retries: u64,
}

/// One request's per-provider counts.
#[derive(Default, Debug)]
pub struct Diagnostics(Mutex<BTreeMap<ProviderId, Counts>>);

impl Diagnostics {
    fn with(&self, provider: ProviderId, f: impl FnOnce(&mut Counts)) {
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f(counts.entry(provider).or_default());
    }

    /// An upstream call answered (or failed) after `took`.
    pub fn call(&self, provider: ProviderId, took: Duration) {
        self.with(provider, |c| {
            c.calls += 1;
            c.spent += took;
        });
    }

    /// A read sent again.
    pub fn retry(&self, provider: ProviderId) {
        self.with(provider, |c| c.retries += 1);
    }

    /// A read-cache lookup for the provider's data.
    pub fn cache(&self, provider: ProviderId, hit: bool) {
        self.with(provider, |c| {
            if hit {
                c.cache_hits += 1;
            } else {
                c.cache_misses += 1;
            }
        });
    }

    /// `extensions.providers`: by provider id, its counts (`latencyMs`: time spent in its
    /// calls, summed; concurrent calls overlap).
    pub fn to_value(&self) -> Value {
        let counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut providers = Map::new();
        for (id, c) in counts.iter() {
            providers.insert(
                id.as_str().to_string(),
                json!({
                    "calls": c.calls,
                    "latencyMs": u64::try_from(c.spent.as_millis()).unwrap_or(u64::MAX),
                    "cacheHits": c.cache_hits,
                    "cacheMisses": c.cache_misses,
                    "retries": c.retries,
                }),
            );
        }
        Value::Object(providers)
    }
}
