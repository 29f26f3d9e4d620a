//! The HTTP surface: `/graphql` (POST, GET, GraphiQL), `/healthz`, and the request limits.

pub mod auth;
mod cors;
pub mod graphiql;
pub mod graphql_http;
pub mod idempotency;
pub mod persisted_queries;
pub mod response_cache;
pub mod subscriptions;

use auth::{Authenticator, Caller};
use graphql_http::{EdgeError, MediaType, Posted};
use idempotency::IdempotencyKey;
use response_cache::{ExactKey, ResponseCache};

use crate::config::Config;
use crate::gateway::cache::Reads;
use crate::gateway::{consent, loader, people, Gateway};
use crate::graphql::errors::{code_errors, parse_failed};
use crate::graphql::query::ReportedEntities;
use crate::graphql::AppSchema;
use crate::providers::{diagnostics, request_budget};
use async_graphql::parser::types::{ExecutableDocument, OperationType};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use axum::{middleware, Extension};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tracing::Instrument;

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

#[derive(Clone)]
pub struct AppState {
    pub schema: AppSchema,
    pub gateway: Arc<Gateway>,
    pub documents: ParsedDocuments,
    pub persisted_queries: persisted_queries::PersistedQueries,
    /// `[limits] max_errors`.
    pub max_errors: usize,
    /// `[limits] max_batch`: operations one JSON-array request may hold.
    pub max_batch: usize,
    /// The playground page (`graphiql::page`).
    pub graphiql: Html<String>,
    /// `[store] idempotency_ttl_secs`: how long a mutation's `Idempotency-Key` is remembered.
    pub idempotency_ttl: std::time::Duration,
    /// Whole answers to queries; `None` when `[cache]` turns it off.
    pub responses: Option<ResponseCache>,
}

impl AppState {
    /// Runs one GraphQL request (its document already `prepare`d) under its own upstream
    /// budget, with its own loader, whose batches run in this request's span and budget.
    /// (A batch's operations share the batch's budget.)
    async fn execute(&self, request: async_graphql::Request) -> async_graphql::Response {
        let budget = request_budget::current().unwrap_or_else(|| self.gateway.request_budget());
        let diagnostics = diagnostics::wanted().then(|| budget.diagnose());
        let mut response = request_budget::within(Some(budget), async {
            let request = request
                .data(loader::for_request(self.gateway.clone()))
                .data(consent::for_request(&self.gateway))
                .data(people::for_request(self.gateway.clone()))
                .data(ReportedEntities::default());
            self.schema.execute(request).await
        })
        .await;
        if let Some(diagnostics) = diagnostics {
            let providers = async_graphql::Value::from_json(diagnostics.to_value())
                .unwrap_or(async_graphql::Value::Null);
            response
                .extensions
                .insert(diagnostics::PROVIDERS.to_string(), providers);
        }
        response
    }
}

/// Numbers requests for their log lines (`x-request-id`, unless the client sent one).
#[derive(Clone, Default)]
struct RequestCounter(Arc<AtomicU64>);

impl MakeRequestId for RequestCounter {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let n = self.0.fetch_add(1, Ordering::Relaxed) + 1;
        Some(RequestId::new(HeaderValue::from(n)))
    }
}

/// The span of a request that runs GraphQL (not one answered by the exact index): its upstream
/// calls' lines carry it. The path only, never a GET's query string (it holds the variables).
fn request_span(
    headers: &HeaderMap,
    method: &'static str,
    caller: Option<&Caller>,
) -> tracing::Span {
    let id = headers
        .get(X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let span = tracing::info_span!(
        "request",
        id = %id,
        method = %method,
        path = %"/graphql",
        // The credential's name (never the key).
        caller = caller.map(|c| display(&c.name)),
        otel.kind = "server",
    );
    // The client's W3C `traceparent`, when traces are exported: the request joins its trace.
    let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&opentelemetry_http::HeaderExtractor(headers))
    });
    let _ = tracing_opentelemetry::OpenTelemetrySpanExt::set_parent(&span, parent);
    span
}

