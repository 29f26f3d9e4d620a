//! `cargo bench --bench gateway`: the release gateway binary, run as a user runs it (its default
//! config and logging, no RUST_LOG), loaded by an external generator (`oha`), each figure beside
//! baselines measured in the same run. Every target is its own process, restarted for each of
//! the `BENCH_REPS` runs; the tables give the median. Results: printed, and written to
//! `target/bench/gateway.md` (raw oha JSON, configs and logs in `target/bench/run/`).
//!
//! Baselines:
//! - the **ceiling**: a bare axum handler answering the gateway's own response bytes;
//! - the **floor**: a bare axum server that, per request, makes the upstream calls the gateway
//!   made for that request (recorded by the simulators), all at once, with the gateway's HTTP
//!   client stack (`providers::http::pool()`: reqwest, rustls, one pool), parsing each answer.
//!
//! Upstreams are the sandbox's five simulators (`Sandbox`), run inside this bench process:
//! they keep their state across the runs, their latency and request counts are set and read
//! directly (`control(id)`), and the gateway's peak RSS is the gateway's alone.
//!
//! Scenarios:
//! - (a) cached `contact(id)`, 64 connections: the gateway, the same binary with
//!   `RUST_LOG=warn`, and the ceiling;
//! - (b) `contacts(first: 20, noCache: true)`, 50 ms upstream, 16 and 64 connections, over
//!   one provider (MaiAgent: a gateway configured with it alone) and over the five sandbox
//!   providers; the floor replays the calls of one page; upstream calls per page are counted
//!   by the simulators over the whole measured load;
//! - (c) one query of 50 aliased `contact(id, noCache: true)` of distinct MagicBlocks contacts
//!   (no documented rate limit), 50 ms upstream, one request at a time: against one upstream
//!   round trip and against the floor making the same 50 calls;
//! - (d) `importContacts` of 10,000 CSV rows into MagicBlocks: the gateway's peak RSS (VmHWM)
//!   against its idle RSS (VmRSS after start-up and one small request).
//!
//! Environment: BENCH_REPS (3), BENCH_SECS (5, measured seconds per load), BENCH_WARMUP (2),
//! BENCH_SCENARIOS (`abcd`), BENCH_FIRST (20, `first` in (b)), BENCH_LATENCY_MS (50),
//! BENCH_WIDTHS (`one five`: the fan-outs of (b)), BENCH_IMPORT_ROWS (10000),
//! BENCH_QUIET_WAIT (5: seconds to wait for other processes to settle before each measurement), OHA (the load generator's path), BENCH_GATEWAY (another
//! gateway binary to measure instead of this build's).

mod common;

use common::{
    busy_ticks, clock_ticks, env_or, gateway_config, number, stop_targets_on_signal, Target,
};
use contact_gateway::contact::ProviderId;
use contact_gateway::sandbox::{RecordedRequest, Sandbox};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const FIELDS: &str = "id displayName primaryEmail primaryPhone tags customFields createdAt";
const CACHED_CONNECTIONS: u32 = 64;
const FAN_OUT_CONNECTIONS: [u32; 2] = [16, 64];
const ALIASES: usize = 50;
/// Sequential requests measured per target in (c).
const ALIASED_REQUESTS: u32 = 10;

struct Settings {
    reps: usize,
    secs: u64,
    warmup: u64,
    scenarios: String,
    first: u32,
    latency: Duration,
    import_rows: usize,
    quiet_wait: u64,
    widths: String,
    oha: PathBuf,
    /// `target/bench`: results, and `run/` for what each run leaves.
    out: PathBuf,
}

