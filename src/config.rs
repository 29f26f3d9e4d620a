//! The TOML configuration: types, defaults and validation. Unknown keys are refused and every
//! error names the key it is about, so the gateway never starts half-configured.

use crate::change::ChangeKind;
use crate::contact::ProviderId;
use serde::Deserialize;
use sha2::Digest;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:4000";

/// A credential. `Debug` and `Display` print `***`, so it cannot leak through a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The only way to read the value: when signing an upstream request.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("config key `{key}`: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

/// The validated configuration the gateway runs with.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    /// ISO 3166 region used to read national phone numbers.
    pub default_region: String,
    pub cache: CacheConfig,
    pub limits: LimitsConfig,
    /// Enabled providers; an absent one is disabled.
    pub providers: BTreeMap<ProviderId, ProviderConfig>,
    /// `[auth]`: who may call; `None` lets anyone who reaches the port in.
    pub auth: Option<AuthConfig>,
    /// Serve a non-loopback address without `[auth]` (behind a proxy that authenticates).
    pub insecure_no_auth: bool,
    /// `[cors]`: which other origins' pages may call; `None`: none.
    pub cors: Option<CorsConfig>,
    pub store: StoreConfig,
    /// `[[webhooks]]`: endpoints that get every change of the kinds they name, signed.
    pub webhooks: Vec<WebhookConfig>,
    /// `[telemetry]`: log format and traces.
    pub telemetry: TelemetryConfig,
}

/// One `[[webhooks]]` endpoint.
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// Where deliveries are POSTed (http or https).
    pub url: String,
    /// Signs each delivery (`X-Contact-Gateway-Signature`); read from `secret_env`.
    pub secret: Secret,
    /// The change kinds it gets.
    pub events: Vec<ChangeKind>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    url: String,
    secret_env: Option<String>,
    events: Option<Vec<String>>,
}

/// `[telemetry]`: how the gateway's logs are written and where its traces go.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// `text` (human) or `json` (one JSON object a line, the start-up banner included).
    pub log_format: LogFormat,
    /// OpenTelemetry traces go here over OTLP when set (`http://host:4317`).
    pub otlp_endpoint: Option<String>,
    /// `grpc` (port 4317) or `http` (protobuf over HTTP, port 4318).
    pub otlp_protocol: OtlpProtocol,
    /// The traces' `service.name`.
    pub service_name: String,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            log_format: LogFormat::Text,
            otlp_endpoint: None,
            otlp_protocol: OtlpProtocol::Grpc,
            service_name: "contact-gateway".into(),
        }
    }
}

/// `[telemetry] log_format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// `[telemetry] otlp_protocol`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OtlpProtocol {
    #[default]
    Grpc,
    Http,
}

fn validate_telemetry(telemetry: &TelemetryConfig) -> Result<(), ConfigError> {
    if let Some(endpoint) = &telemetry.otlp_endpoint {
        let ok = url::Url::parse(endpoint)
            .is_ok_and(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some());
        if !ok {
            return Err(invalid(
                "telemetry.otlp_endpoint",
                format!("`{endpoint}` is not an http:// or https:// URL"),
            ));
        }
    }
    if telemetry.service_name.trim().is_empty() {
        return Err(invalid("telemetry.service_name", "must not be empty"));
    }
    Ok(())
}

/// `[store]`: where the gateway keeps its state.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// `sqlite://…` or `postgres://…`; `None`: a fresh temporary SQLite file (the sandbox).
    pub url: Option<String>,
    /// How long a mutation's `Idempotency-Key` is remembered.
    pub idempotency_ttl_secs: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: None,
            idempotency_ttl_secs: 86_400,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    url: Option<String>,
    idempotency_ttl_secs: Option<u64>,
}

/// What a credential may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Queries only.
    Read,
    /// Queries and mutations.
    Write,
}

/// `[auth]`, validated.
#[derive(Clone, Debug)]
pub struct AuthConfig {
    pub keys: Vec<ApiKey>,
    pub jwt: Option<JwtConfig>,
    /// Requests per second one credential may make (a token bucket per caller).
    pub rate_per_sec_per_caller: Option<u32>,
}

/// A static API key, known by the SHA-256 of the key.
#[derive(Clone, Debug)]
pub struct ApiKey {
    /// Shown in logs and metrics; never the key.
    pub name: String,
    pub sha256: [u8; 32],
    pub role: Role,
}

/// `[auth.jwt]`, validated.
#[derive(Clone, Debug)]
pub struct JwtConfig {
    pub issuer: String,
    pub audience: String,
    pub key: JwtKey,
    /// In the `scope` claim (space-separated): the caller may mutate.
    pub write_scope: String,
}

/// How JWT signatures are checked.
#[derive(Clone, Debug)]
pub enum JwtKey {
    Hs256(Secret),
    /// An RS256 or ES256 public key, PEM.
    PublicKeyPem(Vec<u8>),
    /// Keys fetched (and re-fetched on an unknown `kid`) from an identity provider.
    Jwks(String),
}

/// `[cors]`: which origins' pages may call the gateway from a browser.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsConfig {
    /// Exact origins (`https://app.example.com`), or `["*"]`.
    pub allow_origins: Vec<String>,
    #[serde(default)]
    pub allow_credentials: bool,
    #[serde(default = "default_cors_max_age")]
    pub max_age_secs: u64,
}