/// The one line per request: INFO (ERROR for a 5xx) with its id, method, path, status,
/// latency in µs, `cache=hit|miss` for a query the response cache answered or could have, and
/// the caller with `[auth]`. It costs one event, and no span: a request answered from the
/// cache logs nothing else, and one that runs GraphQL opens its span where it runs.
async fn log_requests(request: axum::extract::Request, next: middleware::Next) -> Response {
    let started = Instant::now();
    let id = request.headers().get(X_REQUEST_ID).cloned();
    let method = request.method().clone();
    let uri = request.uri().clone();
    let response = next.run(request).await;
    let latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    let id = id.as_ref().and_then(|v| v.to_str().ok()).unwrap_or("");
    let status = response.status().as_u16();
    let cache = response
        .headers()
        .get(response_cache::CACHE_STATUS)
        .and_then(|v| v.to_str().ok());
    let caller = response
        .extensions()
        .get::<Caller>()
        .map(|c| c.name.as_str());
    macro_rules! line {
        ($level:expr) => {
            tracing::event!(
                $level,
                id = %id,
                method = %method,
                path = %uri.path(),
                status,
                latency_us,
                cache = cache.map(display),
                caller = caller.map(display),
                "finished processing request"
            )
        };
    }
    if status >= 500 {
        line!(tracing::Level::ERROR);
    } else {
        line!(tracing::Level::INFO);
    }
    response
}

/// The caller, for the request's log line.
fn with_caller(mut response: Response, caller: Option<&Caller>) -> Response {
    if let Some(caller) = caller {
        response.extensions_mut().insert(caller.clone());
    }
    response
}

/// Parsed queries by their text: a frontend sends the same few queries over and over, and
/// parsing is a large share of a cached read's cost. Validation still runs every time. Each
/// is kept with its normalized text, the response cache's key.
#[derive(Clone)]
pub struct ParsedDocuments(moka::sync::Cache<String, Prepared>);

#[derive(Clone)]
struct Prepared {
    document: ExecutableDocument,
    /// `response_cache::normalize`d; `None` when it cannot be.
    normalized: Option<Arc<str>>,
}

impl Default for ParsedDocuments {
    fn default() -> Self {
        ParsedDocuments(moka::sync::Cache::new(1_000))
    }
}

impl ParsedDocuments {
    /// Queries longer than this are parsed each time (and not held in memory).
    const MAX_QUERY_BYTES: usize = 16 * 1024;

    /// Gives `request` its parsed document, from the cache or freshly parsed; returns its
    /// normalized text. A query that does not parse is left for the schema to report.
    fn prepare(&self, request: &mut async_graphql::Request) -> Option<Arc<str>> {
        if request.query.len() > Self::MAX_QUERY_BYTES {
            return None;
        }
        if let Some(prepared) = self.0.get(&request.query) {
            request.set_parsed_query(prepared.document);
            return prepared.normalized;
        }
        let document = request.parsed_query().ok()?.clone();
        let normalized = response_cache::normalize(&request.query);
        let prepared = Prepared {
            document,
            normalized: normalized.clone(),
        };
        self.0.insert(request.query.clone(), prepared);
        normalized
    }
}

