//! `cargo bench --bench soak`: the release gateway binary, run as a user runs it (its default
//! config and logging over the five sandbox simulators, which run in this process), under a
//! mix of reads and writes for minutes while two simulators misbehave; then every write the
//! gateway acknowledged is looked for, through the gateway and in the simulators' stores.
//!
//! - **Load**: `SOAK_CLIENTS` async clients (reqwest), one request at a time each, for
//!   `SOAK_SECS`: 70% reads — `contact(id)` of a seeded or created contact, `contacts(first:
//!   20)` over one provider or all five, a third of each with `noCache: true` — and 30%
//!   writes — `createContact` (any provider), `updateContact` and `upsertContact` of a
//!   contact the client created (or a new one), `addTags` (Whautomate), `addToDoNotContact`.
//!   Each write has a marker of its own (the last name, the tag, the do-not-contact reason) and
//!   an `Idempotency-Key`. A client writes only the contacts it created, one write at a time,
//!   so each contact's writes have an order.
//! - **Faults**, the whole run: Whautomate answers 429 (`Retry-After: 1`) to its next
//!   `RATE_LIMITED_TIMES` requests every `RATE_LIMITED_EVERY`; MaiAgent never answers its
//!   next `HANG_TIMES` requests every `HANG_EVERY` (cut by the gateway's `timeout_ms`, 10 s by
//!   default). MagicBlocks, Consuelo and Mainbrainer are healthy: every write to them must land.
//! - **A write** counts as acknowledged when it answered 200 without errors or userErrors (with
//!   its contact, or a `READ_BACK_FAILED` warning: applied, not read back after); as
//!   failed when it answered otherwise (`mayHaveBeenApplied` noted); as unknown when the client
//!   gave up (`CLIENT_TIMEOUT`). After the load the faults are cleared and each contact written
//!   is read with `noCache: true` (aliased, 25 to a request) and found in its simulator's store:
//!   an acknowledged write is *visible* (its marker is the current value, or among the tags),
//!   *superseded* (a later write of the same contact's last name is the current value), or
//!   *lost*. Unknown and failed writes are looked for too (found = applied): a
//!   failed write found applied whose error did not say `mayHaveBeenApplied` misled its client.
//! - **Report**: requests served by operation and by outcome (ok, each GraphQL error code,
//!   HTTP status, client timeout), req/s, p50/p99, the gateway's RSS at start (after start-up
//!   and a warm-up), every 30 s, at the end of the load and its peak (VmHWM), the gateway's own
//!   count of upstream calls by provider and status (`/metrics`), and the writes. Printed and
//!   written to `target/bench/soak.md`; every write with its outcome in
//!   `target/bench/run/soak-writes.jsonl`, the gateway's log in `target/bench/run/soak.log`.
//!
//! Exits non-zero when an acknowledged write is lost or cannot be read back.
//!
//! Environment: SOAK_SECS (300), SOAK_CLIENTS (16), SOAK_CONFIG (TOML tables added to the
//! gateway's config, e.g. `[cache] ttl_secs = 0`, to see what a figure depends on).

mod common;

use common::{busy_ticks, clock_ticks, env_or, gateway_config, number, Target};
use contact_gateway::contact::ProviderId;
use contact_gateway::sandbox::{Fault, Sandbox};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The provider answering 429 part of the time.
const RATE_LIMITED: ProviderId = ProviderId::Whautomate;
const RATE_LIMITED_EVERY: Duration = Duration::from_secs(5);
const RATE_LIMITED_TIMES: u64 = 5;
/// The provider hanging past the gateway's timeout part of the time.
const HANGING: ProviderId = ProviderId::Maiagent;
const HANG_EVERY: Duration = Duration::from_secs(15);
const HANG_TIMES: u64 = 3;
/// Longer than the gateway's request deadline (`request_timeout_ms`, 30 s by default).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
const RSS_EVERY: Duration = Duration::from_secs(30);
/// Contacts read back per request.
const READ_BACK_BATCH: usize = 25;

/// What a client does, with its share of the mix (percent).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Op {
    Contact,
    Contacts,
    Create,
    Update,
    Upsert,
    AddTags,
    DoNotContact,
}

const MIX: [(Op, u32); 7] = [
    (Op::Contact, 35),
    (Op::Contacts, 35),
    (Op::Create, 10),
    (Op::Update, 10),
    (Op::Upsert, 5),
    (Op::AddTags, 3),
    (Op::DoNotContact, 2),
];

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Contact => "contact(id)",
            Op::Contacts => "contacts(first: 20)",
            Op::Create => "createContact",
            Op::Update => "updateContact",
            Op::Upsert => "upsertContact",
            Op::AddTags => "addTags",
            Op::DoNotContact => "addToDoNotContact",
        }
    }
}

/// A small deterministic generator (xorshift64*): the mix needs no more.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        (!items.is_empty()).then(|| &items[self.below(items.len() as u64) as usize])
    }
}

/// How a write ended, as its client saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ack {
    /// 200, no error, no userError.
    Acked,
    /// Answered with an error or a userError.
    Failed { may_have_been_applied: bool },
    /// No answer: the client gave up, or its connection failed.
    Unknown,
}

/// Which value of the contact a write's marker is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    LastName,
    Tag,
    /// The do-not-contact entry's reason (its phone is `Write::phone`).
    Reason,
}

#[derive(Clone, Debug)]
struct Write {
    client: usize,
    /// Order among the client's writes.
    seq: u64,
    op: Op,
    provider: Option<ProviderId>,
    /// The contact's global id, when known (the write named it, or its answer did).
    contact: Option<String>,
    field: Field,
    marker: String,
    phone: Option<String>,
    ack: Ack,
    outcome: String,
}

