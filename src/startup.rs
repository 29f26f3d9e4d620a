//! Building and running the application: bind the listener (keeping the real port, so tests
//! can ask for port 0), wire the gateway and the router, serve until Ctrl-C or SIGTERM.

use crate::config::Config;
use crate::gateway::cursor::CursorKey;
use crate::gateway::Gateway;
use crate::graphql::build_schema;
use crate::providers::Registry;
use crate::sandbox::Sandbox;
use crate::server::{router, AppState};
use axum::Router;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

pub struct Application {
    listener: TcpListener,
    router: Router,
    address: SocketAddr,
    sandbox: Option<Arc<Sandbox>>,
}

impl Application {
    /// Binds `config.listen` and builds the gateway for the configured providers.
    pub async fn build(config: Config) -> std::io::Result<Application> {
        Self::assemble(config, None, false).await
    }

    /// Starts the five provider simulators and a gateway pointed at them.
    pub async fn build_sandbox(listen: SocketAddr) -> std::io::Result<Application> {
        let sandbox = Arc::new(Sandbox::start().await?);
        let config = Config::with_providers(listen, sandbox.provider_configs());
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
        let registry = Registry::from_config(&config.providers);
        let cursor_key = match &config.limits.cursor_secret {
            Some(secret) => CursorKey::new(secret.expose().as_bytes()),
            None => CursorKey::random(),
        };
        let gateway =
            Arc::new(Gateway::new(registry, &config.cache).with_limits(&config.limits, cursor_key));
        let schema = build_schema(gateway.clone(), &config.limits, &config.default_region);
        let state = AppState {
            schema,
            gateway,
            documents: Default::default(),
            max_errors: config.limits.max_errors,
        };
        let router = router(state, &config, sandbox_mode).map_err(std::io::Error::other)?;
        let listener = TcpListener::bind(config.listen).await?;
        let address = listener.local_addr()?;
        Ok(Application {
            listener,
            router,
            address,
            sandbox,
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

    /// Serves until Ctrl-C or SIGTERM, finishing the requests in flight.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    pub async fn run_until(
        self,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        // Keeps the simulators alive as long as the gateway serves.
        let _sandbox = self.sandbox;
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(signal)
            .await
    }
}

async fn shutdown_signal() {
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