fn main() {
    match std::env::var("BENCH_ROLE").as_deref() {
        Ok("ceiling") => return baseline::ceiling(),
        Ok("floor") => return baseline::floor(),
        _ => {}
    }
    // `cargo test --benches` lists tests; there are none.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let Some(oha) = find_oha() else {
        eprintln!(
            "error: the load generator `oha` was not found (on PATH, in ~/.cargo/bin, or at $OHA).\n\
             Install it with `cargo install oha --locked`, then run `cargo bench --bench gateway` again."
        );
        std::process::exit(1);
    };
    let built = PathBuf::from(env!("CARGO_BIN_EXE_contact-gateway"));
    // Another build of the gateway may be measured instead (to compare two versions).
    let gateway_bin = std::env::var_os("BENCH_GATEWAY").map_or(built.clone(), PathBuf::from);
    // target/release/contact-gateway → target/bench
    let out = built
        .ancestors()
        .nth(2)
        .expect("the binary lies in target/<profile>/")
        .join("bench");
    std::fs::create_dir_all(out.join("run")).expect("target/bench/run");
    let settings = Settings {
        reps: env_or("BENCH_REPS", 3),
        secs: env_or("BENCH_SECS", 5),
        warmup: env_or("BENCH_WARMUP", 2),
        scenarios: env_or("BENCH_SCENARIOS", "abcd".to_string()),
        first: env_or("BENCH_FIRST", 20),
        latency: Duration::from_millis(env_or("BENCH_LATENCY_MS", 50)),
        import_rows: env_or("BENCH_IMPORT_ROWS", 10_000),
        quiet_wait: env_or("BENCH_QUIET_WAIT", 5),
        widths: env_or("BENCH_WIDTHS", "one five".to_string()),
        oha,
        out,
    };
    // The simulators run on this runtime's workers; the main thread drives the bench.
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    rt.spawn(stop_targets_on_signal());
    let sandbox = rt.block_on(Sandbox::start()).expect("sandbox starts");
    let mut bench = Bench {
        settings,
        rt,
        sandbox,
        gateway_bin,
        http: reqwest::Client::new(),
        results: Results::default(),
        busy: Vec::new(),
        warnings: Vec::new(),
    };
    let started = Instant::now();
    let scenarios = bench.settings.scenarios.clone();
    if scenarios.contains('a') {
        bench.cached_lookup();
    }
    if scenarios.contains('b') {
        bench.fan_out();
    }
    if scenarios.contains('c') {
        bench.aliased_lookups();
    }
    if scenarios.contains('d') {
        bench.import();
    }
    let report = bench.report(started.elapsed());
    println!("{report}");
    let path = bench.settings.out.join("gateway.md");
    std::fs::write(&path, &report).expect("write the results");
    eprintln!("[bench] wrote {}", path.display());
}