/// One request: what it was, how it ended (`ok`, error codes, HTTP status…), how long it took.
struct Served {
    op: Op,
    outcome: String,
    ms: f64,
}

/// A contact a client created: the only ones it writes again.
#[derive(Clone)]
struct Owned {
    id: String,
    provider: ProviderId,
    email: Option<String>,
    phone: Option<String>,
}

/// What a client did.
#[derive(Default)]
struct ClientLog {
    served: Vec<Served>,
    writes: Vec<Write>,
}

struct Load {
    url: String,
    http: reqwest::Client,
    /// Global ids a read may ask for: the seeded ones, then every contact created.
    known: Mutex<Vec<String>>,
    /// Marks this run's values (several runs share nothing, but a glance tells them apart).
    run: u16,
    until: Instant,
}

fn main() {
    // `cargo test --benches` lists tests; there are none.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let secs: u64 = env_or("SOAK_SECS", 300);
    let clients: usize = env_or("SOAK_CLIENTS", 16);
    let built = PathBuf::from(env!("CARGO_BIN_EXE_contact-gateway"));
    // target/release/contact-gateway → target/bench
    let out = built
        .ancestors()
        .nth(2)
        .expect("the binary lies in target/<profile>/")
        .join("bench");
    let run_dir = out.join("run");
    std::fs::create_dir_all(&run_dir).expect("target/bench/run");
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    rt.spawn(common::stop_targets_on_signal());
    let sandbox = Arc::new(rt.block_on(Sandbox::start()).expect("sandbox starts"));

    // The gateway: its default config, the five simulators, its default logging.
    let dir = tempfile::tempdir().expect("temporary folder");
    let config = dir.path().join("gateway.toml");
    let mut text = gateway_config(&sandbox, &ProviderId::ALL);
    if let Ok(extra) = std::env::var("SOAK_CONFIG") {
        text = format!("{text}\n{extra}\n");
    }
    std::fs::write(&config, &text).expect("write the config");
    std::fs::write(run_dir.join("soak.toml"), &text).ok();
    let mut command = Command::new(&built);
    command
        .args(["serve", "--config"])
        .arg(&config)
        .env_remove("RUST_LOG")
        .env_remove("CONTACT_GATEWAY_CONFIG");
    let log = std::fs::File::create(run_dir.join("soak.log")).expect("log file");
    let gateway = Target::launch("gateway", command, log, dir);
    let http = reqwest::Client::builder()
        .timeout(CLIENT_TIMEOUT)
        .build()
        .expect("HTTP client");
    rt.block_on(wait_until_ready(&http, &gateway.url));

    let seeded: Vec<String> = ProviderId::ALL
        .into_iter()
        .flat_map(|id| {
            native_ids(&sandbox, id)
                .into_iter()
                .map(move |native| format!("{}:{native}", id.as_str()))
        })
        .filter(|id| !id.starts_with("mainbrainer:"))
        .collect();
    let run = (std::process::id() & 0xffff) as u16;
    let load = Arc::new(Load {
        url: gateway.url.clone(),
        http: http.clone(),
        known: Mutex::new(seeded),
        run,
        until: Instant::now() + Duration::from_secs(secs),
    });
    // Warm-up: every provider once, then the start's RSS.
    rt.block_on(async {
        for id in ProviderId::ALL {
            let body = json!({ "query": format!("{{ contacts(providers: [{}], first: 20) {{ nodes {{ id }} }} }}", enum_name(id)) });
            let _ = send(&http, &gateway.url, &body, None).await;
        }
    });
    let pid = gateway.child.id();
    let rss_start = gateway.rss_mib();
    eprintln!(
        "[soak] gateway pid {pid}, {rss_start:.1} MiB; {clients} clients for {secs} s; {} faulted, {} hanging",
        RATE_LIMITED.as_str(),
        HANGING.as_str()
    );

    // The load, the faults and the RSS samples, side by side.
    let busy_before = [busy_ticks(), cpu_ticks(&pid.to_string()), cpu_ticks("self")];
    let started = Instant::now();
    let (logs, rss_samples) = rt.block_on(async {
        let faults = tokio::spawn(inject_faults(sandbox.clone(), load.until));
        let sampler = tokio::spawn(sample_rss(pid, load.until, started));
        let tasks: Vec<_> = (0..clients)
            .map(|client| tokio::spawn(run_client(client, load.clone())))
            .collect();
        let mut logs = Vec::new();
        for task in tasks {
            logs.push(task.await.expect("a client finishes"));
        }
        faults.await.expect("the fault driver finishes");
        (logs, sampler.await.expect("the sampler finishes"))
    });
    let elapsed = started.elapsed();
    // Cores kept busy during the load: the whole machine, the gateway, this bench.
    let busy_after = [busy_ticks(), cpu_ticks(&pid.to_string()), cpu_ticks("self")];
    let cores: Vec<f64> = busy_after
        .iter()
        .zip(busy_before)
        .map(|(after, before)| {
            after.saturating_sub(before) as f64 / clock_ticks() / elapsed.as_secs_f64()
        })
        .collect();
    let rss_end = gateway.rss_mib();
    let rss_peak = gateway.peak_rss_mib();
    eprintln!(
        "[soak] load done in {:.0} s; reading back",
        elapsed.as_secs_f64()
    );

    let metrics = rt
        .block_on(async {
            http.get(gateway.url.replace("/graphql", "/metrics"))
                .send()
                .await?
                .text()
                .await
        })
        .unwrap_or_default();
    let mut served = Vec::new();
    let mut writes = Vec::new();
    for log in logs {
        served.extend(log.served);
        writes.extend(log.writes);
    }
    // A breaker the hangs opened closes at its next probe, after its cooldown (10 s).
    std::thread::sleep(Duration::from_secs(11));
    let check = rt.block_on(verify(&http, &gateway.url, &sandbox, &writes));
    let journal: String = writes
        .iter()
        .zip(&check.verdicts)
        .map(|(w, verdict)| {
            json!({
                "client": w.client, "seq": w.seq, "op": w.op.name(),
                "provider": w.provider.map(|p| p.as_str()), "contact": w.contact,
                "marker": w.marker, "phone": w.phone, "ack": format!("{:?}", w.ack),
                "outcome": w.outcome, "verdict": verdict,
            })
            .to_string()
                + "\n"
        })
        .collect();
    std::fs::write(run_dir.join("soak-writes.jsonl"), journal).ok();

    let report = Report {
        secs,
        clients,
        elapsed,
        cores: &cores,
        served: &served,
        writes: &writes,
        check: &check,
        rss_start,
        rss_samples: &rss_samples,
        rss_end,
        rss_peak,
        metrics: &metrics,
    }
    .render();
    println!("{report}");
    let path = out.join("soak.md");
    std::fs::write(&path, &report).expect("write the report");
    eprintln!("[soak] wrote {}", path.display());
    drop(gateway);
    if check.lost > 0 || check.unread > 0 {
        eprintln!(
            "[soak] FAILED: {} acknowledged writes lost, {} not read back (see {})",
            check.lost,
            check.unread,
            run_dir.join("soak-writes.jsonl").display()
        );
        std::process::exit(1);
    }
}

