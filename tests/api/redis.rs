//! Two gateway processes sharing a real Redis (`[cache] redis_url`): a write through one is
//! seen through the other within a second, in its read cache, its response cache and the
//! do-not-contact registry; with Redis gone both keep serving. `TEST_REDIS_URL` names the
//! Redis (`.ci/run` starts one); unset, these tests are skipped with a printed reason.

use crate::helpers::{binary, store_urls, wait_for_url};
use contact_gateway::sandbox::Sandbox;
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Sophie Tran at Whautomate: her provider says nothing about consent, so the registry alone
/// answers `consent`.
const SOPHIE: &str = "whautomate:64f1a2b3c4d5e6f7a8b9c002";
const SOPHIE_PHONE: &str = "+61491570156";
const CONTACT: &str =
    "query($id: ID!) { contact(id: $id) { id company consent { doNotContact } } }";
/// The same read written differently: not the response cache's entry, the read cache's.
const CONTACT_AGAIN: &str = "query Again($id: ID!) { contact(id: $id) { company id } }";
const UPDATE: &str =
    "mutation($id: ID!, $company: String!) { updateContact(id: $id, input: { company: $company }) {
    contact { company } userErrors { code } } }";
const ADD: &str =
    "mutation($phone: String) { addToDoNotContact(input: { phone: $phone, providers: [] }) {
    userErrors { code } } }";
const ID: &str = "consuelo:contact_1004";

fn redis_url() -> Option<String> {
    match std::env::var("TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("skipping Redis: TEST_REDIS_URL is not set (.ci/run sets it)");
            None
        }
    }
}

struct Replica {
    child: Child,
    url: String,
}