fn find_oha() -> Option<PathBuf> {
    let candidates = std::env::var_os("OHA")
        .map(PathBuf::from)
        .into_iter()
        .chain(
            std::env::var_os("PATH")
                .map(|p| {
                    std::env::split_paths(&p)
                        .map(|d| d.join("oha"))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default(),
        );
    let home = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin/oha"));
    candidates.chain(home).find(|p| p.is_file())
}

/// Values per (scenario row, target), one per run.
#[derive(Default)]
struct Results(BTreeMap<(String, String), Vec<f64>>);

impl Results {
    fn add(&mut self, row: &str, target: &str, value: f64) {
        self.0
            .entry((row.to_string(), target.to_string()))
            .or_default()
            .push(value);
    }
    fn median(&self, row: &str, target: &str) -> Option<f64> {
        let mut values = self.0.get(&(row.to_string(), target.to_string()))?.clone();
        values.sort_by(f64::total_cmp);
        Some(values[values.len() / 2])
    }
}

struct Bench {
    settings: Settings,
    rt: tokio::runtime::Runtime,
    sandbox: Sandbox,
    gateway_bin: PathBuf,
    http: reqwest::Client,
    results: Results,
    /// Cores other processes kept busy in the second before each measurement.
    busy: Vec<f64>,
    /// What went wrong without stopping the run; printed under the table.
    warnings: Vec<String>,
}

/// What oha measured, and the upstream calls made meanwhile.
struct Load {
    requests: u64,
    upstream_calls: u64,
    per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
}

impl Bench {
    fn log(&self, message: impl AsRef<str>) {
        eprintln!("[bench] {}", message.as_ref());
    }

    /// The gateway binary with its default config plus the simulators of `providers`.
    fn start_gateway(
        &self,
        name: &str,
        providers: &[ProviderId],
        rust_log: Option<&str>,
    ) -> Target {
        let dir = tempfile::tempdir().expect("temporary folder");
        let path = dir.path().join("gateway.toml");
        let text = gateway_config(&self.sandbox, providers);
        std::fs::write(&path, &text).expect("write the config");
        std::fs::write(self.run_file(&format!("{name}.toml")), &text).ok();
        let mut command = Command::new(&self.gateway_bin);
        command.args(["serve", "--config"]).arg(&path);
        command
            .env_remove("RUST_LOG")
            .env_remove("CONTACT_GATEWAY_CONFIG");
        if let Some(level) = rust_log {
            command.env("RUST_LOG", level);
        }
        self.spawn(name, command, dir)
    }

    /// This bench re-run as a baseline server (`BENCH_ROLE`), with `env` set.
    fn start_baseline(&self, name: &str, role: &str, env: &[(&str, &Path)]) -> Target {
        let mut command = Command::new(std::env::current_exe().expect("bench binary"));
        command.env("BENCH_ROLE", role);
        for (key, value) in env {
            command.env(key, value);
        }
        self.spawn(
            name,
            command,
            tempfile::tempdir().expect("temporary folder"),
        )
    }

    /// Starts `command`, its stderr (the logs) into `run/<name>.log`, and waits until it
    /// answers on the URL it prints.
    fn spawn(&self, name: &str, command: Command, dir: tempfile::TempDir) -> Target {
        let log = std::fs::File::create(self.run_file(&format!("{name}.log"))).expect("log file");
        let target = Target::launch(name, command, log, dir);
        let ready = Instant::now();
        while self
            .try_post(&target.url, &json!({ "query": "{ __typename }" }))
            .is_err()
        {
            assert!(
                ready.elapsed() < Duration::from_secs(10),
                "{name} does not answer"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        target
    }

    /// POSTs `body`; the answer's bytes.
    fn try_post(&self, url: &str, body: &Value) -> Result<Vec<u8>, String> {
        self.rt.block_on(async {
            let response = self
                .http
                .post(url)
                .json(body)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if !response.status().is_success() {
                return Err(format!("HTTP {}", response.status()));
            }
            let bytes = response.bytes().await.map_err(|e| e.to_string())?;
            Ok(bytes.to_vec())
        })
    }

    /// POSTs a GraphQL request that must answer without errors.
    fn post(&self, url: &str, body: &Value) -> Value {
        let bytes = self.try_post(url, body).expect("the target answers");
        let answer: Value = serde_json::from_slice(&bytes).expect("a JSON answer");
        assert!(
            answer.get("errors").is_none(),
            "unexpected errors: {answer}"
        );
        answer
    }

    fn run_file(&self, name: &str) -> PathBuf {
        self.settings.out.join("run").join(name)
    }

    /// Waits (at most BENCH_QUIET_WAIT seconds) until other processes use at most 0.3 cores
    /// for a second, and records what they used.
    fn settle(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(self.settings.quiet_wait);
        loop {
            let (ticks, t0) = (busy_ticks(), Instant::now());
            std::thread::sleep(Duration::from_secs(1));
            let cores = (busy_ticks() - ticks) as f64 / clock_ticks() / t0.elapsed().as_secs_f64();
            if cores <= 0.3 || Instant::now() >= deadline {
                self.busy.push(cores);
                return;
            }
        }
    }

    /// `connections` clients POST `body` for the measured seconds, after a warm-up.
    fn load(&mut self, name: &str, url: &str, body: &Value, connections: u32) -> Load {
        let body_file = self.run_file(&format!("{name}.body.json"));
        std::fs::write(&body_file, body.to_string()).expect("write the body");
        let warmup = self.settings.warmup;
        if warmup > 0 {
            self.oha(
                &format!("{name}.warmup"),
                url,
                &body_file,
                connections,
                &["-z", &format!("{warmup}s")],
            );
        }
        self.settle();
        let secs = self.settings.secs;
        self.oha(
            name,
            url,
            &body_file,
            connections,
            &["-z", &format!("{secs}s")],
        )
    }

    fn oha(&self, name: &str, url: &str, body_file: &Path, connections: u32, how: &[&str]) -> Load {
        let mut command = Command::new(&self.settings.oha);
        command
            .args(["--no-tui", "--output-format", "json", "-w", "-t", "30s"])
            .args(["-c", &connections.to_string()])
            .args(how)
            .args(["-m", "POST", "-T", "application/json", "-D"])
            .arg(body_file)
            .arg(url);
        let before = self.upstream_calls();
        let output = command.output().expect("oha runs");
        let upstream_calls = self.upstream_calls() - before;
        assert!(
            output.status.success(),
            "oha failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::fs::write(self.run_file(&format!("{name}.oha.json")), &output.stdout).ok();
        let report: Value = serde_json::from_slice(&output.stdout).expect("oha JSON");
        let codes = report["statusCodeDistribution"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let errors = &report["errorDistribution"];
        assert!(
            codes.keys().all(|code| code == "200")
                && errors.as_object().is_none_or(|e| e.is_empty()),
            "{name}: answers other than 200: {codes:?} {errors}"
        );
        let ms = |p: &str| report["latencyPercentiles"][p].as_f64().unwrap_or(f64::NAN) * 1000.0;
        Load {
            requests: codes.values().filter_map(Value::as_u64).sum(),
            upstream_calls,
            per_sec: report["summary"]["requestsPerSec"].as_f64().unwrap_or(0.0),
            p50_ms: ms("p50"),
            p99_ms: ms("p99"),
        }
    }

    fn upstream_calls(&self) -> u64 {
        ProviderId::ALL
            .iter()
            .map(|id| self.sandbox.control(*id).request_count())
            .sum()
    }

    /// The upstream calls one request to `url` makes, as the simulators received them.
    /// Answers with errors (a provider refusing under load, say) are reported under the table
    /// rather than stopping the run: oha sees only their HTTP 200.
    fn calls_of(&mut self, what: &str, url: &str, body: &Value) -> Vec<RecordedRequest> {
        for id in ProviderId::ALL {
            self.sandbox.control(id).reset_requests();
        }
        let answer = self.try_post(url, body).expect("the gateway answers");
        let answer: Value = serde_json::from_slice(&answer).expect("a JSON answer");
        if let Some(errors) = answer.get("errors") {
            let warning =
                format!("{what}: a request right after the load answered errors: {errors}");
            self.log(&warning);
            self.warnings.push(warning);
        }
        ProviderId::ALL
            .iter()
            .flat_map(|id| {
                let base = self.sandbox.base_url(*id);
                self.sandbox
                    .control(*id)
                    .requests()
                    .into_iter()
                    .map(move |mut r| {
                        r.path = format!("{base}{}", r.path);
                        r
                    })
            })
            .collect()
    }

    /// A floor process replaying `calls` on every request.
    fn start_floor(&self, name: &str, calls: &[RecordedRequest]) -> Target {
        let spec: Vec<Value> = calls
            .iter()
            .map(|c| {
                let query = url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(&c.query)
                    .finish();
                let url = if query.is_empty() {
                    c.path.clone()
                } else {
                    format!("{}?{query}", c.path)
                };
                let headers: Vec<_> = c
                    .headers
                    .iter()
                    .filter(|(k, _)| !matches!(k.as_str(), "host" | "content-length"))
                    .collect();
                json!({ "method": c.method, "url": url, "headers": headers })
            })
            .collect();
        let file = self.run_file(&format!("{name}.calls.json"));
        std::fs::write(&file, Value::from(spec).to_string()).expect("write the floor's calls");
        self.start_baseline(name, "floor", &[("BENCH_FLOOR_CALLS", &file)])
    }

    fn set_latency(&self, latency: Duration) {
        for id in ProviderId::ALL {
            self.sandbox.control(id).set_latency(latency);
        }
    }

    // ---------------------------------------------------------------------------------------
    // The scenarios.

    fn cached_lookup(&mut self) {
        let id = format!(
            "magicblocks:{}",
            contact_gateway::sandbox::seed::magicblocks_id(1)
        );
        let body = json!({ "query": format!("{{ contact(id: \"{id}\") {{ {FIELDS} }} }}") });
        let bytes = tempfile::NamedTempFile::new().expect("temporary file");
        for rep in 1..=self.settings.reps {
            for (target, rust_log) in [("gateway", None), ("gateway RUST_LOG=warn", Some("warn"))] {
                let name = format!(
                    "a-{}-{rep}",
                    if rust_log.is_some() {
                        "gateway-warn"
                    } else {
                        "gateway"
                    }
                );
                let gateway = self.start_gateway(&name, &ProviderId::ALL, rust_log);
                let answer = self.post(&gateway.url, &body);
                assert_eq!(answer["data"]["contact"]["id"], id.as_str());
                // The ceiling answers the gateway's own bytes.
                let raw = self
                    .try_post(&gateway.url, &body)
                    .expect("the gateway answers");
                std::fs::write(bytes.path(), raw).expect("ceiling body");
                let load = self.load(&name, &gateway.url, &body, CACHED_CONNECTIONS);
                let upstream = load.upstream_calls;
                self.record_a(target, &load, Some(gateway.peak_rss_mib()));
                self.log(format!(
                    "(a) {target} run {rep}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, peak RSS {:.1} MiB, {upstream} upstream calls",
                    load.per_sec, load.p50_ms, load.p99_ms, gateway.peak_rss_mib()
                ));
            }
            let name = format!("a-ceiling-{rep}");
            let ceiling =
                self.start_baseline(&name, "ceiling", &[("BENCH_CEILING_BODY", bytes.path())]);
            let load = self.load(&name, &ceiling.url, &body, CACHED_CONNECTIONS);
            self.record_a("ceiling", &load, Some(ceiling.peak_rss_mib()));
            self.log(format!(
                "(a) ceiling run {rep}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms",
                load.per_sec, load.p50_ms, load.p99_ms
            ));
        }
    }

    fn record_a(&mut self, target: &str, load: &Load, rss: Option<f64>) {
        self.results.add("a req/s", target, load.per_sec);
        self.results.add("a p50", target, load.p50_ms);
        self.results.add("a p99", target, load.p99_ms);
        if let Some(rss) = rss {
            self.results.add("a rss", target, rss);
        }
    }

    fn fan_out(&mut self) {
        let first = self.settings.first;
        let body = json!({
            "query": format!("{{ contacts(first: {first}, noCache: true) {{ nodes {{ {FIELDS} }} }} }}")
        });
        self.set_latency(self.settings.latency);
        for (width, providers) in [
            ("one", vec![ProviderId::Maiagent]),
            ("five", ProviderId::ALL.to_vec()),
        ] {
            if !self.settings.widths.contains(width) {
                continue;
            }
            for connections in FAN_OUT_CONNECTIONS {
                for rep in 1..=self.settings.reps {
                    let row = format!("b {width} {connections}");
                    let name = format!("b-{width}-{connections}-gateway-{rep}");
                    let gateway = self.start_gateway(&name, &providers, None);
                    let nodes = self.post(&gateway.url, &body)["data"]["contacts"]["nodes"].clone();
                    let load = self.load(&name, &gateway.url, &body, connections);
                    let per_page = load.upstream_calls as f64 / load.requests as f64;
                    // The calls of one page at steady state, for the floor to replay.
                    let what =
                        format!("(b) {width} provider(s), {connections} connections, run {rep}");
                    let calls = self.calls_of(&what, &gateway.url, &body);
                    drop(gateway);
                    self.results
                        .add(&format!("{row} p50"), "gateway", load.p50_ms);
                    self.results
                        .add(&format!("{row} p99"), "gateway", load.p99_ms);
                    self.results
                        .add(&format!("{row} calls"), "gateway", per_page);
                    self.results.add(
                        &format!("b {width} nodes"),
                        "gateway",
                        nodes.as_array().map_or(0, Vec::len) as f64,
                    );

                    let name = format!("b-{width}-{connections}-floor-{rep}");
                    let floor = self.start_floor(&name, &calls);
                    let direct = self.load(&name, &floor.url, &body, connections);
                    self.results
                        .add(&format!("{row} p50"), "floor", direct.p50_ms);
                    self.results
                        .add(&format!("{row} p99"), "floor", direct.p99_ms);
                    self.results
                        .add(&format!("{row} calls"), "floor", calls.len() as f64);
                    self.log(format!(
                        "(b) {width} provider(s), {connections} connections, run {rep}: gateway p50 {:.2} ms p99 {:.2} ms ({per_page:.2} calls per page), floor p50 {:.2} ms p99 {:.2} ms ({} calls)",
                        load.p50_ms, load.p99_ms, direct.p50_ms, direct.p99_ms, calls.len()
                    ));
                }
            }
        }
        self.set_latency(Duration::ZERO);
    }

    fn aliased_lookups(&mut self) {
        let ids = self.magicblocks_ids(ALIASES);
        let aliases: String = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                format!(" c{i}: contact(id: \"magicblocks:{id}\", noCache: true) {{ {FIELDS} }}")
            })
            .collect();
        let body = json!({ "query": format!("{{{aliases} }}") });
        self.set_latency(self.settings.latency);
        let sequential = ALIASED_REQUESTS.to_string();
        for rep in 1..=self.settings.reps {
            let name = format!("c-gateway-{rep}");
            let gateway = self.start_gateway(&name, &ProviderId::ALL, None);
            let answer = self.post(&gateway.url, &body);
            let found = answer["data"]
                .as_object()
                .map_or(0, |d| d.values().filter(|c| !c.is_null()).count());
            assert_eq!(found, ALIASES, "every aliased contact is found");
            let calls = self.calls_of(&format!("(c) run {rep}"), &gateway.url, &body);
            self.settle();
            let body_file = self.run_file(&format!("{name}.body.json"));
            std::fs::write(&body_file, body.to_string()).expect("write the body");
            let load = self.oha(&name, &gateway.url, &body_file, 1, &["-n", &sequential]);
            drop(gateway);
            self.results.add("c p50", "gateway", load.p50_ms);
            self.results.add("c calls", "gateway", calls.len() as f64);

            let mut direct = Vec::new();
            for (what, calls) in [("floor", &calls[..]), ("one call", &calls[..1])] {
                let name = format!("c-{}-{rep}", what.replace(' ', "-"));
                let floor = self.start_floor(&name, calls);
                self.settle();
                let load = self.oha(&name, &floor.url, &body_file, 1, &["-n", &sequential]);
                self.results.add("c p50", what, load.p50_ms);
                self.results.add("c calls", what, calls.len() as f64);
                direct.push(load.p50_ms);
            }
            self.log(format!(
                "(c) run {rep}: gateway p50 {:.2} ms with {} upstream calls; the same calls made directly {:.2} ms; one call {:.2} ms",
                load.p50_ms, calls.len(), direct[0], direct[1]
            ));
        }
        self.set_latency(Duration::ZERO);
    }

    /// `count` native ids of MagicBlocks contacts, creating (through a gateway) what the
    /// sandbox lacks.
    fn magicblocks_ids(&self, count: usize) -> Vec<String> {
        let control = self.sandbox.control(ProviderId::Magicblocks);
        let missing = count.saturating_sub(control.records().len());
        if missing > 0 {
            let gateway = self.start_gateway("c-seed", &[ProviderId::Magicblocks], None);
            let csv: String = std::iter::once("firstName,lastName,email\n".to_string())
                .chain((0..missing).map(|i| format!("Alias{i},Bench,alias{i}@bench.example.com\n")))
                .collect();
            let answer = self.post(&gateway.url, &import_body(&csv));
            assert_eq!(
                answer["data"]["importContacts"]["createdCount"], missing,
                "{answer}"
            );
        }
        control
            .records()
            .iter()
            .take(count)
            .map(|r| r["id"].as_str().expect("MagicBlocks id").to_string())
            .collect()
    }

    fn import(&mut self) {
        let rows = self.settings.import_rows;
        for rep in 1..=self.settings.reps {
            let csv: String = std::iter::once("firstName,lastName,email\n".to_string())
                .chain(
                    (0..rows)
                        .map(|i| format!("Row{i},Import{rep},row{i}.run{rep}@bulk.example.com\n")),
                )
                .collect();
            let name = format!("d-gateway-{rep}");
            let gateway = self.start_gateway(&name, &ProviderId::ALL, None);
            let idle = gateway.rss_mib();
            self.settle();
            let started = Instant::now();
            let answer = self.post(&gateway.url, &import_body(&csv));
            let took = started.elapsed();
            let created = answer["data"]["importContacts"]["createdCount"].as_u64();
            assert_eq!(created, Some(rows as u64), "every row is created");
            let peak = gateway.peak_rss_mib();
            self.results.add("d idle", "gateway", idle);
            self.results.add("d peak", "gateway", peak);
            self.results.add("d secs", "gateway", took.as_secs_f64());
            self.log(format!("(d) run {rep}: idle {idle:.1} MiB, peak {peak:.1} MiB ({:.2}×), {rows} rows in {:.1} s", peak / idle, took.as_secs_f64()));
        }
    }

    // ---------------------------------------------------------------------------------------
    // The report.

    fn report(&self, elapsed: Duration) -> String {
        let s = &self.settings;
        let r = &self.results;
        let m = |row: &str, target: &str| r.median(row, target);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "## contact-gateway benchmark, {}",
            chrono::Local::now().format("%Y-%m-%d %H:%M")
        );
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "`cargo bench --bench gateway`: median of {} runs, each target restarted per run; {} s measured after {} s of warm-up per load; upstream latency {} ms in (b) and (c).",
            s.reps, s.secs, s.warmup, s.latency.as_millis()
        );
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "| scenario | measure | gateway | baseline | ratio | goal |"
        );
        let _ = writeln!(out, "|---|---|---:|---:|---:|---|");
        let mut row = |scenario: &str,
                       measure: &str,
                       gateway: Option<f64>,
                       baseline: Option<f64>,
                       digits: usize,
                       goal: &str| {
            let cell = |v: Option<f64>| v.map_or("–".to_string(), |v| number(v, digits));
            let ratio = match (gateway, baseline) {
                (Some(g), Some(b)) if b > 0.0 => format!("{g_b:.2}×", g_b = g / b),
                _ => "–".to_string(),
            };
            let _ = writeln!(
                out,
                "| {scenario} | {measure} | {} | {} | {ratio} | {goal} |",
                cell(gateway),
                cell(baseline)
            );
        };
        if r.median("a req/s", "gateway").is_some() {
            let a = format!(
                "(a) cached `contact(id)`, {CACHED_CONNECTIONS} connections; baseline: ceiling"
            );
            row(
                &a,
                "requests/s",
                m("a req/s", "gateway"),
                m("a req/s", "ceiling"),
                0,
                "≥ 0.6×",
            );
            row(
                "",
                "p50 (ms)",
                m("a p50", "gateway"),
                m("a p50", "ceiling"),
                2,
                "",
            );
            row(
                "",
                "p99 (ms)",
                m("a p99", "gateway"),
                m("a p99", "ceiling"),
                2,
                "≤ 1.5×",
            );
            row(
                "",
                "peak RSS (MiB)",
                m("a rss", "gateway"),
                m("a rss", "ceiling"),
                1,
                "≤ 32 MiB",
            );
            row(
                "(a) logging: default level vs `RUST_LOG=warn`",
                "requests/s",
                m("a req/s", "gateway"),
                m("a req/s", "gateway RUST_LOG=warn"),
                0,
                "≥ 0.85×",
            );
            row(
                "",
                "p99 (ms)",
                m("a p99", "gateway"),
                m("a p99", "gateway RUST_LOG=warn"),
                2,
                "",
            );
        }
        for width in ["one", "five"] {
            for connections in FAN_OUT_CONNECTIONS {
                let key = format!("b {width} {connections}");
                if r.median(&format!("{key} p50"), "gateway").is_none() {
                    continue;
                }
                let over = if width == "one" {
                    "one provider (MaiAgent)"
                } else {
                    "the five sandbox providers"
                };
                let nodes = m(&format!("b {width} nodes"), "gateway").unwrap_or(0.0);
                let b = format!("(b) `contacts(first: {})` ({nodes:.0} nodes), {over}, {connections} connections; baseline: floor", s.first);
                row(
                    &b,
                    "p50 (ms)",
                    m(&format!("{key} p50"), "gateway"),
                    m(&format!("{key} p50"), "floor"),
                    2,
                    "≤ 1.1×",
                );
                row(
                    "",
                    "p99 (ms)",
                    m(&format!("{key} p99"), "gateway"),
                    m(&format!("{key} p99"), "floor"),
                    2,
                    "",
                );
                row(
                    "",
                    "upstream calls per page",
                    m(&format!("{key} calls"), "gateway"),
                    m(&format!("{key} calls"), "floor"),
                    2,
                    "",
                );
            }
        }
        if r.median("c p50", "gateway").is_some() {
            let c = format!("(c) {ALIASES} aliased distinct `contact(id)`, MagicBlocks; baseline: one upstream round trip");
            row(
                &c,
                "latency p50 (ms)",
                m("c p50", "gateway"),
                m("c p50", "one call"),
                2,
                "≤ 1.3×",
            );
            row(
                "(c) baseline: the same calls made directly, at once",
                "latency p50 (ms)",
                m("c p50", "gateway"),
                m("c p50", "floor"),
                2,
                "",
            );
            row(
                "",
                "upstream calls",
                m("c calls", "gateway"),
                m("c calls", "floor"),
                0,
                "",
            );
        }
        if r.median("d peak", "gateway").is_some() {
            let d = format!(
                "(d) `importContacts`, {} CSV rows into MagicBlocks; baseline: idle RSS",
                s.import_rows
            );
            row(
                &d,
                "peak RSS (MiB)",
                m("d peak", "gateway"),
                m("d idle", "gateway"),
                1,
                "≤ 2×",
            );
            row("", "import time (s)", m("d secs", "gateway"), None, 1, "");
        }
        let _ = writeln!(out);
        for warning in &self.warnings {
            let _ = writeln!(out, "**⚠ {warning}**\n");
        }
        let mut busy = self.busy.clone();
        busy.sort_by(f64::total_cmp);
        let noisy = busy.iter().filter(|b| **b > 0.3).count();
        let _ = writeln!(
            out,
            "Machine: {} cores, shared: the load generator, the target and the simulators (in the bench process) run on them together, so only same-run ratios mean anything. \
             Other processes kept {:.2} cores busy (median; max {:.2}) in the second before each of the {} measurements; {noisy} started above 0.3 cores. Took {:.0} s.",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            busy.get(busy.len() / 2).copied().unwrap_or(0.0),
            busy.last().copied().unwrap_or(0.0),
            busy.len(),
            elapsed.as_secs_f64(),
        );
        let _ = writeln!(out);
        let _ = writeln!(out, "<details><summary>Every run</summary>\n");
        let _ = writeln!(out, "| measure | target | runs |");
        let _ = writeln!(out, "|---|---|---|");
        for ((measure, target), values) in &r.0 {
            let runs: Vec<String> = values.iter().map(|v| number(*v, 2)).collect();
            let _ = writeln!(out, "| {measure} | {target} | {} |", runs.join(", "));
        }
        let _ = writeln!(out, "\n</details>");
        out
    }
}

fn import_body(csv: &str) -> Value {
    json!({
        "query": "mutation($csv: String!) { importContacts(provider: MAGICBLOCKS, csv: $csv) { createdCount failedCount results { line status } } }",
        "variables": { "csv": csv }
    })
}

/// The baseline servers, run as processes of their own (this binary, `BENCH_ROLE`).
mod baseline {
    use axum::body::Bytes;
    use axum::http::StatusCode;
    use serde_json::Value;

    async fn serve(app: axum::Router) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("GraphQL: http://{}/graphql", listener.local_addr().unwrap());
        axum::serve(listener, app).await.unwrap();
    }

    /// Answers every POST with the bytes of the file at BENCH_CEILING_BODY.
    #[tokio::main]
    pub async fn ceiling() {
        let path = std::env::var("BENCH_CEILING_BODY").expect("BENCH_CEILING_BODY");
        let bytes = Bytes::from(std::fs::read(path).expect("ceiling body"));
        let app = axum::Router::new().route(
            "/graphql",
            axum::routing::post(move || {
                let bytes = bytes.clone();
                async move { ([("content-type", "application/json")], bytes) }
            }),
        );
        serve(app).await;
    }

    /// Per POST, makes the calls listed in BENCH_FLOOR_CALLS at once through the gateway's
    /// HTTP client stack, parsing each answer as JSON.
    #[tokio::main]
    pub async fn floor() {
        let path = std::env::var("BENCH_FLOOR_CALLS").expect("BENCH_FLOOR_CALLS");
        let calls: Vec<Value> =
            serde_json::from_slice(&std::fs::read(path).expect("floor calls")).expect("JSON");
        let client = contact_gateway::providers::http::pool();
        let calls = std::sync::Arc::new(calls);
        let app = axum::Router::new().route(
            "/graphql",
            axum::routing::post(move || {
                let (client, calls) = (client.clone(), calls.clone());
                async move {
                    let answers = futures::future::join_all(calls.iter().map(|call| {
                        let method = call["method"].as_str().unwrap_or("GET").parse().unwrap();
                        let mut request = client.request(method, call["url"].as_str().unwrap());
                        for header in call["headers"].as_array().into_iter().flatten() {
                            request = request
                                .header(header[0].as_str().unwrap(), header[1].as_str().unwrap());
                        }
                        async move {
                            let response = request.send().await.ok()?;
                            if !response.status().is_success() {
                                return None;
                            }
                            response.json::<Value>().await.ok()
                        }
                    }))
                    .await;
                    if answers.iter().all(Option::is_some) {
                        (StatusCode::OK, "{\"data\":{}}")
                    } else {
                        (StatusCode::BAD_GATEWAY, "{\"errors\":[]}")
                    }
                }
            }),
        );
        serve(app).await;
    }
}
