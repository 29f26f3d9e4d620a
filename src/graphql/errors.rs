//! GraphQL error codes, assigned in one place: every `ProviderError` variant has one
//! `extensions.code`, and provider failures name the provider.

use crate::providers::ProviderError;
use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextValidation,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{
    Context, Error, ErrorExtensions, ServerError, ServerResult, ValidationResult, Variables,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

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

/// Set when a request starts executing: one that never got there was refused as a whole
/// (parse, validation, variables), which the HTTP edge answers differently.
#[derive(Clone, Default)]
pub struct Executed(Arc<AtomicBool>);

impl Executed {
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Gives the errors of parsing and validation their codes, and marks execution (errors of
/// execution get theirs in `code_field_errors`, without a hook on every field).
pub struct EdgeCodes;

impl ExtensionFactory for EdgeCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(EdgeCodes)
    }
}

/// After execution: a resolver's own errors have codes; one without is an argument the schema
/// could not read (an `Int` out of range, say), the caller's to fix.
pub fn code_field_errors(errors: &mut [ServerError]) {
    for error in errors.iter_mut() {
        *error = coded(
            std::mem::replace(error, ServerError::new("", None)),
            BAD_USER_INPUT,
        );
    }
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

#[async_trait::async_trait]
impl Extension for EdgeCodes {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        next.run(ctx, query, variables)
            .await
            .map_err(|e| coded(e, "GRAPHQL_PARSE_FAILED"))
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        next.run(ctx).await.map_err(|errors| {
            errors
                .into_iter()
                .map(|e| coded(e, "GRAPHQL_VALIDATION_FAILED"))
                .collect()
        })
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> async_graphql::Response {
        if let Some(executed) = ctx.data_opt::<Executed>() {
            executed.0.store(true, Ordering::Release);
        }
        next.run(ctx, operation_name).await
    }
}
