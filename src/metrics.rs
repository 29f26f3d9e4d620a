//! Prometheus metrics (`GET /metrics`), through the `metrics` facade: counters and histograms
//! are recorded where things happen (the upstream client, the caches, the HTTP edge); the
//! provider gauges (limiter waits, breaker state) and the outbox's depth are read when
//! `/metrics` is scraped, from the accessors that already keep them.
//!
//! The names are the contract's ("Operations"); every one starts with `contact_gateway_`.

use crate::contact::ProviderId;
use crate::gateway::Gateway;
use crate::providers::pacing::BreakerState;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;

pub const HTTP_REQUESTS: &str = "contact_gateway_http_requests_total";
pub const UPSTREAM_REQUESTS: &str = "contact_gateway_upstream_requests_total";
pub const UPSTREAM_DURATION: &str = "contact_gateway_upstream_request_duration_seconds";
pub const CACHE_REQUESTS: &str = "contact_gateway_cache_requests_total";
pub const LIMITER_WAITS: &str = "contact_gateway_limiter_waits_total";
pub const LIMITER_WAITED: &str = "contact_gateway_limiter_waited_seconds";
pub const UPSTREAM_RETRIES: &str = "contact_gateway_upstream_retries_total";
pub const BREAKER_STATE: &str = "contact_gateway_breaker_state";
pub const BREAKER_OPENINGS: &str = "contact_gateway_breaker_openings_total";
pub const OUTBOX_DEPTH: &str = "contact_gateway_outbox_pending";
pub const OUTBOX_OLDEST: &str = "contact_gateway_outbox_oldest_pending_age_seconds";

/// Upstream latency buckets, in seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process's recorder once (tests build many apps in one process: they share it)
/// and returns what renders it. No listener of its own: `/metrics` is a route of the router.
pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(UPSTREAM_DURATION.into()), LATENCY_BUCKETS)
                .expect("buckets are not empty");
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Another recorder already installed (an embedding program): ours renders empty.
            let _ = metrics::set_global_recorder(recorder);
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(Duration::from_secs(5));
                    upkeep.run_upkeep();
                })
                .expect("a thread can be spawned");
            handle
        })
        .clone()
}

/// One GraphQL HTTP request answered: its operation type (`query`, `mutation`, `batch`,
/// `none` when refused before one was known) and outcome (`ok`, `error`, `refused`).
pub fn http_request(operation: &'static str, outcome: &'static str) {
    metrics::counter!(HTTP_REQUESTS, "operation" => operation, "outcome" => outcome).increment(1);
}

/// One upstream call finished: `status` is the HTTP status, or `error` when none came back.
pub fn upstream_request(provider: ProviderId, method: &str, status: Option<u16>, took: Duration) {
    let status = status.map_or_else(|| "error".to_string(), |s| s.to_string());
    metrics::counter!(
        UPSTREAM_REQUESTS,
        "provider" => provider.as_str(),
        "method" => method.to_string(),
        "status" => status
    )
    .increment(1);
    metrics::histogram!(UPSTREAM_DURATION, "provider" => provider.as_str())
        .record(took.as_secs_f64());
}

/// A cache lookup: `tier` is `response` (whole answers), `read` (contacts and windows) or
/// `redis` (the shared tier, after a miss in the process: contacts, answers, persisted
/// queries).
pub fn cache_request(tier: &'static str, hit: bool) {
    let result = if hit { "hit" } else { "miss" };
    metrics::counter!(CACHE_REQUESTS, "tier" => tier, "result" => result).increment(1);
}

/// Reads what is kept elsewhere (the providers' pacing, the outbox) into gauges, then renders.
pub async fn render(gateway: &Gateway) -> String {
    for provider in gateway.registry.enabled() {
        let id = provider.id().as_str();
        let pacing = provider.client().pacing();
        metrics::counter!(LIMITER_WAITS, "provider" => id).absolute(pacing.waits());
        metrics::gauge!(LIMITER_WAITED, "provider" => id).set(pacing.waited().as_secs_f64());
        metrics::counter!(UPSTREAM_RETRIES, "provider" => id).absolute(pacing.retries());
        metrics::counter!(BREAKER_OPENINGS, "provider" => id).absolute(pacing.breaker_openings());
        let state = pacing.breaker_state();
        for (name, value) in [
            ("closed", BreakerState::Closed),
            ("open", BreakerState::Open),
            ("half_open", BreakerState::HalfOpen),
        ] {
            let on = if state == value { 1.0 } else { 0.0 };
            metrics::gauge!(BREAKER_STATE, "provider" => id, "state" => name).set(on);
        }
    }
    if let Some(store) = &gateway.store {
        match store.outbox_pending().await {
            Ok(pending) => {
                metrics::gauge!(OUTBOX_DEPTH).set(pending.depth as f64);
                metrics::gauge!(OUTBOX_OLDEST).set(pending.oldest_age.as_secs_f64());
            }
            Err(e) => tracing::warn!(error = %e, "outbox depth could not be read for /metrics"),
        }
    }
    handle().render()
}
