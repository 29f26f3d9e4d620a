//! The one upstream client: every provider request is signed, bounded, timed and logged here,
//! and every upstream status becomes a `ProviderError` here.

mod redact;

use super::pacing::{BreakerState, Pacing};
use super::{Auth, ProviderError};
use crate::config::{ProviderConfig, Secret};
use crate::contact::{Contact, ProviderId};
use crate::phone;
use crate::providers::request_budget::{self, Refusal};
use redact::Redactor;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, CONTENT_TYPE, USER_AGENT};
use reqwest::Method;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tracing::Instrument;

pub const GATEWAY_USER_AGENT: &str = concat!("contact-gateway/", env!("CARGO_PKG_VERSION"));

/// The header carrying the key, as the provider's descriptor says.
fn auth_header(provider: ProviderId, key: &Secret) -> (&'static str, String) {
    match super::descriptor(provider).auth {
        Auth::Bearer => ("authorization", format!("Bearer {}", key.expose())),
        Auth::Scheme(scheme) => ("authorization", format!("{scheme} {}", key.expose())),
        Auth::Header(name) => (name, key.expose().to_string()),
    }
}

/// The largest answer read from a provider.
const MAX_ANSWER_BYTES: usize = 16 << 20;

/// A connection pool for upstream calls (a `reqwest::Client` is a handle to its pool: clones
/// share it).
pub fn pool() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(60))
        .build()
        .unwrap_or_default()
}

/// A decoded 2xx answer.
#[derive(Debug)]
pub struct UpstreamResponse {
    pub status: u16,
    /// The JSON body; `Null` for an empty body (204).
    pub body: Value,
}

/// Whether a call may be sent again after a failure: said at each call site, since some
/// providers search with a POST.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// Changes nothing upstream (a GET, a search or listing sent as POST): retried after a
    /// 5xx, a timeout or a connection failure.
    Read,
    /// Creates, changes or deletes: never retried (a write that timed out may have been
    /// applied).
    Write,
}

/// One provider's HTTP client: base URL, signing, timeout, in-flight bound and pacing.
#[derive(Clone)]
pub struct UpstreamClient {
    provider: ProviderId,
    http: reqwest::Client,
    base_url: Arc<str>,
    headers: HeaderMap,
    timeout: Duration,
    in_flight: Arc<Semaphore>,
    /// Its rate budget, pauses, retries and breaker, shared by the clones.
    pacing: Arc<Pacing>,
    region: Option<phonenumber::country::Id>,
    /// Finds the key in what the provider answers, so nothing read from an answer holds it.
    redactor: Arc<Redactor>,
}

impl UpstreamClient {
    /// A client with a connection pool of its own (adapter tests); the gateway's share one.
    pub fn new(provider: ProviderId, config: &ProviderConfig) -> Self {
        Self::with_pool(provider, config, pool())
    }

    /// Sends through `http`, the gateway's one connection pool shared by every provider; the
    /// timeout and in-flight bound are this provider's settings.
    pub fn with_pool(provider: ProviderId, config: &ProviderConfig, http: reqwest::Client) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        headers.insert(USER_AGENT, HeaderValue::from_static(GATEWAY_USER_AGENT));
        let (name, value) = auth_header(provider, &config.api_key);
        if let Ok(mut value) = HeaderValue::from_str(&value) {
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        UpstreamClient {
            provider,
            http,
            base_url: config.base_url.clone().into(),
            headers,
            timeout: Duration::from_millis(config.timeout_ms),
            in_flight: Arc::new(Semaphore::new(config.max_concurrency)),
            pacing: Arc::new(Pacing::new(provider, &config.budget)),
            region: phone::parse_region(&config.default_region),
            redactor: Arc::new(Redactor::new(config.api_key.expose())),
        }
    }

    pub fn provider(&self) -> ProviderId {
        self.provider
    }

    /// The provider's pacing and breaker state (waits, retries, refusals).
    pub fn pacing(&self) -> &Pacing {
        &self.pacing
    }