/// The routes and their layers. `sandbox`: the built-in simulators run, and local frontend dev
/// servers may call (CORS for `http://localhost:*` and `http://127.0.0.1:*`).
pub fn router(state: AppState, config: &Config, sandbox: bool) -> Result<Router, String> {
    let mut graphql = Router::new()
        .route(
            "/graphql",
            get(graphql_get)
                .post(graphql_post)
                .fallback(|headers: HeaderMap| async move {
                    refusal(
                        &headers,
                        StatusCode::METHOD_NOT_ALLOWED,
                        "METHOD_NOT_ALLOWED",
                        "use GET or POST",
                    )
                }),
        )
        // Inside the auth layer: an upgrade is authenticated first.
        // Its state is shared (an `Arc`): the middleware's state is cloned for every request.
        .route_layer(middleware::from_fn_with_state(
            Arc::new((
                state.clone(),
                subscriptions::Origins {
                    cors: config.cors.clone(),
                    sandbox,
                },
            )),
            subscriptions::websocket,
        ));
    if let Some(auth) = &config.auth {
        let auth = Arc::new(Authenticator::new(auth)?);
        graphql = graphql.route_layer(middleware::from_fn_with_state(auth, auth::require_caller));
    }
    // Outside auth: a request refused for its credential is counted too.
    graphql = graphql.route_layer(middleware::from_fn(count_request));
    // `/metrics` and `/readyz` sit beside `/healthz`, without auth: the numbers carry no
    // contact data and no secret (README, "What to watch").
    crate::metrics::handle();
    let mut app = graphql
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route("/readyz", get(readyz))
        .route(
            &format!("{}/{{file}}", graphiql::ASSETS),
            get(graphiql::asset),
        )
        .fallback(|headers: HeaderMap| async move {
            refusal(
                &headers,
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "GraphQL is served at /graphql",
            )
        })
        // Read by the `Bytes` extractor, whose refusal the handler answers as JSON.
        .layer(DefaultBodyLimit::max(config.limits.max_body_bytes));
    if let Some(cors) = cors::layer(config.cors.as_ref(), sandbox) {
        app = app.layer(cors);
    }
    Ok(app
        .layer(PropagateRequestIdLayer::new(X_REQUEST_ID))
        .layer(middleware::from_fn(log_requests))
        .layer(SetRequestIdLayer::new(
            X_REQUEST_ID,
            RequestCounter::default(),
        ))
        // One `Arc` clone per request, not one per field.
        .with_state(Arc::new(state)))
}

/// `GET /metrics`: Prometheus text.
async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let body = crate::metrics::render(&state.gateway).await;
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

/// `GET /readyz`: 200 when every part the gateway needs answers (`Gateway::ready`), else 503
/// naming the parts that do not.
async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let readiness = state.gateway.ready().await;
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(readiness)).into_response()
}

/// What a GraphQL request was and how it ended, set on its response for `count_request`.
#[derive(Clone, Copy)]
struct Counted {
    operation: &'static str,
    outcome: &'static str,
}

/// Counts every request to `/graphql` by operation type and outcome.
async fn count_request(request: axum::extract::Request, next: middleware::Next) -> Response {
    let response = next.run(request).await;
    let counted = match response.extensions().get::<Counted>() {
        Some(counted) => *counted,
        // Served from the response cache before anything was parsed: a query.
        None if response
            .headers()
            .get(response_cache::CACHE_STATUS)
            .is_some_and(|v| v == "hit") =>
        {
            Counted {
                operation: "query",
                outcome: "ok",
            }
        }
        None if response.status().is_success() => Counted {
            operation: "unknown",
            outcome: "ok",
        },
        None => Counted {
            operation: "none",
            outcome: "refused",
        },
    };
    crate::metrics::http_request(counted.operation, counted.outcome);
    response
}

/// A refusal of the HTTP request, as a coded JSON GraphQL error like every other.
fn refusal(headers: &HeaderMap, status: StatusCode, code: &'static str, message: &str) -> Response {
    EdgeError::new(status, code, message).respond(MediaType::accepted(headers))
}

async fn graphql_post(
    state: State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let diagnose = diagnostics::asked(&headers);
    diagnostics::scope(diagnose, graphql_post_in(state, caller, headers, body)).await
}

/// `graphql_post`, in the request's diagnostics scope.
async fn graphql_post_in(
    State(state): State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    // The same bytes from the same caller as an answer kept: sent before anything is parsed.
    // (A request with an `Idempotency-Key` goes the long way: the key is checked first.)
    let mut exact = None;
    if let (Some(responses), Ok(body)) = (&state.responses, &body) {
        if !headers.contains_key(idempotency::IDEMPOTENCY_KEY) && !diagnostics::wanted() {
            exact = ExactKey::post(caller.as_deref(), &headers, body);
            if let Some(hit) = exact.as_ref().and_then(|exact| responses.exact_hit(exact)) {
                return with_caller(hit, caller.as_deref());
            }
        }
    }
    let span = request_span(&headers, "POST", caller.as_deref());
    let logged = caller.as_deref().cloned();
    // Boxed: the hit above does not carry (or move) the state of everything below.
    let response = Box::pin(post_the_long_way(state, caller, headers, body, exact))
        .instrument(span)
        .await;
    with_caller(response, logged.as_ref())
}

