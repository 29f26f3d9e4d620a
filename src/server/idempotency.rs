//! `Idempotency-Key` on mutations: one run per key and caller, then the same answer.
//!
//! A mutation POSTed with the header runs at most once per (caller, key): the first takes
//! the key in the store and runs (in its own task, so a client that gives up does not cut a
//! write short and the answer is still saved); a repeat of the same request gets the saved
//! answer with `Idempotent-Replayed: true` and calls no provider; another request under the
//! key is 422, one while the first runs is 409. On a query the key is checked and ignored: a
//! read is safe to repeat and a client may send the header on every POST.

use super::graphql_http::{EdgeError, MediaType};
use super::{auth::Caller, is_mutation, AppState, Counted};
use crate::store::idempotency::{Begun, StoredResponse, Ticket};
use crate::store::Store;
use axum::body::{to_bytes, Body};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Extension;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::time::Duration;
use tracing::Instrument;

pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// How long a key is held without renewal: a process that dies mid-request keeps its keys
/// "in flight" this long at most.
const LEASE: Duration = Duration::from_secs(30);
/// How often a running request renews its lease.
const RENEW_EVERY: Duration = Duration::from_secs(10);

/// A valid `Idempotency-Key`: 1–255 printable ASCII characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The request's key, if it sent one; a malformed one (or several) is a 400.
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, EdgeError> {
        let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        let malformed = |why: &str| {
            EdgeError::new(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                format!("`Idempotency-Key` {why}"),
            )
        };
        if values.next().is_some() {
            return Err(malformed("must be sent once"));
        }
        let bytes = value.as_bytes();
        if bytes.is_empty() || bytes.len() > 255 {
            return Err(malformed("must have 1 to 255 characters"));
        }
        if !bytes.iter().all(|b| (0x20..=0x7e).contains(b)) {
            return Err(malformed("must be printable ASCII"));
        }
        Ok(Some(IdempotencyKey(
            String::from_utf8_lossy(bytes).into_owned(),
        )))
    }
}

