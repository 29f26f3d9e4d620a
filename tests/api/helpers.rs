//! `spawn_app()`: the sandbox simulators plus the real router on 127.0.0.1:0, and a small
//! GraphQL client. `TEST_LOG=1` shows the gateway's logs.

use contact_gateway::config::Config;
use contact_gateway::contact::ProviderId;
use contact_gateway::sandbox::Sandbox;
use contact_gateway::startup::Application;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub sandbox: Arc<Sandbox>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Like `spawn_app`, with the config adjusted first (timeouts, limits…).
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    spawn_app_and_gateway(adjust).await.0
}

/// `spawn_app_with`, and a handle on the running gateway (its store, its caches).
pub async fn spawn_app_and_gateway(
    adjust: impl FnOnce(&mut Config),
) -> (TestApp, Arc<contact_gateway::gateway::Gateway>) {
    if std::env::var_os("TEST_LOG").is_some() {
        contact_gateway::telemetry::init("info");
    }
    let sandbox = Arc::new(Sandbox::start().await.expect("sandbox starts"));
    let mut config =
        Config::with_providers("127.0.0.1:0".parse().unwrap(), sandbox.provider_configs());
    adjust(&mut config);
    let app = Application::build_over_sandbox(config, sandbox.clone())
        .await
        .expect("app builds");
    let gateway = app.gateway();
    let address = format!("http://{}", app.address());
    tokio::spawn(app.run_until(std::future::pending()));
    let app = TestApp {
        address,
        client: reqwest::Client::new(),
        sandbox,
    };
    (app, gateway)
}

impl TestApp {
    /// POSTs a query; returns the whole response body (`data` and `errors`).
    pub async fn graphql(&self, query: &str, variables: Value) -> Value {
        let response = self
            .client
            .post(format!("{}/graphql", self.address))
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .expect("gateway answers");
        assert!(response.status().is_success(), "HTTP {}", response.status());
        response.json().await.expect("JSON response")
    }

    /// Like `graphql`, asserting there are no errors; returns `data`.
    pub async fn data(&self, query: &str, variables: Value) -> Value {
        let body = self.graphql(query, variables).await;
        assert!(body.get("errors").is_none(), "unexpected errors: {body:#}");
        body["data"].clone()
    }

    /// Every contact `contacts` returns for `providers`, paging with `first`.
    pub async fn all_contacts(&self, providers: &[&str], filter: Value, first: i64) -> Vec<Value> {
        let query = r#"query($providers: [ProviderId!], $filter: ContactFilter, $first: Int, $after: String) {
            contacts(providers: $providers, filter: $filter, first: $first, after: $after) {
                edges { cursor node { id provider nativeId displayName primaryEmail primaryPhone company tags
                    emails { address } phones { number e164 } } }
                pageInfo { hasNextPage endCursor }
            } }"#;
        // No providers named: all of them (an explicit empty list would mean none).
        let providers = if providers.is_empty() {
            Value::Null
        } else {
            json!(providers)
        };
        let mut after = Value::Null;
        let mut all = Vec::new();
        for _ in 0..500 {
            let data = self
                .data(query, json!({ "providers": providers, "filter": filter, "first": first, "after": after }))
                .await;
            let connection = &data["contacts"];
            let edges = connection["edges"].as_array().unwrap();
            assert!(
                edges.len() as i64 <= first,
                "a page holds at most `first` edges"
            );
            all.extend(edges.iter().map(|e| e["node"].clone()));
            if connection["pageInfo"]["hasNextPage"] != json!(true) {
                return all;
            }
            after = connection["pageInfo"]["endCursor"].clone();
        }
        panic!("paging did not end");
    }
}

/// The GraphQL enum name of a provider.
pub fn enum_name(id: ProviderId) -> String {
    id.as_str().to_ascii_uppercase()
}

/// The `extensions.code` values of a response's errors.
pub fn error_codes(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| e["extensions"]["code"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The real binary, with no config from the environment.
pub fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_contact-gateway"));
    command.env_remove("CONTACT_GATEWAY_CONFIG");
    command
}

/// Reads the child's stdout until the line with the GraphQL URL; returns it.
pub fn wait_for_url(child: &mut Child) -> String {
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    while let Some(Ok(line)) = lines.next() {
        if let Some(url) = line.trim().strip_prefix("GraphQL:") {
            let url = url.trim().to_string();
            // Keep draining stdout so the child never blocks on a full pipe.
            std::thread::spawn(move || for _ in lines {});
            return url;
        }
    }
    panic!("the gateway exited without printing its URL");
}

/// SIGTERM, then waits for a clean exit.
pub fn terminate(child: &mut Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(
                status.success(),
                "SIGTERM should stop the gateway cleanly, got {status}"
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The stores a durable-state test runs against: a fresh SQLite file always, and a fresh
/// PostgreSQL database when `TEST_DATABASE_URL` names a server (`.ci/run` starts one; locally
/// the PostgreSQL case is skipped with a printed reason). The `TempDir` keeps the file.
pub async fn store_urls() -> Vec<(&'static str, String, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}", dir.path().join("store.db").display());
    let mut stores = vec![("sqlite", sqlite, Some(dir))];
    match std::env::var("TEST_DATABASE_URL") {
        Ok(admin) if !admin.is_empty() => {
            stores.push(("postgres", fresh_postgres(&admin).await, None))
        }
        _ => eprintln!("skipping PostgreSQL: TEST_DATABASE_URL is not set (.ci/run sets it)"),
    }
    stores
}

/// A new, empty database on the server `admin` points at.
async fn fresh_postgres(admin: &str) -> String {
    use sqlx::Connection;
    let name = format!(
        "cg_test_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let mut conn = sqlx::PgConnection::connect(admin)
        .await
        .expect("TEST_DATABASE_URL connects");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("a test database is created");
    let mut url = url::Url::parse(admin).unwrap();
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// A gateway process (the real binary) serving `config` with its state in `store`.
pub struct GatewayProcess {
    pub child: Child,
    pub url: String,
}

impl GatewayProcess {
    pub fn start(config: &tempfile::NamedTempFile, store: &str) -> GatewayProcess {
        Self::start_with_env(config, store, &[])
    }

    /// `start`, with `vars` in the process's environment.
    pub fn start_with_env(
        config: &tempfile::NamedTempFile,
        store: &str,
        vars: &[(&str, &str)],
    ) -> GatewayProcess {
        let mut command = binary();
        command
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--store",
                store,
                "--config",
            ])
            .arg(config.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        for (name, value) in vars {
            command.env(name, value);
        }
        let mut child = command.spawn().unwrap();
        let url = wait_for_url(&mut child);
        GatewayProcess { child, url }
    }

    pub async fn data(&self, query: &str, variables: Value) -> Value {
        let body: Value = reqwest::Client::new()
            .post(&self.url)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .expect("gateway answers")
            .json()
            .await
            .expect("JSON");
        assert!(body.get("errors").is_none(), "unexpected errors: {body:#}");
        body["data"].clone()
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A config file pointing a gateway at `sandbox`'s simulators.
pub fn sandbox_config(sandbox: &Sandbox) -> tempfile::NamedTempFile {
    sandbox_config_with(sandbox, "")
}

/// `sandbox_config` with `tables` (TOML tables, e.g. `[telemetry]` and its keys) after it.
pub fn sandbox_config_with(sandbox: &Sandbox, tables: &str) -> tempfile::NamedTempFile {
    let file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    let text = format!(
        "{}
{tables}
",
        sandbox.config_toml()
    );
    std::fs::write(file.path(), text).unwrap();
    file
}
