//! Building and running the application: bind the listener (keeping the real port, so tests
//! can ask for port 0), wire the gateway and the router, serve until Ctrl-C or SIGTERM.

use crate::config::{Config, StoreConfig};
use crate::gateway::changes::ChangeWorkers;
use crate::gateway::cursor::CursorKey;
use crate::gateway::outbox::OutboxWorker;
use crate::gateway::Gateway;
use crate::graphql::build_schema;
use crate::providers::Registry;
use crate::sandbox::Sandbox;
use crate::server::response_cache::ResponseCache;
use crate::server::{router, AppState};
use crate::store::Store;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

pub struct Application {
    listener: TcpListener,
    router: Router,
    address: SocketAddr,
    sandbox: Option<Arc<Sandbox>>,
    gateway: Arc<Gateway>,
    /// The temporary folder of a store made for this run (the sandbox's), removed at exit.
    _store_dir: Option<tempfile::TempDir>,
    store: Store,
    hygiene: Hygiene,
    /// With `[cache] redis_url`: sharing invalidations with the other replicas, until dropped.
    _peers: Option<crate::gateway::peers::PeerTasks>,
}

impl Application {
    /// Binds `config.listen` and builds the gateway for the configured providers.
    pub async fn build(config: Config) -> std::io::Result<Application> {
        Self::assemble(config, None, false).await
    }

    /// Starts the five provider simulators and a gateway pointed at them, keeping its state in
    /// `store` (default: a fresh temporary SQLite file).
    pub async fn build_sandbox(
        listen: SocketAddr,
        store: Option<String>,
    ) -> std::io::Result<Application> {
        let sandbox = Arc::new(Sandbox::start().await?);
        let mut config = Config::with_providers(listen, sandbox.provider_configs());
        config.store.url = store;
        Self::assemble(config, Some(sandbox), true).await
    }

    /// A gateway with `config` (normally pointing at `sandbox`'s simulators), keeping the
    /// simulators alive while it serves. Tests use it to tune timeouts and limits.
    pub async fn build_over_sandbox(
        config: Config,
        sandbox: Arc<Sandbox>,
    ) -> std::io::Result<Application> {
        Self::assemble(config, Some(sandbox), false).await
    }

    /// `sandbox_mode`: the gateway `serve` runs without a config, open to local frontend dev
    /// servers (CORS).
    async fn assemble(
        config: Config,
        sandbox: Option<Arc<Sandbox>>,
        sandbox_mode: bool,
    ) -> std::io::Result<Application> {
        let (store, store_dir) = open_store(&config.store).await?;
        let registry = Registry::with_store(&config.providers, &store);
        let cursor_key = match &config.limits.cursor_secret {
            Some(secret) => CursorKey::new(secret.expose().as_bytes()),
            None => CursorKey::random(),
        };
        let gateway = Arc::new(
            Gateway::new(registry, &config.cache)
                .with_limits(&config.limits, cursor_key)
                .with_store(store.clone())
                .with_changes(&config),
        );
        let peers = match &config.cache.redis_url {
            Some(url) => Some(
                crate::gateway::peers::Peers::start(
                    &gateway,
                    url.expose(),
                    &crate::gateway::shared_cache::namespace(&config),
                )
                .map_err(std::io::Error::other)?
                .1,
            ),
            None => None,
        };
        let schema = build_schema(gateway.clone(), &config.limits, &config.default_region);
        let state = AppState {
            schema,
            gateway: gateway.clone(),
            documents: Default::default(),
            persisted_queries: crate::server::persisted_queries::PersistedQueries::new(
                gateway.announcer.shared.clone(),
            ),
            max_errors: config.limits.max_errors,
            max_batch: config.limits.max_batch,
            graphiql: crate::server::graphiql::page(config.auth.is_some()),
            idempotency_ttl: Duration::from_secs(config.store.idempotency_ttl_secs),
            responses: ResponseCache::new(&config.cache, gateway.clone()),
        };
        let router = router(state, &config, sandbox_mode).map_err(std::io::Error::other)?;
        let listener = TcpListener::bind(config.listen).await?;
        let address = listener.local_addr()?;
        Ok(Application {
            listener,
            router,
            address,
            sandbox,
            gateway,
            _store_dir: store_dir,
            _peers: peers,
            store,
            hygiene: Hygiene {
                max_connections: config.limits.max_connections,
                shutdown_grace_secs: config.limits.shutdown_grace_secs,
            },
        })
    }

