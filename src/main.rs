//! The command line: `serve` and `schema`.

use clap::{Parser, Subcommand};
use contact_gateway::config::{Config, DEFAULT_LISTEN};
use contact_gateway::sandbox::Sandbox;
use contact_gateway::startup::{self, Application};
use contact_gateway::{graphql, telemetry};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// glibc's malloc spent a quarter of a listing's CPU at 64 connections (README, Performance).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(version, about = "A GraphQL gateway over five contact providers")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve GraphQL. Without a config file, runs the sandbox: five built-in provider simulators.
    Serve {
        /// TOML config file; providers absent from it are disabled.
        #[arg(long, env = "CONTACT_GATEWAY_CONFIG")]
        config: Option<PathBuf>,
        /// Address to listen on (overrides the config's `listen`; default 127.0.0.1:4000).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// The store (`sqlite://FILE` or `postgres://…`), overriding the config's `[store] url`;
        /// the sandbox otherwise uses a fresh temporary SQLite file.
        #[arg(long, env = "CONTACT_GATEWAY_STORE")]
        store: Option<String>,
    },
    /// Run only the five provider simulators (as `serve` does without a config), so gateways
    /// can be started, killed and restarted against simulators that keep their state.
    Sandbox {
        /// Print a config file that points a gateway at the simulators (then keep running).
        #[arg(long)]
        print_config: bool,
    },
    /// Print the SDL, federation directives included.
    Schema,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Schema => {
            print!("{}", graphql::sdl());
            ExitCode::SUCCESS
        }
        Command::Serve {
            config,
            listen,
            store,
        } => {
            let served = serve(config, listen, store).await;
            exit(served)
        }
        Command::Sandbox { print_config } => {
            telemetry::init("info");
            let ran = sandbox(print_config).await;
            exit(ran)
        }
    }
}

/// Writes out the logs, then the error if any (a JSON line when the logs are JSON).
fn exit(result: Result<(), String>) -> ExitCode {
    if let Err(message) = &result {
        if telemetry::is_json() {
            tracing::error!(error = %message, "contact-gateway stopped");
        }
    }
    let json = telemetry::is_json();
    telemetry::flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) if json => ExitCode::from(2),
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

async fn serve(
    config: Option<PathBuf>,
    listen: Option<SocketAddr>,
    store: Option<String>,
) -> Result<(), String> {
    let app = match config {
        Some(path) => {
            let loaded = Config::load(&path);
            // The logs take the config's format once it is read (text until then).
            let telemetry = loaded
                .as_ref()
                .map(|config| config.telemetry.clone())
                .unwrap_or_default();
            telemetry::init_with("info", &telemetry);
            let mut config = loaded.map_err(|e| e.to_string())?;
            if let Some(listen) = listen {
                config.listen = listen;
            }
            if store.is_some() {
                config.store.url = store;
            }
            config.check_exposure().map_err(|e| e.to_string())?;
            let address = config.listen;
            Application::build(config)
                .await
                .map_err(|e| format!("cannot start on {address}: {e}"))?
        }
        None => {
            telemetry::init("info");
            let address = listen.unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default"));
            if !address.ip().is_loopback() {
                return Err(format!(
                    "the sandbox has no [auth] and serves loopback only; {address} is reachable \
                     from other machines: listen on 127.0.0.1, or run with a config that has [auth]"
                ));
            }
            Application::build_sandbox(address, store)
                .await
                .map_err(|e| format!("cannot start the sandbox on {address}: {e}"))?
        }
    };
    let address = app.address();
    if telemetry::is_json() {
        // The banner as one log line like every other.
        tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            listening = %format!("http://{address}"),
            graphql = %format!("http://{address}/graphql"),
            "contact-gateway listening"
        );
        return app
            .run_until_stopped()
            .await
            .map_err(|e| format!("server error: {e}"));
    }
    println!(
        "contact-gateway {} listening on http://{address}",
        env!("CARGO_PKG_VERSION")
    );
    println!("  GraphQL:  http://{address}/graphql");
    println!("  GraphiQL: http://{address}/graphql (open in a browser)");
    if let Some(sandbox) = app.sandbox() {
        println!("  sandbox:  no config given, so the five providers are built-in simulators;");
        println!("            open to anyone on this machine (no [auth]; loopback only):");
        for (id, config) in sandbox.provider_configs() {
            println!("    {:<12} {}", id.as_str(), config.base_url);
        }
        println!(
            "    make one misbehave: curl -X PUT <url>/__sandbox/fault -d '{{\"status\":500}}'"
        );
    }
    app.run_until_stopped()
        .await
        .map_err(|e| format!("server error: {e}"))
}

/// `contact-gateway sandbox`: the simulators alone, until Ctrl-C or SIGTERM.
async fn sandbox(print_config: bool) -> Result<(), String> {
    let sandbox = Sandbox::start()
        .await
        .map_err(|e| format!("cannot start the simulators: {e}"))?;
    if print_config {
        println!(
            "# contact-gateway sandbox: a config pointing a gateway at the running simulators"
        );
        println!("{}", sandbox.config_toml().trim_end());
        println!("# end of config: the simulators run until Ctrl-C or SIGTERM");
    } else {
        println!("contact-gateway sandbox: five provider simulators, until Ctrl-C or SIGTERM");
        for (id, config) in sandbox.provider_configs() {
            println!("    {:<12} {}", id.as_str(), config.base_url);
        }
        println!(
            "  `contact-gateway sandbox --print-config > gateway.toml` prints a config for them"
        );
    }
    startup::shutdown_signal().await;
    Ok(())
}