async fn wait_until_ready(http: &reqwest::Client, url: &str) {
    let ready = Instant::now();
    let body = json!({ "query": "{ __typename }" });
    while !matches!(
        send(http, url, &body, None).await,
        Sent::Answer { status: 200, .. }
    ) {
        assert!(
            ready.elapsed() < Duration::from_secs(10),
            "the gateway does not answer"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The native id of each record in a simulator's store.
fn native_ids(sandbox: &Sandbox, id: ProviderId) -> Vec<String> {
    sandbox
        .control(id)
        .records()
        .iter()
        .filter_map(native_id)
        .collect()
}

/// A record's native id: `id`, or Mainbrainer's `contactId`.
fn native_id(record: &Value) -> Option<String> {
    match (&record["id"], &record["contactId"]) {
        (Value::String(id), _) => Some(id.clone()),
        (_, Value::Number(id)) => Some(id.to_string()),
        _ => None,
    }
}

fn enum_name(id: ProviderId) -> String {
    id.as_str().to_uppercase()
}

/// The whole run: 429s from one provider, hangs from another, at a steady rhythm.
async fn inject_faults(sandbox: Arc<Sandbox>, until: Instant) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    let mut second = 0u64;
    while Instant::now() < until {
        every.tick().await;
        if second % RATE_LIMITED_EVERY.as_secs() == 0 {
            let fault = Fault::RateLimited {
                retry_after_secs: 1,
            };
            sandbox
                .control(RATE_LIMITED)
                .set_fault_times(fault, RATE_LIMITED_TIMES);
        }
        if second % HANG_EVERY.as_secs() == 0 {
            sandbox
                .control(HANGING)
                .set_fault_times(Fault::Hang, HANG_TIMES);
        }
        second += 1;
    }
    sandbox.control(RATE_LIMITED).set_fault(None);
    sandbox.control(HANGING).set_fault(None);
}

/// The gateway's VmRSS every `RSS_EVERY`: (seconds into the run, MiB).
async fn sample_rss(pid: u32, until: Instant, started: Instant) -> Vec<(u64, f64)> {
    let mut samples = Vec::new();
    let mut every = tokio::time::interval(RSS_EVERY);
    every.tick().await;
    loop {
        every.tick().await;
        if Instant::now() >= until {
            return samples;
        }
        if let Some(mib) = common::status_mib(pid, "VmRSS:") {
            samples.push((started.elapsed().as_secs(), mib));
        }
    }
}

/// CPU time (user + system) of process `pid` (or `self`), in clock ticks.
fn cpu_ticks(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command's closing parenthesis; utime and stime are the 12th and 13th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse::<u64>().ok())
        .sum()
}

/// What came back for one request.
enum Sent {
    Answer {
        status: u16,
        body: Value,
    },
    /// The client gave up (`CLIENT_TIMEOUT`).
    Timeout,
    /// The connection failed.
    Failed,
}

async fn send(http: &reqwest::Client, url: &str, body: &Value, key: Option<&str>) -> Sent {
    let mut request = http.post(url).json(body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    let answer = async {
        let response = request.send().await?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await?;
        Ok::<_, reqwest::Error>((status, bytes))
    };
    match answer.await {
        Ok((status, bytes)) => Sent::Answer {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        },
        Err(e) if e.is_timeout() => Sent::Timeout,
        Err(_) => Sent::Failed,
    }
}

/// The distinct `extensions.code`s of an answer's errors, sorted.
fn error_codes(body: &Value) -> BTreeSet<String> {
    body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            e["extensions"]["code"]
                .as_str()
                .unwrap_or("(no code)")
                .to_string()
        })
        .collect()
}

/// How a request ended, as one word for the tables: `ok`, its error codes, `HTTP <status>`,
/// `userErrors: <codes>`, `client timeout`, `connection failed`.
fn outcome_of(sent: &Sent, field: Option<&str>) -> String {
    match sent {
        Sent::Timeout => "client timeout".into(),
        Sent::Failed => "connection failed".into(),
        Sent::Answer { status, body } => {
            let codes: Vec<String> = error_codes(body).into_iter().collect();
            if *status != 200 {
                format!("HTTP {status} {}", codes.join("+"))
                    .trim()
                    .to_string()
            } else if !codes.is_empty() {
                codes.join("+")
            } else {
                let user_errors: BTreeSet<&str> = field
                    .map(|f| &body["data"][f]["userErrors"])
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e["code"].as_str())
                    .collect();
                let warnings: BTreeSet<&str> = field
                    .map(|f| &body["data"][f]["warnings"])
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e["code"].as_str())
                    .collect();
                if user_errors.is_empty() && warnings.is_empty() {
                    "ok".into()
                } else if user_errors.is_empty() {
                    let codes: Vec<&str> = warnings.into_iter().collect();
                    format!("ok (warnings: {})", codes.join("+"))
                } else {
                    let codes: Vec<&str> = user_errors.into_iter().collect();
                    format!("userErrors: {}", codes.join("+"))
                }
            }
        }
    }
}

