//! The sandbox: five in-process provider simulators, each speaking its provider's documented
//! REST API over real HTTP on `127.0.0.1:<random port>`, seeded with sample contacts.
//!
//! NOTES Decision 7: the simulators are written from the provider documents
//! (`shared/providers/*.txt` and NOTES.md), never from the adapters; nothing here imports an
//! adapter (only the registry, which lists the simulators). Each serves its document's shapes and quirks by default.
//!
//! Every simulator also has a control surface (see [`control`]): a request log, injected
//! latency and faults, echo mode (the key put into answers), readable from Rust ([`SimControl`])
//! and over HTTP under `/__sandbox/`.
//!
//! Default page sizes when the client gives none: MagicBlocks `limit` 20, Consuelo `limit` 10,
//! Whautomate `limit` 10, MaiAgent `pageSize` 10 (34 contacts = 4 pages). Mainbrainer has no
//! list endpoint.

// Handlers return early with a ready provider-style `Response`; boxing it would only add noise.
#![allow(clippy::result_large_err)]

pub(crate) mod consuelo;
pub mod control;
pub(crate) mod magicblocks;
pub(crate) mod maiagent;
pub(crate) mod mainbrainer;
pub mod seed;
pub(crate) mod whautomate;

#[cfg(test)]
mod tests;

pub use control::{Fault, RecordedRequest, SimControl};

use crate::config::{BudgetConfig, ProviderConfig, Secret};
use crate::contact::ProviderId;
// Only the registry, to know which simulators there are: never an adapter (Decision 7).
use crate::providers::descriptor;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{middleware, Json};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::task::JoinHandle;

/// Consuelo's workspace in the sandbox (sent as `workspaceId`).
pub const CONSUELO_WORKSPACE_ID: &str = "ws_sandbox";
/// Mainbrainer's list in the sandbox.
pub const MAINBRAINER_LIST_ID: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
/// The Whautomate account setting (`SimControl::set_account_setting`) under which a create
/// without a `location` is a 400 (NOTES 3.5.3: a third-party connector marks it required).
pub const WHAUTOMATE_LOCATION_REQUIRED: &str = "locationRequired";

/// What the sandbox needs to run one provider's simulator and point a gateway at it; each
/// simulator module has one, registered with its provider in `providers::DESCRIPTORS`.
#[derive(Clone, Copy)]
pub struct Simulator {
    /// Builds the simulator's API and control surface, seeded.
    pub build: fn() -> (axum::Router, Arc<SimControl>),
    /// The key it accepts (presented with its provider's auth scheme). Random-looking, as a
    /// real key is: no 10 characters of it in a row spell a word a response may hold (the
    /// provider's name), so "no fragment of a key in any response" can be tested.
    pub api_key: &'static str,
    /// Provider settings a gateway needs for it (`workspace_id`…).
    pub settings: &'static [(&'static str, &'static str)],
    /// The region of its seeded national phone numbers, when not the default.
    pub region: Option<&'static str>,
}

/// The key a provider's simulator accepts.
pub fn api_key(id: ProviderId) -> &'static str {
    descriptor(id).simulator.api_key
}

struct Sim {
    base_url: String,
    control: Arc<SimControl>,
    task: JoinHandle<()>,
}

/// The five running simulators. Dropping it stops them.
pub struct Sandbox {
    sims: BTreeMap<ProviderId, Sim>,
}

impl Sandbox {
    /// Starts the five simulators on 127.0.0.1:0, seeded.
    pub async fn start() -> std::io::Result<Sandbox> {
        let mut sims = BTreeMap::new();
        for id in ProviderId::ALL {
            let (api, control) = (descriptor(id).simulator.build)();
            let app =
                api.merge(control::routes(control.clone()))
                    .layer(middleware::from_fn_with_state(
                        control.clone(),
                        control::intercept,
                    ));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let addr = listener.local_addr()?;
            let task = tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app).await {
                    tracing::warn!("sandbox simulator stopped: {e}");
                }
            });
            sims.insert(
                id,
                Sim {
                    base_url: format!("http://{addr}"),
                    control,
                    task,
                },
            );
        }
        Ok(Sandbox { sims })
    }

    /// Origin of the simulator, e.g. "http://127.0.0.1:41234" (no trailing slash).
    pub fn base_url(&self, id: ProviderId) -> String {
        self.sims[&id].base_url.clone()
    }

    /// The simulator's control surface.
    pub fn control(&self, id: ProviderId) -> &SimControl {
        &self.sims[&id].control
    }

    /// Provider configs pointing at the simulators with the sandbox keys and settings.
    pub fn provider_configs(&self) -> BTreeMap<ProviderId, ProviderConfig> {
        ProviderId::ALL
            .into_iter()
            .map(|id| {
                let simulator = descriptor(id).simulator;
                let mut config =
                    ProviderConfig::new(self.base_url(id), Secret::new(simulator.api_key));
                for (key, value) in simulator.settings {
                    config.settings.insert(key.to_string(), value.to_string());
                }
                if let Some(region) = simulator.region {
                    config.default_region = region.into();
                }
                (id, config)
            })
            .collect()
    }
}

