//! GraphQL error codes, assigned in one place: every `ProviderError` variant has one
//! `extensions.code`, and provider failures name the provider.

use crate::providers::ProviderError;
use async_graphql::{Error, ErrorExtensions};

pub const BAD_USER_INPUT: &str = "BAD_USER_INPUT";

/// The contract's code for a provider failure.
pub fn code(error: &ProviderError) -> &'static str {
    match error {
        ProviderError::Unavailable { .. } | ProviderError::Timeout { .. } => "PROVIDER_UNAVAILABLE",
        ProviderError::RateLimited { .. } => "PROVIDER_RATE_LIMITED",
        ProviderError::AuthFailed { .. } => "PROVIDER_AUTH_FAILED",
        ProviderError::Unsupported { .. } => "UNSUPPORTED_BY_PROVIDER",
        ProviderError::NotConfigured { .. } => "PROVIDER_NOT_CONFIGURED",
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