/// A POST not answered by the exact index: read, checked, run (or answered by the response
/// cache once its query is normalized).
async fn post_the_long_way(
    state: Arc<AppState>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    exact: Option<ExactKey>,
) -> Response {
    let media = MediaType::accepted(&headers);
    let body = match body {
        Ok(body) => body,
        // Over `max_body_bytes` (declared or streamed): 413, as JSON like every refusal.
        Err(rejection) => {
            let status = rejection.status();
            let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
                "PAYLOAD_TOO_LARGE"
            } else {
                "BAD_REQUEST"
            };
            return EdgeError::new(status, code, rejection.body_text()).respond(media);
        }
    };
    let key = match IdempotencyKey::from_headers(&headers) {
        Ok(key) => key,
        Err(refused) => return refused.respond(media),
    };
    let mut request = match graphql_http::post_request(&headers, &body, state.max_batch) {
        Ok(Posted::One(request)) => *request,
        Ok(Posted::Batch(requests)) if key.is_none() => {
            return state.answer_batch(requests, caller, media).await;
        }
        Ok(Posted::Batch(_)) => return EdgeError::new(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "an Idempotency-Key covers one operation: send the mutation on its own, not in a batch",
        )
        .respond(media),
        Err(refused) => return refused.respond(media),
    };
    // A hashed query is resolved first, so what it names is what the rest sees.
    if let Err(error) = state.persisted_queries.resolve(&mut request).await {
        let refused = async_graphql::Response::from_errors(vec![error]);
        return graphql_http::graphql_response(refused, false, media);
    }
    if subscriptions::wants_event_stream(&state, &headers, &mut request) {
        return subscriptions::event_stream(&state, request);
    }
    match key {
        // In a task of its own: a client that disconnects must not cut a write short between
        // the provider's answer and the cache's invalidation.
        None => {
            let diagnose = diagnostics::wanted();
            let run = async move { state.answer(request, caller, media, exact).await.response };
            let run = diagnostics::scope(diagnose, run);
            match tokio::spawn(run.instrument(tracing::Span::current())).await {
                Ok(response) => response,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(_) => EdgeError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "SHUTTING_DOWN",
                    "the gateway is shutting down",
                )
                .respond(media),
            }
        }
        Some(key) => state.answer_once(key, request, caller, media).await,
    }
}

/// GraphiQL for a browser; otherwise a query from the URL (mutations only by POST).
async fn graphql_get(
    state: State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let diagnose = diagnostics::asked(&headers);
    diagnostics::scope(diagnose, graphql_get_in(state, caller, headers, uri)).await
}

/// `graphql_get`, in the request's diagnostics scope.
async fn graphql_get_in(
    State(state): State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let wants_html = graphql_http::wants_html(&headers);
    // The same URL from the same caller as an answer kept: sent before anything is parsed.
    let mut exact = None;
    if let Some(responses) = state
        .responses
        .as_ref()
        .filter(|_| !wants_html && !diagnostics::wanted())
    {
        exact = ExactKey::get(caller.as_deref(), &headers, uri.query().unwrap_or(""));
        if let Some(hit) = exact.as_ref().and_then(|exact| responses.exact_hit(exact)) {
            return with_caller(hit, caller.as_deref());
        }
    }
    let span = request_span(&headers, "GET", caller.as_deref());
    let logged = caller.as_deref().cloned();
    let response = Box::pin(get_the_long_way(
        state, caller, headers, uri, wants_html, exact,
    ))
    .instrument(span)
    .await;
    with_caller(response, logged.as_ref())
}