impl Sandbox {
    /// The `[providers.*]` sections of a config file pointing a gateway at the simulators.
    /// Like the sandbox, they pace no provider: the keys that turn off a provider's default
    /// bucket or headers are written out.
    pub fn config_toml(&self) -> String {
        let quoted = |s: &str| toml::Value::String(s.to_string()).to_string();
        let mut text = String::from("# The simulators take any rate: no provider is paced.\n\n");
        for (id, config) in self.provider_configs() {
            text += &format!("[providers.{id}]\n");
            text += &format!("base_url = {}\n", quoted(&config.base_url));
            text += &format!("api_key = {}\n", quoted(config.api_key.expose()));
            text += &format!("default_region = {}\n", quoted(&config.default_region));
            for (key, value) in &config.settings {
                text += &format!("{key} = {}\n", quoted(value));
            }
            text += &budget_toml(id, &config.budget);
            text += "\n";
        }
        text
    }
}

/// The budget keys of `[providers.<id>]` where `budget` differs from the provider's defaults.
fn budget_toml(id: ProviderId, budget: &BudgetConfig) -> String {
    let defaults = BudgetConfig::for_provider(id);
    let mut text = String::new();
    if budget.bucket != defaults.bucket {
        match budget.bucket {
            Some(bucket) => {
                text += &format!("rate_per_sec = {}\n", bucket.rate_per_sec);
                text += &format!("burst = {}\n", bucket.burst);
            }
            None => text += "rate_per_sec = 0\n",
        }
    }
    if budget.follow_rate_limit_headers != defaults.follow_rate_limit_headers {
        text += &format!(
            "follow_rate_limit_headers = {}\n",
            budget.follow_rate_limit_headers
        );
    }
    let numbers = [
        (
            "max_retry_after_secs",
            budget.max_retry_after_secs,
            defaults.max_retry_after_secs,
        ),
        ("retries", budget.retries.into(), defaults.retries.into()),
        (
            "breaker_failures",
            budget.breaker_failures.into(),
            defaults.breaker_failures.into(),
        ),
        (
            "breaker_cooldown_secs",
            budget.breaker_cooldown.as_secs().max(1),
            defaults.breaker_cooldown.as_secs(),
        ),
    ];
    for (key, value, default) in numbers {
        if value != default {
            text += &format!("{key} = {value}\n");
        }
    }
    text
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        for sim in self.sims.values() {
            sim.task.abort();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Small helpers the simulators share.

/// A JSON response.
pub(crate) fn json(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

/// Locks a store, surviving a poisoned lock (a panicking test must not wedge the others).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Parses a request body that must be a JSON object.
pub(crate) fn body_object(bytes: &Bytes) -> Result<Map<String, Value>, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err("request body is required".into());
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err("request body must be a JSON object".into()),
        Err(e) => Err(format!("request body is not valid JSON: {e}")),
    }
}

/// A header's value as text.
pub(crate) fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Only the digits of a string.
pub(crate) fn digits(s: &str) -> String {
    crate::phone::digits(s)
}

/// A plausible email address: one `@`, no spaces.
pub(crate) fn valid_email(s: &str) -> bool {
    let s = s.trim();
    s.matches('@').count() == 1 && !s.starts_with('@') && !s.ends_with('@') && !s.contains(' ')
}

/// Case-insensitive substring test.
pub(crate) fn contains_ci(haystack: &str, needle_lower: &str) -> bool {
    haystack.to_lowercase().contains(needle_lower)
}

pub(crate) fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

pub(crate) fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// ISO-8601 UTC with a `Z`, e.g. "2024-01-15T10:30:00.123Z".
pub(crate) fn now_iso() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A non-negative integer query parameter: `Ok(None)` when absent or empty, `Err` when not a
/// number.
pub(crate) fn uint_param(value: Option<&String>, name: &str) -> Result<Option<usize>, String> {
    match value.map(|v| v.trim()) {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse::<usize>()
            .map(Some)
            .map_err(|_| format!("`{name}` must be a non-negative integer, got `{v}`")),
    }
}
