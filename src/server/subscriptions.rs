//! Subscriptions at `/graphql`: over WebSocket (`graphql-transport-ws`, and the older
//! `graphql-ws` of subscriptions-transport-ws) and over SSE (GraphQL over SSE, "distinct
//! connections": a GET or POST asking `Accept: text/event-stream` for a subscription gets one
//! `next` event per result, then `complete`). async-graphql speaks the WebSocket protocol;
//! this module authenticates the connection, picks what runs over it, and closes it when the
//! gateway shuts down (every subscription completes at once).
//!
//! With `[auth]`, a WebSocket's credential is the upgrade request's `Authorization` header
//! (checked by the auth layer) or, without one, `connection_init`'s payload
//! (`{"Authorization": "Bearer …"}`); a connection without a valid one is closed with 4403.
//! SSE takes it from the header, as any request.

use super::auth::{Caller, PendingAuth};
use super::graphql_http::{EdgeError, MediaType};
use super::AppState;
use crate::config::CorsConfig;
use crate::gateway::{consent, loader};
use crate::graphql::query::ReportedEntities;
use async_graphql::http::{WebSocketProtocols, WsMessage, ALL_WEBSOCKET_PROTOCOLS};
use async_graphql::parser::types::OperationType;
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use futures::stream::{self, BoxStream};
use futures::{SinkExt, StreamExt};
use std::convert::Infallible;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

/// How long a WebSocket client has to send `connection_init` (then: 4408).
const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the `complete` messages of a shutdown may take to go out before the close.
const FLUSH: Duration = Duration::from_secs(2);
/// How often an idle SSE stream sends a comment, so proxies keep it open.
const SSE_KEEP_ALIVE: Duration = Duration::from_secs(15);

/// A WebSocket upgrade request.
pub fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Which pages' WebSockets are accepted: their own origin's, and those `[cors]` (or the
/// sandbox) lets call. CORS does not cover WebSockets: without this a page on any site could
/// subscribe through a visitor's browser to a gateway it reaches.
#[derive(Clone)]
pub struct Origins {
    pub cors: Option<CorsConfig>,
    pub sandbox: bool,
}

impl Origins {
    /// No `Origin` (not a browser), the gateway's own, or one `[cors]` allows.
    fn allow(&self, headers: &HeaderMap) -> bool {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return true;
        };
        let own = origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .zip(headers.get(header::HOST).and_then(|h| h.to_str().ok()))
            .is_some_and(|((_, authority), host)| authority.eq_ignore_ascii_case(host));
        own || super::cors::allows(origin, self.cors.as_ref(), self.sandbox)
    }
}

/// The layer in front of `/graphql` that takes WebSocket upgrades (the rest goes on).
pub async fn websocket(
    State(upgrades): State<Arc<(AppState, Origins)>>,
    request: Request,
    next: Next,
) -> Response {
    if !is_websocket_upgrade(request.headers()) {
        return next.run(request).await;
    }
    let (state, origins) = &*upgrades;
    let media = MediaType::accepted(request.headers());
    if !origins.allow(request.headers()) {
        return EdgeError::new(
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
            "a page from this origin may not open a WebSocket here ([cors] allow_origins)",
        )
        .respond(media);
    }
    let (mut parts, _) = request.into_parts();
    let protocol = parts
        .headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| WebSocketProtocols::from_str(p.trim()).ok());
    let Some(protocol) = protocol else {
        return EdgeError::new(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "ask for the `graphql-transport-ws` WebSocket subprotocol (Sec-WebSocket-Protocol)",
        )
        .respond(media);
    };
    let upgrade = match axum::extract::WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => upgrade,
        Err(refused) => return refused.into_response(),
    };
    let caller = parts.extensions.get::<Caller>().cloned();
    let pending = parts.extensions.get::<PendingAuth>().cloned();
    let span = tracing::info_span!(
        "subscription",
        transport = "websocket",
        caller = tracing::field::Empty
    );
    let state = state.clone();
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| {
            Connection {
                state,
                caller,
                pending,
            }
            .serve(socket, protocol)
            .instrument(span)
        })
}

/// One WebSocket connection.
struct Connection {
    state: AppState,
    /// Authenticated by the upgrade request's header.
    caller: Option<Caller>,
    /// `[auth]` is on and the upgrade request had no header: `connection_init` must carry it.
    pending: Option<PendingAuth>,
}

