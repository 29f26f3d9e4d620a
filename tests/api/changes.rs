//! Change events through HTTP: `contactChanged` over WebSocket (graphql-transport-ws) and SSE,
//! across gateway processes sharing a store, from pollers of changes made at a provider
//! directly, and webhooks signed and retried until delivered, across a restart.

use crate::helpers::{
    binary, sandbox_config, spawn_app, spawn_app_with, store_urls, terminate, wait_for_url,
    GatewayProcess,
};
use contact_gateway::config::{ApiKey, AuthConfig, Role};
use contact_gateway::contact::ProviderId;
use contact_gateway::sandbox::Sandbox;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const CHANGED: &str = "subscription($providers: [ProviderId!], $filter: ContactFilter) {
    contactChanged(providers: $providers, filter: $filter) {
        kind id at origin provider contact { id company tags } doNotContact { phone listed }
    } }";
const UPDATE: &str = "mutation($id: ID!, $company: String) {
    updateContact(id: $id, input: { company: $company }) { contact { id company } userErrors { code message } } }";
/// A seeded Consuelo contact.
const CONSUELO_CONTACT: &str = "consuelo:contact_1002";

/// A graphql-transport-ws client holding one subscription.
pub(crate) struct WsSubscriber {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// The `ws://` url of a gateway's `/graphql`, from its `http://` address or GraphQL url.
fn ws_url(http: &str) -> String {
    let base = http.trim_end_matches("/graphql");
    format!("{}/graphql", base.replacen("http://", "ws://", 1))
}

/// Opens a WebSocket (an `Authorization` header on the upgrade when `header` is given),
/// sends `connection_init` with `payload`; the socket, or how the server closed it.
async fn ws_connect(
    http: &str,
    header: Option<&str>,
    payload: Value,
) -> Result<WebSocketStream<MaybeTlsStream<TcpStream>>, (u16, String)> {
    let mut request = ws_url(http).into_client_request().unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    if let Some(header) = header {
        request
            .headers_mut()
            .insert("authorization", header.parse().unwrap());
    }
    let (mut socket, response) = tokio_tungstenite::connect_async(request)
        .await
        .expect("the upgrade is accepted");
    assert_eq!(
        response.headers()["sec-websocket-protocol"],
        "graphql-transport-ws"
    );
    let init = json!({ "type": "connection_init", "payload": payload });
    socket.send(Message::text(init.to_string())).await.unwrap();
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("the server answers connection_init")
            .expect("the socket stays open")
            .unwrap();
        match message {
            Message::Text(text) => {
                let message: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(message["type"], "connection_ack", "{message}");
                return Ok(socket);
            }
            Message::Close(frame) => {
                let frame = frame.expect("a close frame with a code");
                return Err((u16::from(frame.code), frame.reason.to_string()));
            }
            _ => continue,
        }
    }
}

impl WsSubscriber {
    /// Subscribes to `contactChanged` with `variables` over an open, acknowledged socket.
    async fn start(
        socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
        variables: Value,
    ) -> WsSubscriber {
        WsSubscriber::start_with(socket, CHANGED, variables).await
    }

    /// Runs `query` (a subscription) with `variables` over an open, acknowledged socket.
    async fn start_with(
        mut socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
        query: &str,
        variables: Value,
    ) -> WsSubscriber {
        let subscribe = json!({ "id": "1", "type": "subscribe",
            "payload": { "query": query, "variables": variables } });
        socket
            .send(Message::text(subscribe.to_string()))
            .await
            .unwrap();
        WsSubscriber { socket }
    }

    pub(crate) async fn open(http: &str, variables: Value) -> WsSubscriber {
        let socket = ws_connect(http, None, json!({})).await.unwrap();
        WsSubscriber::start(socket, variables).await
    }

    /// The next protocol message (`next`, `complete`, `error`…) within `wait`; `None` when
    /// none came or the socket closed.
    async fn message(&mut self, wait: Duration) -> Option<Value> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.socket.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => {
                    let message: Value = serde_json::from_str(&text).unwrap();
                    if message["type"] == "ping" || message["type"] == "pong" {
                        continue;
                    }
                    return Some(message);
                }
                Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) | Err(_) => {
                    return None
                }
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// The next change within `wait`.
    pub(crate) async fn change(&mut self, wait: Duration) -> Option<Value> {
        let message = self.message(wait).await?;
        assert_eq!(message["type"], "next", "{message}");
        assert!(message["payload"].get("errors").is_none(), "{message}");
        Some(message["payload"]["data"]["contactChanged"].clone())
    }
}

/// A GraphQL-over-SSE client (distinct connections) holding one subscription.
struct SseSubscriber {
    response: reqwest::Response,
    buffer: String,
}

