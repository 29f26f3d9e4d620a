//! The gateway's durable state, through sqlx: SQLite embedded by default (a file beside the
//! config file), PostgreSQL when the url says `postgres://` (several replicas share it). The
//! migrations in `migrations/` are embedded and run at start, the same on both: portable SQL
//! (TEXT ids made here, BIGINT epoch milliseconds, JSON as TEXT).

pub mod changes;
pub mod claims;
pub mod dnc;
pub mod idempotency;
pub mod ledger;

use sqlx::any::{AnyPoolOptions, AnyQueryResult};
use sqlx::{AnyPool, Executor};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Which database the url named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store url `{0}` is neither sqlite:… nor postgres://…")]
    UnknownUrl(String),
    #[error("the store cannot be opened: {0}")]
    Open(sqlx::Error),
    #[error("the store's migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("the store failed: {0}")]
    Query(#[from] sqlx::Error),
}

/// A connection pool to the store.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Lookups of the do-not-contact registry made through this pool (one statement each),
    /// so tests can see that a request's lookups are batched.
    registry_reads: Arc<AtomicU64>,
    /// Bumped after every change of the do-not-contact registry or its propagations made
    /// through this process (`registry_version`).
    registry_version: Arc<AtomicU64>,
    /// Where a change of the registry is announced to other replicas (`gateway::peers`).
    pub announcer: crate::gateway::peers::Announcer,
}

impl Store {
    /// Connects to `url` (creating a SQLite file when missing) and runs the migrations.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(StoreError::UnknownUrl(redacted(url)));
        };
        let options = match backend {
            // One writer at a time is what SQLite does anyway; WAL lets readers go on, and the
            // busy timeout makes a second process wait instead of failing.
            Backend::Sqlite => AnyPoolOptions::new()
                .max_connections(4)
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                        Ok(())
                    })
                }),
            Backend::Postgres => AnyPoolOptions::new().max_connections(10),
        };
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") => {
                let joiner = if url.contains('?') { '&' } else { '?' };
                format!("{url}{joiner}mode=rwc")
            }
            _ => url.to_string(),
        };
        let pool = options
            .acquire_timeout(Duration::from_secs(10))
            .connect(&url)
            .await
            .map_err(StoreError::Open)?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Store {
            pool,
            backend,
            registry_reads: Arc::default(),
            registry_version: Arc::default(),
            announcer: Default::default(),
        })
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether the store answers (for readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

/// Milliseconds since the epoch, as the store keeps times.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// Whether a statement changed a row.
pub(crate) fn changed(result: &AnyQueryResult) -> bool {
    result.rows_affected() > 0
}

/// A url as messages may show it: without a password.
pub fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use super::Store;

    /// A fresh SQLite store in a temporary folder (kept as long as the returned guard lives).
    pub async fn sqlite() -> (Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("store.db").display());
        (Store::open(&url).await.expect("store opens"), dir)
    }
}