    /// The bound address (the real port when the config asked for port 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The simulators, when running the sandbox.
    pub fn sandbox(&self) -> Option<Arc<Sandbox>> {
        self.sandbox.clone()
    }

    /// The gateway it serves (its store, registry and caches).
    pub fn gateway(&self) -> Arc<Gateway> {
        self.gateway.clone()
    }

    /// Serves until Ctrl-C or SIGTERM, finishing the requests in flight.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `signal`: each connection under the edge's hygiene (a client must send
    /// its request headers within `HEADER_READ_TIMEOUT`; at most `max_connections` open at
    /// once, further ones wait in the accept queue), then stops accepting and lets the
    /// requests in flight finish for up to `shutdown_grace_secs` (open subscriptions complete
    /// at once). The do-not-contact outbox worker and the change workers (replica tail,
    /// pollers, webhooks) run as long as it serves, and stop after the requests.
    pub async fn run_until(
        self,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        // Keeps the simulators alive as long as the gateway serves.
        let _sandbox = self.sandbox;
        let _cleanup = AbortOnDrop(tokio::spawn(delete_expired_keys(self.store)));
        let outbox = OutboxWorker::start(self.gateway.clone());
        let changes = ChangeWorkers::start(self.gateway.clone());
        // HTTP/1 only (HTTP/2 arrives through a TLS-terminating proxy as HTTP/1): the header
        // deadline is an HTTP/1 setting, and a cleartext HTTP/2 client could otherwise hold a
        // connection slot without it.
        let mut http = auto::Builder::new(TokioExecutor::new()).http1_only();
        http.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT);
        let open = Arc::new(Semaphore::new(self.hygiene.max_connections));
        let graceful = GracefulShutdown::new();
        tokio::pin!(signal);
        loop {
            let permit = tokio::select! {
                permit = open.clone().acquire_owned() => permit.map_err(std::io::Error::other)?,
                () = &mut signal => break,
            };
            let (stream, _) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    // Out of file descriptors and the like: wait, don't spin or stop serving.
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = &mut signal => break,
            };
            let service = TowerToHyperService::new(self.router.clone());
            let connection = http
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .into_owned();
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                // A client that goes away or times out is not the gateway's error.
                let _ = connection.await;
                drop(permit);
            });
        }
        // Open subscriptions complete at once; they do not wait out the grace period.
        self.gateway.changes.close();
        let grace = Duration::from_secs(self.hygiene.shutdown_grace_secs);
        if tokio::time::timeout(grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                "requests still in flight after shutdown_grace_secs ({}s): stopping anyway",
                grace.as_secs()
            );
        }
        self.gateway
            .changes
            .sockets_closed(grace.min(Duration::from_secs(5)))
            .await;
        if let Some(outbox) = outbox {
            outbox.stop().await;
        }
        if let Some(changes) = changes {
            changes.stop().await;
        }
        Ok(())
    }
}

/// The configured store, or a fresh temporary SQLite file when none is (the sandbox).
async fn open_store(config: &StoreConfig) -> std::io::Result<(Store, Option<tempfile::TempDir>)> {
    let (url, dir) = match &config.url {
        Some(url) => (url.clone(), None),
        None => {
            let dir = tempfile::Builder::new()
                .prefix("contact-gateway-store-")
                .tempdir()?;
            let url = format!("sqlite://{}", dir.path().join("store.db").display());
            (url, Some(dir))
        }
    };
    let store = Store::open(&url).await.map_err(std::io::Error::other)?;
    Ok((store, dir))
}

/// How often expired idempotency keys are deleted (an expired key is already treated as new;
/// this only keeps the table small).
const CLEANUP_EVERY: Duration = Duration::from_secs(600);

/// Deletes expired idempotency keys now and every `CLEANUP_EVERY`, while the gateway serves.
async fn delete_expired_keys(store: Store) {
    let mut every = tokio::time::interval(CLEANUP_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        match store.delete_expired_keys().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "expired idempotency keys deleted"),
            Err(e) => tracing::warn!(error = %e, "expired idempotency keys could not be deleted"),
        }
    }
}

/// Stops a background task when the server stops.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A client must send its request headers within this (a trickling client is disconnected).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How connections are served: `[limits] max_connections` and `shutdown_grace_secs`.
#[derive(Clone, Copy, Debug)]
struct Hygiene {
    max_connections: usize,
    shutdown_grace_secs: u64,
}

/// Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