impl SseSubscriber {
    async fn open(graphql_url: &str, variables: Value, credential: Option<&str>) -> SseSubscriber {
        let mut request = reqwest::Client::new()
            .post(graphql_url)
            .header("accept", "text/event-stream")
            .json(&json!({ "query": CHANGED, "variables": variables }));
        if let Some(credential) = credential {
            request = request.bearer_auth(credential);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        SseSubscriber {
            response,
            buffer: String::new(),
        }
    }

    /// The next event (its name and data) within `wait`, keep-alive comments skipped.
    async fn event(&mut self, wait: Duration) -> Option<(String, String)> {
        let deadline = Instant::now() + wait;
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut name = String::from("message");
                let mut data = Vec::new();
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        name = value.trim().to_string();
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push(value.strip_prefix(' ').unwrap_or(value).to_string());
                    }
                }
                if data.is_empty() && name == "message" {
                    continue; // a keep-alive comment
                }
                return Some((name, data.join("\n")));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.response.chunk()).await {
                Ok(Ok(Some(chunk))) => self.buffer.push_str(&String::from_utf8_lossy(&chunk)),
                _ => return None,
            }
        }
    }

    async fn change(&mut self, wait: Duration) -> Option<Value> {
        let (name, data) = self.event(wait).await?;
        assert_eq!(name, "next", "{data}");
        let result: Value = serde_json::from_str(&data).unwrap();
        assert!(result.get("errors").is_none(), "{result}");
        Some(result["data"]["contactChanged"].clone())
    }
}

/// A subscription's client, whatever its transport.
pub(crate) trait Subscriber {
    /// The next change within `wait`.
    async fn change(&mut self, wait: Duration) -> Option<Value>;
}

impl Subscriber for WsSubscriber {
    async fn change(&mut self, wait: Duration) -> Option<Value> {
        WsSubscriber::change(self, wait).await
    }
}

impl Subscriber for SseSubscriber {
    async fn change(&mut self, wait: Duration) -> Option<Value> {
        SseSubscriber::change(self, wait).await
    }
}

/// Updates `id`'s company through the gateway at `graphql_url` (with `credential`), once per
/// try, until `receive` yields a change of `id`: a subscription registers a moment after its
/// request, so a first write may come before it. Returns the change, the company it shows,
/// and the time from the write's answer to the change.
pub(crate) async fn update_until_received(
    graphql_url: &str,
    credential: Option<&str>,
    id: &str,
    subscriber: &mut impl Subscriber,
) -> (Value, String, Duration) {
    let client = reqwest::Client::new();
    for attempt in 0..10 {
        let company = format!("Changed {attempt} {}", std::process::id());
        let mut request = client
            .post(graphql_url)
            .json(&json!({ "query": UPDATE, "variables": { "id": id, "company": company } }));
        if let Some(credential) = credential {
            request = request.bearer_auth(credential);
        }
        let body: Value = request.send().await.unwrap().json().await.unwrap();
        assert_eq!(
            body["data"]["updateContact"]["contact"]["company"], company,
            "{body}"
        );
        let written = Instant::now();
        while let Some(change) = subscriber.change(Duration::from_secs(2)).await {
            // A late change of an earlier try is not this write's.
            if change["id"] == id && change["contact"]["company"] == company.as_str() {
                return (change, company, written.elapsed());
            }
        }
    }
    panic!("no change of {id} reached the subscriber");
}

#[tokio::test]
async fn a_websocket_subscriber_receives_an_update_made_through_the_gateway() {
    let app = spawn_app().await;
    let mut subscriber = WsSubscriber::open(&app.address, json!({})).await;
    let (change, company, _) = update_until_received(
        &format!("{}/graphql", app.address),
        None,
        CONSUELO_CONTACT,
        &mut subscriber,
    )
    .await;
    assert_eq!(change["kind"], "UPDATED");
    assert_eq!(change["origin"], "GATEWAY");
    assert_eq!(change["provider"], "CONSUELO");
    assert_eq!(change["contact"]["id"], CONSUELO_CONTACT);
    assert_eq!(change["contact"]["company"], company.as_str());
    assert!(chrono::DateTime::parse_from_rfc3339(change["at"].as_str().unwrap()).is_ok());
    assert!(change["doNotContact"].is_null());
}

#[tokio::test]
async fn an_sse_subscriber_receives_an_update_and_providers_narrow_what_it_gets() {
    let app = spawn_app().await;
    let graphql = format!("{}/graphql", app.address);
    // Only MagicBlocks: a Consuelo change must not reach it.
    let mut magicblocks =
        SseSubscriber::open(&graphql, json!({ "providers": ["MAGICBLOCKS"] }), None).await;
    let mut consuelo =
        SseSubscriber::open(&graphql, json!({ "providers": ["CONSUELO"] }), None).await;
    let (change, company, _) =
        update_until_received(&graphql, None, CONSUELO_CONTACT, &mut consuelo).await;
    assert_eq!(change["kind"], "UPDATED");
    assert_eq!(change["contact"]["company"], company.as_str());
    assert_eq!(
        magicblocks.event(Duration::from_millis(500)).await,
        None,
        "a MagicBlocks subscriber gets no Consuelo change"
    );
}