impl Replica {
    fn start(sandbox: &Sandbox, store: &str, redis: &str) -> (Replica, tempfile::NamedTempFile) {
        let config = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        let text = format!(
            "{}\n[cache]\nredis_url = \"{redis}\"\n",
            sandbox.config_toml()
        );
        std::fs::write(config.path(), text).unwrap();
        let mut child = binary()
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--store",
                store,
                "--config",
            ])
            .arg(config.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let url = wait_for_url(&mut child);
        (Replica { child, url }, config)
    }

    /// The answer, and whether it came from the response cache.
    async fn ask(&self, query: &str, variables: Value) -> (Value, Option<String>) {
        let response = reqwest::Client::new()
            .post(&self.url)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .expect("the gateway answers");
        let cache = response
            .headers()
            .get("contact-gateway-cache")
            .map(|v| v.to_str().unwrap().to_string());
        let body: Value = response.json().await.expect("JSON");
        assert!(body.get("errors").is_none(), "unexpected errors: {body:#}");
        (body["data"].clone(), cache)
    }

    async fn company(&self, query: &str) -> String {
        let (data, _) = self.ask(query, json!({ "id": ID })).await;
        data["contact"]["company"].as_str().unwrap().to_string()
    }

    /// `GET /readyz`'s status.
    async fn readiness(&self) -> u16 {
        let url = self.url.replace("/graphql", "/readyz");
        reqwest::get(url).await.unwrap().status().as_u16()
    }

    async fn update(&self, company: &str) {
        let (data, _) = self
            .ask(UPDATE, json!({ "id": ID, "company": company }))
            .await;
        assert_eq!(data["updateContact"]["userErrors"], json!([]), "{data:#}");
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Asks `read` until it gives `want`, for at most `within`; how long it took.
async fn seen_within<F, Fut>(within: Duration, want: &str, mut read: F) -> Result<Duration, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = String>,
{
    let start = Instant::now();
    loop {
        let got = read().await;
        if got == want {
            return Ok(start.elapsed());
        }
        if start.elapsed() > within {
            return Err(got);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads `ID` through `b` both ways until each is a cached answer of `company`. Tried a few
/// times: a replica that (re)connects tells the others to retire what they cached, which may
/// land in between.
async fn cache_on(b: &Replica, company: &str) {
    for _ in 0..5 {
        for query in [CONTACT, CONTACT_AGAIN] {
            assert_eq!(b.company(query).await, company);
            assert_eq!(b.company(query).await, company);
        }
        let (_, cache) = b.ask(CONTACT, json!({ "id": ID })).await;
        if cache.as_deref() == Some("hit") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    panic!("B does not keep the answer");
}

/// A write through A, then B's response-cache answer and read-cache record show it in 1 s.
async fn write_through_a_is_fresh_on_b(a: &Replica, b: &Replica, company: &str) {
    a.update(company).await;
    assert_eq!(a.company(CONTACT).await, company, "strict on the writer");
    for query in [CONTACT, CONTACT_AGAIN] {
        let took = seen_within(Duration::from_secs(1), company, || b.company(query))
            .await
            .unwrap_or_else(|got| panic!("B still answers {got:?} to {query} 1 s after the write"));
        eprintln!("B saw the write in {took:?} ({query})");
    }
}

#[tokio::test]
async fn a_write_through_one_replica_is_read_fresh_through_the_other() {
    let Some(redis) = redis_url() else { return };
    for (backend, store, _keep) in store_urls().await {
        eprintln!("store: {backend}");
        let sandbox = Sandbox::start().await.unwrap();
        let (a, _ca) = Replica::start(&sandbox, &store, &redis);
        let (b, _cb) = Replica::start(&sandbox, &store, &redis);
        // Both subscribed (a replica retires what it cached when it subscribes).
        tokio::time::sleep(Duration::from_millis(500)).await;

        let before = b.company(CONTACT).await;
        cache_on(&b, &before).await;
        write_through_a_is_fresh_on_b(&a, &b, &format!("{before} {backend} 1")).await;

        // Consent: the registry, changed through A, read through B.
        let sophie = json!({ "id": SOPHIE });
        let (data, _) = b.ask(CONTACT, sophie.clone()).await;
        assert_eq!(data["contact"]["consent"], Value::Null, "{data:#}");
        let (_, cache) = b.ask(CONTACT, sophie.clone()).await;
        assert_eq!(cache.as_deref(), Some("hit"));
        let (added, _) = a.ask(ADD, json!({ "phone": SOPHIE_PHONE })).await;
        assert_eq!(added["addToDoNotContact"]["userErrors"], json!([]));
        let took = seen_within(Duration::from_secs(1), "true", || async {
            let (data, _) = b.ask(CONTACT, sophie.clone()).await;
            data["contact"]["consent"]["doNotContact"].to_string()
        })
        .await
        .unwrap_or_else(|got| panic!("B's consent.doNotContact is {got} 1 s after the add"));
        eprintln!("B saw the do-not-contact entry in {took:?}");
    }
}

/// A Redis of the test's own, on a fixed port so that it can come back where it was.
struct OwnRedis {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl OwnRedis {
    fn start() -> OwnRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let mut redis = OwnRedis {
            child: Self::spawn(port, &dir),
            port,
            dir,
        };
        redis.wait_ready();
        redis
    }

    fn spawn(port: u16, dir: &tempfile::TempDir) -> Child {
        Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (.ci/run installs it)")
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn restart(&mut self) {
        self.child = Self::spawn(self.port, &self.dir);
        self.wait_ready();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test]
async fn with_redis_gone_both_replicas_serve_and_catch_up_when_it_returns() {
    // CI's Redis stays up for the other tests: this one kills a Redis of its own.
    if redis_url().is_none() {
        return;
    }
    let mut redis = OwnRedis::start();
    let (_, store, _keep) = store_urls().await.remove(0);
    let sandbox = Sandbox::start().await.unwrap();
    let (a, _ca) = Replica::start(&sandbox, &store, &redis.url());
    let (b, _cb) = Replica::start(&sandbox, &store, &redis.url());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = b.company(CONTACT).await;
    cache_on(&b, &before).await;
    write_through_a_is_fresh_on_b(&a, &b, "Before the outage").await;

    assert_eq!(b.readiness().await, 200);
    redis.kill();
    // Not ready without Redis (the proxy takes it out of rotation), yet it serves.
    assert_eq!(b.readiness().await, 503);
    // B notices at once (the connection closes) and retires what it cached.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Both keep serving reads and writes; the writer is strict, the other bounded.
    cache_on(&b, "Before the outage").await;
    a.update("During the outage").await;
    assert_eq!(a.company(CONTACT).await, "During the outage");
    assert_eq!(a.company(CONTACT_AGAIN).await, "During the outage");
    let took = seen_within(Duration::from_secs(8), "During the outage", || {
        b.company(CONTACT)
    })
    .await
    .unwrap_or_else(|got| panic!("B still answers {got:?} 8 s into the outage"));
    eprintln!("without Redis, B saw the write in {took:?}");

    redis.restart();
    // Reconnected within a couple of seconds (retries every 0.5 s, publisher retries once).
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(b.readiness().await, 200);
    cache_on(&b, "During the outage").await;
    write_through_a_is_fresh_on_b(&a, &b, "After the outage").await;
}