fn default_cors_max_age() -> u64 {
    600
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    #[serde(default)]
    keys: Vec<RawApiKey>,
    jwt: Option<RawJwt>,
    rate_per_sec_per_caller: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApiKey {
    name: String,
    sha256: Option<String>,
    key_env: Option<String>,
    role: Role,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJwt {
    issuer: String,
    audience: String,
    hs256_secret_env: Option<String>,
    public_key_file: Option<String>,
    jwks_url: Option<String>,
    write_scope: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// How long a contact or a list page is served from memory (and an answer built from
    /// them); 0 turns both caches off.
    pub ttl_secs: u64,
    /// Entries held at most (contacts and list pages together).
    pub max_entries: u64,
    /// Bytes the read cache holds at most, by an estimate of each entry's size (a list page
    /// weighs its contacts); both bounds apply. 0: entries only.
    pub max_bytes: u64,
    /// Bytes the response cache holds at most (answers, their keys and index); 0 turns it off.
    pub max_response_bytes: u64,
    /// `redis://host:port[/db]`: replicas announce their writes' invalidations to each other
    /// through it (`gateway::peers`). None: this process's cache only.
    pub redis_url: Option<RedisUrl>,
}

/// `[cache] redis_url`: shown without its password (`Debug`).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct RedisUrl(String);

impl RedisUrl {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::store::redacted(&self.0))
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            ttl_secs: 60,
            max_entries: 100_000,
            max_bytes: 64 * 1024 * 1024,
            max_response_bytes: 64 * 1024 * 1024,
            redis_url: None,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// A larger request body gets 413.
    pub max_body_bytes: usize,
    /// Deepest selection nesting a query may have.
    pub max_depth: usize,
    /// Largest query complexity (each field 1; list fields times their `first`).
    pub max_complexity: usize,
    /// Errors one response holds at most; past it one `TOO_MANY_ERRORS` replaces the rest.
    pub max_errors: usize,
    /// Directives one field may carry (a body of repeated `@include` is refused whole).
    pub max_directives_per_field: usize,
    /// Operations one JSON-array (batched) request may hold.
    pub max_batch: usize,
    /// Connections open at once; further ones wait in the accept queue.
    pub max_connections: usize,
    /// How long SIGTERM waits for the requests in flight.
    pub shutdown_grace_secs: u64,
    /// Upstream requests one GraphQL request may cause; the fields past it fail with
    /// `REQUEST_BUDGET_EXCEEDED` (`importContacts` is exempt).
    pub max_upstream_calls: u64,
    /// The whole request's deadline: each upstream call gets at most what is left of it
    /// (`importContacts` is exempt).
    pub request_timeout_ms: u64,
    /// Records a filter checked in the gateway may read per provider for one `contacts` page.
    pub max_scan: u64,
    /// Data rows one `importContacts` file may have.
    pub max_import_rows: u64,
    /// The environment variable holding the key that signs `contacts` cursors; absent: a
    /// random key per process.
    pub cursor_secret_env: Option<String>,
    /// The key `cursor_secret_env` names, read once at start-up.
    #[serde(skip)]
    pub cursor_secret: Option<Secret>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_body_bytes: 2 * 1024 * 1024,
            max_depth: 16,
            max_complexity: 5_000,
            max_errors: 100,
            max_directives_per_field: 8,
            max_batch: 10,
            max_connections: 1024,
            shutdown_grace_secs: 30,
            max_upstream_calls: 100,
            request_timeout_ms: 30_000,
            max_scan: 500,
            max_import_rows: 50_000,
            cursor_secret_env: None,
            cursor_secret: None,
        }
    }
}

/// The shortest cursor secret accepted: a short one could be guessed offline from one cursor.
const MIN_CURSOR_SECRET_BYTES: usize = 16;

impl LimitsConfig {
    /// Checks every limit (none may be 0) and reads the cursor secret from the environment.
    fn validated(mut self, env: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        for (key, value) in [
            ("limits.max_body_bytes", self.max_body_bytes as u64),
            ("limits.max_depth", self.max_depth as u64),
            ("limits.max_complexity", self.max_complexity as u64),
            ("limits.max_errors", self.max_errors as u64),
            ("limits.max_batch", self.max_batch as u64),
            ("limits.max_connections", self.max_connections as u64),
            ("limits.max_upstream_calls", self.max_upstream_calls),
            ("limits.request_timeout_ms", self.request_timeout_ms),
            ("limits.max_scan", self.max_scan),
            ("limits.max_import_rows", self.max_import_rows),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        if let Some(var) = &self.cursor_secret_env {
            let key = "limits.cursor_secret_env";
            let secret = env(var).filter(|s| !s.is_empty()).ok_or_else(|| {
                invalid(
                    key,
                    format!("environment variable {var} is not set or empty"),
                )
            })?;
            if secret.len() < MIN_CURSOR_SECRET_BYTES {
                return Err(invalid(
                    key,
                    format!(
                        "environment variable {var} holds fewer than {MIN_CURSOR_SECRET_BYTES} bytes; use a long random secret"
                    ),
                ));
            }
            self.cursor_secret = Some(Secret::new(secret));
        }
        Ok(self)
    }
}

/// A token bucket: `burst` calls at once, refilled at `rate_per_sec`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bucket {
    pub rate_per_sec: f64,
    pub burst: u32,
}

/// How the gateway spends one provider's rate budget and rides out its failures (`[providers.<id>]`
/// `rate_per_sec`, `burst`, `follow_rate_limit_headers`, `max_retry_after_secs`, `retries`,
/// `breaker_failures`, `breaker_cooldown_secs`).
#[derive(Clone, Debug, PartialEq)]
pub struct BudgetConfig {
    /// Calls are paced by this bucket; `None`: the gateway does not pace them.
    pub bucket: Option<Bucket>,
    /// When the provider answers `X-RateLimit-Remaining: 0`, no call until `X-RateLimit-Reset`.
    pub follow_rate_limit_headers: bool,
    /// The longest a call waits for its turn (a 429's `Retry-After`, the bucket, the reset);
    /// a longer wait fails at once with `PROVIDER_RATE_LIMITED`.
    pub max_retry_after_secs: u64,
    /// Times a read is sent again after a 5xx, a timeout or a connection failure.
    pub retries: u32,
    /// Failures in a row (5xx, timeouts, connection failures) that open the circuit breaker.
    pub breaker_failures: u32,
    /// How long an open breaker fails calls at once before letting one probe through.
    pub breaker_cooldown: Duration,
}

impl Default for BudgetConfig {
    /// No pacing (as for a provider that documents no limit); the rest at their defaults.
    fn default() -> Self {
        BudgetConfig {
            bucket: None,
            follow_rate_limit_headers: false,
            max_retry_after_secs: 30,
            retries: 2,
            breaker_failures: 5,
            breaker_cooldown: Duration::from_secs(10),
        }
    }
}

impl BudgetConfig {
    /// The defaults for `id`: its descriptor's bucket and headers, the rest as `default()`.
    pub fn for_provider(id: ProviderId) -> Self {
        let defaults = &crate::providers::descriptor(id).budget;
        BudgetConfig {
            bucket: defaults.bucket,
            follow_rate_limit_headers: defaults.follow_rate_limit_headers,
            ..BudgetConfig::default()
        }
    }
}

/// The longest `max_retry_after_secs`, `breaker_cooldown_secs`: an hour.
const MAX_WAIT_SECS: u64 = 3600;
/// The most `retries` a read may have.
const MAX_RETRIES: u32 = 10;
/// The slowest bucket: one call an hour.
const MIN_RATE_PER_SEC: f64 = 1.0 / 3600.0;

