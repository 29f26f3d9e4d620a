//! The sandbox: five in-process provider simulators, each speaking its provider's documented
//! REST API over real HTTP on `127.0.0.1:<random port>`, seeded with sample contacts.
//!
//! NOTES Decision 7: the simulators are written from the provider documents
//! (`shared/providers/*.txt` and NOTES.md), never from the adapters; nothing here imports
//! `crate::providers`. Each serves its document's shapes and quirks by default.
//!
//! Every simulator also has a control surface (see [`control`]): a request log, injected
//! latency and faults, readable from Rust ([`SimControl`]) and over HTTP under `/__sandbox/`.
//!
//! Default page sizes when the client gives none: MagicBlocks `limit` 20, Consuelo `limit` 10,
//! Whautomate `limit` 10, MaiAgent `pageSize` 10 (34 contacts = 4 pages). Mainbrainer has no
//! list endpoint.

// Handlers return early with a ready provider-style `Response`; boxing it would only add noise.
#![allow(clippy::result_large_err)]

mod consuelo;
pub mod control;
mod magicblocks;
mod maiagent;
mod mainbrainer;
pub mod seed;
mod whautomate;

#[cfg(test)]
mod tests;

pub use control::{Fault, RecordedRequest, SimControl};

use crate::config::{ProviderConfig, Secret};
use crate::contact::ProviderId;
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

/// The key each simulator accepts (each with its provider's auth scheme).
pub fn api_key(id: ProviderId) -> &'static str {
    match id {
        ProviderId::Magicblocks => "sandbox-magicblocks-key",
        ProviderId::Consuelo => "sandbox-consuelo-key",
        ProviderId::Whautomate => "sandbox-whautomate-key",
        ProviderId::Maiagent => "sandbox-maiagent-key",
        ProviderId::Mainbrainer => "sandbox-mainbrainer-key",
    }
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
            let (api, control) = match id {
                ProviderId::Magicblocks => magicblocks::build(),
                ProviderId::Consuelo => consuelo::build(),
                ProviderId::Whautomate => whautomate::build(),
                ProviderId::Maiagent => maiagent::build(),
                ProviderId::Mainbrainer => mainbrainer::build(),
            };
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

    /// Provider configs pointing at the simulators with the sandbox keys. MaiAgent's
    /// `default_region` is "TW": its seeded phones are Taiwanese national digits.
    pub fn provider_configs(&self) -> BTreeMap<ProviderId, ProviderConfig> {
        ProviderId::ALL
            .into_iter()
            .map(|id| {
                let mut config = ProviderConfig::new(self.base_url(id), Secret::new(api_key(id)));
                match id {
                    ProviderId::Consuelo => {
                        config.workspace_id = Some(CONSUELO_WORKSPACE_ID.into())
                    }
                    ProviderId::Mainbrainer => config.list_id = Some(MAINBRAINER_LIST_ID.into()),
                    ProviderId::Maiagent => config.default_region = "TW".into(),
                    _ => {}
                }
                (id, config)
            })
            .collect()
    }
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