/// A write's acknowledgement from its answer.
fn ack_of(sent: &Sent, field: &str) -> Ack {
    match sent {
        Sent::Timeout | Sent::Failed => Ack::Unknown,
        Sent::Answer { status, body } => {
            let payload = &body["data"][field];
            let user_errors = payload["userErrors"]
                .as_array()
                .is_some_and(|e| !e.is_empty());
            // Applied, its contact not read back after it: done all the same.
            let unread = payload["warnings"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|w| w["code"] == "READ_BACK_FAILED");
            let done = payload["contact"].is_object() || payload["entry"].is_object() || unread;
            if *status == 200 && error_codes(body).is_empty() && !user_errors && done {
                Ack::Acked
            } else {
                let may_have_been_applied = body["errors"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|e| e["extensions"]["mayHaveBeenApplied"] == true);
                Ack::Failed {
                    may_have_been_applied,
                }
            }
        }
    }
}

const CONTACT_FIELDS: &str = "id displayName primaryEmail primaryPhone tags";
const WRITTEN: &str =
    "contact { id name { full } tags } userErrors { code message } warnings { code message }";

/// One client: requests one after another until the load's end.
async fn run_client(client: usize, load: Arc<Load>) -> ClientLog {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((client as u64 + 1) << 17));
    let mut log = ClientLog::default();
    let mut owned: Vec<Owned> = Vec::new();
    let mut seq = 0u64;
    // Phones of this client's own: Whautomate contacts', and do-not-contact entries'.
    let (mut contact_phones, mut dnc_phones) = (0u64, 0u64);
    let total: u32 = MIX.iter().map(|(_, share)| share).sum();
    while Instant::now() < load.until {
        let mut roll = rng.below(total as u64) as u32;
        let mut op = Op::Contact;
        for (candidate, share) in MIX {
            if roll < share {
                op = candidate;
                break;
            }
            roll -= share;
        }
        seq += 1;
        // sk<run>c<client>w<seq>: fixed width, so no marker is a part of another.
        let marker = format!("sk{:04x}c{client:02}w{seq:06}", load.run);
        let no_cache = rng.below(3) == 0;
        let started = Instant::now();
        match op {
            Op::Contact => {
                let id = {
                    let known = load.known.lock().unwrap();
                    rng.pick(&known).cloned().unwrap_or_default()
                };
                let body = json!({
                    "query": format!("query($id: ID!, $noCache: Boolean) {{ contact(id: $id, noCache: $noCache) {{ {CONTACT_FIELDS} }} }}"),
                    "variables": { "id": id, "noCache": no_cache },
                });
                let sent = send(&load.http, &load.url, &body, None).await;
                log.served.push(served(op, &sent, None, started));
            }
            Op::Contacts => {
                let providers = match rng.below(6) {
                    5 => String::new(),
                    i => format!("providers: [{}], ", enum_name(ProviderId::ALL[i as usize])),
                };
                let body = json!({
                    "query": format!("query($noCache: Boolean) {{ contacts({providers}first: 20, noCache: $noCache) {{ nodes {{ {CONTACT_FIELDS} }} pageInfo {{ hasNextPage }} }} }}"),
                    "variables": { "noCache": no_cache },
                });
                let sent = send(&load.http, &load.url, &body, None).await;
                log.served.push(served(op, &sent, None, started));
            }
            Op::Create | Op::Update | Op::Upsert | Op::AddTags => {
                let write = plan_write(op, &mut rng, &owned, client, &marker, &mut contact_phones);
                let key = format!("soak-{marker}");
                let sent = send(&load.http, &load.url, &write.body, Some(&key)).await;
                log.served
                    .push(served(write.op, &sent, Some(write.field_name), started));
                let ack = ack_of(&sent, write.field_name);
                let answered_id = match &sent {
                    Sent::Answer { body, .. } => body["data"][write.field_name]["contact"]["id"]
                        .as_str()
                        .map(String::from),
                    _ => None,
                };
                let contact = write.contact.clone().or(answered_id.clone());
                if ack == Ack::Acked && write.contact.is_none() {
                    if let Some(id) = answered_id {
                        owned.push(Owned {
                            id: id.clone(),
                            provider: write.provider,
                            email: write.email.clone(),
                            phone: write.phone.clone(),
                        });
                        load.known.lock().unwrap().push(id);
                    }
                }
                log.writes.push(Write {
                    client,
                    seq,
                    op: write.op,
                    provider: Some(write.provider),
                    contact,
                    field: if write.op == Op::AddTags {
                        Field::Tag
                    } else {
                        Field::LastName
                    },
                    marker,
                    phone: None,
                    ack,
                    outcome: outcome_of(&sent, Some(write.field_name)),
                });
            }
            Op::DoNotContact => {
                // 415-5CC-SSSS: a phone of this client's own, never one of a contact's.
                dnc_phones += 1;
                let phone = phone_number(5, client, dnc_phones);
                let body = json!({
                    "query": "mutation($input: DoNotContactInput!) { addToDoNotContact(input: $input) { entry { phone reason } results { provider status } userErrors { code message } } }",
                    "variables": { "input": { "phone": phone, "reason": marker } },
                });
                let key = format!("soak-{marker}");
                let sent = send(&load.http, &load.url, &body, Some(&key)).await;
                let field = "addToDoNotContact";
                log.served.push(served(op, &sent, Some(field), started));
                log.writes.push(Write {
                    client,
                    seq,
                    op,
                    provider: None,
                    contact: None,
                    field: Field::Reason,
                    marker,
                    phone: Some(phone),
                    ack: ack_of(&sent, field),
                    outcome: outcome_of(&sent, Some(field)),
                });
            }
        }
    }
    log
}