/// One enabled provider.
#[derive(Clone, Debug)]
pub struct ProviderConfig {
    /// Origin plus optional prefix, no trailing slash; the adapter appends the API's paths.
    pub base_url: String,
    pub api_key: Secret,
    /// The provider's own keys (its descriptor's `settings`, e.g. Consuelo's `workspace_id`).
    pub settings: BTreeMap<String, String>,
    pub timeout_ms: u64,
    pub max_concurrency: usize,
    pub default_region: String,
    pub budget: BudgetConfig,
    /// `poll_interval_secs`: how often a poller re-lists the provider to find changes made
    /// there directly; `None` (the default): no poller.
    pub poll_interval: Option<Duration>,
}

impl ProviderConfig {
    /// A provider at `base_url` with defaults for everything optional, and no pacing (the
    /// sandbox's simulators; a config file gets the provider's documented limits instead).
    pub fn new(base_url: impl Into<String>, api_key: Secret) -> Self {
        ProviderConfig {
            base_url: base_url.into(),
            api_key,
            settings: BTreeMap::new(),
            timeout_ms: 10_000,
            max_concurrency: 64,
            default_region: "US".into(),
            budget: BudgetConfig::default(),
            poll_interval: None,
        }
    }

    /// One of the provider's own settings, when given.
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.settings.get(key).map(String::as_str)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    default_region: Option<String>,
    #[serde(default)]
    cache: CacheConfig,
    #[serde(default)]
    limits: LimitsConfig,
    auth: Option<RawAuth>,
    #[serde(default)]
    insecure_no_auth: bool,
    cors: Option<CorsConfig>,
    store: Option<RawStore>,
    #[serde(default)]
    webhooks: Vec<RawWebhook>,
    #[serde(default)]
    telemetry: TelemetryConfig,
    /// By provider id; an id no provider has is refused when validated.
    #[serde(default)]
    providers: BTreeMap<String, RawProvider>,
}

/// The keys every provider takes; the rest are checked against its descriptor's settings.
#[derive(Deserialize)]
struct RawProvider {
    base_url: String,
    api_key: Option<String>,
    api_key_env: Option<String>,
    timeout_ms: Option<u64>,
    max_concurrency: Option<usize>,
    default_region: Option<String>,
    rate_per_sec: Option<f64>,
    burst: Option<u32>,
    follow_rate_limit_headers: Option<bool>,
    max_retry_after_secs: Option<u64>,
    retries: Option<u32>,
    breaker_failures: Option<u32>,
    breaker_cooldown_secs: Option<u64>,
    poll_interval_secs: Option<u64>,
    #[serde(flatten)]
    settings: BTreeMap<String, toml::Value>,
}

impl Config {
    /// Defaults for everything but the providers (the sandbox uses this).
    pub fn with_providers(
        listen: SocketAddr,
        providers: BTreeMap<ProviderId, ProviderConfig>,
    ) -> Config {
        Config {
            listen,
            default_region: "US".into(),
            cache: CacheConfig::default(),
            limits: LimitsConfig::default(),
            providers,
            auth: None,
            insecure_no_auth: false,
            cors: None,
            store: StoreConfig::default(),
            webhooks: Vec::new(),
            telemetry: TelemetryConfig::default(),
        }
    }

    /// Refuses to expose the gateway unauthenticated: an address other than loopback needs
    /// `[auth]`, or `insecure_no_auth = true` when a proxy in front authenticates callers.
    pub fn check_exposure(&self) -> Result<(), ConfigError> {
        if self.listen.ip().is_loopback() || self.auth.is_some() || self.insecure_no_auth {
            return Ok(());
        }
        Err(invalid(
            "listen",
            format!(
                "{} is reachable from other machines, and without [auth] anyone reaching it \
                 could write to every provider: add an [auth] section (README, \"Security\"), \
                 or set insecure_no_auth = true if a proxy in front authenticates callers",
                self.listen
            ),
        ))
    }

    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse_in(&text, |name| std::env::var(name).ok(), base).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.display().to_string(),
                message,
            },
            other => other,
        })
    }

    /// Parses and validates config text; `env` resolves the `*_env` keys; relative file names
    /// are read from the working directory.
    pub fn parse(text: &str, env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        Config::parse_in(text, env, Path::new("."))
    }

    /// Like `parse`, with relative file names read from `base` (the config file's folder).
    fn parse_in(
        text: &str,
        env: impl Fn(&str) -> Option<String>,
        base: &Path,
    ) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: "<inline>".into(),
            message: e.to_string(),
        })?;
        let default_region = raw.default_region.unwrap_or_else(|| "US".into());
        check_region("default_region", &default_region)?;
        let listen = raw.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen = listen.parse().map_err(|_| {
            invalid(
                "listen",
                format!("`{listen}` is not an address like 127.0.0.1:4000"),
            )
        })?;
        if raw.cache.max_entries == 0 {
            return Err(invalid("cache.max_entries", "must be at least 1"));
        }
        if let Some(url) = raw.cache.redis_url.as_ref().map(RedisUrl::expose) {
            let scheme_ok = url.starts_with("redis://");
            if !scheme_ok || redis::Client::open(url).is_err() {
                return Err(invalid(
                    "cache.redis_url",
                    "must be a redis://host[:port][/db] URL",
                ));
            }
        }
        let limits = raw.limits.validated(&env)?;
        let mut providers = BTreeMap::new();
        for (name, raw) in raw.providers {
            let id = name.parse::<ProviderId>().map_err(|_| {
                let known: Vec<&str> = ProviderId::ALL.iter().map(|p| p.as_str()).collect();
                invalid(
                    format!("providers.{name}"),
                    format!("no such provider; known: {}", known.join(", ")),
                )
            })?;
            providers.insert(id, validate_provider(id, raw, &default_region, &env)?);
        }
        let auth = raw
            .auth
            .map(|auth| validate_auth(auth, &env, base))
            .transpose()?;
        if let Some(cors) = &raw.cors {
            validate_cors(cors)?;
        }
        let store = validate_store(raw.store, base)?;
        let webhooks = validate_webhooks(raw.webhooks, &env)?;
        validate_telemetry(&raw.telemetry)?;
        Ok(Config {
            listen,
            default_region,
            cache: raw.cache,
            limits,
            providers,
            auth,
            insecure_no_auth: raw.insecure_no_auth,
            cors: raw.cors,
            store,
            webhooks,
            telemetry: raw.telemetry,
        })
    }
}

