//! CORS from `[cors]` (tower-http's `CorsLayer`): which other origins' pages may call, with
//! the request and response headers the contract names. Without `[cors]` no other origin may;
//! the sandbox lets local frontend dev servers (`http://localhost:*`, `http://127.0.0.1:*`).

use crate::config::CorsConfig;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderName, HeaderValue, Method};
use std::time::Duration;
use tower_http::cors::{AllowOrigin, CorsLayer};

pub fn layer(config: Option<&CorsConfig>, sandbox: bool) -> Option<CorsLayer> {
    let base = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            AUTHORIZATION,
            CONTENT_TYPE,
            HeaderName::from_static("idempotency-key"),
            HeaderName::from_static("traceparent"),
            HeaderName::from_static("apollo-require-preflight"),
            HeaderName::from_static("contact-gateway-diagnostics"),
        ])
        .expose_headers([
            HeaderName::from_static("idempotent-replayed"),
            RETRY_AFTER,
            HeaderName::from_static("contact-gateway-cache"),
        ]);
    match config {
        Some(config) => {
            let origins = if config.allow_origins.iter().any(|o| o == "*") {
                AllowOrigin::any()
            } else {
                AllowOrigin::list(
                    config
                        .allow_origins
                        .iter()
                        .filter_map(|o| HeaderValue::from_str(o).ok()),
                )
            };
            Some(
                base.allow_origin(origins)
                    .allow_credentials(config.allow_credentials)
                    .max_age(Duration::from_secs(config.max_age_secs)),
            )
        }
        None if sandbox => Some(
            base.allow_origin(AllowOrigin::predicate(|origin, _| local_dev(origin)))
                .max_age(Duration::from_secs(600)),
        ),
        None => None,
    }
}

/// Whether a page from `origin` may call, as the layer decides it (for what CORS does not
/// cover: a browser's WebSocket carries its page's `Origin` but never asks first).
pub fn allows(origin: &HeaderValue, config: Option<&CorsConfig>, sandbox: bool) -> bool {
    match config {
        Some(config) => config
            .allow_origins
            .iter()
            .any(|o| o == "*" || o.as_bytes() == origin.as_bytes()),
        None => sandbox && local_dev(origin),
    }
}

/// `http://localhost:<port>` or `http://127.0.0.1:<port>` (or without a port).
fn local_dev(origin: &HeaderValue) -> bool {
    let Some(rest) = origin.to_str().ok().and_then(|o| o.strip_prefix("http://")) else {
        return false;
    };
    let (host, port) = rest.split_once(':').unwrap_or((rest, "80"));
    matches!(host, "localhost" | "127.0.0.1")
        && !port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_dev_servers_are_local() {
        let local = |o: &'static str| local_dev(&HeaderValue::from_static(o));
        assert!(local("http://localhost:5173") && local("http://127.0.0.1:3000"));
        assert!(local("http://localhost"));
        assert!(!local("https://localhost:5173"));
        assert!(!local("http://localhost.evil.example:80"));
        assert!(!local("http://evil.example"));
        assert!(!local("http://localhost:80@evil.example"));
    }

    #[test]
    fn origins_are_allowed_as_the_layer_allows_them() {
        let origin = HeaderValue::from_static("https://app.example.com");
        let config = |origins: &[&str]| CorsConfig {
            allow_origins: origins.iter().map(|o| o.to_string()).collect(),
            allow_credentials: false,
            max_age_secs: 600,
        };
        assert!(allows(
            &origin,
            Some(&config(&["https://app.example.com"])),
            false
        ));
        assert!(allows(&origin, Some(&config(&["*"])), false));
        assert!(!allows(
            &origin,
            Some(&config(&["https://other.example.com"])),
            true
        ));
        assert!(!allows(&origin, None, true));
        assert!(allows(
            &HeaderValue::from_static("http://localhost:5173"),
            None,
            true
        ));
        assert!(!allows(
            &HeaderValue::from_static("http://localhost:5173"),
            None,
            false
        ));
    }
}
