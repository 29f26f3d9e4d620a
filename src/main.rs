//! The command line: `serve` and `schema`.

use clap::{Parser, Subcommand};
use contact_gateway::config::{Config, DEFAULT_LISTEN};
use contact_gateway::startup::Application;
use contact_gateway::{graphql, telemetry};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

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
        Command::Serve { config, listen } => {
            telemetry::init("info");
            match serve(config, listen).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(message) => {
                    eprintln!("error: {message}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

async fn serve(config: Option<PathBuf>, listen: Option<SocketAddr>) -> Result<(), String> {
    let app = match config {
        Some(path) => {
            let mut config = Config::load(&path).map_err(|e| e.to_string())?;
            if let Some(listen) = listen {
                config.listen = listen;
            }
            config.check_exposure().map_err(|e| e.to_string())?;
            let address = config.listen;
            Application::build(config)
                .await
                .map_err(|e| format!("cannot listen on {address}: {e}"))?
        }
        None => {
            let address = listen.unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default"));
            if !address.ip().is_loopback() {
                return Err(format!(
                    "the sandbox has no [auth] and serves loopback only; {address} is reachable \
                     from other machines: listen on 127.0.0.1, or run with a config that has [auth]"
                ));
            }
            Application::build_sandbox(address)
                .await
                .map_err(|e| format!("cannot start the sandbox on {address}: {e}"))?
        }
    };
    let address = app.address();
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