#[tokio::test]
async fn every_kind_of_write_is_published_and_filters_narrow_by_the_contact() {
    let app = spawn_app().await;
    let graphql = format!("{}/graphql", app.address);
    let email = "changes.every.kind@example.com";
    let mut all = WsSubscriber::open(&app.address, json!({})).await;
    let mut by_email = WsSubscriber::open(
        &app.address,
        json!({ "filter": { "email": email.to_uppercase() } }),
    )
    .await;
    // Both subscriptions are registered once a write reaches each of them.
    update_until_received(&graphql, None, CONSUELO_CONTACT, &mut all).await;
    let created = app
        .data(
            "mutation($email: String!) { createContact(input: { provider: CONSUELO, firstName: \"Every\",
                emails: [{ address: $email }] }) { contact { id } } }",
            json!({ "email": email }),
        )
        .await;
    let id = created["createContact"]["contact"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.data(UPDATE, json!({ "id": id, "company": "Every Kind Ltd" }))
        .await;
    app.data(
        "mutation($id: ID!) { deleteContact(id: $id) { deletedId } }",
        json!({ "id": id }),
    )
    .await;
    app.data(
        "mutation($email: String) { addToDoNotContact(input: { email: $email, reason: \"asked\" }) { entry { email } } }",
        json!({ "email": email }),
    )
    .await;
    app.data(
        "mutation($email: String) { removeFromDoNotContact(input: { email: $email }) { entry { email } } }",
        json!({ "email": email }),
    )
    .await;
    app.data(
        "mutation($csv: String!) { importContacts(provider: CONSUELO, csv: $csv) { createdCount } }",
        json!({ "csv": "firstName,email\nImported,imported.changes@example.com\n" }),
    )
    .await;
    let tagged = "whautomate:64f1a2b3c4d5e6f7a8b9c004";
    app.data(
        "mutation($id: ID!) { addTags(id: $id, tags: [\"vip\"]) { contact { id } } }",
        json!({ "id": tagged }),
    )
    .await;

    let mut kinds = Vec::new();
    while let Some(change) = all.change(Duration::from_secs(2)).await {
        kinds.push((
            change["kind"].as_str().unwrap().to_string(),
            change["id"].as_str().unwrap().to_string(),
        ));
        if change["contact"]["id"] == json!(null) && change["kind"] == "DO_NOT_CONTACT" {
            assert_eq!(change["provider"], Value::Null);
        }
    }
    let names: Vec<&str> = kinds.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "CREATED",
            "UPDATED",
            "DELETED",
            "DO_NOT_CONTACT",
            "DO_NOT_CONTACT",
            "CREATED",
            "UPDATED"
        ],
        "{kinds:?}"
    );
    assert_eq!(kinds[6].1, tagged);
    assert_eq!(kinds[0].1, id);
    assert_eq!(kinds[2].1, id);
    assert!(kinds[3].1.starts_with("dnc:"));

    // The email filter: the contact's create and update (its email matches), its delete (no
    // contact to check), the registry changes of its email; not the import or the tags.
    let mut filtered = Vec::new();
    while let Some(change) = by_email.change(Duration::from_millis(500)).await {
        filtered.push(change);
    }
    let names: Vec<&str> = filtered
        .iter()
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "CREATED",
            "UPDATED",
            "DELETED",
            "DO_NOT_CONTACT",
            "DO_NOT_CONTACT"
        ],
        "{filtered:?}"
    );
    assert_eq!(filtered[1]["contact"]["company"], "Every Kind Ltd");
    assert_eq!(filtered[3]["doNotContact"]["listed"], true);
    assert_eq!(filtered[4]["doNotContact"]["listed"], false);
}

const SUBSCRIBER_KEY: &str = "test-subscriber-key-0123456789";

fn read_only_auth(config: &mut contact_gateway::config::Config) {
    config.auth = Some(AuthConfig {
        keys: vec![ApiKey {
            name: "subscriber".into(),
            sha256: Sha256::digest(SUBSCRIBER_KEY.as_bytes()).into(),
            role: Role::Read,
        }],
        jwt: None,
        rate_per_sec_per_caller: None,
    });
}