fn validate_auth(
    raw: RawAuth,
    env: &impl Fn(&str) -> Option<String>,
    base: &Path,
) -> Result<AuthConfig, ConfigError> {
    if raw.keys.is_empty() && raw.jwt.is_none() {
        return Err(invalid(
            "auth",
            "give at least one [[auth.keys]] or an [auth.jwt] section",
        ));
    }
    let mut keys = Vec::new();
    for (i, key) in raw.keys.into_iter().enumerate() {
        let at = |name: &str| format!("auth.keys[{i}].{name}");
        if key.name.trim().is_empty() {
            return Err(invalid(at("name"), "is empty"));
        }
        if keys.iter().any(|k: &ApiKey| k.name == key.name) {
            return Err(invalid(at("name"), format!("`{}` is used twice", key.name)));
        }
        let sha256 = match (key.sha256, key.key_env) {
            (Some(hex), None) => parse_sha256(&hex).ok_or_else(|| {
                invalid(
                    at("sha256"),
                    "must be 64 hex digits (the SHA-256 of the key)",
                )
            })?,
            (None, Some(var)) => match env(&var) {
                Some(k) if !k.trim().is_empty() => sha2::Sha256::digest(k.trim().as_bytes()).into(),
                _ => {
                    return Err(invalid(
                        at("key_env"),
                        format!("environment variable {var} is not set or empty"),
                    ))
                }
            },
            (Some(_), Some(_)) => {
                return Err(invalid(at("sha256"), "set sha256 or key_env, not both"))
            }
            (None, None) => return Err(invalid(at("sha256"), "missing: set sha256 or key_env")),
        };
        keys.push(ApiKey {
            name: key.name,
            sha256,
            role: key.role,
        });
    }
    let jwt = match raw.jwt {
        None => None,
        Some(jwt) => {
            let key = match (jwt.hs256_secret_env, jwt.public_key_file, jwt.jwks_url) {
                (Some(var), None, None) => match env(&var) {
                    Some(secret) if secret.len() >= 32 => JwtKey::Hs256(Secret::new(secret)),
                    Some(_) => {
                        return Err(invalid(
                            "auth.jwt.hs256_secret_env",
                            format!("environment variable {var} holds fewer than 32 bytes"),
                        ))
                    }
                    None => {
                        return Err(invalid(
                            "auth.jwt.hs256_secret_env",
                            format!("environment variable {var} is not set"),
                        ))
                    }
                },
                (None, Some(file), None) => {
                    let path = base.join(&file);
                    let pem = std::fs::read(&path).map_err(|e| {
                        invalid(
                            "auth.jwt.public_key_file",
                            format!("cannot read {}: {e}", path.display()),
                        )
                    })?;
                    let usable = jsonwebtoken::DecodingKey::from_rsa_pem(&pem).is_ok()
                        || jsonwebtoken::DecodingKey::from_ec_pem(&pem).is_ok();
                    if !usable {
                        return Err(invalid(
                            "auth.jwt.public_key_file",
                            format!(
                                "{} is not an RS256 or ES256 public key in PEM",
                                path.display()
                            ),
                        ));
                    }
                    JwtKey::PublicKeyPem(pem)
                }
                (None, None, Some(url)) => {
                    validate_base_url(&url).map_err(|m| invalid("auth.jwt.jwks_url", m))?;
                    JwtKey::Jwks(url)
                }
                _ => {
                    return Err(invalid(
                        "auth.jwt",
                        "set exactly one of hs256_secret_env, public_key_file, jwks_url",
                    ))
                }
            };
            for (name, value) in [
                ("issuer", &jwt.issuer),
                ("audience", &jwt.audience),
                ("write_scope", &jwt.write_scope),
            ] {
                if value.trim().is_empty() {
                    return Err(invalid(format!("auth.jwt.{name}"), "is empty"));
                }
            }
            Some(JwtConfig {
                issuer: jwt.issuer,
                audience: jwt.audience,
                key,
                write_scope: jwt.write_scope,
            })
        }
    };
    if raw.rate_per_sec_per_caller == Some(0) {
        return Err(invalid(
            "auth.rate_per_sec_per_caller",
            "must be at least 1",
        ));
    }
    Ok(AuthConfig {
        keys,
        jwt,
        rate_per_sec_per_caller: raw.rate_per_sec_per_caller,
    })
}

