//! The control surface every simulator shares: the request log, injected latency and faults,
//! echo mode, and the unauthenticated `/__sandbox/...` HTTP routes that expose them.
//!
//! A middleware (`intercept`) sits in front of each simulator's API routes. For every API
//! request it records the request, waits the configured latency, then either applies the
//! configured fault or passes the request on to the provider's own auth and handlers.

use axum::body::{to_bytes, Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Largest request body the simulators read (and record).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// The request log keeps the newest this many requests; `request_count` keeps counting.
const MAX_LOGGED_REQUESTS: usize = 10_000;
/// Prefix of the control routes; requests under it are neither counted nor faulted.
pub const CONTROL_PREFIX: &str = "/__sandbox";

/// A misbehaviour a simulator can be told to show, on every API request until cleared (or on
/// the next few only: `SimControl::set_fault_times`).
///
/// Over HTTP (`PUT /__sandbox/fault`) it is written `{"status":500}`,
/// `{"rateLimited":{"retryAfterSecs":3}}`, `"malformedJson"`, `"hang"`, `"dropConnection"`,
/// or `null` to clear; `{"fault": {"status":503}, "times": 2}` shows it twice, then serves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum Fault {
    /// Answer every request with this status (provider-style error body).
    Status(u16),
    /// 429 with a `Retry-After` header.
    RateLimited { retry_after_secs: u64 },
    /// 200 with a body that is not JSON.
    MalformedJson,
    /// Never answer (the client must time out).
    Hang,
    /// The TCP connection is dropped without a complete response.
    DropConnection,
}

/// One API request as the simulator received it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// Decoded query pairs, in order.
    pub query: Vec<(String, String)>,
    /// Header names in lower case, in order.
    pub headers: Vec<(String, String)>,
    /// The body parsed as JSON; `Null` when there is none or it is not JSON.
    pub body: Value,
}

/// Builds a response in the provider's own error style.
pub type ErrorFn = fn(StatusCode, &str) -> Response;
/// Reads the store in the provider's wire shape, in list order.
pub type RecordsFn = Box<dyn Fn() -> Vec<Value> + Send + Sync>;
/// Adds provider-specific headers to every API response (Consuelo's `X-RateLimit-*`).
/// The flag says whether the response is a (simulated) 429.
pub type DecorateFn = Box<dyn Fn(&mut HeaderMap, bool) + Send + Sync>;

/// Echo mode (`SimControl::set_echo_key`): how one simulator puts the key it received into
/// its answers, as an upstream that echoes the request would.
#[derive(Clone, Copy)]
pub struct Echo {
    /// The key as the request presented it, read from its provider's auth header.
    pub received: fn(&HeaderMap) -> Option<String>,
    /// The answer (its JSON body and status) with `key` put into it.
    pub answer: fn(key: &str, StatusCode, Value) -> Echoed,
}

/// An answer in echo mode.
pub enum Echoed {
    Json(Value),
    /// A text body (an error page), for a gateway that quotes text.
    Text(String),
}

/// Put into an echoed answer where the key must appear JSON-escaped: the serialized body has
/// it replaced by the key written `\u0073\u0061…` (each byte escaped, so no plain fragment).
pub const JSON_ESCAPED_KEY: &str = "{{echo:json-escaped-key}}";

/// The key percent-encoded, every byte (`%73%61…`, so no plain fragment).
pub fn percent_encoded(key: &str) -> String {
    key.bytes().map(|b| format!("%{b:02X}")).collect()
}

/// An error message of about 320 characters with `key` across the 300th: a message cut there
/// keeps all but the key's last character.
pub fn straddling_message(what: &str, key: &str) -> String {
    let head = format!("{what}; the request carried the key ");
    let filler = 300usize.saturating_sub(head.len() + key.len().saturating_sub(1));
    format!("{head}{}{key} (echoed by the sandbox)", ".".repeat(filler))
}

#[derive(Default)]
struct Settings {
    fault: Option<Fault>,
    /// API requests `fault` is still shown on; `None`: until cleared.
    fault_times: Option<u64>,
    latency: Duration,
    echo_key: bool,
    log: VecDeque<RecordedRequest>,
    account: BTreeSet<String>,
}

/// Per-simulator knobs and observations.
pub struct SimControl {
    settings: Mutex<Settings>,
    count: AtomicU64,
    records: RecordsFn,
    error: ErrorFn,
    decorate: Option<DecorateFn>,
    echo: Option<Echo>,
}

impl SimControl {
    pub(crate) fn new(records: RecordsFn, error: ErrorFn, decorate: Option<DecorateFn>) -> Self {
        SimControl {
            settings: Mutex::default(),
            count: AtomicU64::new(0),
            records,
            error,
            decorate,
            echo: None,
        }
    }

