//! `Idempotency-Key` on mutations, through HTTP: one run per key and caller, the same answer
//! again (`Idempotent-Replayed: true`) with no provider call, 422 for another request under
//! the key, 409 while the first runs, and keys that outlive a restart of the gateway.

use crate::helpers::{
    error_codes, sandbox_config, spawn_app, spawn_app_with, store_urls, GatewayProcess, TestApp,
};
use contact_gateway::config::{ApiKey, AuthConfig, Role};
use contact_gateway::contact::ProviderId;
use contact_gateway::sandbox::{Sandbox, SimControl};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::time::Duration;

const CREATE: &str = "mutation($input: CreateContactInput!) { createContact(input: $input) { contact { id displayName } userErrors { code } } }";
const LIST: &str = "{ contacts(first: 2) { nodes { id } } }";

/// An answer as the client sees it.
#[derive(Debug)]
struct Answer {
    status: u16,
    content_type: String,
    replayed: Option<String>,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

/// POSTs `body` (raw JSON text) to `url`, with an `Idempotency-Key` and a bearer credential
/// when given.
async fn post(
    url: &str,
    body: &str,
    key: Option<&[u8]>,
    credential: Option<&str>,
    accept: Option<&str>,
) -> Answer {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(key) = key {
        request = request.header(
            "idempotency-key",
            reqwest::header::HeaderValue::from_bytes(key).unwrap(),
        );
    }
    if let Some(credential) = credential {
        request = request.bearer_auth(credential);
    }
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    let response = request.send().await.expect("gateway answers");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    Answer {
        status: response.status().as_u16(),
        content_type: header("content-type").unwrap_or_default(),
        replayed: header("idempotent-replayed"),
        body: response.text().await.unwrap(),
    }
}

fn create_body(email: &str) -> String {
    json!({ "query": CREATE, "variables": { "input": {
        "provider": "CONSUELO", "firstName": "Idem", "emails": [{ "address": email }] } } })
    .to_string()
}

/// A gateway keeping its state in `store` (the tests that run on every store).
async fn app_on(store: &str) -> TestApp {
    spawn_app_with(|c| c.store.url = Some(store.to_string())).await
}

fn url(app: &TestApp) -> String {
    format!("{}/graphql", app.address)
}

/// Creates Consuelo received.
fn creates(consuelo: &SimControl) -> usize {
    consuelo
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/contacts")
        .count()
}

#[tokio::test]
async fn the_same_create_twice_under_one_key_runs_once_and_replays_its_answer() {
    for (backend, store, _keep) in store_urls().await {
        let app = app_on(&store).await;
        eprintln!("{backend}");
        let consuelo = app.sandbox.control(ProviderId::Consuelo);
        let first = post(
            &url(&app),
            &create_body("once@example.com"),
            Some(b"create-once-1"),
            None,
            Some("application/graphql-response+json"),
        )
        .await;
        assert_eq!(first.status, 200, "{first:?}");
        assert!(
            first.json()["data"]["createContact"]["contact"]["id"].is_string(),
            "{first:?}"
        );
        assert_eq!(first.replayed, None, "the first answer ran");
        // The same request, its variables in another key order and spacing, asking another type.
        let again = r#"{ "variables": { "input": { "emails": [ { "address": "once@example.com" } ],
            "firstName": "Idem", "provider": "CONSUELO" } },
            "query": "mutation($input: CreateContactInput!) { createContact(input: $input) { contact { id displayName } userErrors { code } } }" }"#;
        let second = post(&url(&app), again, Some(b"create-once-1"), None, None).await;
        assert_eq!(second.replayed.as_deref(), Some("true"));
        assert_eq!(second.status, first.status);
        assert_eq!(
            second.content_type, first.content_type,
            "the saved answer's type"
        );
        assert_eq!(second.body, first.body, "the same answer, byte for byte");
        assert_eq!(creates(consuelo), 1, "one create upstream");
    }
}