/// 64 hex digits.
fn parse_sha256(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The store's url (default: `contact-gateway.db` beside the config file) and settings.
fn validate_store(raw: Option<RawStore>, base: &Path) -> Result<StoreConfig, ConfigError> {
    let raw = raw.unwrap_or(RawStore {
        url: None,
        idempotency_ttl_secs: None,
    });
    let url = match raw.url {
        Some(url)
            if url.starts_with("sqlite:")
                || url.starts_with("postgres://")
                || url.starts_with("postgresql://") =>
        {
            url
        }
        Some(url) => {
            return Err(invalid(
                "store.url",
                format!(
                    "`{}` is neither sqlite://<file> nor postgres://user:pass@host/db",
                    crate::store::redacted(&url)
                ),
            ))
        }
        None => format!("sqlite://{}", base.join("contact-gateway.db").display()),
    };
    let idempotency_ttl_secs = raw.idempotency_ttl_secs.unwrap_or(86_400);
    if idempotency_ttl_secs == 0 {
        return Err(invalid("store.idempotency_ttl_secs", "must be at least 1"));
    }
    Ok(StoreConfig {
        url: Some(url),
        idempotency_ttl_secs,
    })
}

fn validate_cors(cors: &CorsConfig) -> Result<(), ConfigError> {
    let any = cors.allow_origins.iter().any(|o| o == "*");
    if any && cors.allow_credentials {
        return Err(invalid(
            "cors.allow_credentials",
            "cannot be true with allow_origins = [\"*\"]: name the origins",
        ));
    }
    if any && cors.allow_origins.len() > 1 {
        return Err(invalid("cors.allow_origins", "\"*\" stands alone"));
    }
    for origin in cors.allow_origins.iter().filter(|o| *o != "*") {
        let valid = url::Url::parse(origin).is_ok_and(|u| {
            matches!(u.scheme(), "http" | "https")
                && u.host_str().is_some()
                && u.path() == "/"
                && !origin.ends_with('/')
        });
        if !valid {
            return Err(invalid(
                "cors.allow_origins",
                format!("`{origin}` is not an origin like https://app.example.com"),
            ));
        }
    }
    Ok(())
}

fn check_region(key: &str, region: &str) -> Result<(), ConfigError> {
    crate::phone::parse_region(region)
        .map(|_| ())
        .ok_or_else(|| {
            invalid(
                key,
                format!("`{region}` is not an ISO 3166 region code like \"US\""),
            )
        })
}

fn validate_provider(
    id: ProviderId,
    raw: RawProvider,
    default_region: &str,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<ProviderConfig, ConfigError> {
    let key = |name: &str| format!("providers.{id}.{name}");
    let base_url = validate_base_url(&raw.base_url).map_err(|m| invalid(key("base_url"), m))?;
    let budget = validate_budget(id, &raw)?;
    let api_key = match (raw.api_key, raw.api_key_env) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                key("api_key"),
                "set api_key or api_key_env, not both",
            ))
        }
        (Some(k), None) if !k.trim().is_empty() => Secret::new(k),
        (Some(_), None) => return Err(invalid(key("api_key"), "is empty")),
        (None, Some(var)) => match env(&var) {
            Some(k) if !k.trim().is_empty() => Secret::new(k),
            _ => {
                return Err(invalid(
                    key("api_key_env"),
                    format!("environment variable {var} is not set or empty"),
                ))
            }
        },
        (None, None) => {
            return Err(invalid(
                key("api_key"),
                "missing: set api_key or api_key_env",
            ))
        }
    };
    // It travels in a header: a stray newline (from a file or an env var) would make the
    // request go out unsigned.
    if !api_key.expose().bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(
            key("api_key"),
            "contains spaces, line breaks or non-ASCII characters, which a header cannot carry",
        ));
    }
    let settings = validate_settings(id, raw.settings)?;
    let timeout_ms = raw.timeout_ms.unwrap_or(10_000);
    if timeout_ms == 0 {
        return Err(invalid(key("timeout_ms"), "must be at least 1"));
    }
    let max_concurrency = raw.max_concurrency.unwrap_or(64);
    if max_concurrency == 0 {
        return Err(invalid(key("max_concurrency"), "must be at least 1"));
    }
    let default_region = raw
        .default_region
        .unwrap_or_else(|| default_region.to_string());
    check_region(&key("default_region"), &default_region)?;
    let poll_interval = match raw.poll_interval_secs {
        None => None,
        // mainbrainer.txt documents no read endpoint: there is no listing to compare.
        Some(_) if id == ProviderId::Mainbrainer => {
            return Err(invalid(
                key("poll_interval_secs"),
                "Mainbrainer documents no read endpoint, so there is nothing to poll (the \
                 gateway's ledger already holds every write made through it)",
            ))
        }
        Some(secs) if (1..=MAX_POLL_INTERVAL_SECS).contains(&secs) => {
            Some(Duration::from_secs(secs))
        }
        Some(_) => {
            return Err(invalid(
                key("poll_interval_secs"),
                format!("must be between 1 and {MAX_POLL_INTERVAL_SECS} (a day)"),
            ))
        }
    };
    Ok(ProviderConfig {
        base_url,
        api_key,
        settings,
        timeout_ms,
        max_concurrency,
        default_region,
        budget,
        poll_interval,
    })
}

/// The longest `poll_interval_secs`: a day.
const MAX_POLL_INTERVAL_SECS: u64 = 86_400;

/// `[[webhooks]]`: an http(s) url (once each), the secret its `secret_env` names (set, at
/// least 16 bytes), and the change kinds it gets (default: all).
fn validate_webhooks(
    raw: Vec<RawWebhook>,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Vec<WebhookConfig>, ConfigError> {
    let mut webhooks: Vec<WebhookConfig> = Vec::new();
    for (i, hook) in raw.into_iter().enumerate() {
        let at = |name: &str| format!("webhooks[{i}].{name}");
        let url = url::Url::parse(&hook.url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
            .ok_or_else(|| {
                invalid(
                    at("url"),
                    format!(
                        "`{}` is not an http(s) URL",
                        crate::contact::shown(&hook.url)
                    ),
                )
            })?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(
                at("url"),
                "must not carry credentials (deliveries are signed with secret_env's secret)",
            ));
        }
        if webhooks.iter().any(|w| w.url == hook.url) {
            return Err(invalid(
                at("url"),
                format!("`{}` is configured twice", hook.url),
            ));
        }
        let var = hook.secret_env.ok_or_else(|| {
            invalid(
                at("secret_env"),
                "missing: the environment variable holding the signing secret",
            )
        })?;
        let secret = match env(&var) {
            Some(s) if s.trim().len() >= MIN_WEBHOOK_SECRET_BYTES => Secret::new(s.trim()),
            Some(s) if !s.trim().is_empty() => {
                return Err(invalid(
                    at("secret_env"),
                    format!("environment variable {var} holds fewer than {MIN_WEBHOOK_SECRET_BYTES} bytes; use a long random secret"),
                ))
            }
            _ => {
                return Err(invalid(
                    at("secret_env"),
                    format!("environment variable {var} is not set or empty"),
                ))
            }
        };
        let events = match hook.events {
            None => ChangeKind::ALL.to_vec(),
            Some(names) if names.is_empty() => {
                return Err(invalid(
                    at("events"),
                    "is empty: name the change kinds to deliver, or leave it out for all",
                ))
            }
            Some(names) => {
                let mut events = Vec::new();
                for name in names {
                    let kind = name
                        .parse::<ChangeKind>()
                        .map_err(|m| invalid(at("events"), m))?;
                    if !events.contains(&kind) {
                        events.push(kind);
                    }
                }
                events
            }
        };
        webhooks.push(WebhookConfig {
            url: hook.url,
            secret,
            events,
        });
    }
    Ok(webhooks)
}

/// The shortest webhook secret accepted.
const MIN_WEBHOOK_SECRET_BYTES: usize = 16;

