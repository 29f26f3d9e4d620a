//! GraphQL error codes, assigned in one place: every `ProviderError` variant has one
//! `extensions.code`, and provider failures name the provider.

use crate::providers::ProviderError;
use async_graphql::{Context, Error, ErrorExtensions, ServerError};

pub const BAD_USER_INPUT: &str = "BAD_USER_INPUT";
pub const REQUEST_BUDGET_EXCEEDED: &str = "REQUEST_BUDGET_EXCEEDED";
pub const REQUEST_TIMEOUT: &str = "REQUEST_TIMEOUT";

/// The contract's code for a provider failure.
pub fn code(error: &ProviderError) -> &'static str {
    match error {
        ProviderError::Unavailable { .. } | ProviderError::Timeout { .. } => "PROVIDER_UNAVAILABLE",
        ProviderError::RateLimited { .. } => "PROVIDER_RATE_LIMITED",
        ProviderError::AuthFailed { .. } => "PROVIDER_AUTH_FAILED",
        ProviderError::Unsupported { .. } => "UNSUPPORTED_BY_PROVIDER",
        ProviderError::NotConfigured { .. } => "PROVIDER_NOT_CONFIGURED",
        // The request's own limits, not the provider's failure.
        ProviderError::BudgetExceeded { .. } => REQUEST_BUDGET_EXCEEDED,
        ProviderError::RequestTimeout { .. } => REQUEST_TIMEOUT,
        ProviderError::InvalidId { .. } => BAD_USER_INPUT,
        // A 4xx other than auth and rate limiting on a read: the provider refused the request.
        ProviderError::Rejected { .. } | ProviderError::NotFound { .. } => "PROVIDER_REJECTED",
    }
}

/// The GraphQL error for a provider failure, with `code`, `provider` and, for 429,
/// `retryAfterSecs` when the provider said.
pub fn provider_error(error: &ProviderError) -> Error {
    Error::new(error.to_string()).extend_with(|_, ext| {
        ext.set("code", code(error));
        ext.set("provider", error.provider().as_str().to_ascii_uppercase());
        match error {
            ProviderError::RateLimited {
                retry_after_secs: Some(secs),
                ..
            } => ext.set("retryAfterSecs", *secs),
            ProviderError::Rejected { .. } | ProviderError::NotFound { .. } => {
                ext.set("status", error.status().unwrap_or_default())
            }
            _ => {}
        }
    })
}

/// Adds one error per failing provider at the current field, which keeps its value (the
/// other providers' part).
pub fn report_provider_errors(ctx: &Context<'_>, errors: &[ProviderError]) {
    for error in errors {
        ctx.add_error(ctx.set_error_path(provider_error(error).into_server_error(ctx.item.pos)));
    }
}

/// The gateway's own store failed (or a claim in it could not be had): nothing was written.
pub fn store_error(why: &str) -> Error {
    tracing::warn!(error = %why, "store failure");
    Error::new(format!(
        "the gateway's store is unavailable; nothing was written ({why})"
    ))
    .extend_with(|_, ext| ext.set("code", "STORE_UNAVAILABLE"))
}

/// A malformed id or argument.
pub fn bad_user_input(message: impl Into<String>) -> Error {
    Error::new(message.into()).extend_with(|_, ext| ext.set("code", BAD_USER_INPUT))
}

/// The GraphQL error for a provider failure during a write. A write whose answer never came
/// (a timeout, a dropped connection) may have been applied: the message says so, and the
/// gateway did not retry it (`extensions.mayHaveBeenApplied`).
pub fn write_error(error: &ProviderError) -> Error {
    if !error.may_have_been_applied() {
        return provider_error(error);
    }
    let message = format!(
        "{error}; the write may have been applied, so the gateway did not retry it: check before sending it again"
    );
    Error::new(message).extend_with(|_, ext| {
        ext.set("code", code(error));
        ext.set("provider", error.provider().as_str().to_ascii_uppercase());
        ext.set("mayHaveBeenApplied", true);
    })
}

/// The code of a document that does not parse.
pub const GRAPHQL_PARSE_FAILED: &str = "GRAPHQL_PARSE_FAILED";

/// Gives a response's errors their codes, and says whether the request executed. One refused
/// as a whole before execution (validation, variables, limits, operation selection) has no data
/// and only errors without a path: each gets `GRAPHQL_VALIDATION_FAILED` (the HTTP edge answers
/// such a request differently). Done after the fact rather than by a schema extension, whose
/// hook would wrap every field's resolution. (Parse errors are the caller's to code, before.)
pub fn code_errors(response: &mut async_graphql::Response) -> bool {
    let refused = response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty());
    let code = if refused {
        "GRAPHQL_VALIDATION_FAILED"
    } else {
        BAD_USER_INPUT
    };
    for error in response.errors.iter_mut() {
        *error = coded(std::mem::replace(error, ServerError::new("", None)), code);
    }
    !refused
}

/// A parse error, coded.
pub fn parse_failed(error: ServerError) -> ServerError {
    coded(error, GRAPHQL_PARSE_FAILED)
}

/// The error with `code` unless it has one.
fn coded(mut error: ServerError, code: &str) -> ServerError {
    let has_code = error
        .extensions
        .as_ref()
        .is_some_and(|ext| ext.get("code").is_some());
    if !has_code {
        error
            .extensions
            .get_or_insert_with(Default::default)
            .set("code", code);
    }
    error
}
