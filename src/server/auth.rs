//! Inbound auth (`[auth]`): static API keys (known by their SHA-256) and JWTs (HS256, an RS256
//! or ES256 public key, or an identity provider's JWKS), read and write roles, and a token
//! bucket per caller. Checked in one layer before any resolver runs; a refused request sends
//! nothing upstream.

use super::graphql_http::{EdgeError, MediaType};
use crate::config::{ApiKey, AuthConfig, JwtConfig, JwtKey, Role};
use async_graphql::parser::types::Selection;
use async_graphql::PathSegment;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;
use tokio::sync::RwLock;

/// Who is calling, as a request's extensions carry it.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The key's name, or the JWT's `sub@iss`: for logs and rate limits, never a secret.
    pub name: String,
    pub may_write: bool,
}

/// Checks credentials against `[auth]`.
pub struct Authenticator {
    keys: Vec<ApiKey>,
    jwt: Option<JwtCheck>,
    per_caller: Option<DefaultKeyedRateLimiter<String>>,
}

struct JwtCheck {
    config: JwtConfig,
    keys: JwtKeys,
}

enum JwtKeys {
    Fixed(DecodingKey, Vec<Algorithm>),
    Jwks(Jwks),
}

/// An identity provider's keys, fetched on first use and again when a token names a key id
/// not among them (keys rotate), at most once per `REFETCH_AFTER`.
struct Jwks {
    url: String,
    http: reqwest::Client,
    cached: RwLock<Option<JwkSet>>,
    /// When the keys were last asked for, fetched or not: one fetch at a time, at most one per
    /// `REFETCH_AFTER`, so tokens naming unknown keys cannot make the gateway hammer the
    /// identity provider (or pile up waiting on it while it is down).
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
}

const REFETCH_AFTER: Duration = Duration::from_secs(30);

/// The claims the gateway reads.
#[derive(Deserialize)]
struct Claims {
    sub: String,
    iss: String,
    #[serde(default)]
    scope: String,
}

impl Authenticator {
    /// From a validated `[auth]`; `Err` names the config key when a key cannot be used.
    pub fn new(config: &AuthConfig) -> Result<Authenticator, String> {
        let jwt = match &config.jwt {
            None => None,
            Some(jwt) => {
                let keys = match &jwt.key {
                    JwtKey::Hs256(secret) => JwtKeys::Fixed(
                        DecodingKey::from_secret(secret.expose().as_bytes()),
                        vec![Algorithm::HS256],
                    ),
                    JwtKey::PublicKeyPem(pem) => {
                        if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
                            JwtKeys::Fixed(key, vec![Algorithm::RS256])
                        } else if let Ok(key) = DecodingKey::from_ec_pem(pem) {
                            JwtKeys::Fixed(key, vec![Algorithm::ES256])
                        } else {
                            return Err(
                                "auth.jwt.public_key_file: not an RS256 or ES256 public key in PEM"
                                    .into(),
                            );
                        }
                    }
                    JwtKey::Jwks(url) => JwtKeys::Jwks(Jwks {
                        url: url.clone(),
                        http: reqwest::Client::builder()
                            .timeout(Duration::from_secs(10))
                            .build()
                            .unwrap_or_default(),
                        cached: RwLock::new(None),
                        last_fetch: tokio::sync::Mutex::new(None),
                    }),
                };
                Some(JwtCheck {
                    config: jwt.clone(),
                    keys,
                })
            }
        };
        let per_caller = config
            .rate_per_sec_per_caller
            .and_then(NonZeroU32::new)
            .map(|rate| RateLimiter::keyed(Quota::per_second(rate)));
        Ok(Authenticator {
            keys: config.keys.clone(),
            jwt,
            per_caller,
        })
    }

    /// The caller a request's `Authorization: Bearer …` names, or why it is refused.
    pub async fn caller(&self, headers: &HeaderMap) -> Result<Caller, String> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or("send a credential: `Authorization: Bearer <key or token>`")?;
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let key = self
            .keys
            .iter()
            .find(|k| bool::from(k.sha256.ct_eq(&digest)));
        if let Some(key) = key {
            return Ok(Caller {
                name: key.name.clone(),
                may_write: key.role == Role::Write,
            });
        }
        match &self.jwt {
            Some(jwt) if token.matches('.').count() == 2 => jwt.caller(token).await,
            _ => Err("the credential is not known".into()),
        }
    }

    /// Takes one request from the caller's bucket; `Err` is how long until the next one fits.
    pub fn admit(&self, caller: &Caller) -> Result<(), Duration> {
        match &self.per_caller {
            None => Ok(()),
            Some(limiter) => {
                // Callers seen once (JWT subjects) must not grow the buckets without bound.
                if limiter.len() > 10_000 {
                    limiter.retain_recent();
                }
                limiter
                    .check_key(&caller.name)
                    .map_err(|not_until| not_until.wait_time_from(limiter.clock().now()))
            }
        }
    }
}