/// The provider's budget: its descriptor's defaults, overridden by the keys given.
fn validate_budget(id: ProviderId, raw: &RawProvider) -> Result<BudgetConfig, ConfigError> {
    let key = |name: &str| format!("providers.{id}.{name}");
    let mut budget = BudgetConfig::for_provider(id);
    let rate = match raw.rate_per_sec {
        // 0: no bucket, as for a provider that documents no limit.
        Some(0.0) => None,
        Some(rate) if rate.is_finite() && rate >= MIN_RATE_PER_SEC => Some(rate),
        Some(_) => {
            return Err(invalid(
                key("rate_per_sec"),
                "must be a number of calls per second (at least 1 an hour, e.g. 0.5 or 10), or 0 for no bucket",
            ))
        }
        None => budget.bucket.map(|b| b.rate_per_sec),
    };
    if raw.burst == Some(0) {
        return Err(invalid(key("burst"), "must be at least 1"));
    }
    budget.bucket = match (rate, raw.burst) {
        (Some(rate_per_sec), burst) => Some(Bucket {
            rate_per_sec,
            // Without one: the provider's default burst, or one second's worth of calls.
            burst: burst
                .or(budget.bucket.map(|b| b.burst))
                .unwrap_or(rate_per_sec.ceil() as u32)
                .max(1),
        }),
        (None, Some(_)) => {
            return Err(invalid(
                key("burst"),
                format!("{id} has no bucket to size: set rate_per_sec too"),
            ))
        }
        (None, None) => None,
    };
    if let Some(follow) = raw.follow_rate_limit_headers {
        budget.follow_rate_limit_headers = follow;
    }
    if let Some(secs) = raw.max_retry_after_secs {
        if secs > MAX_WAIT_SECS {
            return Err(invalid(
                key("max_retry_after_secs"),
                format!("must be at most {MAX_WAIT_SECS} (an hour)"),
            ));
        }
        budget.max_retry_after_secs = secs;
    }
    if let Some(retries) = raw.retries {
        if retries > MAX_RETRIES {
            return Err(invalid(
                key("retries"),
                format!("must be at most {MAX_RETRIES}"),
            ));
        }
        budget.retries = retries;
    }
    if let Some(failures) = raw.breaker_failures {
        if failures == 0 {
            return Err(invalid(key("breaker_failures"), "must be at least 1"));
        }
        budget.breaker_failures = failures;
    }
    if let Some(secs) = raw.breaker_cooldown_secs {
        if secs == 0 || secs > MAX_WAIT_SECS {
            return Err(invalid(
                key("breaker_cooldown_secs"),
                format!("must be between 1 and {MAX_WAIT_SECS} (an hour)"),
            ));
        }
        budget.breaker_cooldown = Duration::from_secs(secs);
    }
    Ok(budget)
}

/// The provider's own keys: each one its descriptor declares, a non-blank string; the required
/// ones present.
fn validate_settings(
    id: ProviderId,
    given: BTreeMap<String, toml::Value>,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let key = |name: &str| format!("providers.{id}.{name}");
    let declared = crate::providers::descriptor(id).settings;
    let mut settings = BTreeMap::new();
    for (name, value) in given {
        if !declared.iter().any(|s| s.key == name) {
            let mut known = vec![
                "base_url",
                "api_key",
                "api_key_env",
                "timeout_ms",
                "max_concurrency",
                "default_region",
                "rate_per_sec",
                "burst",
                "follow_rate_limit_headers",
                "max_retry_after_secs",
                "retries",
                "breaker_failures",
                "breaker_cooldown_secs",
                "poll_interval_secs",
            ];
            known.extend(declared.iter().map(|s| s.key));
            let message = format!("unknown key; {id} takes {}", known.join(", "));
            return Err(invalid(key(&name), message));
        }
        match value {
            toml::Value::String(v) if !v.trim().is_empty() => {
                settings.insert(name, v.trim().to_string());
            }
            _ => return Err(invalid(key(&name), "must be a non-empty string")),
        }
    }
    for setting in declared {
        if setting.required && !settings.contains_key(setting.key) {
            let message = format!("missing: {}", setting.about);
            return Err(invalid(key(setting.key), message));
        }
    }
    Ok(settings)
}