    /// How this simulator echoes the key in echo mode.
    pub(crate) fn echoing(self, echo: Echo) -> Self {
        SimControl {
            echo: Some(echo),
            ..self
        }
    }

    fn settings(&self) -> std::sync::MutexGuard<'_, Settings> {
        self.settings.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets (or clears, with `None`) the fault shown on every API request.
    pub fn set_fault(&self, fault: Option<Fault>) {
        let mut s = self.settings();
        s.fault = fault;
        s.fault_times = None;
    }

    /// Shows `fault` on the next `times` API requests, then serves them normally again (a
    /// provider that fails twice and recovers).
    pub fn set_fault_times(&self, fault: Fault, times: u64) {
        let mut s = self.settings();
        s.fault = (times > 0).then_some(fault);
        s.fault_times = Some(times);
    }

    /// The fault currently set.
    pub fn fault(&self) -> Option<Fault> {
        self.settings().fault.clone()
    }

    /// Echo mode: while on, every answer (faulted error answers too) carries the key the
    /// request presented, where the provider's records and errors have text: in error
    /// messages (across the 300th character), in a contact's name, notes, tags or custom
    /// fields, JSON-escaped in one place and percent-encoded in another. For testing that
    /// the gateway never passes a key on.
    pub fn set_echo_key(&self, on: bool) {
        self.settings().echo_key = on;
    }

    /// Whether echo mode is on.
    pub fn echo_key(&self) -> bool {
        self.settings().echo_key
    }

    /// A delay added before every API answer (faulted ones too).
    pub fn set_latency(&self, latency: Duration) {
        self.settings().latency = latency;
    }

    /// Turns a setting of the simulated account on or off (every one is off until set): a
    /// behaviour the provider shows for some accounts and not others, which no request shows
    /// (Whautomate: `WHAUTOMATE_LOCATION_REQUIRED`).
    pub fn set_account_setting(&self, name: &str, on: bool) {
        let mut s = self.settings();
        if on {
            s.account.insert(name.to_string());
        } else {
            s.account.remove(name);
        }
    }

    /// Whether a setting of the simulated account is on.
    pub fn account_setting(&self, name: &str) -> bool {
        self.settings().account.contains(name)
    }

    /// API requests received since start or the last `reset_requests` (faulted ones too;
    /// control calls are not counted).
    pub fn request_count(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }

    /// The request log, oldest first (the newest 10,000).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.settings().log.iter().cloned().collect()
    }

    /// Empties the log and sets `request_count` back to 0.
    pub fn reset_requests(&self) {
        let mut s = self.settings();
        s.log.clear();
        self.count.store(0, Ordering::SeqCst);
    }

    /// The store in the provider's wire shape, in list order.
    pub fn records(&self) -> Vec<Value> {
        (self.records)()
    }

    fn record(&self, request: RecordedRequest) {
        let mut s = self.settings();
        if s.log.len() == MAX_LOGGED_REQUESTS {
            s.log.pop_front();
        }
        s.log.push_back(request);
        self.count.fetch_add(1, Ordering::SeqCst);
    }
}

/// The middleware in front of every simulator: record, wait, then fault or pass on.
pub(crate) async fn intercept(
    State(ctl): State<Arc<SimControl>>,
    req: Request,
    next: Next,
) -> Response {
    if req.uri().path().starts_with(CONTROL_PREFIX) {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let echo = match ctl.echo {
        Some(echo) if ctl.echo_key() => (echo.received)(&parts.headers).map(|key| (echo, key)),
        _ => None,
    };
    let body_result = to_bytes(body, MAX_BODY_BYTES).await;
    let bytes = body_result.as_ref().cloned().unwrap_or_default();
    ctl.record(RecordedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts
            .uri
            .query()
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    });

    let (fault, latency) = {
        let mut s = ctl.settings();
        let fault = s.fault.clone();
        if let Some(left) = s.fault_times.as_mut() {
            *left = left.saturating_sub(1);
            if *left == 0 {
                s.fault = None;
                s.fault_times = None;
            }
        }
        (fault, s.latency)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }

    let echoes = !matches!(
        fault,
        Some(Fault::Hang | Fault::DropConnection | Fault::MalformedJson)
    );
    let mut response = match fault {
        None if body_result.is_err() => {
            (ctl.error)(StatusCode::PAYLOAD_TOO_LARGE, "request body too large")
        }
        None => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Some(Fault::Status(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (ctl.error)(status, "simulated fault")
        }
        Some(Fault::RateLimited { retry_after_secs }) => {
            let mut r = (ctl.error)(StatusCode::TOO_MANY_REQUESTS, "rate limit exceeded");
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            r
        }
        Some(Fault::MalformedJson) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            "{\"data\": [{\"id\": \"trunc",
        )
            .into_response(),
        Some(Fault::Hang) => {
            // The client's timeout cuts this.
            tokio::time::sleep(Duration::from_secs(3600)).await;
            (ctl.error)(StatusCode::GATEWAY_TIMEOUT, "simulated hang")
        }
        Some(Fault::DropConnection) => {
            // A body that fails before its first byte: hyper aborts the connection without
            // flushing the head, so the client sees the connection close mid-exchange.
            let failing = futures::stream::once(async {
                Err::<Bytes, std::io::Error>(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    "simulated dropped connection",
                ))
            });
            Response::new(Body::from_stream(failing))
        }
    };
    if let (Some((echo, key)), true) = (echo, echoes) {
        response = echoed(response, &key, echo.answer).await;
    }
    if let Some(decorate) = &ctl.decorate {
        let limited = response.status() == StatusCode::TOO_MANY_REQUESTS;
        decorate(response.headers_mut(), limited);
    }
    response
}