impl Connection {
    async fn serve(self, socket: WebSocket, protocol: WebSocketProtocols) {
        let _open = self.state.gateway.changes.socket_opened();
        let (mut sink, source) = socket.split();
        let mut source = source
            .take_while(|m| std::future::ready(m.is_ok()))
            .filter_map(|m| {
                std::future::ready(match m {
                    Ok(Message::Text(text)) => Some(axum::body::Bytes::from(text)),
                    Ok(Message::Binary(bytes)) => Some(bytes),
                    _ => None,
                })
            })
            .boxed();
        let mut closing = self.state.gateway.changes.closed();
        let shutdown = async move {
            let _ = closing.wait_for(|closing| *closing).await;
        };
        tokio::pin!(shutdown);
        let first = tokio::select! {
            first = tokio::time::timeout(INIT_TIMEOUT, source.next()) => match first {
                Ok(Some(first)) => first,
                Ok(None) => return,
                Err(_) => {
                    let _ = sink
                        .send(close(4408, "Connection initialisation timeout"))
                        .await;
                    return;
                }
            },
            () = &mut shutdown => {
                let _ = sink.send(close(1001, "the gateway is shutting down")).await;
                return;
            }
        };
        let caller = match (self.caller, self.pending) {
            (Some(caller), _) => Some(caller),
            (None, Some(PendingAuth(auth))) => match init_credential(&first) {
                Err(refusal) => {
                    let _ = sink.send(close(4401, &refusal)).await;
                    return;
                }
                Ok(headers) => match auth.caller(&headers).await {
                    Err(reason) => {
                        let _ = sink
                            .send(close(4403, &format!("UNAUTHENTICATED: {reason}")))
                            .await;
                        return;
                    }
                    Ok(caller) => {
                        if let Err(wait) = auth.admit(&caller) {
                            let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
                            let _ = sink
                                .send(close(4429, &format!("RATE_LIMITED: retry in {secs} s")))
                                .await;
                            return;
                        }
                        Some(caller)
                    }
                },
            },
            (None, None) => None,
        };
        if let Some(caller) = &caller {
            tracing::Span::current().record("caller", tracing::field::display(&caller.name));
        }
        let executor = OverWebSocket {
            state: self.state.clone(),
            caller,
        };
        // The operations running, by id: at shutdown each gets its `complete` before the close.
        let running = Running::default();
        let started = running.clone();
        let input = stream::once(std::future::ready(first))
            .chain(source)
            .inspect(move |message| started.client_sent(message));
        let mut output = async_graphql::http::WebSocket::new(executor, input, protocol);
        loop {
            tokio::select! {
                message = output.next() => match message {
                    Some(WsMessage::Text(text)) => {
                        running.server_sent(&text);
                        if sink.send(Message::Text(text.into())).await.is_err() {
                            return;
                        }
                    }
                    Some(WsMessage::Close(code, reason)) => {
                        let _ = sink.send(close(code, &reason)).await;
                        return;
                    }
                    None => return,
                },
                () = &mut shutdown => break,
            }
        }
        // Every subscription is ending: their `complete` messages go out, then the close.
        let deadline = tokio::time::Instant::now() + FLUSH;
        while !running.is_empty() {
            match tokio::time::timeout_at(deadline, output.next()).await {
                Ok(Some(WsMessage::Text(text))) => {
                    running.server_sent(&text);
                    if sink.send(Message::Text(text.into())).await.is_err() {
                        return;
                    }
                }
                _ => break,
            }
        }
        let _ = sink.send(close(1001, "the gateway is shutting down")).await;
    }
}

/// The ids of the operations a connection runs, from the messages each side sent.
#[derive(Clone, Default)]
struct Running(std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>);

impl Running {
    fn ids(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn client_sent(&self, message: &[u8]) {
        let message: serde_json::Value = serde_json::from_slice(message).unwrap_or_default();
        if let Some(id) = message["id"].as_str() {
            match message["type"].as_str() {
                Some("subscribe" | "start") => {
                    self.ids().insert(id.to_string());
                }
                Some("complete" | "stop") => {
                    self.ids().remove(id);
                }
                _ => {}
            }
        }
    }

    fn server_sent(&self, message: &str) {
        let message: serde_json::Value = serde_json::from_str(message).unwrap_or_default();
        if let (Some(id), Some("complete" | "error")) =
            (message["id"].as_str(), message["type"].as_str())
        {
            self.ids().remove(id);
        }
    }

    fn is_empty(&self) -> bool {
        self.ids().is_empty()
    }
}

/// The `Authorization` a `connection_init` payload carries, as request headers.
fn init_credential(first: &[u8]) -> Result<HeaderMap, String> {
    let message: serde_json::Value = serde_json::from_slice(first).unwrap_or_default();
    if message["type"] != "connection_init" {
        return Err("Unauthorized: send connection_init first".into());
    }
    let payload = &message["payload"];
    let mut headers = HeaderMap::new();
    let credential = payload["Authorization"]
        .as_str()
        .or_else(|| payload["authorization"].as_str());
    if let Some(value) = credential.and_then(|c| HeaderValue::from_str(c).ok()) {
        headers.insert(header::AUTHORIZATION, value);
    }
    Ok(headers)
}

/// A close frame; its reason cut to the 123 bytes a frame holds.
fn close(code: u16, reason: &str) -> Message {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Message::Close(Some(CloseFrame {
        code,
        reason: reason[..end].into(),
    }))
}

/// What runs over a WebSocket: subscriptions, and queries (as a POST runs them, under their
/// own upstream budget); mutations only by POST (idempotency keys and roles are checked there).
#[derive(Clone)]
struct OverWebSocket {
    state: AppState,
    caller: Option<Caller>,
}

impl async_graphql::Executor for OverWebSocket {
    async fn execute(&self, request: async_graphql::Request) -> async_graphql::Response {
        let caller = self.caller.clone().map(Extension);
        self.state.run(request, caller.as_ref()).await.0
    }