fn served(op: Op, sent: &Sent, field: Option<&str>, started: Instant) -> Served {
    Served {
        op,
        outcome: outcome_of(sent, field),
        ms: started.elapsed().as_secs_f64() * 1000.0,
    }
}

/// A write to send: its body and what it is about.
struct Planned {
    op: Op,
    body: Value,
    field_name: &'static str,
    provider: ProviderId,
    /// The contact it writes, when it names one (update, tags, an upsert that matches).
    contact: Option<String>,
    email: Option<String>,
    phone: Option<String>,
}

/// The write `op` with `marker`: an update, upsert match or tag on a contact this client
/// created; a create when there is none to write.
fn plan_write(
    op: Op,
    rng: &mut Rng,
    owned: &[Owned],
    client: usize,
    marker: &str,
    phones: &mut u64,
) -> Planned {
    let mine = |provider: Option<ProviderId>| -> Vec<&Owned> {
        owned
            .iter()
            .filter(|o| provider.is_none_or(|p| o.provider == p))
            .collect()
    };
    let target = match op {
        Op::Update => rng.pick(&mine(None)).copied(),
        Op::AddTags => rng.pick(&mine(Some(ProviderId::Whautomate))).copied(),
        _ => None,
    };
    match (op, target) {
        (Op::Update, Some(contact)) => Planned {
            op,
            body: json!({
                "query": format!("mutation($id: ID!, $input: UpdateContactInput!) {{ updateContact(id: $id, input: $input) {{ {WRITTEN} }} }}"),
                "variables": { "id": contact.id, "input": { "lastName": marker } },
            }),
            field_name: "updateContact",
            provider: contact.provider,
            contact: Some(contact.id.clone()),
            email: None,
            phone: None,
        },
        (Op::AddTags, Some(contact)) => Planned {
            op,
            body: json!({
                "query": format!("mutation($id: ID!, $tags: [String!]!) {{ addTags(id: $id, tags: $tags) {{ {WRITTEN} }} }}"),
                "variables": { "id": contact.id, "tags": [marker] },
            }),
            field_name: "addTags",
            provider: contact.provider,
            contact: Some(contact.id.clone()),
            email: None,
            phone: None,
        },
        (Op::Upsert, _) => {
            let provider = ProviderId::ALL[rng.below(5) as usize];
            let matched = rng
                .pick(&mine(Some(provider)))
                .copied()
                .filter(|_| rng.below(2) == 0);
            let (mut input, email, phone) = new_contact(provider, client, marker, phones);
            if let Some(contact) = matched {
                // Matched by its own email (Whautomate: phone), so the upsert updates it.
                let fields = input.as_object_mut().expect("an object");
                fields
                    .retain(|name, _| !["emails", "phones", "firstName"].contains(&name.as_str()));
                if let Some(address) = &contact.email {
                    fields.insert("emails".into(), json!([{ "address": address }]));
                }
                if let Some(number) = &contact.phone {
                    fields.insert("phones".into(), json!([{ "number": number }]));
                }
            }
            Planned {
                op,
                body: json!({
                    "query": format!("mutation($input: UpsertContactInput!) {{ upsertContact(input: $input) {{ {WRITTEN} created }} }}"),
                    "variables": { "input": input },
                }),
                field_name: "upsertContact",
                provider,
                contact: matched.map(|c| c.id.clone()),
                email: matched.map_or(email, |c| c.email.clone()),
                phone: matched.map_or(phone, |c| c.phone.clone()),
            }
        }
        // A create, or an update or tag with nothing to write yet: create one there.
        _ => {
            let provider = match op {
                Op::AddTags => ProviderId::Whautomate,
                _ => ProviderId::ALL[rng.below(5) as usize],
            };
            let (input, email, phone) = new_contact(provider, client, marker, phones);
            Planned {
                op: Op::Create,
                body: json!({
                    "query": format!("mutation($input: CreateContactInput!) {{ createContact(input: $input) {{ {WRITTEN} }} }}"),
                    "variables": { "input": input },
                }),
                field_name: "createContact",
                provider,
                contact: None,
                email,
                phone,
            }
        }
    }
}

/// A new contact's input at `provider`, named after `marker`, with an email of its own
/// (Whautomate holds none: a phone of its own instead), and its email and phone.
fn new_contact(
    provider: ProviderId,
    client: usize,
    marker: &str,
    phones: &mut u64,
) -> (Value, Option<String>, Option<String>) {
    let mut input = json!({
        "provider": enum_name(provider),
        "firstName": "Soak",
        "lastName": marker,
    });
    let (email, phone) = if provider == ProviderId::Whautomate {
        *phones += 1;
        let phone = phone_number(4, client, *phones);
        input["phones"] = json!([{ "number": phone }]);
        (None, Some(phone))
    } else {
        let email = format!("{marker}@soak.example.com");
        input["emails"] = json!([{ "address": email }]);
        (Some(email), None)
    };
    if provider == ProviderId::Mainbrainer {
        // Its upsert needs consent stated; opting out is never refused.
        input["emailOptIn"] = json!(false);
        input["smsOptIn"] = json!(false);
    }
    (input, email, phone)
}