#[tokio::test]
async fn with_auth_a_websocket_needs_a_credential_in_connection_init_or_the_upgrade() {
    let app = spawn_app_with(read_only_auth).await;
    let bearer = format!("Bearer {SUBSCRIBER_KEY}");
    // None at all: closed with 4403, UNAUTHENTICATED.
    let (code, reason) = ws_connect(&app.address, None, json!({})).await.unwrap_err();
    assert_eq!(code, 4403);
    assert!(reason.starts_with("UNAUTHENTICATED"), "{reason}");
    let (code, _) = ws_connect(
        &app.address,
        None,
        json!({ "Authorization": "Bearer not-a-key" }),
    )
    .await
    .unwrap_err();
    assert_eq!(code, 4403);
    // In connection_init (either spelling), or on the upgrade request.
    ws_connect(&app.address, None, json!({ "Authorization": bearer }))
        .await
        .unwrap();
    ws_connect(&app.address, None, json!({ "authorization": bearer }))
        .await
        .unwrap();
    let socket = ws_connect(&app.address, Some(&bearer), json!({}))
        .await
        .unwrap();
    // A read credential may subscribe; a mutation over the socket is refused.
    let mut subscriber = WsSubscriber::start(socket, json!({})).await;
    let mutation = json!({ "id": "2", "type": "subscribe",
        "payload": { "query": "mutation { deleteContact(id: \"consuelo:contact_1002\") { deletedId } }" } });
    subscriber
        .socket
        .send(Message::text(mutation.to_string()))
        .await
        .unwrap();
    let refused = subscriber.message(Duration::from_secs(5)).await.unwrap();
    assert_eq!(refused["id"], "2");
    assert_eq!(
        refused["payload"]["errors"][0]["extensions"]["code"], "METHOD_NOT_ALLOWED",
        "{refused}"
    );
    assert_eq!(
        app.sandbox.control(ProviderId::Consuelo).request_count(),
        0,
        "nothing was sent upstream"
    );

    // SSE takes the header: without one, 401 like any request.
    let response = reqwest::Client::new()
        .post(format!("{}/graphql", app.address))
        .header("accept", "text/event-stream")
        .json(&json!({ "query": CHANGED }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
    SseSubscriber::open(
        &format!("{}/graphql", app.address),
        json!({}),
        Some(SUBSCRIBER_KEY),
    )
    .await;
}

/// Two gateway processes on one store (SQLite, and PostgreSQL when `TEST_DATABASE_URL` is
/// set): a write through one reaches a subscriber of the other, within a second.
#[tokio::test]
async fn a_write_through_one_replica_reaches_a_subscriber_of_another() {
    for (backend, store, _keep) in store_urls().await {
        let sandbox = Sandbox::start().await.unwrap();
        let config = sandbox_config(&sandbox);
        let a = GatewayProcess::start(&config, &store);
        let b = GatewayProcess::start(&config, &store);
        let mut on_b = WsSubscriber::open(&b.url, json!({ "providers": ["CONSUELO"] })).await;
        let mut on_b_sse = SseSubscriber::open(&b.url, json!({}), None).await;
        let (change, company, latency) =
            update_until_received(&a.url, None, CONSUELO_CONTACT, &mut on_b).await;
        eprintln!(
            "{backend}: a write through one replica reached another's subscriber in {latency:?}"
        );
        assert_eq!(change["contact"]["company"], company.as_str(), "{backend}");
        assert_eq!(change["origin"], "GATEWAY");
        assert!(
            latency < Duration::from_secs(1),
            "{backend}: {latency:?} from the write's answer to the other replica's subscriber"
        );
        // The SSE subscriber on B got it too (after any earlier tries' changes).
        let mut seen = None;
        while let Some(change) = on_b_sse.change(Duration::from_secs(3)).await {
            if change["contact"]["company"] == company.as_str() {
                seen = Some(change);
                break;
            }
        }
        assert!(seen.is_some(), "{backend}: the SSE subscriber on B got it");
    }
}

/// The Consuelo simulator's own API, as someone changing a contact there directly uses it.
struct AtConsuelo {
    base: String,
    client: reqwest::Client,
}

impl AtConsuelo {
    fn of(sandbox: &Sandbox) -> AtConsuelo {
        AtConsuelo {
            base: sandbox.base_url(ProviderId::Consuelo),
            client: reqwest::Client::new(),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(contact_gateway::sandbox::api_key(ProviderId::Consuelo));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        response.json().await.unwrap()
    }
}

/// Listings of Consuelo from its start (`offset` 0), as the simulator saw them: one per poll.
fn polls_seen(sandbox: &Sandbox) -> usize {
    sandbox
        .control(ProviderId::Consuelo)
        .requests()
        .iter()
        .filter(|r| {
            r.method == "GET"
                && r.path == "/v1/contacts"
                && r.query.iter().any(|(k, v)| k == "offset" && v == "0")
        })
        .count()
}

/// Waits until the simulator has seen `n` polls.
async fn wait_for_polls(sandbox: &Sandbox, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while polls_seen(sandbox) < n {
        assert!(Instant::now() < deadline, "the poller did not poll");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The changes a subscriber gets within `wait`, until one satisfies `wanted`.
async fn change_where(
    subscriber: &mut WsSubscriber,
    wait: Duration,
    wanted: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + wait;
    let mut seen = Vec::new();
    while let Some(change) = subscriber
        .change(deadline.saturating_duration_since(Instant::now()))
        .await
    {
        if wanted(&change) {
            return change;
        }
        seen.push(change);
    }
    panic!("no such change within {wait:?}; got {seen:#?}");
}

fn poll_consuelo_every_second(config: &mut contact_gateway::config::Config) {
    let consuelo = config.providers.get_mut(&ProviderId::Consuelo).unwrap();
    consuelo.poll_interval = Some(Duration::from_secs(1));
}

#[tokio::test]
async fn changes_made_at_a_provider_directly_reach_the_subscriber_through_the_poller() {
    let app = spawn_app_with(poll_consuelo_every_second).await;
    let sandbox = &app.sandbox;
    let mut subscriber =
        WsSubscriber::open(&app.address, json!({ "providers": ["CONSUELO"] })).await;
    // The first poll records the baseline; the second compares.
    wait_for_polls(sandbox, 2).await;
    let consuelo = AtConsuelo::of(sandbox);

    consuelo
        .call(
            reqwest::Method::PATCH,
            "/v1/contacts/contact_1003",
            Some(json!({ "company": "Changed At Consuelo" })),
        )
        .await;
    let wait = Duration::from_secs(5);
    let updated = change_where(&mut subscriber, wait, |c| {
        c["id"] == "consuelo:contact_1003"
    })
    .await;
    assert_eq!(updated["kind"], "UPDATED");
    assert_eq!(updated["origin"], "POLLER");
    assert_eq!(updated["contact"]["company"], "Changed At Consuelo");

    let created = consuelo
        .call(
            reqwest::Method::POST,
            "/v1/contacts",
            Some(json!({ "workspaceId": contact_gateway::sandbox::CONSUELO_WORKSPACE_ID, "firstName": "Direct", "email": "direct.poll@example.com" })),
        )
        .await;
    let native = created["data"]["id"].as_str().unwrap().to_string();
    let id = format!("consuelo:{native}");
    let change = change_where(&mut subscriber, wait, |c| c["id"] == id.as_str()).await;
    assert_eq!(
        (&change["kind"], &change["origin"]),
        (&json!("CREATED"), &json!("POLLER"))
    );

    consuelo
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/contacts/{native}"),
            None,
        )
        .await;
    let change = change_where(&mut subscriber, wait, |c| c["id"] == id.as_str()).await;
    assert_eq!(change["kind"], "DELETED");
    assert_eq!(change["origin"], "POLLER");
    assert!(change["contact"].is_null());

    // A write through the gateway is published once, by the gateway: the polls after it do
    // not report it again.
    let graphql = format!("{}/graphql", app.address);
    let (change, _, _) =
        update_until_received(&graphql, None, CONSUELO_CONTACT, &mut subscriber).await;
    assert_eq!(change["origin"], "GATEWAY");
    let polls = polls_seen(sandbox);
    wait_for_polls(sandbox, polls + 2).await;
    let mut later = Vec::new();
    while let Some(change) = subscriber.change(Duration::from_millis(300)).await {
        later.push(change);
    }
    assert!(
        later.iter().all(|c| c["origin"] != "POLLER"),
        "the poller reported a write made through the gateway again: {later:#?}"
    );
}

/// Two gateway processes with a Consuelo poller on one store: one of them polls at a time,
/// and what it finds reaches the subscribers of both.
#[tokio::test]
async fn one_replica_polls_at_a_time_and_every_replica_gets_what_it_finds() {
    for (backend, store, _keep) in store_urls().await {
        let sandbox = Sandbox::start().await.unwrap();
        let config = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        let text = sandbox.config_toml().replacen(
            "[providers.consuelo]\n",
            "[providers.consuelo]\npoll_interval_secs = 1\n",
            1,
        );
        std::fs::write(config.path(), text).unwrap();
        let a = GatewayProcess::start(&config, &store);
        let b = GatewayProcess::start(&config, &store);
        let mut on_a = WsSubscriber::open(&a.url, json!({})).await;
        let mut on_b = WsSubscriber::open(&b.url, json!({})).await;
        wait_for_polls(&sandbox, 2).await;
        let started = Instant::now();
        let before = polls_seen(&sandbox);
        AtConsuelo::of(&sandbox)
            .call(
                reqwest::Method::PATCH,
                "/v1/contacts/contact_1004",
                Some(json!({ "notes": "changed at Consuelo" })),
            )
            .await;
        let wait = Duration::from_secs(5);
        for subscriber in [&mut on_a, &mut on_b] {
            let change =
                change_where(subscriber, wait, |c| c["id"] == "consuelo:contact_1004").await;
            assert_eq!(change["origin"], "POLLER", "{backend}");
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        let polls = polls_seen(&sandbox) - before;
        let seconds = started.elapsed().as_secs_f64();
        assert!(
            (polls as f64) <= seconds + 1.5,
            "{backend}: {polls} polls in {seconds:.1} s at one a second: both replicas polled"
        );
        for subscriber in [&mut on_a, &mut on_b] {
            while let Some(change) = subscriber.change(Duration::from_millis(300)).await {
                assert_ne!(
                    change["id"], "consuelo:contact_1004",
                    "{backend}: reported once"
                );
            }
        }
    }
}

const WEBHOOK_SECRET: &str = "a-webhook-signing-secret-for-tests";

/// One delivery as a test's webhook endpoint received it, and what it answered.
#[derive(Clone, Debug)]
struct Received {
    at: Instant,
    signature: String,
    delivery: String,
    event: String,
    body: String,
    answered: u16,
}

/// A webhook endpoint on 127.0.0.1:0 that records every delivery and answers 500 to the
/// first `failures` of them (`u32::MAX`: until told otherwise), 200 after.
#[derive(Clone)]
struct Endpoint {
    url: String,
    state: std::sync::Arc<std::sync::Mutex<(Vec<Received>, u32)>>,
}

impl Endpoint {
    async fn start(failures: u32) -> Endpoint {
        use axum::extract::State;
        use axum::http::HeaderMap;
        type Shared = std::sync::Arc<std::sync::Mutex<(Vec<Received>, u32)>>;
        let state: Shared = Default::default();
        state.lock().unwrap().1 = failures;
        let app = axum::Router::new()
            .route(
                "/hook",
                axum::routing::post(
                    |State(state): State<Shared>, headers: HeaderMap, body: String| async move {
                        let mut state = state.lock().unwrap();
                        let answered = match state.1 {
                            0 => 200,
                            u32::MAX => 500,
                            left => {
                                state.1 = left - 1;
                                500
                            }
                        };
                        let header = |name: &str| {
                            headers
                                .get(name)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_string()
                        };
                        state.0.push(Received {
                            at: Instant::now(),
                            signature: header("x-contact-gateway-signature"),
                            delivery: header("x-contact-gateway-delivery"),
                            event: header("x-contact-gateway-event"),
                            body,
                            answered,
                        });
                        axum::http::StatusCode::from_u16(answered).unwrap()
                    },
                ),
            )
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Endpoint { url, state }
    }

    fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().0.clone()
    }

    /// Answers 200 from now on.
    fn recover(&self) {
        self.state.lock().unwrap().1 = 0;
    }

    /// Waits until `n` deliveries came.
    async fn wait_for(&self, n: usize, wait: Duration) -> Vec<Received> {
        let deadline = Instant::now() + wait;
        loop {
            let received = self.received();
            if received.len() >= n {
                return received;
            }
            assert!(
                Instant::now() < deadline,
                "{} deliveries within {wait:?}, not {n}: {received:#?}",
                received.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Checks a delivery's signature as a receiver would: `t=<unix seconds>,v1=<hex
/// HMAC-SHA256 of "<t>.<body>">` with the shared secret, `t` recent.
fn verify_signature(received: &Received) {
    use hmac::{Hmac, Mac};
    let (t, v1) = received.signature.split_once(',').expect("t=…,v1=…");
    let t = t.strip_prefix("t=").expect("t=");
    let v1 = v1.strip_prefix("v1=").expect("v1=");
    let mut mac = Hmac::<Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.{}", received.body).as_bytes());
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(v1, expected, "the signature verifies");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let t: i64 = t.parse().unwrap();
    assert!((now - t).abs() < 60, "t is the time of the attempt");
}

#[tokio::test]
async fn a_webhook_gets_signed_deliveries_of_its_kinds_and_a_retry_after_a_500() {
    let endpoint = Endpoint::start(1).await;
    let url = endpoint.url.clone();
    let app = spawn_app_with(move |config| {
        config.webhooks = vec![contact_gateway::config::WebhookConfig {
            url,
            secret: contact_gateway::config::Secret::new(WEBHOOK_SECRET),
            events: vec![
                contact_gateway::change::ChangeKind::Updated,
                contact_gateway::change::ChangeKind::DoNotContact,
            ],
        }];
    })
    .await;
    // A create is not among its kinds: no delivery.
    app.data(
        "mutation { createContact(input: { provider: CONSUELO, firstName: \"Hook\" }) { contact { id } } }",
        json!({}),
    )
    .await;
    let answered = app
        .data(
            UPDATE,
            json!({ "id": CONSUELO_CONTACT, "company": "Hooked Ltd" }),
        )
        .await;
    assert_eq!(
        answered["updateContact"]["contact"]["company"],
        "Hooked Ltd"
    );
    let written = Instant::now();
    let received = endpoint.wait_for(2, Duration::from_secs(15)).await;
    let (first, retry) = (&received[0], &received[1]);
    assert_eq!((first.answered, retry.answered), (500, 200));
    assert!(
        retry.at - first.at < Duration::from_secs(10),
        "the first retry within 10 s, not {:?}",
        retry.at - first.at
    );
    eprintln!(
        "first delivery {:?} after the write, retry {:?} after the 500",
        first.at - written,
        retry.at - first.at
    );
    for delivery in [first, retry] {
        verify_signature(delivery);
        assert_eq!(delivery.event, "UPDATED");
    }
    assert_eq!(first.delivery, retry.delivery, "one delivery, sent twice");
    assert_eq!(first.body, retry.body);
    let body: Value = serde_json::from_str(&first.body).unwrap();
    assert_eq!(body["kind"], "UPDATED");
    assert_eq!(body["id"], CONSUELO_CONTACT);
    assert_eq!(body["origin"], "GATEWAY");
    assert_eq!(body["provider"], "CONSUELO");
    assert_eq!(body["contact"]["id"], CONSUELO_CONTACT);
    assert_eq!(body["contact"]["company"], "Hooked Ltd");
    assert!(body["contact"]["displayName"].is_string());
    assert!(chrono::DateTime::parse_from_rfc3339(body["at"].as_str().unwrap()).is_ok());

    // A do-not-contact change is among its kinds.
    app.data(
        "mutation { addToDoNotContact(input: { email: \"hooked@example.com\", providers: [] }) { entry { email } } }",
        json!({}),
    )
    .await;
    let received = endpoint.wait_for(3, Duration::from_secs(10)).await;
    let listed: Value = serde_json::from_str(&received[2].body).unwrap();
    assert_eq!(listed["kind"], "DO_NOT_CONTACT");
    assert_eq!(listed["doNotContact"]["email"], "hooked@example.com");
    assert_eq!(listed["doNotContact"]["listed"], true);
    verify_signature(&received[2]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        endpoint.received().len(),
        3,
        "delivered ones are not sent again"
    );
}

/// A delivery the endpoint refused is sent again by the next gateway process on the store,
/// after a restart, signed, until the endpoint takes it.
#[tokio::test]
async fn a_refused_delivery_is_sent_again_after_a_restart() {
    let endpoint = Endpoint::start(u32::MAX).await;
    let sandbox = Sandbox::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("store.db").display());
    let config = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    let text = format!(
        "{}\n[[webhooks]]\nurl = \"{}\"\nsecret_env = \"CG_TEST_WEBHOOK_SECRET\"\nevents = [\"UPDATED\"]\n",
        sandbox.config_toml(),
        endpoint.url
    );
    std::fs::write(config.path(), text).unwrap();
    let env = [("CG_TEST_WEBHOOK_SECRET", WEBHOOK_SECRET)];

    let mut first = GatewayProcess::start_with_env(&config, &store, &env);
    first
        .data(
            UPDATE,
            json!({ "id": CONSUELO_CONTACT, "company": "Restarted Ltd" }),
        )
        .await;
    let refused = endpoint.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(refused[0].answered, 500);
    terminate(&mut first.child);
    endpoint.recover();
    let before = endpoint.received().len();

    let second = GatewayProcess::start_with_env(&config, &store, &env);
    let received = endpoint.wait_for(before + 1, Duration::from_secs(15)).await;
    let delivered = received.last().unwrap();
    assert_eq!(delivered.answered, 200);
    assert_eq!(delivered.delivery, refused[0].delivery, "the same delivery");
    assert_eq!(delivered.body, refused[0].body);
    verify_signature(delivered);
    let body: Value = serde_json::from_str(&delivered.body).unwrap();
    assert_eq!(body["contact"]["company"], "Restarted Ltd");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(endpoint.received().len(), before + 1, "delivered once");
    drop(second);
}

#[test]
fn a_webhook_whose_secret_is_not_set_stops_start_up_naming_it() {
    let config = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    std::fs::write(
        config.path(),
        "[[webhooks]]\nurl = \"https://hooks.example.com/in\"\nsecret_env = \"CG_TEST_UNSET_WEBHOOK_SECRET\"\n",
    )
    .unwrap();
    let output = binary()
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(config.path())
        .env_remove("CG_TEST_UNSET_WEBHOOK_SECRET")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("webhooks[0].secret_env")
            && stderr.contains("CG_TEST_UNSET_WEBHOOK_SECRET"),
        "{stderr}"
    );
}

/// SIGTERM completes open subscriptions at once: each gets `complete` (the WebSocket then a
/// close), and the gateway exits without waiting out `shutdown_grace_secs` (30 s).
#[tokio::test]
async fn sigterm_completes_open_subscriptions_at_once() {
    let mut child = binary()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = wait_for_url(&mut child);
    let mut ws = WsSubscriber::open(&url, json!({})).await;
    let mut sse = SseSubscriber::open(&url, json!({}), None).await;
    // Both are registered once a write reaches them.
    update_until_received(&url, None, CONSUELO_CONTACT, &mut ws).await;
    update_until_received(&url, None, CONSUELO_CONTACT, &mut sse).await;
    while ws.change(Duration::from_millis(200)).await.is_some() {}

    let stopping = Instant::now();
    let mut process = GatewayProcess { child, url };
    let pid = process.child.id();
    let stopper = std::thread::spawn(move || {
        terminate(&mut process.child);
        process
    });
    let complete = ws.message(Duration::from_secs(5)).await.expect("a message");
    assert_eq!(complete, json!({ "id": "1", "type": "complete" }));
    loop {
        let (name, _) = sse.event(Duration::from_secs(5)).await.expect("an event");
        if name == "complete" {
            break;
        }
    }
    assert_eq!(
        ws.message(Duration::from_secs(5)).await,
        None,
        "then the socket closes"
    );
    let _process = stopper.join().expect("the gateway stops cleanly");
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "{pid} took {:?} to stop",
        stopping.elapsed()
    );
}

/// CORS does not cover WebSockets: a page from another site must not subscribe through a
/// visitor's browser. Its own origin and those `[cors]` allows may.
#[tokio::test]
async fn a_page_from_another_origin_cannot_open_a_websocket() {
    let app = spawn_app_with(|config| {
        config.cors = Some(contact_gateway::config::CorsConfig {
            allow_origins: vec!["https://app.example.com".into()],
            allow_credentials: false,
            max_age_secs: 600,
        });
    })
    .await;
    let upgrade = |origin: &str| {
        let mut request = ws_url(&app.address).into_client_request().unwrap();
        let headers = request.headers_mut();
        headers.insert(
            "sec-websocket-protocol",
            "graphql-transport-ws".parse().unwrap(),
        );
        headers.insert("origin", origin.parse().unwrap());
        tokio_tungstenite::connect_async(request)
    };
    match upgrade("https://evil.example").await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403)
        }
        other => panic!("another site's page opened a WebSocket: {other:?}"),
    }
    let own = app.address.clone();
    for origin in ["https://app.example.com", own.as_str()] {
        upgrade(origin)
            .await
            .unwrap_or_else(|e| panic!("{origin}: {e}"));
    }
}

/// A change's contact resolves as any contact does, `duplicatesOf` included (searched afresh
/// for each change, with no request budget).
#[tokio::test]
async fn a_changed_contact_shows_its_duplicates_in_other_providers() {
    let app = spawn_app().await;
    let socket = ws_connect(&app.address, None, json!({})).await.unwrap();
    let query = "subscription { contactChanged(providers: [MAGICBLOCKS]) {
        id kind contact { id company duplicatesOf { contact { id } reasons { field value } } } } }";
    let mut subscriber = WsSubscriber::start_with(socket, query, json!({})).await;
    let olivia = "magicblocks:con_01HSBX7K2M0000001";
    let (change, _, _) = update_until_received(
        &format!("{}/graphql", app.address),
        None,
        olivia,
        &mut subscriber,
    )
    .await;
    let duplicates: Vec<&str> = change["contact"]["duplicatesOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["contact"]["id"].as_str().unwrap())
        .collect();
    assert!(
        duplicates.iter().any(|id| id.starts_with("consuelo:"))
            && duplicates.iter().any(|id| id.starts_with("whautomate:")),
        "{change:#}"
    );
}

/// Mainbrainer's upsert does not say whether it created: the gateway's ledger does (a record
/// it first holds from this write is new).
#[tokio::test]
async fn a_mainbrainer_upsert_is_created_once_then_updated() {
    let app = spawn_app().await;
    let mut subscriber = WsSubscriber::open(&app.address, json!({})).await;
    // Registered once a write reaches it.
    update_until_received(
        &format!("{}/graphql", app.address),
        None,
        CONSUELO_CONTACT,
        &mut subscriber,
    )
    .await;
    let upsert = "mutation($company: String) { upsertContact(input: { provider: MAINBRAINER,
        firstName: \"Ledger\", company: $company, emails: [{ address: \"ledger.upsert@example.com\" }],
        emailOptIn: true, smsOptIn: false }) { contact { id } userErrors { message } } }";
    for company in ["First", "Again"] {
        app.data(upsert, json!({ "company": company })).await;
    }
    let mut changes = Vec::new();
    while let Some(change) = subscriber.change(Duration::from_secs(2)).await {
        if change["provider"] == "MAINBRAINER" {
            changes.push((change["kind"].clone(), change["contact"]["company"].clone()));
        }
    }
    assert_eq!(
        changes,
        [
            (json!("CREATED"), json!("First")),
            (json!("UPDATED"), json!("Again"))
        ]
    );
}