/// A JSON answer with the key put into it by the simulator's `answer`; other answers (no
/// body, not JSON) as they were.
async fn echoed(
    response: Response,
    key: &str,
    answer: fn(&str, StatusCode, Value) -> Echoed,
) -> Response {
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = to_bytes(body, usize::MAX).await else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the answer could not be read",
        )
            .into_response();
    };
    let Ok(value) = serde_json::from_slice::<Value>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    let (body, content_type) = match answer(key, parts.status, value) {
        Echoed::Json(value) => {
            let escaped: String = key.bytes().map(|b| format!("\\u{b:04x}")).collect();
            let text = value.to_string().replace(JSON_ESCAPED_KEY, &escaped);
            (text, "application/json")
        }
        Echoed::Text(text) => (text, "text/plain; charset=utf-8"),
    };
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Response::from_parts(parts, Body::from(body))
}

/// `GET/DELETE /__sandbox/requests`, `GET /__sandbox/records`, `PUT /__sandbox/fault`,
/// `PUT /__sandbox/latency`, `PUT /__sandbox/echoKey`: unauthenticated, not counted.
pub(crate) fn routes(ctl: Arc<SimControl>) -> Router {
    Router::new()
        .route(
            "/__sandbox/requests",
            get(|State(c): State<Arc<SimControl>>| async move { Json(c.requests()) }).delete(
                |State(c): State<Arc<SimControl>>| async move {
                    c.reset_requests();
                    StatusCode::NO_CONTENT
                },
            ),
        )
        .route(
            "/__sandbox/records",
            get(|State(c): State<Arc<SimControl>>| async move { Json(c.records()) }),
        )
        .route(
            "/__sandbox/fault",
            put(|State(c): State<Arc<SimControl>>, body: Bytes| async move {
                #[derive(Deserialize)]
                #[serde(untagged)]
                enum SetFault {
                    Always(Option<Fault>),
                    Times { fault: Fault, times: u64 },
                }
                match serde_json::from_slice::<SetFault>(&body) {
                    Ok(SetFault::Always(fault)) => {
                        c.set_fault(fault);
                        StatusCode::NO_CONTENT.into_response()
                    }
                    Ok(SetFault::Times { fault, times }) => {
                        c.set_fault_times(fault, times);
                        StatusCode::NO_CONTENT.into_response()
                    }
                    Err(e) => control_error(format!(
                        "expected {{\"status\":500}}, {{\"rateLimited\":{{\"retryAfterSecs\":3}}}}, \
                         \"malformedJson\", \"hang\", \"dropConnection\" or null, or \
                         {{\"fault\": <one of those>, \"times\": <requests>}}: {e}"
                    )),
                }
            })
            .get(|State(c): State<Arc<SimControl>>| async move { Json(c.fault()) }),
        )
        .route(
            "/__sandbox/latency",
            put(|State(c): State<Arc<SimControl>>, body: Bytes| async move {
                #[derive(Deserialize)]
                struct Latency {
                    ms: u64,
                }
                match serde_json::from_slice::<Latency>(&body) {
                    Ok(l) => {
                        c.set_latency(Duration::from_millis(l.ms));
                        StatusCode::NO_CONTENT.into_response()
                    }
                    Err(e) => control_error(format!("expected {{\"ms\": <milliseconds>}}: {e}")),
                }
            }),
        )
        .route(
            "/__sandbox/echoKey",
            put(|State(c): State<Arc<SimControl>>, body: Bytes| async move {
                match serde_json::from_slice::<bool>(&body) {
                    Ok(on) => {
                        c.set_echo_key(on);
                        StatusCode::NO_CONTENT.into_response()
                    }
                    Err(e) => control_error(format!("expected true or false: {e}")),
                }
            })
            .get(|State(c): State<Arc<SimControl>>| async move { Json(c.echo_key()) }),
        )
        .with_state(ctl)
}

fn control_error(message: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({ "error": message })),
    )
        .into_response()
}
