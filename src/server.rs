//! The HTTP surface: `/graphql` (POST, GET, GraphiQL), `/healthz`, and the request limits.

use crate::config::LimitsConfig;
use crate::graphql::errors::BAD_USER_INPUT;
use crate::graphql::AppSchema;
use async_graphql::http::GraphiQLSource;
use async_graphql::parser::types::OperationType;
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
    state.schema.execute(request.into_inner()).await.into()
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
    let request = request.into_inner();
    if is_mutation(&request) {
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

fn is_mutation(request: &async_graphql::Request) -> bool {
    let Ok(document) = async_graphql::parser::parse_query(&request.query) else {
        return false; // the schema reports the syntax error
    };
    document.operations.iter().any(|(name, op)| {
        let selected = match (&request.operation_name, name) {
            (Some(wanted), Some(name)) => wanted.as_str() == name.as_str(),
            _ => true,
        };
        selected && op.node.ty == OperationType::Mutation
    })
}