/// A GET not answered by the exact index.
async fn get_the_long_way(
    state: Arc<AppState>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    uri: Uri,
    wants_html: bool,
    exact: Option<ExactKey>,
) -> Response {
    let params = match Query::<Vec<(String, String)>>::try_from_uri(&uri) {
        Ok(Query(params)) => params,
        Err(rejection) => return rejection.into_response(),
    };
    let media = MediaType::accepted(&headers);
    let request = match graphql_http::get_request(params) {
        Ok(request) if !wants_html => request,
        // A browser, or a bare GET without a query: the playground.
        _ if wants_html || headers.get(header::ACCEPT).is_none() => {
            return state.graphiql.clone().into_response()
        }
        Err(refused) => return refused.respond(media),
        Ok(_) => unreachable!("handled above"),
    };
    let mut request = request;
    // A hashed query is resolved first, so a hashed mutation is refused here too.
    if let Err(error) = state.persisted_queries.resolve(&mut request).await {
        let refused = async_graphql::Response::from_errors(vec![error]);
        return graphql_http::graphql_response(refused, false, media);
    }
    state.documents.prepare(&mut request);
    if subscriptions::wants_event_stream(&state, &headers, &mut request) {
        return subscriptions::event_stream(&state, request);
    }
    if is_mutation(&mut request) {
        let mut response = EdgeError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            "mutations are accepted only by POST",
        )
        .respond(media);
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    // GET never runs a mutation, so an `Idempotency-Key` has nothing to do here.
    state.answer(request, caller, media, exact).await.response
}

/// A request's answer, and whether it ran: one refused before (parse, validation) did not,
/// and keeps no `Idempotency-Key`.
struct Answered {
    response: Response,
    executed: bool,
    /// It ran and its answer holds errors.
    errors: bool,
}

impl AppState {
    /// Runs a request and answers it in `media`: request errors without `data` (400 under
    /// `application/graphql-response+json`), at most `max_errors` errors. A query the response
    /// cache may hold is answered from it when it can be, else kept in it (under `exact`
    /// too: the request's bytes as they arrived).
    async fn answer(
        &self,
        mut request: async_graphql::Request,
        caller: Option<Extension<Caller>>,
        media: MediaType,
        exact: Option<ExactKey>,
    ) -> Answered {
        let normalized = self.documents.prepare(&mut request);
        let operation = if is_mutation(&mut request) {
            "mutation"
        } else {
            "query"
        };
        let mut answered = self
            .answer_uncounted(request, caller, media, exact, normalized)
            .await;
        if answered.response.extensions().get::<Counted>().is_none() {
            let outcome = match (answered.executed, answered.errors) {
                (false, _) => "refused",
                (true, false) => "ok",
                (true, true) => "error",
            };
            answered
                .response
                .extensions_mut()
                .insert(Counted { operation, outcome });
        }
        answered
    }

    /// `answer`, not yet counted.
    async fn answer_uncounted(
        &self,
        mut request: async_graphql::Request,
        caller: Option<Extension<Caller>>,
        media: MediaType,
        exact: Option<ExactKey>,
        normalized: Option<Arc<str>>,
    ) -> Answered {
        let cached = self.responses.as_ref().filter(|_| !diagnostics::wanted());
        let cached = cached.and_then(|responses| {
            let key = ResponseCache::key_of(&mut request, normalized?, caller.as_deref(), media)?;
            Some((responses, key))
        });
        let Some((responses, key)) = cached else {
            let (response, executed) = self.run_prepared(request, caller.as_ref()).await;
            let errors = !response.errors.is_empty();
            return Answered {
                response: graphql_http::graphql_response(response, executed, media),
                executed,
                errors,
            };
        };
        if let Some(hit) = responses.normalized_hit(&key, exact.clone()) {
            return Answered {
                response: hit,
                executed: true,
                errors: false,
            };
        }
        let start = match responses.shared_hit(&key, exact.clone()).await {
            Ok(hit) => {
                return Answered {
                    response: hit,
                    executed: true,
                    errors: false,
                }
            }
            Err(start) => start,
        };
        let reads = Arc::new(Reads::default());
        let run = self.run_prepared(request, caller.as_ref());
        let (response, executed) = Reads::scope(Some(reads.clone()), run).await;
        let has_errors = !response.errors.is_empty();
        let answer = graphql_http::graphql_answer(response, executed, media);
        if executed {
            responses
                .keep(key, exact, &answer, has_errors, reads.snapshot(), start)
                .await;
        }
        let mut response = answer.into_response();
        response_cache::mark_miss(&mut response);
        Answered {
            response,
            executed,
            errors: has_errors,
        }
    }

