//! The HTTP surface: `/graphql` (POST, GET, GraphiQL), `/healthz`, and the request limits.

use crate::config::LimitsConfig;
use crate::graphql::errors::BAD_USER_INPUT;
use crate::graphql::AppSchema;
use async_graphql::http::GraphiQLSource;
use async_graphql::parser::types::{ExecutableDocument, OperationType};
use async_graphql::ErrorExtensions;
use async_graphql_axum::rejection::GraphQLRejection;
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

#[derive(Clone)]
pub struct AppState {
    pub schema: AppSchema,
    pub documents: ParsedDocuments,
}

/// Parsed queries by their text: a frontend sends the same few queries over and over, and
/// parsing is a large share of a cached read's cost. Validation still runs every time.
#[derive(Clone)]
pub struct ParsedDocuments(moka::sync::Cache<String, ExecutableDocument>);

impl Default for ParsedDocuments {
    fn default() -> Self {
        ParsedDocuments(moka::sync::Cache::new(1_000))
    }
}

impl ParsedDocuments {
    /// Queries longer than this are parsed each time (and not held in memory).
    const MAX_QUERY_BYTES: usize = 16 * 1024;

    /// Gives `request` its parsed document, from the cache or freshly parsed. A query that
    /// does not parse is left for the schema to report.
    fn prepare(&self, request: &mut async_graphql::Request) {
        if request.query.len() > Self::MAX_QUERY_BYTES {
            return;
        }
        if let Some(document) = self.0.get(&request.query) {
            request.set_parsed_query(document);
        } else if let Ok(document) = request.parsed_query() {
            let document = document.clone();
            self.0.insert(request.query.clone(), document);
        }
    }
}

pub fn router(state: AppState, limits: &LimitsConfig) -> Router {
    Router::new()
        .route("/graphql", get(graphql_get).post(graphql_post))
        .route("/healthz", get(|| async { "ok" }))
        .layer(RequestBodyLimitLayer::new(limits.max_body_bytes))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .with_state(state)
}

async fn graphql_post(State(state): State<AppState>, request: GraphQLRequest) -> GraphQLResponse {
    let mut request = request.into_inner();
    state.documents.prepare(&mut request);
    state.schema.execute(request).await.into()
}

/// GraphiQL for a browser; otherwise a query from the URL (mutations only by POST).
async fn graphql_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: Result<GraphQLRequest, GraphQLRejection>,
) -> Response {
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    let request = match request {
        Ok(request) if !wants_html => request,
        // A browser, or a bare GET without a query: the playground.
        _ => return Html(GraphiQLSource::build().endpoint("/graphql").finish()).into_response(),
    };
    let mut request = request.into_inner();
    state.documents.prepare(&mut request);
    if is_mutation(&mut request) {
        let error = async_graphql::Error::new("mutations are accepted only by POST")
            .extend_with(|_, ext| ext.set("code", BAD_USER_INPUT))
            .into_server_error(Default::default());
        let response = async_graphql::Response::from_errors(vec![error]);
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            GraphQLResponse::from(response),
        )
            .into_response();
    }
    GraphQLResponse::from(state.schema.execute(request).await).into_response()
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