impl JwtCheck {
    async fn caller(&self, token: &str) -> Result<Caller, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| "the token is not a JWT")?;
        let (key, algorithms) = match &self.keys {
            JwtKeys::Fixed(key, algorithms) => (key.clone(), algorithms.clone()),
            JwtKeys::Jwks(jwks) => {
                let key = jwks.key(header.kid.as_deref()).await?;
                (key, vec![Algorithm::RS256, Algorithm::ES256])
            }
        };
        if !algorithms.contains(&header.alg) {
            return Err(format!(
                "tokens signed with {:?} are not accepted",
                header.alg
            ));
        }
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map_err(|e| format!("the token is not accepted: {e}"))?
            .claims;
        let may_write = claims
            .scope
            .split_whitespace()
            .any(|s| s == self.config.write_scope);
        Ok(Caller {
            name: format!("{}@{}", claims.sub, claims.iss),
            may_write,
        })
    }
}

impl Jwks {
    /// The key `kid` names, fetching the set when it is not known yet.
    async fn key(&self, kid: Option<&str>) -> Result<DecodingKey, String> {
        let kid = kid.ok_or("the token names no key id (`kid`)")?;
        if let Some(key) = self.find(kid).await {
            return key;
        }
        {
            let mut last_fetch = self.last_fetch.lock().await;
            // Another request may have fetched while this one waited for the lock.
            if let Some(key) = self.find(kid).await {
                return key;
            }
            if last_fetch.is_some_and(|at| at.elapsed() < REFETCH_AFTER) {
                return Err(format!("no key `{kid}` at the identity provider"));
            }
            *last_fetch = Some(Instant::now());
            let set = self.fetch().await?;
            *self.cached.write().await = Some(set);
        }
        self.find(kid)
            .await
            .unwrap_or_else(|| Err(format!("no key `{kid}` at the identity provider")))
    }

    async fn find(&self, kid: &str) -> Option<Result<DecodingKey, String>> {
        let cached = self.cached.read().await;
        let jwk = cached.as_ref()?.find(kid)?;
        Some(DecodingKey::from_jwk(jwk).map_err(|e| format!("key `{kid}` cannot be used: {e}")))
    }

    async fn fetch(&self) -> Result<JwkSet, String> {
        let failed = |e: reqwest::Error| {
            tracing::warn!(url = %self.url, error = %e, "cannot fetch the JWKS");
            "the identity provider's keys cannot be fetched".to_string()
        };
        self.http
            .get(&self.url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(failed)?
            .json::<JwkSet>()
            .await
            .map_err(failed)
    }
}

/// The layer in front of `/graphql`: a request without a valid credential is answered 401
/// (`UNAUTHENTICATED`), one past its caller's rate 429 (`RATE_LIMITED`); the GraphiQL page
/// itself loads without one (its headers editor carries the credential).
pub async fn require_caller(
    State(auth): State<Arc<Authenticator>>,
    mut request: Request,
    next: Next,
) -> Response {
    if is_graphiql_page(&request) {
        return next.run(request).await;
    }
    // A WebSocket may carry its credential in `connection_init` instead, checked there.
    if super::subscriptions::is_websocket_upgrade(request.headers())
        && !request.headers().contains_key(header::AUTHORIZATION)
    {
        request.extensions_mut().insert(PendingAuth(auth));
        return next.run(request).await;
    }
    let media = MediaType::accepted(request.headers());
    let caller = match auth.caller(request.headers()).await {
        Ok(caller) => caller,
        Err(reason) => {
            let mut response =
                EdgeError::new(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", reason).respond(media);
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
    };
    if let Err(wait) = auth.admit(&caller) {
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        let mut response = EdgeError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "RATE_LIMITED",
            format!(
                "too many requests from `{}`; retry in {secs} s",
                caller.name
            ),
        )
        .respond(media);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        // For the request's log line.
        response.extensions_mut().insert(caller);
        return response;
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// A WebSocket upgrade without an `Authorization` header: its `connection_init` payload must
/// carry the credential, checked with this.
#[derive(Clone)]
pub struct PendingAuth(pub Arc<Authenticator>);

/// A browser's GET of the playground: HTML, never executed.
fn is_graphiql_page(request: &Request) -> bool {
    request.method() == Method::GET && super::graphql_http::wants_html(request.headers())
}

/// The answer to a mutation from a read-only credential: each of its fields fails with
/// `FORBIDDEN`, and nothing runs (so nothing is sent upstream).
pub fn forbidden(request: &mut async_graphql::Request) -> async_graphql::Response {
    let operation_name = request.operation_name.clone();
    let fields: Vec<(String, async_graphql::Pos)> = match request.parsed_query() {
        Ok(document) => document
            .operations
            .iter()
            .filter(|(name, _)| match (&operation_name, name) {
                (Some(wanted), Some(name)) => wanted.as_str() == name.as_str(),
                _ => true,
            })
            .flat_map(|(_, op)| op.node.selection_set.node.items.iter())
            .filter_map(|selection| match &selection.node {
                Selection::Field(field) => {
                    Some((field.node.response_key().node.to_string(), field.pos))
                }
                _ => None,
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    let mut fields = fields;
    if fields.is_empty() {
        // Fields behind fragments: one error for the operation.
        fields.push((String::new(), async_graphql::Pos::default()));
    }
    let errors = fields
        .into_iter()
        .map(|(field, pos)| {
            let mut error = async_graphql::ServerError::new(
                "this credential may only read: mutations need the write role or scope",
                Some(pos),
            );
            if !field.is_empty() {
                error.path = vec![PathSegment::Field(field)];
            }
            error
                .extensions
                .get_or_insert_with(Default::default)
                .set("code", "FORBIDDEN");
            error
        })
        .collect();
    async_graphql::Response::from_errors(errors)
}