/// What makes two requests "the same": `query`, `operationName` and `variables`, the
/// variables compared as parsed JSON (key order and whitespace do not count). SHA-256, hex.
pub fn request_hash(request: &async_graphql::Request) -> String {
    let variables = request
        .variables
        .clone()
        .into_value()
        .into_json()
        .unwrap_or(Value::Null);
    let identity = json!({
        "query": request.query,
        "operationName": request.operation_name,
        "variables": variables,
    });
    let mut canonical = String::new();
    write_canonical(&identity, &mut canonical);
    Sha256::digest(canonical.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// JSON with every object's keys sorted, without whitespace.
pub(super) fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (name, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(name.clone()).to_string());
                out.push(':');
                write_canonical(value, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

impl AppState {
    /// Answers a POSTed request that carries `key`: a mutation at most once per caller and
    /// key, a query as if it had none.
    pub(super) async fn answer_once(
        &self,
        key: IdempotencyKey,
        mut request: async_graphql::Request,
        caller: Option<Extension<Caller>>,
        media: MediaType,
    ) -> Response {
        self.documents.prepare(&mut request);
        if !is_mutation(&mut request) {
            return self.answer(request, caller, media, None).await.response;
        }
        let (mut response, outcome) = self.answer_mutation_once(key, request, caller, media).await;
        // Counted as the mutation it is, whichever way it was answered (the run counts itself).
        if response.extensions().get::<Counted>().is_none() {
            response.extensions_mut().insert(Counted {
                operation: "mutation",
                outcome,
            });
        }
        response
    }

    /// `answer_once` for a mutation: its answer, and the outcome to count when the answer is
    /// not one the run counted (a replay, a refusal).
    async fn answer_mutation_once(
        &self,
        key: IdempotencyKey,
        request: async_graphql::Request,
        caller: Option<Extension<Caller>>,
        media: MediaType,
    ) -> (Response, &'static str) {
        let Some(store) = self.gateway.store.clone() else {
            let refused = store_unavailable("the gateway has no store").respond(media);
            return (refused, "refused");
        };
        // One scope for every caller when there is no `[auth]`.
        let scope = caller
            .as_ref()
            .map(|Extension(c)| c.name.clone())
            .unwrap_or_default();
        let hash = request_hash(&request);
        let begun = store
            .try_processing(&scope, &key.0, &hash, self.idempotency_ttl, LEASE)
            .await;
        match begun {
            Ok(Begun::Run(ticket)) => {
                // Its own task: the write finishes and its answer is saved even if the client
                // goes away meanwhile (its retry is then answered from the store).
                let state = self.clone();
                let run = async move {
                    state
                        .run_holding(&store, &ticket, request, caller, media)
                        .await
                };
                match tokio::spawn(run.instrument(tracing::Span::current())).await {
                    // Counted by `answer`.
                    Ok(response) => (response, "ok"),
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    // Cancelled: the runtime is shutting down.
                    Err(_) => (
                        EdgeError::new(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "STORE_UNAVAILABLE",
                            "the gateway is shutting down; the key's outcome is unknown: retry later",
                        )
                        .respond(media),
                        "refused",
                    ),
                }
            }
            Ok(Begun::Replay(stored)) => {
                let outcome = replayed_outcome(&stored);
                (replay(stored, media), outcome)
            }
            Ok(Begun::InFlight) => (
                EdgeError::new(
                    StatusCode::CONFLICT,
                    "IDEMPOTENCY_KEY_IN_FLIGHT",
                    "a request with this Idempotency-Key is still running: retry after it ends",
                )
                .respond(media),
                "refused",
            ),
            Ok(Begun::Reused) => (
                EdgeError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "IDEMPOTENCY_KEY_REUSED",
                    "this Idempotency-Key was used for another request (another query, \
                     operationName or variables): use a new key for a new request",
                )
                .respond(media),
                "refused",
            ),
            Ok(Begun::Abandoned(ticket)) => {
                let stored = outcome_unknown(media);
                if let Err(e) = store.save_response(&ticket, &stored).await {
                    tracing::warn!(error = %e, "could not save an abandoned key's answer");
                }
                (replay(stored, media), "error")
            }
            Err(e) => (store_unavailable(&e.to_string()).respond(media), "refused"),
        }
    }

    /// Runs the request while renewing the key's lease, then saves its answer, or gives the
    /// key back when the request was refused before it ran.
    async fn run_holding(
        &self,
        store: &Store,
        ticket: &Ticket,
        request: async_graphql::Request,
        caller: Option<Extension<Caller>>,
        media: MediaType,
    ) -> Response {
        let run = self.answer(request, caller, media, None);
        let renew = async {
            let mut every = tokio::time::interval(RENEW_EVERY);
            every.tick().await;
            loop {
                every.tick().await;
                match store.renew_processing(ticket, LEASE).await {
                    Ok(true) => {}
                    Ok(false) => return,
                    // A store that fails now may answer at the next renewal.
                    Err(e) => tracing::warn!(error = %e, "could not renew an idempotency key"),
                }
            }
        };
        tokio::pin!(run);
        let answered = tokio::select! {
            answered = &mut run => answered,
            () = renew => run.await,
        };
        if !answered.executed {
            if let Err(e) = store.forget_processing(ticket).await {
                tracing::warn!(error = %e, "could not give an idempotency key back");
            }
            return answered.response;
        }
        let (parts, body) = answered.response.into_parts();
        let body = match to_bytes(body, usize::MAX).await {
            Ok(body) => body,
            Err(e) => {
                tracing::warn!(error = %e, "could not read an answer to save it");
                return Response::from_parts(parts, Body::empty());
            }
        };
        let stored = StoredResponse {
            status: parts.status.as_u16(),
            content_type: parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string(),
            body: String::from_utf8_lossy(&body).into_owned(),
        };
        // Not saved: the key stays "in flight" until its lease ends, then is answered as
        // abandoned (a retry never runs the request again).
        match store.save_response(ticket, &stored).await {
            Ok(true) => {}
            Ok(false) => tracing::warn!("an idempotency key was taken as abandoned while running"),
            Err(e) => tracing::warn!(error = %e, "could not save an idempotent answer"),
        }
        Response::from_parts(parts, Body::from(body))
    }
}

/// A replayed answer counts as the first did: `error` when it holds errors, else `ok`.
fn replayed_outcome(stored: &StoredResponse) -> &'static str {
    #[derive(serde::Deserialize)]
    struct Errors {
        #[serde(default)]
        errors: Vec<serde::de::IgnoredAny>,
    }
    match serde_json::from_str::<Errors>(&stored.body) {
        Ok(answer) if answer.errors.is_empty() => "ok",
        _ => "error",
    }
}

/// A saved answer, sent again.
fn replay(stored: StoredResponse, media: MediaType) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let content_type =
        HeaderValue::from_str(&stored.content_type).unwrap_or_else(|_| media.header());
    let mut response = Response::new(Body::from(stored.body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    response
}

/// The answer for a key whose request was running in a process that died: it may have been
/// applied, so it is not run again.
fn outcome_unknown(media: MediaType) -> StoredResponse {
    let body = json!({
        "data": null,
        "errors": [{
            "message": "the gateway stopped while running the first request with this \
                        Idempotency-Key, so it may have been applied: check before sending \
                        it again under a new key",
            "extensions": { "code": "IDEMPOTENCY_KEY_ABANDONED", "mayHaveBeenApplied": true },
        }],
    });
    StoredResponse {
        status: StatusCode::OK.as_u16(),
        content_type: media.header().to_str().unwrap_or_default().to_string(),
        body: body.to_string(),
    }
}

fn store_unavailable(why: &str) -> EdgeError {
    tracing::warn!(error = %why, "store failure");
    EdgeError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "STORE_UNAVAILABLE",
        "the gateway's store is unavailable, so a request with an Idempotency-Key cannot \
         run: nothing was sent",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(body: &str) -> String {
        let headers = HeaderMap::from_iter([(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )]);
        match super::super::graphql_http::post_request(&headers, &body.to_owned().into(), 1) {
            Ok(super::super::graphql_http::Posted::One(request)) => request_hash(&request),
            other => panic!("one request expected, got {other:?}"),
        }
    }

    #[test]
    fn the_same_request_hashes_the_same_whatever_its_key_order_and_whitespace() {
        let a = hash(
            r#"{"query":"mutation($a: Int) { x }","variables":{"a":1,"b":{"c":[1,2],"d":"e"}}}"#,
        );
        let b = hash(
            r#"{ "variables": { "b": { "d": "e", "c": [1, 2] }, "a": 1 },
                 "query": "mutation($a: Int) { x }" }"#,
        );
        assert_eq!(a, b);
        assert_eq!(a.len(), 64);
        assert_ne!(
            a,
            hash(
                r#"{"query":"mutation($a: Int) { x }","variables":{"a":2,"b":{"c":[1,2],"d":"e"}}}"#
            )
        );
        assert_ne!(
            a,
            hash(
                r#"{"query":"mutation($a: Int) { x }","variables":{"a":1,"b":{"c":[2,1],"d":"e"}}}"#
            )
        );
        // No variables, `null` and `{}` are one request; an operationName makes another.
        let plain = hash(r#"{"query":"mutation { x }"}"#);
        assert_eq!(
            plain,
            hash(r#"{"query":"mutation { x }","variables":null}"#)
        );
        assert_eq!(plain, hash(r#"{"query":"mutation { x }","variables":{}}"#));
        assert_ne!(
            plain,
            hash(r#"{"query":"mutation { x }","operationName":"X"}"#)
        );
    }

    #[test]
    fn a_key_is_1_to_255_printable_ascii_characters_sent_once() {
        let key = |values: &[&[u8]]| {
            let mut headers = HeaderMap::new();
            for value in values {
                headers.append(IDEMPOTENCY_KEY, HeaderValue::from_bytes(value).unwrap());
            }
            IdempotencyKey::from_headers(&headers)
        };
        assert_eq!(key(&[]).unwrap(), None);
        assert!(key(&[b"order 42/a~b"]).unwrap().is_some());
        assert!(key(&[&[b'k'; 255]]).unwrap().is_some());
        for bad in [&b""[..], &[b'k'; 256], b"tab\there", "caf\u{e9}".as_bytes()] {
            let err = key(&[bad]).unwrap_err();
            assert_eq!(err.status, StatusCode::BAD_REQUEST, "{bad:?}");
        }
        assert!(key(&[b"a", b"b"]).is_err(), "sent twice");
    }
}
