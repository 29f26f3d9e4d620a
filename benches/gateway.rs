//! `cargo bench`: the gateway binary under load against the sandbox simulators, each figure
//! beside a ceiling measured in the same run (a bare axum handler answering the same bytes).
//!
//! Environment: BENCH_SECS (seconds per load phase, default 5), BENCH_CONCURRENCY (default 32),
//! BENCH_LATENCY_MS (injected upstream latency for the fan-out phase, default 50).

use contact_gateway::contact::ProviderId;
use contact_gateway::sandbox::Sandbox;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Load {
    requests: usize,
    per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// `concurrency` workers run `task` back to back for `secs`; returns its latency spread.
async fn load_with<F, Fut>(secs: f64, concurrency: usize, task: F) -> Load
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let started = Instant::now();
    let workers = (0..concurrency).map(|_| {
        let task = task.clone();
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                task().await;
                latencies.push(t.elapsed());
            }
            latencies
        })
    });
    let mut all: Vec<Duration> = Vec::new();
    for w in futures::future::join_all(workers).await {
        all.extend(w.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    let pct =
        |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)].as_secs_f64() * 1000.0;
    Load {
        requests: all.len(),
        per_sec: all.len() as f64 / elapsed,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
    }
}

/// `concurrency` workers POST `body` to `url` for `secs`; every answer must be 200.
async fn load(
    client: &reqwest::Client,
    url: &str,
    body: &Value,
    secs: f64,
    concurrency: usize,
) -> Load {
    let body = axum::body::Bytes::from(serde_json::to_vec(body).unwrap());
    let (client, url) = (client.clone(), url.to_string());
    load_with(secs, concurrency, move || {
        let (client, url, body) = (client.clone(), url.clone(), body.clone());
        async move {
            let response = client
                .post(&url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .expect("request");
            assert_eq!(response.status(), 200);
            response.bytes().await.expect("body");
        }
    })
    .await
}

/// The fan-out's floor: the four listing requests the adapters send for `first: 20`, fired in
/// parallel straight at the simulators (each answer parsed as JSON, as the gateway does).
async fn direct_fan_out(
    client: &reqwest::Client,
    sandbox: &Sandbox,
    secs: f64,
    concurrency: usize,
) -> Load {
    let key = |id| contact_gateway::sandbox::api_key(id);
    let requests: Vec<(String, &'static str, String)> = vec![
        (
            format!(
                "{}/v1/contacts?limit=21&offset=0",
                sandbox.base_url(ProviderId::Magicblocks)
            ),
            "authorization",
            format!("Bearer {}", key(ProviderId::Magicblocks)),
        ),
        (
            format!(
                "{}/v1/contacts?workspaceId={}&limit=21&offset=0",
                sandbox.base_url(ProviderId::Consuelo),
                contact_gateway::sandbox::CONSUELO_WORKSPACE_ID
            ),
            "authorization",
            format!("Bearer {}", key(ProviderId::Consuelo)),
        ),
        (
            format!(
                "{}/v1/contacts?page=1&limit=21",
                sandbox.base_url(ProviderId::Whautomate)
            ),
            "x-api-key",
            key(ProviderId::Whautomate).to_string(),
        ),
        (
            format!(
                "{}/api/contacts/?page=1&pageSize=21",
                sandbox.base_url(ProviderId::Maiagent)
            ),
            "authorization",
            format!("Api-Key {}", key(ProviderId::Maiagent)),
        ),
    ];
    let requests = Arc::new(requests);
    let client = client.clone();
    load_with(secs, concurrency, move || {
        let (client, requests) = (client.clone(), requests.clone());
        async move {
            futures::future::join_all(requests.iter().map(|(url, header, value)| {
                let request = client.get(url).header(*header, value.as_str());
                async move {
                    let response = request.send().await.expect("simulator answers");
                    assert_eq!(response.status(), 200);
                    response.json::<Value>().await.expect("JSON");
                }
            }))
            .await;
        }
    })
    .await
}

/// The ceiling: a bare axum server answering every POST with the bytes in `body_file`. It
/// runs as its own process (this binary, re-run), as the gateway does, so both compete for
/// the same cores with the load generator in the same way.
async fn serve_ceiling(body_file: &str) {
    let bytes = axum::body::Bytes::from(std::fs::read(body_file).expect("ceiling body"));
    let app = axum::Router::new().route(
        "/graphql",
        axum::routing::post(move || {
            let bytes = bytes.clone();
            async move { ([("content-type", "application/json")], bytes) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    println!("GraphQL: http://{}/graphql", listener.local_addr().unwrap());
    axum::serve(listener, app).await.unwrap();
}

fn start_ceiling(bytes: &[u8]) -> (Child, String, tempfile::NamedTempFile) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), bytes).unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env("BENCH_CEILING_BODY", file.path())
        .stdout(Stdio::piped())
        .spawn()
        .expect("ceiling process starts");
    let url = read_url(&mut child);
    (child, url, file)
}

/// Reads a child's stdout up to its "GraphQL: <url>" line; keeps draining the rest.
fn read_url(child: &mut Child) -> String {
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("the process printed its URL").unwrap();
        if let Some(url) = line.trim().strip_prefix("GraphQL:") {
            break url.trim().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    url
}

fn start_gateway(sandbox: &Sandbox) -> (Child, String, tempfile::NamedTempFile) {
    let toml = format!("listen = \"127.0.0.1:0\"\n{}", sandbox.config_toml());
    let file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    std::fs::write(file.path(), toml).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_contact-gateway"))
        .args(["serve", "--config"])
        .arg(file.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("gateway binary starts");
    let url = read_url(&mut child);
    (child, url, file)
}

/// Peak resident memory of a process, from /proc (Linux).
fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn total_upstream(sandbox: &Sandbox) -> u64 {
    ProviderId::ALL
        .iter()
        .map(|id| sandbox.control(*id).request_count())
        .sum()
}

#[tokio::main]
async fn main() {
    if let Ok(body_file) = std::env::var("BENCH_CEILING_BODY") {
        return serve_ceiling(&body_file).await;
    }
    // `cargo test --benches` lists tests; there are none.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let secs: f64 = env_or("BENCH_SECS", 5.0);
    let concurrency: usize = env_or("BENCH_CONCURRENCY", 32);
    let latency_ms: u64 = env_or("BENCH_LATENCY_MS", 50);

    let sandbox = Sandbox::start().await.expect("sandbox");
    let (mut child, url, _config) = start_gateway(&sandbox);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();
    let post = |query: Value| {
        let client = client.clone();
        let url = url.clone();
        async move {
            client
                .post(&url)
                .json(&query)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };

    println!("contact-gateway benchmark: {secs} s per phase, {concurrency} concurrent clients, loopback, this machine");
    println!();

    // 1. Cached contact(id): warm one contact, then load.
    let records = sandbox.control(ProviderId::Maiagent).records();
    let id = format!("maiagent:{}", records[0]["id"].as_str().unwrap());
    let cached = json!({ "query": "query($id: ID!) { contact(id: $id) { id displayName primaryEmail primaryPhone } }", "variables": { "id": id } });
    let answer = post(cached.clone()).await;
    assert!(answer["errors"].is_null(), "{answer}");
    let before = total_upstream(&sandbox);
    let gateway = load(&client, &url, &cached, secs, concurrency).await;
    let upstream_during = total_upstream(&sandbox) - before;
    let (mut ceiling, ceiling_url, _body) = start_ceiling(&serde_json::to_vec(&answer).unwrap());
    let bare = load(&client, &ceiling_url, &cached, secs, concurrency).await;
    ceiling.kill().ok();
    ceiling.wait().ok();
    println!(
        "cached contact(id)                      gateway          ceiling (bare axum)   ratio"
    );
    println!(
        "  requests/s                            {:>10.0}       {:>10.0}            {:.2}x of ceiling",
        gateway.per_sec, bare.per_sec, gateway.per_sec / bare.per_sec
    );
    println!(
        "  p50 latency                           {:>8.2} ms      {:>8.2} ms           {:.2}x",
        gateway.p50_ms,
        bare.p50_ms,
        gateway.p50_ms / bare.p50_ms
    );
    println!(
        "  p99 latency                           {:>8.2} ms      {:>8.2} ms           {:.2}x",
        gateway.p99_ms,
        bare.p99_ms,
        gateway.p99_ms / bare.p99_ms
    );
    println!(
        "  upstream calls during the load       {upstream_during} (of {} requests)",
        gateway.requests
    );
    println!();

    // 2. contacts(first: 20) across every provider with injected upstream latency, uncached.
    for id in ProviderId::ALL {
        sandbox
            .control(id)
            .set_latency(Duration::from_millis(latency_ms));
    }
    let fan_out = json!({ "query": "{ contacts(first: 20, noCache: true) { nodes { id provider displayName } pageInfo { hasNextPage } } }" });
    let answer = post(fan_out.clone()).await;
    assert!(answer["errors"].is_null(), "{answer}");
    // At most `max_concurrency` (default 8) requests go to one provider at once, by design:
    // measure the fan-out's own latency within that bound.
    let fan_out_clients = concurrency.min(8);
    let gateway = load(&client, &url, &fan_out, secs, fan_out_clients).await;
    let direct = direct_fan_out(&client, &sandbox, secs, fan_out_clients).await;
    for id in ProviderId::ALL {
        sandbox.control(id).set_latency(Duration::ZERO);
    }
    println!("contacts(first: 20), 5 providers, {latency_ms} ms upstream latency, no cache, {fan_out_clients} clients");
    println!("                                        gateway          4 parallel direct calls   difference");
    println!(
        "  p50 latency                           {:>8.2} ms      {:>8.2} ms                {:+.2} ms  ({:+.2} ms over the nominal {latency_ms} ms)",
        gateway.p50_ms, direct.p50_ms, gateway.p50_ms - direct.p50_ms, gateway.p50_ms - latency_ms as f64
    );
    println!(
        "  p99 latency                           {:>8.2} ms      {:>8.2} ms                {:+.2} ms",
        gateway.p99_ms, direct.p99_ms, gateway.p99_ms - direct.p99_ms
    );
    println!();

    // 3. Upstream calls for 50 aliased contact(id), 10 of them duplicates.
    let mut ids = Vec::new();
    for provider in [
        ProviderId::Magicblocks,
        ProviderId::Consuelo,
        ProviderId::Whautomate,
        ProviderId::Maiagent,
    ] {
        for record in sandbox.control(provider).records() {
            ids.push(format!("{provider}:{}", record["id"].as_str().unwrap()));
        }
    }
    ids.truncate(40);
    assert_eq!(
        ids.len(),
        40,
        "the sandbox holds at least 40 contacts to look up"
    );
    let distinct = ids.len();
    let aliases: Vec<String> = (0..50)
        .map(|i| {
            format!(
                "c{i}: contact(id: \"{}\", noCache: true) {{ id }}",
                ids[i % distinct]
            )
        })
        .collect();
    let query = json!({ "query": format!("{{ {} }}", aliases.join(" ")) });
    let before = total_upstream(&sandbox);
    let answer = post(query).await;
    assert!(answer["errors"].is_null(), "{answer}");
    let calls = total_upstream(&sandbox) - before;
    println!(
        "one query of 50 aliased contact(id), {} distinct ({} duplicates): {calls} upstream calls",
        distinct,
        50 - distinct
    );
    println!();

    match peak_rss_mib(child.id()) {
        Some(mib) => println!("gateway peak RSS (VmHWM) after all phases: {mib:.1} MiB"),
        None => println!("gateway peak RSS: not available on this OS"),
    }
    child.kill().ok();
    child.wait().ok();
}