    /// The region national phone numbers from this provider are read in.
    pub fn region(&self) -> Option<phonenumber::country::Id> {
        self.region
    }

    /// Sends one request to `base_url + path` and decodes the answer. Non-2xx statuses become
    /// errors; `404` becomes `Ok(None)` so a "no such contact" is not a failure.
    ///
    /// Before sending, the provider's breaker and pacing have their say (a call that cannot
    /// be made in time fails at once, unsent). A `Call::Read` that fails with a 5xx, a timeout
    /// or a connection failure is sent again, up to `retries` times, after a jittered backoff,
    /// while the request's deadline and calls allow it; a `Call::Write` never is.
    pub async fn send(
        &self,
        call: Call,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Option<UpstreamResponse>, ProviderError> {
        let mut delays = self.pacing.retry_delays();
        let mut attempt = 1;
        loop {
            let error = match self.attempt(&method, path, query, body).await {
                Err(error) if call == Call::Read && error.retryable() => error,
                result => return result,
            };
            // Only within the request's deadline and calls, and never into an open breaker.
            let budget = request_budget::current();
            let fits = |delay: &Duration| {
                budget
                    .as_ref()
                    .is_none_or(|b| b.has_room() && *delay < b.time_left())
            };
            let healthy = self.pacing.breaker_state() == BreakerState::Closed;
            let Some(delay) = delays.next().filter(fits).filter(|_| healthy) else {
                return Err(error);
            };
            tracing::info!(
                target: "upstream",
                provider = %self.provider, method = %method, path, attempt,
                delay_ms = delay.as_millis() as u64, error = %error,
                "retrying a read"
            );
            self.pacing.retrying();
            request_budget::diagnose(|d| d.retry(self.provider));
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// One call: admitted by the breaker, paced, charged to the request, bounded, sent, and
    /// its outcome reported to the breaker.
    async fn attempt(
        &self,
        method: &Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Option<UpstreamResponse>, ProviderError> {
        let provider = self.provider;
        let admitted = self.pacing.admit()?;
        let budget = request_budget::current();
        // Waiting for the provider's turn past the request's deadline would only delay the
        // refusal: such a call fails at once.
        self.pacing
            .wait_turn(budget.as_ref().map(|b| b.time_left()))
            .await?;
        // The request's budget, charged before sending: a refused call is never sent.
        if let Some(budget) = &budget {
            budget
                .charge()
                .map_err(|refusal| refused(provider, refusal, false))?;
        }
        let acquire = self.in_flight.acquire();
        let permit = match &budget {
            // Waiting for a turn past the deadline would only delay the refusal.
            Some(budget) => tokio::time::timeout_at(budget.deadline(), acquire)
                .await
                .map_err(|_| refused(provider, budget.deadline_passed(), false))?,
            None => acquire.await,
        };
        let _permit =
            permit.map_err(|_| ProviderError::unavailable(provider, "client shut down"))?;
        // The call gets the smaller of the provider's timeout and what is left of the
        // request's deadline; with no time left it is not sent.
        let left = budget.as_ref().map(|b| b.time_left());
        if let Some(budget) = budget.as_ref().filter(|_| left == Some(Duration::ZERO)) {
            return Err(refused(provider, budget.deadline_passed(), false));
        }
        let cut_by_deadline = left.is_some_and(|left| left < self.timeout);
        let timeout = left.map_or(self.timeout, |left| left.min(self.timeout));
        let url = format!("{}{}", self.base_url, path);
        // The call's span, a child of the request's; its W3C `traceparent` goes upstream
        // (when traces are exported: otherwise no propagator is installed and none is sent).
        let span = tracing::info_span!(
            "upstream call",
            provider = %provider,
            method = %method,
            path,
            otel.kind = "client",
        );
        let mut headers = self.headers.clone();
        let context = tracing_opentelemetry::OpenTelemetrySpanExt::context(&span);
        opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.inject_context(
                &context,
                &mut opentelemetry_http::HeaderInjector(&mut headers),
            )
        });
        let mut request = self
            .http
            .request(method.clone(), &url)
            .headers(headers)
            .timeout(timeout);
        if !query.is_empty() {
            request = request.query(query);
        }
        if let Some(body) = body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        let started = Instant::now();
        let received = self.receive(request).instrument(span).await;
        let result = match (received, &budget) {
            // The request's deadline, not the provider's timeout, cut this call.
            (Err(ProviderError::Timeout { .. }), Some(budget)) if cut_by_deadline => {
                Err(refused(provider, budget.deadline_passed(), true))
            }
            (result, _) => result,
        };
        let took = started.elapsed();
        let latency_ms = took.as_millis() as u64;
        let status = match &result {
            Ok((status, _)) => Some(*status),
            Err(ProviderError::RateLimited { .. }) => Some(429),
            Err(e) => e.status(),
        };
        crate::metrics::upstream_request(provider, method.as_str(), status, took);
        request_budget::diagnose(|d| d.call(provider, took));
        match &result {
            Ok((status, _)) => tracing::info!(
                target: "upstream",
                provider = %provider, method = %method, path, status, latency_ms,
                "upstream call"
            ),
            Err(e) => tracing::warn!(
                target: "upstream",
                provider = %provider, method = %method, path, latency_ms, error = %e,
                "upstream call failed"
            ),
        }
        let outcome = result.and_then(|(status, bytes)| match status {
            200..=299 => {
                let body = if bytes.iter().all(u8::is_ascii_whitespace) {
                    Value::Null
                } else {
                    self.decode(&bytes)
                        .map_err(|e| ProviderError::unparseable(provider, e))?
                };
                Ok(Some(UpstreamResponse { status, body }))
            }
            404 => Ok(None),
            _ => Err(self.status_error(status, &bytes)),
        });
        match &outcome {
            // Our deadline cut it: it says nothing of the provider's health.
            Err(ProviderError::RequestTimeout { .. }) => drop(admitted),
            Err(error) => admitted.settle(error.retryable()),
            Ok(_) => admitted.settle(false),
        }
        outcome
    }

    /// Like `send`, but a 404 is an error too (for writes and listings).
    pub async fn send_expecting(
        &self,
        call: Call,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<UpstreamResponse, ProviderError> {
        self.send(call, method, path, query, body)
            .await?
            .ok_or_else(|| ProviderError::not_found(self.provider))
    }

    /// `GET` of one record: its body, or `None` when the provider answers 404.
    pub async fn get_record(&self, path: &str) -> Result<Option<Value>, ProviderError> {
        let response = self.send(Call::Read, Method::GET, path, &[], None).await?;
        Ok(response.map(|r| r.body))
    }

    /// The contact `native_id` of `collection` (`record_path`), its answer read by `to_contact`:
    /// `None` when the provider answers 404, or for an id no record can have (nothing is sent).
    pub async fn get_contact(
        &self,
        collection: &str,
        native_id: &str,
        to_contact: impl FnOnce(Value) -> Result<Contact, ProviderError>,
    ) -> Result<Option<Contact>, ProviderError> {
        let Some(path) = record_path(collection, native_id) else {
            return Ok(None);
        };
        let record = self.get_record(&path).await?;
        record.map(to_contact).transpose()
    }

    /// The path of contact `native_id` in `collection` (`record_path`), for a write: an id no
    /// record can have is `NotFound`, as a 404 from `send_expecting` would be.
    pub fn contact_path(&self, collection: &str, native_id: &str) -> Result<String, ProviderError> {
        record_path(collection, native_id).ok_or_else(|| ProviderError::not_found(self.provider))
    }

    /// Sends `request` and reads the answer (up to `MAX_ANSWER_BYTES`); a 429 and an
    /// exhausted `X-RateLimit-Remaining` pause the provider.
    async fn receive(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(u16, axum::body::Bytes), ProviderError> {
        let provider = self.provider;
        let to_error = |e: reqwest::Error| {
            if e.is_timeout() {
                ProviderError::Timeout {
                    provider,
                    timeout_ms: self.timeout.as_millis() as u64,
                }
            } else {
                // Without the URL: it is ours, and the message stays short.
                ProviderError::Unavailable {
                    provider,
                    reason: describe_transport_error(&e),
                    retryable: true,
                    // Refused before connecting: nothing was sent. Otherwise the request may
                    // have reached the provider before the connection dropped.
                    may_have_been_applied: !e.is_connect(),
                }
            }
        };
        let response = request.send().await.map_err(to_error)?;
        let status = response.status().as_u16();
        self.pacing.observe_headers(response.headers());
        if status == 429 {
            let retry_after_secs = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            self.pacing
                .rate_limited(retry_after_secs.map(Duration::from_secs));
            return Err(ProviderError::RateLimited {
                provider,
                retry_after_secs,
            });
        }
        // Read in chunks up to a bound: a provider's answer is a page of contacts, and a broken
        // or hostile upstream must not make the gateway buffer whatever it sends.
        let mut response = response;
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(to_error)? {
            if bytes.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(ProviderError::Unavailable {
                    provider,
                    reason: format!("its answer is larger than {} MiB", MAX_ANSWER_BYTES >> 20),
                    retryable: false,
                    // It answered: a write was taken.
                    may_have_been_applied: true,
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok((status, bytes.into()))
    }

    fn status_error(&self, status: u16, body: &[u8]) -> ProviderError {
        let provider = self.provider;
        match status {
            401 | 403 => ProviderError::AuthFailed { provider, status },
            500..=599 => ProviderError::Unavailable {
                provider,
                reason: format!("HTTP {status}"),
                retryable: true,
                may_have_been_applied: false,
            },
            _ => ProviderError::Rejected {
                provider,
                status,
                message: error_message(body, &self.redactor),
            },
        }
    }

    /// A 2xx body as JSON, with the key redacted from every string before anything reads it
    /// (an upstream may echo the request into a name, a note, a custom field…).
    fn decode(&self, bytes: &[u8]) -> Result<Value, serde_json::Error> {
        let mut body = parse_json(bytes)?;
        if self.redactor.may_hold(bytes) {
            self.redactor.value(&mut body);
        }
        Ok(body)
    }

    /// A provider's message as an error may quote it: the key redacted, then cut to 300
    /// characters (in that order, so a cut never leaves a fragment of the key behind).
    /// Answers are redacted already; adapters pass every message they quote through this too.
    pub fn message(&self, text: &str) -> String {
        shorten(self.redactor.text(text).trim())
    }
}

/// The error for a call the request's budget refused or its deadline cut; `sent` when the
/// call had gone out (so a write may have been applied).
fn refused(provider: ProviderId, refusal: Refusal, sent: bool) -> ProviderError {
    match refusal {
        Refusal::Exhausted { limit } => ProviderError::BudgetExceeded { provider, limit },
        Refusal::DeadlinePassed { timeout_ms } => ProviderError::RequestTimeout {
            provider,
            timeout_ms,
            may_have_been_applied: sent,
        },
    }
}

/// An id from a user as one path segment; `None` for ids no record can have (empty, `.`, `..`).
pub fn path_segment(id: &str) -> Option<String> {
    if id.is_empty() || id.chars().all(|c| c == '.') {
        return None;
    }
    // form-urlencoding keeps only [A-Za-z0-9*-._] and writes a space as `+`.
    let encoded: String = url::form_urlencoded::byte_serialize(id.as_bytes()).collect();
    Some(encoded.replace('+', "%20"))
}

/// The path of record `native_id` in `collection`, in the collection's style: `/v1/contacts`
/// gives `/v1/contacts/{id}`, and a collection written with a trailing `/` (MaiAgent's
/// `/api/contacts/`, whose paths all end in one) gives `/api/contacts/{id}/`. `None` for an id
/// no record can have (`path_segment`).
pub fn record_path(collection: &str, native_id: &str) -> Option<String> {
    let segment = path_segment(native_id)?;
    Some(match collection.strip_suffix('/') {
        Some(collection) => format!("{collection}/{segment}/"),
        None => format!("{collection}/{segment}"),
    })
}

/// The records of a list answer read tolerantly: a bare array, no body (none), or the array
/// under the first of `keys` that holds one.
pub fn records_under(body: Value, keys: &[&str]) -> Option<Vec<Value>> {
    match body {
        Value::Array(items) => Some(items),
        Value::Null => Some(Vec::new()),
        Value::Object(mut map) => {
            let key = keys
                .iter()
                .find(|k| map.get(**k).is_some_and(Value::is_array))?;
            match map.remove(*key) {
                Some(Value::Array(items)) => Some(items),
                _ => None,
            }
        }
        _ => None,
    }
}

/// JSON, tolerating trailing commas before `}` or `]`: mainbrainer.txt's own sample response
/// has one (`"InvalidContactIds": [],` before `}`), and a success must not read as a failure.
fn parse_json(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    serde_json::from_slice(bytes).or_else(|strict| {
        let text = std::str::from_utf8(bytes).map_err(|_| strict)?;
        serde_json::from_str(&without_trailing_commas(text))
    })
}

/// Drops each comma that only whitespace separates from a closing `}` or `]`, outside strings.
fn without_trailing_commas(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
        } else if c == ',' {
            let next = chars[i + 1..].iter().find(|n| !n.is_whitespace());
            if matches!(next, Some('}') | Some(']')) {
                continue;
            }
        }
        out.push(c);
    }
    out
}

fn describe_transport_error(e: &reqwest::Error) -> String {
    if e.is_connect() {
        "connection failed".into()
    } else if e.is_body() || e.is_decode() {
        "the connection dropped while reading the response".into()
    } else if e.is_request() {
        "the connection dropped before a response".into()
    } else {
        "transport error".into()
    }
}

/// The message a provider put in an error body, in any of the documented shapes:
/// Consuelo `{"error":{"message"}}`, MaiAgent `{"detail"}` or `{"field": ["msg"]}`,
/// Mainbrainer `{"message"}`; else the text. The key is redacted first, then the message is
/// cut to 300 characters.
fn error_message(body: &[u8], redactor: &Redactor) -> String {
    let redact = redactor.may_hold(body);
    let text = String::from_utf8_lossy(body);
    let text = if redact {
        redactor.text(&text).into_owned()
    } else {
        text.into_owned()
    };
    let Ok(mut json) = serde_json::from_slice::<Value>(body) else {
        return shorten(text.trim());
    };
    if redact {
        redactor.value(&mut json);
    }
    shorten(message_in(&json).as_deref().unwrap_or(text.trim()))
}

/// The message of a JSON error body, when it has one in a shape we know.
fn message_in(json: &Value) -> Option<String> {
    let pick = |v: &Value| v.as_str().map(str::to_string);
    if let Some(m) = json.pointer("/error/message").and_then(pick) {
        return Some(m);
    }
    for key in ["detail", "message", "error"] {
        if let Some(m) = json.get(key).and_then(pick) {
            return Some(m);
        }
    }
    let Value::Object(fields) = json else {
        return None;
    };
    let parts: Vec<String> = fields
        .iter()
        .filter_map(|(field, v)| {
            let msgs: Vec<&str> = match v {
                Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
                Value::String(s) => vec![s.as_str()],
                _ => vec![],
            };
            (!msgs.is_empty()).then(|| format!("{field}: {}", msgs.join(" ")))
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

fn shorten(s: &str) -> String {
    const MAX: usize = 300;
    if s.len() <= MAX {
        return s.to_string();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::request_budget::RequestBudget;

    #[tokio::test]
    async fn a_request_budget_refuses_calls_past_it_without_sending_them() {
        let up = super::super::testing::spawn(ProviderId::Consuelo, "US", |_| {
            (200, serde_json::json!({}))
        })
        .await;
        let budget = RequestBudget::new(2, Duration::from_secs(30));
        let results = request_budget::within(Some(budget), async {
            let mut results = Vec::new();
            for _ in 0..4 {
                results.push(
                    up.client
                        .send(Call::Read, Method::GET, "/x", &[], None)
                        .await,
                );
            }
            results
        })
        .await;
        assert!(results[..2].iter().all(Result::is_ok));
        for refused in &results[2..] {
            let error = refused.as_ref().unwrap_err();
            assert!(matches!(
                error,
                ProviderError::BudgetExceeded { limit: 2, .. }
            ));
            assert!(
                !error.may_have_been_applied(),
                "a refused call was not sent"
            );
        }
        assert_eq!(up.requests().len(), 2);
        // Outside a request nothing is limited.
        for _ in 0..3 {
            assert!(up
                .client
                .send(Call::Read, Method::GET, "/x", &[], None)
                .await
                .is_ok());
        }
    }

    #[tokio::test]
    async fn the_request_deadline_cuts_a_call_before_the_providers_timeout() {
        // Accepts connections and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let config = ProviderConfig::new(format!("http://{addr}"), Secret::new("k"));
        assert_eq!(config.timeout_ms, 10_000);
        let client = UpstreamClient::new(ProviderId::Maiagent, &config);
        let budget = RequestBudget::new(10, Duration::from_millis(300));
        let started = Instant::now();
        let (cut, late) = request_budget::within(Some(budget), async {
            let cut = client
                .send(Call::Write, Method::POST, "/x", &[], None)
                .await;
            let late = client
                .send(Call::Write, Method::POST, "/x", &[], None)
                .await;
            (cut, late)
        })
        .await;
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(3),
            "{elapsed:?}"
        );
        match cut {
            Err(ProviderError::RequestTimeout {
                timeout_ms: 300,
                may_have_been_applied: true,
                ..
            }) => {}
            other => panic!("expected a request timeout, got {other:?}"),
        }
        // With no time left the call is not sent, so a write cannot have been applied.
        match late {
            Err(ProviderError::RequestTimeout {
                may_have_been_applied: false,
                ..
            }) => {}
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    /// Consuelo's way (NOTES 2.4): nothing remaining pauses the provider until the reset.
    #[tokio::test]
    async fn an_exhausted_rate_limit_header_pauses_calls_until_the_reset() {
        use axum::http::HeaderMap as Headers;
        use std::sync::atomic::{AtomicU64, Ordering};
        let served = Arc::new(AtomicU64::new(0));
        let count = served.clone();
        // The first answer says nothing remains until three seconds from now.
        let app = axum::Router::new().fallback(move || {
            let count = count.clone();
            async move {
                let mut headers = Headers::new();
                if count.fetch_add(1, Ordering::SeqCst) == 0 {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_secs();
                    headers.insert("x-ratelimit-remaining", HeaderValue::from(0));
                    headers.insert("x-ratelimit-reset", HeaderValue::from(now + 3));
                }
                (headers, "{}")
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let mut config = ProviderConfig::new(format!("http://{addr}"), Secret::new("k"));
        config.budget.follow_rate_limit_headers = true;
        let client = UpstreamClient::new(ProviderId::Consuelo, &config);
        let read = || client.send(Call::Read, Method::GET, "/x", &[], None);

        assert!(read().await.is_ok());
        // A request with half a second left cannot wait for the reset: refused, unsent.
        let budget = RequestBudget::new(10, Duration::from_millis(500));
        let refused = request_budget::within(Some(budget.clone()), read()).await;
        match refused {
            Err(ProviderError::RateLimited {
                retry_after_secs: Some(1..=3),
                ..
            }) => {}
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert_eq!(budget.calls_charged(), 0, "a refused call is not charged");
        assert_eq!(served.load(Ordering::SeqCst), 1);
        // Without a deadline the call waits for the reset (under `max_retry_after_secs`).
        let started = Instant::now();
        assert!(read().await.is_ok());
        assert!(
            started.elapsed() >= Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(served.load(Ordering::SeqCst), 2);
        assert_eq!(client.pacing().rate_limit_refusals(), 1);
        assert_eq!(client.pacing().waits(), 1);
    }

    #[test]
    fn a_trailing_comma_as_in_the_mainbrainer_sample_still_parses() {
        let sample = br#"{"status": "Success", "data": {"ContactId": "1329318", "InvalidContactIds": [], }}"#;
        let parsed = parse_json(sample).unwrap();
        assert_eq!(parsed["data"]["ContactId"], "1329318");
        // Commas inside strings are data.
        let text = br#"{"note": "a, }", "list": [1, 2,]}"#;
        assert_eq!(parse_json(text).unwrap()["note"], "a, }");
        assert!(parse_json(b"{not json").is_err());
    }

    fn error_message_of(body: &[u8]) -> String {
        error_message(body, &Redactor::new("sandbox-test-key-0123"))
    }

    #[test]
    fn a_record_path_keeps_the_collection_style_and_refuses_impossible_ids() {
        assert_eq!(
            record_path("/v1/contacts", "c 1/x").as_deref(),
            Some("/v1/contacts/c%201%2Fx")
        );
        assert_eq!(
            record_path("/api/contacts/", "user1_uuid").as_deref(),
            Some("/api/contacts/user1_uuid/")
        );
        for impossible in ["", ".", ".."] {
            assert_eq!(
                record_path("/v1/contacts", impossible),
                None,
                "{impossible:?}"
            );
        }
        assert_eq!(
            record_path("/v1/contacts", "...x").as_deref(),
            Some("/v1/contacts/...x")
        );
    }

    #[tokio::test]
    async fn an_impossible_id_is_no_contact_and_sends_nothing() {
        // Nothing listens on port 9: a request would fail as `Unavailable`.
        let config = ProviderConfig::new("http://127.0.0.1:9", Secret::new("k"));
        let client = UpstreamClient::new(ProviderId::Consuelo, &config);
        for impossible in ["", ".", ".."] {
            let read = client.get_contact("/v1/contacts", impossible, |_| unreachable!());
            assert!(matches!(read.await, Ok(None)), "{impossible:?}");
            let write = client.contact_path("/v1/contacts", impossible);
            assert!(
                matches!(write, Err(ProviderError::NotFound { .. })),
                "{impossible:?}"
            );
        }
    }

    #[test]
    fn error_messages_in_every_documented_shape() {
        assert_eq!(
            error_message_of(br#"{"error":{"code":"BAD","message":"phone invalid"}}"#),
            "phone invalid"
        );
        assert_eq!(
            error_message_of(br#"{"detail":"Not found."}"#),
            "Not found."
        );
        assert_eq!(
            error_message_of(br#"{"email":["Enter a valid email address."]}"#),
            "email: Enter a valid email address."
        );
        assert_eq!(
            error_message_of(br#"{"status":"Error","message":"No properties","data":null}"#),
            "No properties"
        );
        assert_eq!(error_message_of(b"upstream exploded"), "upstream exploded");
    }

    #[test]
    fn a_message_is_redacted_before_it_is_cut() {
        let key = "sandbox-test-key-0123";
        let redactor = Redactor::new(key);
        // The key across the 300th character: cutting first would leave 20 of its 21.
        let long = format!("{}{key} and more", "x".repeat(280));
        for body in [
            long.clone(),
            serde_json::json!({ "detail": long }).to_string(),
            serde_json::json!({ "errors": [{ "text": long }] }).to_string(),
        ] {
            let message = error_message(body.as_bytes(), &redactor);
            assert!(message.chars().count() <= 301, "{message}");
            assert!(!message.contains(&key[..10]), "{message}");
        }
        let message = error_message(
            format!(r#"{{"detail":"{}"}}"#, key.replace('-', "\\\\u002d")).as_bytes(),
            &redactor,
        );
        assert!(!message.contains("sandbox"), "{message}");
    }
}