/// An http(s) origin with an optional path prefix; a trailing slash is dropped.
fn validate_base_url(input: &str) -> Result<String, String> {
    let url = url::Url::parse(input).map_err(|e| format!("`{input}` is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("`{input}` must start with http:// or https://"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("`{input}` has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("`{input}` must not have a query or fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials; use api_key".to_string());
    }
    Ok(input.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, |name| {
            let value = match name {
                "MB_KEY" => "from-env",
                "CURSOR_SECRET" => "a-cursor-secret-of-some-length",
                "SHORT_SECRET" => "short",
                "EMPTY" => "",
                _ => return None,
            };
            Some(value.to_string())
        })
    }

    #[test]
    fn a_full_config_parses_with_defaults() {
        let c = parse(
            r#"
            [providers.magicblocks]
            base_url = "https://api.magicblocks.com/"
            api_key_env = "MB_KEY"
            [providers.consuelo]
            base_url = "https://api.consuelohq.com"
            api_key = "k"
            workspace_id = "ws_abc123"
            timeout_ms = 500
            "#,
        )
        .unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        let mb = &c.providers[&ProviderId::Magicblocks];
        assert_eq!(mb.base_url, "https://api.magicblocks.com");
        assert_eq!(mb.api_key.expose(), "from-env");
        assert_eq!(format!("{:?}", mb.api_key), "***");
        assert_eq!(c.providers[&ProviderId::Consuelo].timeout_ms, 500);
        assert!(!c.providers.contains_key(&ProviderId::Maiagent));
        assert_eq!(c.cache.ttl_secs, 60);
        assert_eq!(c.cache.max_response_bytes, 64 * 1024 * 1024);
        assert_eq!(c.cache.max_bytes, 64 * 1024 * 1024);
        assert_eq!(c.limits.max_depth, 16);
        assert_eq!(
            (
                c.limits.max_upstream_calls,
                c.limits.request_timeout_ms,
                c.limits.max_scan,
                c.limits.max_import_rows
            ),
            (100, 30_000, 500, 50_000)
        );
        assert!(c.limits.cursor_secret.is_none());
    }

    #[test]
    fn the_cursor_secret_is_read_from_the_named_variable_and_never_printed() {
        let c = parse("[limits]\ncursor_secret_env = \"CURSOR_SECRET\"\nmax_scan = 50").unwrap();
        let secret = c.limits.cursor_secret.as_ref().unwrap();
        assert_eq!(secret.expose(), "a-cursor-secret-of-some-length");
        assert_eq!(c.limits.max_scan, 50);
        assert!(!format!("{c:?}").contains("a-cursor-secret"));
    }

    #[test]
    fn the_redis_url_must_be_a_redis_url() {
        let c =
            parse("[cache]\nredis_url = \"redis://:a-redis-password@127.0.0.1:6379/2\"").unwrap();
        assert!(!format!("{c:?}").contains("a-redis-password"));
        assert_eq!(
            c.cache.redis_url.as_ref().map(RedisUrl::expose),
            Some("redis://:a-redis-password@127.0.0.1:6379/2")
        );
        assert_eq!(parse("").unwrap().cache.redis_url, None);
        for bad in ["http://127.0.0.1:6379", "redis://", "127.0.0.1:6379"] {
            let error = parse(&format!("[cache]\nredis_url = \"{bad}\"")).unwrap_err();
            assert!(
                error.to_string().contains("cache.redis_url"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn every_error_names_its_key() {
        let cases = [
            ("lisen = \"x\"", "lisen"),
            ("[providers.hubspot]\nbase_url = \"https://x\"", "hubspot"),
            (
                "[providers.maiagent]\nbase_url = \"https://x\"\napi_key = \"k\"\ntimeout = 1",
                "timeout",
            ),
            (
                "[providers.maiagent]\nbase_url = \"not a url\"\napi_key = \"k\"",
                "providers.maiagent.base_url",
            ),
            (
                "[providers.maiagent]\nbase_url = \"ftp://x\"\napi_key = \"k\"",
                "providers.maiagent.base_url",
            ),
            (
                "[providers.maiagent]\nbase_url = \"https://x\"",
                "providers.maiagent.api_key",
            ),
            ("[providers.maiagent]\napi_key = \"k\"", "base_url"),
            (
                "[providers.maiagent]\nbase_url = \"https://x\"\napi_key_env = \"NOPE\"",
                "providers.maiagent.api_key_env",
            ),
            (
                "[providers.consuelo]\nbase_url = \"https://x\"\napi_key = \"k\"",
                "providers.consuelo.workspace_id",
            ),
            (
                "[providers.maiagent]\nbase_url = \"https://x\"\napi_key = \"k\"\nlist_id = \"l\"",
                "providers.maiagent.list_id",
            ),
            (
                "[providers.consuelo]\nbase_url = \"https://x\"\napi_key = \"k\"\nworkspace_id = 3",
                "providers.consuelo.workspace_id",
            ),
            ("default_region = \"Narnia\"", "default_region"),
            (
                "[providers.maiagent]\nbase_url = \"https://x\"\napi_key = \"k\\n\"",
                "providers.maiagent.api_key",
            ),
            ("[cache]\nttl = 3", "ttl"),
            (
                "[limits]\nmax_upstream_calls = 0",
                "limits.max_upstream_calls",
            ),
            (
                "[limits]\nrequest_timeout_ms = 0",
                "limits.request_timeout_ms",
            ),
            ("[limits]\nmax_scan = 0", "limits.max_scan"),
            ("[limits]\nmax_import_rows = 0", "limits.max_import_rows"),
            ("[limits]\nmax_scan = -1", "max_scan"),
            (
                "[limits]\ncursor_secret_env = \"NOPE\"",
                "limits.cursor_secret_env",
            ),
            (
                "[limits]\ncursor_secret_env = \"EMPTY\"",
                "limits.cursor_secret_env",
            ),
            (
                "[limits]\ncursor_secret_env = \"SHORT_SECRET\"",
                "limits.cursor_secret_env",
            ),
            (
                "[providers.maiagent]\nbase_url = \"https://x\"\napi_key = \"k\"\nrate_per_sec = -1",
                "providers.maiagent.rate_per_sec",
            ),
            (
                "[providers.maiagent]\nbase_url = \"https://x\"\napi_key = \"k\"\nrate_per_sec = nan",
                "providers.maiagent.rate_per_sec",
            ),
            (
                "[providers.maiagent]\nbase_url = \"https://x\"\napi_key = \"k\"\nrate_per_sec = \"fast\"",
                "rate_per_sec",
            ),
            (
                "[providers.mainbrainer]\nbase_url = \"https://x\"\napi_key = \"k\"\nburst = 0",
                "providers.mainbrainer.burst",
            ),
            (
                "[providers.maiagent]\nbase_url = \"https://x\"\napi_key = \"k\"\nburst = 5",
                "providers.maiagent.burst",
            ),
            (
                "[providers.maiagent]\nbase_url = \"https://x\"\napi_key = \"k\"\nburst = -5",
                "burst",
            ),
            (
                "[providers.maiagent]\nbase_url = \"https://x\"\napi_key = \"k\"\nmax_retry_after_secs = 100000",
                "providers.maiagent.max_retry_after_secs",
            ),
            (
                "[providers.maiagent]\nbase_url = \"https://x\"\napi_key = \"k\"\nretries = 50",
                "providers.maiagent.retries",
            ),
            (
                "[providers.maiagent]\nbase_url = \"https://x\"\napi_key = \"k\"\nretries = -1",
                "retries",
            ),
            (
                "[providers.maiagent]\nbase_url = \"https://x\"\napi_key = \"k\"\nbreaker_failures = 0",
                "providers.maiagent.breaker_failures",
            ),
            (
                "[providers.maiagent]\nbase_url = \"https://x\"\napi_key = \"k\"\nbreaker_cooldown_secs = 0",
                "providers.maiagent.breaker_cooldown_secs",
            ),
            (
                "[providers.maiagent]\nbase_url = \"https://x\"\napi_key = \"k\"\nfollow_rate_limit_headers = \"yes\"",
                "follow_rate_limit_headers",
            ),
            (
                "[providers.maiagent]\nbase_url = \"https://x\"\napi_key = \"k\"\npoll_interval_secs = 0",
                "providers.maiagent.poll_interval_secs",
            ),
            (
                "[providers.maiagent]\nbase_url = \"https://x\"\napi_key = \"k\"\npoll_interval_secs = 100000",
                "providers.maiagent.poll_interval_secs",
            ),
            (
                "[providers.mainbrainer]\nbase_url = \"https://x\"\napi_key = \"k\"\npoll_interval_secs = 60",
                "providers.mainbrainer.poll_interval_secs",
            ),
            (
                "[[webhooks]]\nurl = \"ftp://hooks.example.com\"\nsecret_env = \"CURSOR_SECRET\"",
                "webhooks[0].url",
            ),
            (
                "[[webhooks]]\nurl = \"https://user:pw@hooks.example.com\"\nsecret_env = \"CURSOR_SECRET\"",
                "webhooks[0].url",
            ),
            ("[[webhooks]]\nurl = \"https://hooks.example.com\"", "webhooks[0].secret_env"),
            (
                "[[webhooks]]\nurl = \"https://hooks.example.com\"\nsecret_env = \"NOPE\"",
                "webhooks[0].secret_env",
            ),
            (
                "[[webhooks]]\nurl = \"https://hooks.example.com\"\nsecret_env = \"SHORT_SECRET\"",
                "webhooks[0].secret_env",
            ),
            (
                "[[webhooks]]\nurl = \"https://hooks.example.com\"\nsecret_env = \"CURSOR_SECRET\"\nevents = [\"CREATE\"]",
                "webhooks[0].events",
            ),
            (
                "[[webhooks]]\nurl = \"https://hooks.example.com\"\nsecret_env = \"CURSOR_SECRET\"\nevents = []",
                "webhooks[0].events",
            ),
            (
                "[[webhooks]]\nurl = \"https://a.example.com\"\nsecret_env = \"CURSOR_SECRET\"\n[[webhooks]]\nurl = \"https://a.example.com\"\nsecret_env = \"CURSOR_SECRET\"",
                "webhooks[1].url",
            ),
            (
                "[[webhooks]]\nurl = \"https://a.example.com\"\nsecret_env = \"CURSOR_SECRET\"\nsecret = \"x\"",
                "secret",
            ),
        ];
        for (text, key) in cases {
            let err = parse(text).expect_err(text).to_string();
            assert!(
                err.contains(key),
                "{text:?} gave {err:?}, which does not name {key}"
            );
        }
    }

    #[test]
    fn each_provider_gets_its_documented_budget_unless_the_config_says_otherwise() {
        let providers: String = ProviderId::ALL
            .iter()
            .map(|id| {
                let workspace = if *id == ProviderId::Consuelo {
                    "workspace_id = \"w\"\n"
                } else {
                    ""
                };
                format!("[providers.{id}]\nbase_url = \"https://x\"\napi_key = \"k\"\n{workspace}")
            })
            .collect();
        let c = parse(&providers).unwrap();
        let budget = |id: ProviderId| c.providers[&id].budget.clone();
        let mainbrainer = budget(ProviderId::Mainbrainer);
        assert_eq!(
            mainbrainer.bucket,
            Some(Bucket {
                rate_per_sec: 10.0,
                burst: 100
            })
        );
        let whautomate = budget(ProviderId::Whautomate).bucket.unwrap();
        assert_eq!(whautomate.burst, 100);
        assert!(
            (whautomate.rate_per_sec * 60.0 - 100.0).abs() < 1e-9,
            "100 a minute"
        );
        let consuelo = budget(ProviderId::Consuelo);
        assert_eq!(
            (consuelo.bucket, consuelo.follow_rate_limit_headers),
            (None, true)
        );
        for id in [ProviderId::Magicblocks, ProviderId::Maiagent] {
            assert_eq!(budget(id), BudgetConfig::default(), "{id}: no bucket");
        }
        assert_eq!(
            (
                mainbrainer.max_retry_after_secs,
                mainbrainer.retries,
                mainbrainer.breaker_failures
            ),
            (30, 2, 5)
        );

        let c = parse(
            r#"
            [providers.mainbrainer]
            base_url = "https://x"
            api_key = "k"
            rate_per_sec = 20
            max_retry_after_secs = 0
            retries = 0
            breaker_failures = 3
            breaker_cooldown_secs = 60
            [providers.whautomate]
            base_url = "https://x"
            api_key = "k"
            rate_per_sec = 0
            [providers.maiagent]
            base_url = "https://x"
            api_key = "k"
            rate_per_sec = 0.5
            [providers.consuelo]
            base_url = "https://x"
            api_key = "k"
            workspace_id = "w"
            follow_rate_limit_headers = false
            rate_per_sec = 1
            burst = 1
            "#,
        )
        .unwrap();
        let mainbrainer = budget_of(&c, ProviderId::Mainbrainer);
        assert_eq!(
            mainbrainer.bucket,
            Some(Bucket {
                rate_per_sec: 20.0,
                burst: 100
            }),
            "the default burst stays"
        );
        assert_eq!(
            (
                mainbrainer.max_retry_after_secs,
                mainbrainer.retries,
                mainbrainer.breaker_failures,
                mainbrainer.breaker_cooldown
            ),
            (0, 0, 3, Duration::from_secs(60))
        );
        assert_eq!(
            budget_of(&c, ProviderId::Whautomate).bucket,
            None,
            "0: no bucket"
        );
        assert_eq!(
            budget_of(&c, ProviderId::Maiagent).bucket,
            Some(Bucket {
                rate_per_sec: 0.5,
                burst: 1
            })
        );
        let consuelo = budget_of(&c, ProviderId::Consuelo);
        assert!(!consuelo.follow_rate_limit_headers);
        assert_eq!(
            consuelo.bucket,
            Some(Bucket {
                rate_per_sec: 1.0,
                burst: 1
            })
        );
    }

    #[test]
    fn pollers_and_webhooks_are_off_unless_configured() {
        let c = parse("[providers.maiagent]\nbase_url = \"https://x\"\napi_key = \"k\"").unwrap();
        assert_eq!(c.providers[&ProviderId::Maiagent].poll_interval, None);
        assert!(c.webhooks.is_empty());
        let c = parse(
            r#"
            [providers.maiagent]
            base_url = "https://x"
            api_key = "k"
            poll_interval_secs = 30
            [[webhooks]]
            url = "https://hooks.example.com/contacts"
            secret_env = "CURSOR_SECRET"
            events = ["CREATED", "DELETED", "CREATED"]
            [[webhooks]]
            url = "http://127.0.0.1:9000/all"
            secret_env = "CURSOR_SECRET"
            "#,
        )
        .unwrap();
        assert_eq!(
            c.providers[&ProviderId::Maiagent].poll_interval,
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            c.webhooks[0].events,
            [ChangeKind::Created, ChangeKind::Deleted]
        );
        assert_eq!(c.webhooks[1].events, ChangeKind::ALL);
        assert_eq!(
            c.webhooks[0].secret.expose(),
            "a-cursor-secret-of-some-length"
        );
        assert!(
            !format!("{c:?}").contains("a-cursor-secret"),
            "the secret is never printed"
        );
    }

    fn budget_of(config: &Config, id: ProviderId) -> BudgetConfig {
        config.providers[&id].budget.clone()
    }

    #[test]
    fn the_example_config_parses() {
        let example = include_str!("../examples/gateway.toml");
        let config = Config::parse(example, |_| {
            Some("example-secret-0123456789abcdefghij".into())
        })
        .expect("examples/gateway.toml parses");
        assert_eq!(config.providers.len(), 5);
        assert_eq!(config.auth.expect("[auth]").keys[0].name, "web-frontend");
    }
}