    fn execute_stream(
        &self,
        mut request: async_graphql::Request,
        session_data: Option<std::sync::Arc<async_graphql::Data>>,
    ) -> BoxStream<'static, async_graphql::Response> {
        self.state.documents.prepare(&mut request);
        match operation_type(&mut request) {
            Some(OperationType::Subscription) => {
                let request = subscription_data(&self.state, request);
                let results = match session_data {
                    Some(session) => self
                        .state
                        .schema
                        .execute_stream_with_session_data(request, session),
                    None => self.state.schema.execute_stream(request),
                };
                results.map(coded).boxed()
            }
            Some(OperationType::Mutation) => {
                let mut error = async_graphql::ServerError::new(
                    "mutations are accepted only by POST /graphql",
                    None,
                );
                error
                    .extensions
                    .get_or_insert_with(Default::default)
                    .set("code", "METHOD_NOT_ALLOWED");
                stream::once(std::future::ready(async_graphql::Response::from_errors(
                    vec![error],
                )))
                .boxed()
            }
            _ => {
                let this = self.clone();
                stream::once(async move { this.execute(request).await }).boxed()
            }
        }
    }
}

/// A subscription's request data, as a request's (`AppState::execute`) but remembering
/// nothing across the events it resolves: it may stay open for days. (No search loader:
/// without one `duplicatesOf` searches afresh for each change, which is what a subscription
/// open for days needs; a request's loader keeps every search it made.)
fn subscription_data(state: &AppState, request: async_graphql::Request) -> async_graphql::Request {
    let registry = consent::for_request(&state.gateway);
    registry.enable_all_cache(false);
    request
        .data(loader::for_request(state.gateway.clone()))
        .data(registry)
        .data(ReportedEntities::default())
}

/// The type of the operation a request runs; `None` when it does not parse or names none.
fn operation_type(request: &mut async_graphql::Request) -> Option<OperationType> {
    let operation_name = request.operation_name.clone();
    let document = request.parsed_query().ok()?;
    let mut selected = document
        .operations
        .iter()
        .filter(|(name, _)| match (&operation_name, name) {
            (Some(wanted), Some(name)) => wanted.as_str() == name.as_str(),
            _ => true,
        })
        .map(|(_, op)| op.node.ty);
    let first = selected.next()?;
    selected.next().is_none().then_some(first)
}

/// A request for a subscription over SSE: `Accept: text/event-stream` and a subscription
/// operation (anything else is answered as usual).
pub(super) fn wants_event_stream(
    state: &AppState,
    headers: &HeaderMap,
    request: &mut async_graphql::Request,
) -> bool {
    let accepts = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/event-stream"));
    if !accepts {
        return false;
    }
    state.documents.prepare(request);
    operation_type(request) == Some(OperationType::Subscription)
}

/// A subscription's result with its errors coded (`code_errors`).
fn coded(mut response: async_graphql::Response) -> async_graphql::Response {
    crate::graphql::errors::code_errors(&mut response);
    response
}

/// A subscription over SSE: a `next` event per result, then `complete` (when the gateway
/// shuts down, or the subscription fails).
pub(super) fn event_stream(state: &AppState, request: async_graphql::Request) -> Response {
    let results = state
        .schema
        .execute_stream(subscription_data(state, request))
        .map(coded)
        .map(|response| {
            let data = serde_json::to_string(&response).unwrap_or_else(|_| "{}".into());
            Ok::<_, Infallible>(Event::default().event("next").data(data))
        })
        .chain(stream::once(std::future::ready(Ok(Event::default()
            .event("complete")
            .data("")))));
    let mut response = Sse::new(results)
        .keep_alive(KeepAlive::new().interval(SSE_KEEP_ALIVE))
        .into_response();
    // Proxies must pass events on as they come.
    response.headers_mut().insert(
        HeaderName::from_static("x-accel-buffering"),
        HeaderValue::from_static("no"),
    );
    response
}
