//! Two gateway processes sharing a real Redis (`[cache] redis_url`): a write through one is
//! seen through the other within a second, in its read cache, its response cache and the
//! do-not-contact registry; what one read is served to the other from Redis (contacts, whole
//! answers, persisted queries) with no upstream call; with Redis gone both keep serving, and
//! nothing kept before a write made during the outage is served after it. `TEST_REDIS_URL`
//! names the Redis (`.ci/run` starts one); unset, these tests are skipped with a printed reason.

use crate::helpers::{sandbox_config_with, store_urls, GatewayProcess};
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

/// A gateway process on the shared store and Redis.
struct Replica(GatewayProcess);

impl Replica {
    fn start(sandbox: &Sandbox, store: &str, redis: &str) -> (Replica, tempfile::NamedTempFile) {
        let config = sandbox_config_with(sandbox, &format!("[cache]\nredis_url = \"{redis}\""));
        (Replica(GatewayProcess::start(&config, store)), config)
    }

    /// The answer, and whether it came from the response cache.
    async fn ask(&self, query: &str, variables: Value) -> (Value, Option<String>) {
        self.post(&json!({ "query": query, "variables": variables }))
            .await
    }

    /// `body` posted: the answer's `data`, and whether it came from the response cache.
    async fn post(&self, body: &Value) -> (Value, Option<String>) {
        let response = reqwest::Client::new()
            .post(&self.0.url)
            .json(body)
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

    /// `contact_gateway_cache_requests_total{tier="redis",result}` on its `/metrics`.
    async fn redis_lookups(&self, result: &str) -> u64 {
        let url = self.0.url.replace("/graphql", "/metrics");
        let text = reqwest::get(url).await.unwrap().text().await.unwrap();
        let result = format!("result=\"{result}\"");
        text.lines()
            .filter(|line| line.starts_with("contact_gateway_cache_requests_total{"))
            .filter(|line| line.contains("tier=\"redis\"") && line.contains(&result))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .map(|n| n as u64)
            .sum()
    }

    /// `GET /readyz`'s status.
    async fn readiness(&self) -> u16 {
        let url = self.0.url.replace("/graphql", "/readyz");
        reqwest::get(url).await.unwrap().status().as_u16()
    }

    async fn update(&self, company: &str) {
        let (data, _) = self
            .ask(UPDATE, json!({ "id": ID, "company": company }))
            .await;
        assert_eq!(data["updateContact"]["userErrors"], json!([]), "{data:#}");
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

/// Upstream calls to Consuelo (where `ID` lives) so far.
fn consuelo_calls(sandbox: &Sandbox) -> u64 {
    sandbox
        .control(contact_gateway::contact::ProviderId::Consuelo)
        .request_count()
}

/// Two replicas on `redis`, both subscribed and trusting the shared tier.
async fn two_replicas(
    sandbox: &Sandbox,
    store: &str,
    redis: &str,
) -> (Replica, Replica, [tempfile::NamedTempFile; 2]) {
    let (a, ca) = Replica::start(sandbox, store, redis);
    let (b, cb) = Replica::start(sandbox, store, redis);
    // Subscribed, and the shared tier trusted (checked each second once connected).
    tokio::time::sleep(Duration::from_secs(2)).await;
    (a, b, [ca, cb])
}

#[tokio::test]
async fn what_one_replica_read_is_served_by_the_other_from_redis() {
    let Some(redis) = redis_url() else { return };
    let (_, store, _keep) = store_urls().await.remove(0);
    let sandbox = Sandbox::start().await.unwrap();
    let (a, b, _configs) = two_replicas(&sandbox, &store, &redis).await;

    // A contact read through A is served to B by Redis's contact tier: B has no copy, and the
    // query is another document, so neither response cache has its answer.
    let company = a.company(CONTACT).await;
    let calls = consuelo_calls(&sandbox);
    let hits = b.redis_lookups("hit").await;
    assert_eq!(b.company(CONTACT_AGAIN).await, company);
    assert_eq!(consuelo_calls(&sandbox), calls, "B asked the provider");
    assert!(
        b.redis_lookups("hit").await > hits,
        "B's tier=\"redis\" hit counter did not move"
    );

    // A whole answer given by A is given by B as a hit.
    let sophie = json!({ "id": SOPHIE });
    let (through_a, cache) = a.ask(CONTACT, sophie.clone()).await;
    assert_eq!(cache.as_deref(), Some("miss"));
    let calls = sandbox
        .control(contact_gateway::contact::ProviderId::Whautomate)
        .request_count();
    let (through_b, cache) = b.ask(CONTACT, sophie.clone()).await;
    assert_eq!(through_b, through_a);
    assert_eq!(cache.as_deref(), Some("hit"), "B did not answer from Redis");
    let after = sandbox
        .control(contact_gateway::contact::ProviderId::Whautomate)
        .request_count();
    assert_eq!(after, calls, "B asked the provider");
    // Kept by B now: a hit again, from its own tier.
    let (_, cache) = b.ask(CONTACT, sophie).await;
    assert_eq!(cache.as_deref(), Some("hit"));
}

#[tokio::test]
async fn a_query_persisted_through_one_replica_is_known_by_hash_to_the_other() {
    let Some(redis) = redis_url() else { return };
    let (_, store, _keep) = store_urls().await.remove(0);
    let sandbox = Sandbox::start().await.unwrap();
    let (a, b, _configs) = two_replicas(&sandbox, &store, &redis).await;
    use sha2::Digest;
    let query = "query Persisted { providers { id } }";
    let hash = format!("{:x}", sha2::Sha256::digest(query.as_bytes()));
    let persisted = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });
    let (registered, _) = a
        .post(&json!({ "query": query, "extensions": persisted }))
        .await;
    let (by_hash, _) = b.post(&json!({ "extensions": persisted })).await;
    assert_eq!(by_hash, registered);
}

#[tokio::test]
async fn a_write_through_one_replica_is_read_fresh_at_once_where_the_other_had_no_copy() {
    let Some(redis) = redis_url() else { return };
    let (_, store, _keep) = store_urls().await.remove(0);
    let sandbox = Sandbox::start().await.unwrap();
    let (a, b, _configs) = two_replicas(&sandbox, &store, &redis).await;
    // Redis holds the contact and both answers, as read through A; B has read nothing.
    let before = a.company(CONTACT).await;
    a.company(CONTACT_AGAIN).await;
    a.update("Written through A").await;
    // At once: B has no copy of its own, and what Redis holds was read before the write.
    assert_eq!(b.company(CONTACT_AGAIN).await, "Written through A");
    assert_eq!(b.company(CONTACT).await, "Written through A");
    assert_ne!(before, "Written through A");
    // And what B read after the write is served to A from Redis, fresh.
    assert_eq!(a.company(CONTACT_AGAIN).await, "Written through A");
}

#[tokio::test]
async fn a_write_made_while_redis_was_down_outdates_what_redis_kept_before() {
    if redis_url().is_none() {
        return;
    }
    let mut redis = OwnRedis::start();
    let (_, store, _keep) = store_urls().await.remove(0);
    let sandbox = Sandbox::start().await.unwrap();
    let (a, b, _configs) = two_replicas(&sandbox, &store, &redis.url()).await;
    // Redis holds the contact and the answer to CONTACT (read through A); B has no copy.
    let before = a.company(CONTACT).await;
    assert_ne!(before, "During the outage");
    // Redis comes back with what it held (a snapshot), as after a restart with persistence.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("SAVE")
        .query_async::<()>(&mut connection)
        .await
        .unwrap();
    drop(connection);
    redis.kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.update("During the outage").await;
    assert_eq!(a.company(CONTACT).await, "During the outage");
    redis.restart();
    // Both reconnected (retries every 0.5 s) and trusting the tier again (checked each second).
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(b.readiness().await, 200);
    // B had no copy of its own: only Redis could give it the pre-write contact or answer.
    assert_eq!(b.company(CONTACT_AGAIN).await, "During the outage");
    assert_eq!(b.company(CONTACT).await, "During the outage");
    assert_eq!(a.company(CONTACT_AGAIN).await, "During the outage");
}

/// Read-your-writes on the writer while both replicas keep reading (and filling Redis with
/// what they read, racing the writes): every read through A after A acknowledged a write
/// shows it, whichever tier answers.
#[tokio::test]
async fn the_writer_reads_its_writes_while_both_replicas_fill_redis() {
    let Some(redis) = redis_url() else { return };
    let (_, store, _keep) = store_urls().await.remove(0);
    let sandbox = Sandbox::start().await.unwrap();
    let (a, b, _configs) = two_replicas(&sandbox, &store, &redis).await;
    let a = std::sync::Arc::new(a);
    let b = std::sync::Arc::new(b);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = [a.clone(), b.clone(), b.clone()]
        .into_iter()
        .enumerate()
        .map(|(n, replica)| {
            let stop = stop.clone();
            tokio::spawn(async move {
                let query = [CONTACT, CONTACT_AGAIN][n % 2];
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    replica.company(query).await;
                }
            })
        })
        .collect();
    for n in 0..15 {
        let company = format!("Write {n}");
        a.update(&company).await;
        assert_eq!(a.company(CONTACT_AGAIN).await, company, "write {n}");
        assert_eq!(a.company(CONTACT).await, company, "write {n}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for reader in readers {
        reader.await.unwrap();
    }
    // B follows within a second.
    seen_within(Duration::from_secs(1), "Write 14", || {
        b.company(CONTACT_AGAIN)
    })
    .await
    .unwrap();
}