/// A US number of client `client`'s own: 415-<exchange>CC-NNNN, the `n`th. Never reused
/// (a do-not-contact entry added again keeps its first reason).
fn phone_number(exchange: u8, client: usize, n: u64) -> String {
    assert!(n < 10_000 && client < 100, "out of phone numbers");
    format!("+1415{exchange}{client:02}{n:04}")
}

/// What the read-back found.
#[derive(Default)]
struct Check {
    /// Per write (in `writes`' order): what became of it.
    verdicts: Vec<&'static str>,
    acked: usize,
    /// Acknowledged, and its marker is the current value (or among the tags, or the entry's
    /// reason) through the gateway and in the simulator's store.
    visible: usize,
    /// Acknowledged, and a later write of the same last name is the current value.
    superseded: usize,
    lost: usize,
    /// Acknowledged, but its contact could not be read through the gateway.
    unread: usize,
    /// Do-not-contact entries acknowledged and applied at every provider concerned.
    dnc_propagated: usize,
    dnc_acked: usize,
    unknown: usize,
    unknown_landed: usize,
    /// Failed writes whose error said `mayHaveBeenApplied`, and of them those found applied.
    failed_maybe: [usize; 2],
    /// Failed writes whose error did not say so, and of them those found applied: the
    /// gateway told its client a write failed that was applied.
    failed_not_applied: [usize; 2],
}

/// Reads back every contact written (`noCache: true`, through the gateway) and every
/// simulator's store, and sorts each write into visible, superseded, lost…
async fn verify(http: &reqwest::Client, url: &str, sandbox: &Sandbox, writes: &[Write]) -> Check {
    // The gateway's view: each written contact's name and tags, lower-cased.
    let ids: BTreeSet<&str> = writes.iter().filter_map(|w| w.contact.as_deref()).collect();
    let ids: Vec<&str> = ids.into_iter().collect();
    let mut through_gateway: HashMap<String, Option<String>> = HashMap::new();
    for pass in 0..3 {
        let missing: Vec<&str> = ids
            .iter()
            .copied()
            .filter(|id| !through_gateway.contains_key(*id))
            .collect();
        if missing.is_empty() {
            break;
        }
        if pass > 0 {
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        for chunk in missing.chunks(READ_BACK_BATCH) {
            let fields: String = chunk
                .iter()
                .enumerate()
                .map(|(i, id)| {
                    format!(
                        "c{i}: contact(id: {}, noCache: true) {{ name {{ full }} tags }} ",
                        json!(id)
                    )
                })
                .collect();
            let body = json!({ "query": format!("{{ {fields} }}") });
            let Sent::Answer { body, .. } = send(http, url, &body, None).await else {
                continue;
            };
            let failed: HashSet<String> = body["errors"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e["path"][0].as_str().map(String::from))
                .collect();
            for (i, id) in chunk.iter().enumerate() {
                let alias = format!("c{i}");
                if failed.contains(&alias) || body["data"].is_null() {
                    continue;
                }
                let contact = &body["data"][&alias];
                let text = (!contact.is_null()).then(|| contact.to_string().to_lowercase());
                through_gateway.insert(id.to_string(), text);
            }
        }
    }
    // The simulators' view: each record's text by global id, and every marker they hold.
    let mut in_store: HashMap<String, String> = HashMap::new();
    let mut stored_markers: HashSet<String> = HashSet::new();
    let (prefix, len) = writes
        .first()
        .map_or(("sk", 16), |w| (&w.marker[..6], w.marker.len()));
    for id in ProviderId::ALL {
        for record in sandbox.control(id).records() {
            let text = record.to_string().to_lowercase();
            let mut rest = text.as_str();
            while let Some(at) = rest.find(prefix) {
                if let Some(marker) = rest.get(at..at + len) {
                    stored_markers.insert(marker.to_string());
                }
                rest = &rest[at + 1..];
            }
            if let Some(native) = native_id(&record) {
                in_store.insert(format!("{}:{native}", id.as_str()), text);
            }
        }
    }
    // Each contact's last-name writes in order; the current value is the latest marker seen.
    let mut chains: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, w) in writes.iter().enumerate() {
        if let (Some(id), Field::LastName) = (w.contact.as_deref(), w.field) {
            chains.entry(id).or_default().push(i);
        }
    }
    let current = |id: &str, text: &str| -> Option<u64> {
        chains
            .get(id)?
            .iter()
            .rev()
            .find(|i| text.contains(&writes[**i].marker))
            .map(|i| writes[*i].seq)
    };
    let dnc = dnc_entries(http, url, writes).await;

    let mut check = Check::default();
    for w in writes {
        let verdict = match w.ack {
            Ack::Acked => {
                check.acked += 1;
                match w.field {
                    Field::Reason => {
                        check.dnc_acked += 1;
                        match dnc.get(w.phone.as_deref().unwrap_or_default()) {
                            Some((reasons, propagated)) if reasons.contains(&w.marker) => {
                                if *propagated {
                                    check.dnc_propagated += 1;
                                }
                                check.visible += 1;
                                "visible"
                            }
                            Some(_) => {
                                check.lost += 1;
                                "lost"
                            }
                            None => {
                                check.unread += 1;
                                "not read back"
                            }
                        }
                    }
                    _ => {
                        let id = w.contact.as_deref().unwrap_or_default();
                        let gateway = through_gateway.get(id);
                        let store = in_store.get(id);
                        match (gateway, store) {
                            (None, _) => {
                                check.unread += 1;
                                "not read back"
                            }
                            (Some(gateway), store) => {
                                let gateway = gateway.as_deref().unwrap_or_default();
                                let store = store.map(String::as_str).unwrap_or_default();
                                let seen = |text: &str| match w.field {
                                    Field::Tag => text.contains(&w.marker).then_some(w.seq),
                                    _ => current(id, text),
                                };
                                // Mainbrainer's reads come from the gateway's ledger: its
                                // store is checked all the same.
                                match (seen(gateway), seen(store)) {
                                    (Some(g), Some(s)) if g == w.seq && s == w.seq => {
                                        check.visible += 1;
                                        "visible"
                                    }
                                    (Some(g), Some(s)) if g >= w.seq && s >= w.seq => {
                                        check.superseded += 1;
                                        "superseded"
                                    }
                                    _ => {
                                        check.lost += 1;
                                        "lost"
                                    }
                                }
                            }
                        }
                    }
                }
            }
            Ack::Unknown | Ack::Failed { .. } => {
                let landed = match w.field {
                    Field::Reason => dnc
                        .get(w.phone.as_deref().unwrap_or_default())
                        .is_some_and(|(reasons, _)| reasons.contains(&w.marker)),
                    _ => stored_markers.contains(&w.marker),
                };
                if w.ack == Ack::Unknown {
                    check.unknown += 1;
                    check.unknown_landed += usize::from(landed);
                } else {
                    let said = w.ack
                        == (Ack::Failed {
                            may_have_been_applied: true,
                        });
                    let count = if said {
                        &mut check.failed_maybe
                    } else {
                        &mut check.failed_not_applied
                    };
                    count[0] += 1;
                    count[1] += usize::from(landed);
                }
                if landed {
                    "not acknowledged, applied"
                } else {
                    "not acknowledged, not applied"
                }
            }
        };
        check.verdicts.push(verdict);
    }
    check
}