#[tokio::test]
async fn the_same_key_with_another_request_is_422() {
    for (backend, store, _keep) in store_urls().await {
        let app = app_on(&store).await;
        eprintln!("{backend}");
        let consuelo = app.sandbox.control(ProviderId::Consuelo);
        let first = post(
            &url(&app),
            &create_body("a@example.com"),
            Some(b"k-reused"),
            None,
            None,
        )
        .await;
        assert_eq!(first.status, 200);
        let other = post(
            &url(&app),
            &create_body("b@example.com"),
            Some(b"k-reused"),
            None,
            None,
        )
        .await;
        assert_eq!(other.status, 422, "{other:?}");
        assert_eq!(error_codes(&other.json()), ["IDEMPOTENCY_KEY_REUSED"]);
        assert!(other.content_type.starts_with("application/json"));
        assert_eq!(creates(consuelo), 1, "the second was not sent");
    }
}

#[tokio::test]
async fn a_repeat_while_the_first_runs_is_409_and_then_replays() {
    for (backend, store, _keep) in store_urls().await {
        let app = app_on(&store).await;
        eprintln!("{backend}");
        let consuelo = app.sandbox.control(ProviderId::Consuelo);
        consuelo.set_latency(Duration::from_millis(600));
        let address = url(&app);
        let body = create_body("slow@example.com");
        let first = {
            let (address, body) = (address.clone(), body.clone());
            tokio::spawn(async move { post(&address, &body, Some(b"k-slow"), None, None).await })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        let during = post(&address, &body, Some(b"k-slow"), None, None).await;
        assert_eq!(during.status, 409, "{during:?}");
        assert_eq!(error_codes(&during.json()), ["IDEMPOTENCY_KEY_IN_FLIGHT"]);
        let first = first.await.unwrap();
        assert_eq!(first.status, 200);
        let after = post(&address, &body, Some(b"k-slow"), None, None).await;
        assert_eq!(after.replayed.as_deref(), Some("true"));
        assert_eq!(after.body, first.body);
        assert_eq!(creates(consuelo), 1);
    }
}

#[tokio::test]
async fn a_client_that_gives_up_gets_the_finished_answer_when_it_retries() {
    let app = spawn_app().await;
    let consuelo = app.sandbox.control(ProviderId::Consuelo);
    consuelo.set_latency(Duration::from_millis(500));
    let body = create_body("impatient@example.com");
    let gave_up = reqwest::Client::new()
        .post(url(&app))
        .header("content-type", "application/json")
        .header("idempotency-key", "k-impatient")
        .timeout(Duration::from_millis(100))
        .body(body.clone())
        .send()
        .await;
    assert!(gave_up.is_err(), "the client timed out");
    // The write goes on without the client; once it ends, the retry gets its answer.
    let mut retry = post(&url(&app), &body, Some(b"k-impatient"), None, None).await;
    for _ in 0..50 {
        if retry.status != 409 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        retry = post(&url(&app), &body, Some(b"k-impatient"), None, None).await;
    }
    assert_eq!(retry.status, 200, "{retry:?}");
    assert_eq!(retry.replayed.as_deref(), Some("true"));
    assert!(
        retry.json()["data"]["createContact"]["contact"]["id"].is_string(),
        "{retry:?}"
    );
    assert_eq!(creates(consuelo), 1);
}

#[tokio::test]
async fn two_callers_use_the_same_key_independently() {
    const KEY_A: &str = "idempotency-writer-a-0123456789";
    const KEY_B: &str = "idempotency-writer-b-0123456789";
    let writer = |name: &str, key: &str| ApiKey {
        name: name.into(),
        sha256: Sha256::digest(key.as_bytes()).into(),
        role: Role::Write,
    };
    let app = spawn_app_with(|c| {
        c.auth = Some(AuthConfig {
            keys: vec![writer("writer-a", KEY_A), writer("writer-b", KEY_B)],
            jwt: None,
            rate_per_sec_per_caller: None,
        })
    })
    .await;
    let consuelo = app.sandbox.control(ProviderId::Consuelo);
    let body = create_body("shared.key@example.com");
    let a = post(&url(&app), &body, Some(b"k-shared"), Some(KEY_A), None).await;
    let b = post(&url(&app), &body, Some(b"k-shared"), Some(KEY_B), None).await;
    assert_eq!((a.status, b.status), (200, 200));
    assert_eq!(
        (a.replayed.clone(), b.replayed.clone()),
        (None, None),
        "both ran"
    );
    assert_ne!(a.body, b.body, "two contacts");
    assert_eq!(creates(consuelo), 2);
    let a_again = post(&url(&app), &body, Some(b"k-shared"), Some(KEY_A), None).await;
    assert_eq!(a_again.replayed.as_deref(), Some("true"));
    assert_eq!(a_again.body, a.body, "each caller gets its own answer");
    let b_other = post(
        &url(&app),
        &create_body("other@example.com"),
        Some(b"k-shared"),
        Some(KEY_B),
        None,
    )
    .await;
    assert_eq!(b_other.status, 422);
    assert_eq!(creates(consuelo), 2);
}

#[tokio::test]
async fn a_key_on_a_query_is_ignored() {
    let app = spawn_app().await;
    let consuelo = app.sandbox.control(ProviderId::Consuelo);
    let list = json!({ "query": LIST }).to_string();
    for _ in 0..2 {
        let read = post(&url(&app), &list, Some(b"k-query"), None, None).await;
        assert_eq!(read.status, 200);
        assert_eq!(read.replayed, None, "a read runs every time");
    }
    let other = json!({ "query": "{ contacts(first: 1) { nodes { id } } }" }).to_string();
    let read = post(&url(&app), &other, Some(b"k-query"), None, None).await;
    assert_eq!(
        read.status, 200,
        "another query under the key is not refused: {read:?}"
    );
    // The queries did not take the key: a mutation under it runs.
    let write = post(
        &url(&app),
        &create_body("after.query@example.com"),
        Some(b"k-query"),
        None,
        None,
    )
    .await;
    assert_eq!((write.status, write.replayed), (200, None));
    assert_eq!(creates(consuelo), 1);
}

#[tokio::test]
async fn a_malformed_key_is_400_and_nothing_runs() {
    let app = spawn_app().await;
    let long = vec![b'k'; 256];
    for key in [&b""[..], &long, b"tab\there", "caf\u{e9}".as_bytes()] {
        let answer = post(
            &url(&app),
            &create_body("bad.key@example.com"),
            Some(key),
            None,
            None,
        )
        .await;
        assert_eq!(answer.status, 400, "{key:?}: {answer:?}");
        assert_eq!(error_codes(&answer.json()), ["BAD_REQUEST"]);
    }
    let longest = vec![b'k'; 255];
    let answer = post(
        &url(&app),
        &create_body("good.key@example.com"),
        Some(&longest),
        None,
        None,
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        creates(app.sandbox.control(ProviderId::Consuelo)),
        1,
        "only the valid one ran"
    );
}

#[tokio::test]
async fn a_request_refused_before_it_ran_leaves_its_key_free() {
    let app = spawn_app().await;
    // A field the schema does not have: validation fails, nothing executes.
    let invalid = json!({ "query": CREATE.replace("displayName", "noSuchField"),
        "variables": { "input": { "provider": "CONSUELO", "firstName": "Idem" } } })
    .to_string();
    let refused = post(&url(&app), &invalid, Some(b"k-fixed"), None, None).await;
    assert!(refused.json().get("data").is_none(), "{refused:?}");
    let fixed = post(
        &url(&app),
        &create_body("fixed@example.com"),
        Some(b"k-fixed"),
        None,
        None,
    )
    .await;
    assert_eq!(
        (fixed.status, fixed.replayed.clone()),
        (200, None),
        "{fixed:?}"
    );
    assert_eq!(creates(app.sandbox.control(ProviderId::Consuelo)), 1);
}

/// The real binary, stopped between the two requests: the key is in the store, so the
/// second gateway process answers from it and calls no provider.
#[tokio::test]
async fn a_key_outlives_a_restart_of_the_gateway() {
    for (backend, store, _keep) in store_urls().await {
        let sandbox = Sandbox::start().await.unwrap();
        let config = sandbox_config(&sandbox);
        let consuelo = sandbox.control(ProviderId::Consuelo);
        let body = create_body("restart@example.com");
        let gateway = GatewayProcess::start(&config, &store);
        let first = post(&gateway.url, &body, Some(b"k-restart"), None, None).await;
        assert_eq!(first.status, 200, "{backend}: {first:?}");
        drop(gateway); // killed
        let gateway = GatewayProcess::start(&config, &store);
        let second = post(&gateway.url, &body, Some(b"k-restart"), None, None).await;
        assert_eq!(
            second.replayed.as_deref(),
            Some("true"),
            "{backend}: {second:?}"
        );
        assert_eq!(second.body, first.body, "{backend}");
        assert_eq!(creates(consuelo), 1, "{backend}: one create upstream");
    }
}