    /// Runs one operation: its GraphQL response, and whether it executed.
    async fn run(
        &self,
        mut request: async_graphql::Request,
        caller: Option<&Extension<Caller>>,
    ) -> (async_graphql::Response, bool) {
        self.documents.prepare(&mut request);
        self.run_prepared(request, caller).await
    }

    /// `run` for a request whose document is `prepare`d.
    async fn run_prepared(
        &self,
        mut request: async_graphql::Request,
        caller: Option<&Extension<Caller>>,
    ) -> (async_graphql::Response, bool) {
        if caller.is_some_and(|Extension(caller)| !caller.may_write) && is_mutation(&mut request) {
            // A read-only credential: every mutation field fails, nothing runs.
            return (auth::forbidden(&mut request), true);
        }
        if let Err(error) = request.parsed_query() {
            let refused = async_graphql::Response::from_errors(vec![parse_failed(error)]);
            return (refused, false);
        }
        let mut response = self.execute(request).await;
        let executed = code_errors(&mut response);
        cap_errors(&mut response, self.max_errors);
        (response, executed)
    }

    /// A batch (Apollo's `BatchHttpLink`): its operations run concurrently under ONE upstream
    /// budget and deadline, and the answer is their results in order, status 200.
    async fn answer_batch(
        &self,
        requests: Vec<async_graphql::Request>,
        caller: Option<Extension<Caller>>,
        media: MediaType,
    ) -> Response {
        let budget = self.gateway.request_budget();
        let results = request_budget::within(Some(budget), async {
            let runs = requests.into_iter().map(|mut request| {
                let caller = caller.as_ref();
                async move {
                    if let Err(error) = self.persisted_queries.resolve(&mut request).await {
                        return (async_graphql::Response::from_errors(vec![error]), false);
                    }
                    self.run(request, caller).await
                }
            });
            futures::future::join_all(runs).await
        })
        .await;
        let errors = results
            .iter()
            .any(|(response, _)| !response.errors.is_empty());
        let body: Vec<serde_json::Value> = results
            .into_iter()
            .map(|(response, executed)| graphql_http::response_body(&response, executed))
            .collect();
        let mut response =
            graphql_http::json_response(StatusCode::OK, media, &serde_json::Value::Array(body));
        response.extensions_mut().insert(Counted {
            operation: "batch",
            outcome: if errors { "error" } else { "ok" },
        });
        response
    }
}

/// Past `max` errors, one `TOO_MANY_ERRORS` replaces the rest (a query of repeated failing
/// fields must not produce megabytes of errors).
fn cap_errors(response: &mut async_graphql::Response, max: usize) {
    if response.errors.len() <= max {
        return;
    }
    let dropped = response.errors.len() - max;
    response.errors.truncate(max);
    let mut error = async_graphql::ServerError::new(
        format!("{dropped} more errors were left out (`limits.max_errors` is {max})"),
        None,
    );
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set("code", "TOO_MANY_ERRORS");
    response.errors.push(error);
}

fn is_mutation(request: &mut async_graphql::Request) -> bool {
    let operation_name = request.operation_name.clone();
    let Ok(document) = request.parsed_query() else {
        return false; // the schema reports the syntax error
    };
    document.operations.iter().any(|(name, op)| {
        let selected = match (&operation_name, name) {
            (Some(wanted), Some(name)) => wanted.as_str() == name.as_str(),
            _ => true,
        };
        selected && op.node.ty == OperationType::Mutation
    })
}