/// Per phone of a do-not-contact write: the reasons of its entries, and whether every
/// provider concerned has applied it.
async fn dnc_entries(
    http: &reqwest::Client,
    url: &str,
    writes: &[Write],
) -> HashMap<String, (Vec<String>, bool)> {
    let phones: BTreeSet<&str> = writes.iter().filter_map(|w| w.phone.as_deref()).collect();
    let phones: Vec<&str> = phones.into_iter().collect();
    let mut found = HashMap::new();
    for chunk in phones.chunks(READ_BACK_BATCH) {
        let fields: String = chunk
            .iter()
            .enumerate()
            .map(|(i, phone)| {
                format!("p{i}: doNotContactEntries(phone: {}) {{ nodes {{ reason results {{ status }} }} }} ", json!(phone))
            })
            .collect();
        let body = json!({ "query": format!("{{ {fields} }}") });
        let Sent::Answer { body, .. } = send(http, url, &body, None).await else {
            continue;
        };
        for (i, phone) in chunk.iter().enumerate() {
            let Some(nodes) = body["data"][format!("p{i}")]["nodes"].as_array() else {
                continue;
            };
            let reasons = nodes
                .iter()
                .filter_map(|n| n["reason"].as_str().map(String::from))
                .collect();
            let propagated = nodes.iter().all(|n| {
                n["results"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .all(|r| matches!(r["status"].as_str(), Some("APPLIED" | "UNSUPPORTED")))
            });
            found.insert(phone.to_string(), (reasons, propagated));
        }
    }
    found
}

struct Report<'a> {
    secs: u64,
    clients: usize,
    elapsed: Duration,
    /// Cores busy during the load: the machine, the gateway, this bench.
    cores: &'a [f64],
    served: &'a [Served],
    writes: &'a [Write],
    check: &'a Check,
    rss_start: f64,
    rss_samples: &'a [(u64, f64)],
    rss_end: f64,
    rss_peak: f64,
    metrics: &'a str,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

impl Report<'_> {
    fn render(&self) -> String {
        let mut out = String::new();
        let secs = self.elapsed.as_secs_f64();
        let _ = writeln!(
            out,
            "## contact-gateway soak, {}\n",
            chrono::Local::now().format("%Y-%m-%d %H:%M")
        );
        let _ = writeln!(
            out,
            "`cargo bench --bench soak` (SOAK_SECS={}, SOAK_CLIENTS={}): the release gateway, default config, the five sandbox simulators; {} answers 429 (`Retry-After: 1`) to {RATE_LIMITED_TIMES} requests every {} s, {} hangs {HANG_TIMES} requests every {} s (cut by the gateway's 10 s `timeout_ms`). Ran {secs:.0} s (the last requests finish after SOAK_SECS). The machine has {} cores, shared: meanwhile the gateway kept {:.2} busy, this bench (its clients and the simulators) {:.2}, other processes {:.2}.\n",
            self.secs,
            self.clients,
            RATE_LIMITED.as_str(),
            RATE_LIMITED_EVERY.as_secs(),
            HANGING.as_str(),
            HANG_EVERY.as_secs(),
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            self.cores[1],
            self.cores[2],
            (self.cores[0] - self.cores[1] - self.cores[2]).max(0.0),
        );
        let mut all: Vec<f64> = self.served.iter().map(|s| s.ms).collect();
        all.sort_by(f64::total_cmp);
        let ok = self
            .served
            .iter()
            .filter(|s| s.outcome.starts_with("ok"))
            .count();
        let unanswered = ["client timeout", "connection failed"];
        let answered = self
            .served
            .iter()
            .filter(|s| !unanswered.contains(&s.outcome.as_str()))
            .count();
        let c = self.check;
        let _ = writeln!(out, "| measure | value |\n|---|---:|");
        let rows = [
            (
                "requests sent / answered by the gateway",
                format!(
                    "{} / {}",
                    number(self.served.len() as f64, 0),
                    number(answered as f64, 0)
                ),
            ),
            (
                "requests answered per second",
                number(answered as f64 / secs, 0),
            ),
            (
                "answered ok (no error)",
                format!(
                    "{} ({:.1}%)",
                    number(ok as f64, 0),
                    100.0 * ok as f64 / self.served.len().max(1) as f64
                ),
            ),
            (
                "latency p50 / p99 (ms)",
                format!(
                    "{:.2} / {:.2}",
                    percentile(&all, 0.5),
                    percentile(&all, 0.99)
                ),
            ),
            (
                "gateway RSS at start / end / peak (MiB)",
                format!(
                    "{:.1} / {:.1} / {:.1}",
                    self.rss_start, self.rss_end, self.rss_peak
                ),
            ),
            ("writes acknowledged", number(c.acked as f64, 0)),
            (
                "… visible afterwards (gateway `noCache` and simulator store)",
                number(c.visible as f64, 0),
            ),
            (
                "… superseded by a later write of the same contact",
                number(c.superseded as f64, 0),
            ),
            ("… **lost**", number(c.lost as f64, 0)),
            ("… not read back", number(c.unread as f64, 0)),
            (
                "do-not-contact entries acknowledged / applied at every provider",
                format!("{} / {}", c.dnc_acked, c.dnc_propagated),
            ),
            (
                "writes failed saying `mayHaveBeenApplied` / found applied",
                format!("{} / {}", c.failed_maybe[0], c.failed_maybe[1]),
            ),
            (
                "writes failed otherwise (error or userError) / **found applied**",
                format!("{} / {}", c.failed_not_applied[0], c.failed_not_applied[1]),
            ),
            (
                "writes unknown (client gave up) / found applied",
                format!("{} / {}", c.unknown, c.unknown_landed),
            ),
        ];
        for (measure, value) in rows {
            let _ = writeln!(out, "| {measure} | {value} |");
        }
        let samples: Vec<String> = std::iter::once(format!("0 s {:.1}", self.rss_start))
            .chain(
                self.rss_samples
                    .iter()
                    .map(|(at, mib)| format!("{at} s {mib:.1}")),
            )
            .chain(std::iter::once(format!("end {:.1}", self.rss_end)))
            .collect();
        let _ = writeln!(out, "\nRSS (MiB) over the run: {}.\n", samples.join(", "));

        // By operation.
        let _ = writeln!(
            out,
            "| operation | requests | ok | p50 (ms) | p99 (ms) |\n|---|---:|---:|---:|---:|"
        );
        let mut by_op: BTreeMap<Op, Vec<&Served>> = BTreeMap::new();
        for s in self.served {
            by_op.entry(s.op).or_default().push(s);
        }
        for (op, served) in &by_op {
            let mut ms: Vec<f64> = served.iter().map(|s| s.ms).collect();
            ms.sort_by(f64::total_cmp);
            let ok = served
                .iter()
                .filter(|s| s.outcome.starts_with("ok"))
                .count();
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {:.2} | {:.2} |",
                op.name(),
                number(served.len() as f64, 0),
                number(ok as f64, 0),
                percentile(&ms, 0.5),
                percentile(&ms, 0.99)
            );
        }
        // By outcome.
        let _ = writeln!(
            out,
            "\n| outcome (GraphQL error codes, HTTP status, userErrors) | requests |\n|---|---:|"
        );
        let mut by_outcome: BTreeMap<&str, usize> = BTreeMap::new();
        for s in self.served {
            *by_outcome.entry(s.outcome.as_str()).or_default() += 1;
        }
        for (outcome, count) in &by_outcome {
            let _ = writeln!(out, "| {outcome} | {} |", number(*count as f64, 0));
        }
        // Writes by operation and provider.
        let _ = writeln!(
            out,
            "\n| write | provider | acknowledged | failed | unknown |\n|---|---|---:|---:|---:|"
        );
        let mut by_write: BTreeMap<(Op, &str), [usize; 3]> = BTreeMap::new();
        for w in self.writes {
            let cell = by_write
                .entry((w.op, w.provider.map_or("registry", |p| p.as_str())))
                .or_default();
            match w.ack {
                Ack::Acked => cell[0] += 1,
                Ack::Failed { .. } => cell[1] += 1,
                Ack::Unknown => cell[2] += 1,
            }
        }
        for ((op, provider), [acked, failed, unknown]) in &by_write {
            let _ = writeln!(
                out,
                "| `{}` | {provider} | {acked} | {failed} | {unknown} |",
                op.name()
            );
        }
        // The gateway's own count of its upstream calls.
        let _ = writeln!(out, "\nUpstream calls as the gateway counted them (`contact_gateway_upstream_requests_total`, all methods; `error`: no answer, e.g. a timeout):\n");
        let mut upstream: BTreeMap<(String, String), f64> = BTreeMap::new();
        for line in self.metrics.lines() {
            let Some(rest) = line.strip_prefix("contact_gateway_upstream_requests_total{") else {
                continue;
            };
            let Some((labels, value)) = rest.rsplit_once("} ") else {
                continue;
            };
            let label = |name: &str| {
                labels
                    .split(',')
                    .find_map(|l| l.strip_prefix(&format!("{name}=\"")))
                    .map(|v| v.trim_end_matches('"').to_string())
                    .unwrap_or_default()
            };
            *upstream
                .entry((label("provider"), label("status")))
                .or_default() += value.parse::<f64>().unwrap_or(0.0);
        }
        let _ = writeln!(out, "| provider | status: calls |\n|---|---|");
        let mut providers: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for ((provider, status), calls) in &upstream {
            providers
                .entry(provider)
                .or_default()
                .push(format!("{status}: {}", number(*calls, 0)));
        }
        for (provider, statuses) in providers {
            let _ = writeln!(out, "| {provider} | {} |", statuses.join(", "));
        }
        out
    }
}
