//! Read-your-writes under concurrency (README "Reading"): a read that starts after a write was
//! acknowledged shows that write, even while a read begun before it is still on its way back.
//!
//! A proxy between the gateway and one simulator holds one upstream answer after the simulator
//! made it: the answer shows the contact as it was, and arrives when the test lets it. That
//! forces the interleaving a load test meets a few times in 100,000 writes.

use crate::helpers::{spawn_app_with, TestApp};
use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::Response;
use contact_gateway::contact::ProviderId;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// One upstream answer to hold: the first to `method path`.
struct Hold {
    method: Method,
    path: String,
    /// Told when the answer is in hand.
    reached: oneshot::Sender<()>,
    release: oneshot::Receiver<()>,
}

pub(crate) struct Proxy {
    upstream: String,
    client: reqwest::Client,
    hold: Mutex<Option<Hold>>,
}

impl Proxy {
    /// Holds the next answer to `method path`; returns (told when it is in hand, lets it go).
    pub(crate) fn hold(
        &self,
        method: Method,
        path: &str,
    ) -> (oneshot::Receiver<()>, oneshot::Sender<()>) {
        let (reached, is_reached) = oneshot::channel();
        let (release, is_released) = oneshot::channel();
        *self.hold.lock().unwrap() = Some(Hold {
            method,
            path: path.to_string(),
            reached,
            release: is_released,
        });
        (is_reached, release)
    }
}

async fn forward(State(proxy): State<Arc<Proxy>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = to_bytes(body, usize::MAX).await.unwrap();
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut upstream = proxy
        .client
        .request(parts.method.clone(), format!("{}{target}", proxy.upstream))
        .body(body);
    for (name, value) in &parts.headers {
        if name != header::HOST && name != header::CONTENT_LENGTH {
            upstream = upstream.header(name, value);
        }
    }
    let answer = upstream.send().await.unwrap();
    let status = answer.status();
    let headers = answer.headers().clone();
    let body = answer.bytes().await.unwrap();
    let hold = {
        let mut hold = proxy.hold.lock().unwrap();
        let matches = hold
            .as_ref()
            .is_some_and(|h| h.method == parts.method && h.path == parts.uri.path());
        if matches {
            hold.take()
        } else {
            None
        }
    };
    if let Some(hold) = hold {
        let _ = hold.reached.send(());
        let _ = hold.release.await;
    }
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    for (name, value) in &headers {
        if name != header::CONTENT_LENGTH && name != header::TRANSFER_ENCODING {
            response.headers_mut().insert(name, value.clone());
        }
    }
    response
}

/// The app with `provider` reached through a proxy that can hold an answer.
pub(crate) async fn spawn_behind_proxy(provider: ProviderId) -> (TestApp, Arc<Proxy>) {
    let mut proxy = None;
    let app = spawn_app_with(|config| {
        let settings = config.providers.get_mut(&provider).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let address = listener.local_addr().unwrap();
        let state = Arc::new(Proxy {
            upstream: settings.base_url.clone(),
            client: reqwest::Client::new(),
            hold: Mutex::new(None),
        });
        let router = axum::Router::new()
            .fallback(forward)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        settings.base_url = format!("http://{address}");
        proxy = Some(state);
    })
    .await;
    (app, proxy.unwrap())
}

/// `request` on its own task, as another client would send it.
fn send(app: &TestApp, query: &'static str, variables: Value) -> tokio::task::JoinHandle<Value> {
    let (client, url) = (app.client.clone(), format!("{}/graphql", app.address));
    tokio::spawn(async move {
        let response = client
            .post(url)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        assert!(body.get("errors").is_none(), "unexpected errors: {body:#}");
        body["data"].clone()
    })
}

/// What `request` answers. It must not wait for the held answer: if it has not answered in
/// a while, the held answer is let go so the test shows what it would have answered.
async fn answer_without_waiting(
    request: tokio::task::JoinHandle<Value>,
    release: oneshot::Sender<()>,
) -> Value {
    let mut request = request;
    match tokio::time::timeout(Duration::from_secs(3), &mut request).await {
        Ok(answer) => {
            let _ = release.send(());
            answer.unwrap()
        }
        Err(_) => {
            let _ = release.send(());
            let answer = request.await.unwrap();
            panic!("it waited for an answer begun before the write, and showed {answer}");
        }
    }
}

const READ_COMPANY: &str = "query($id: ID!) { contact(id: $id) { company } }";

#[tokio::test]
async fn a_read_after_a_write_shows_it_while_a_read_begun_before_is_still_out() {
    let (app, proxy) = spawn_behind_proxy(ProviderId::Consuelo).await;
    let id = "consuelo:contact_1002";
    let (reached, release) = proxy.hold(Method::GET, "/v1/contacts/contact_1002");
    let before = send(&app, READ_COMPANY, json!({ "id": id }));
    reached.await.unwrap();

    let update = "mutation($id: ID!, $input: UpdateContactInput!) {
        updateContact(id: $id, input: $input) { contact { company } userErrors { code } } }";
    let written = app
        .data(
            update,
            json!({ "id": id, "input": { "company": "After Ltd" } }),
        )
        .await;
    assert_eq!(written["updateContact"]["userErrors"], json!([]));

    let after = send(&app, READ_COMPANY, json!({ "id": id }));
    let after = answer_without_waiting(after, release).await;
    assert_eq!(after["contact"]["company"], "After Ltd");
    // The read begun before the write shows either; whatever it shows is not kept.
    before.await.unwrap();
    let later = app.data(READ_COMPANY, json!({ "id": id })).await;
    assert_eq!(later["contact"]["company"], "After Ltd");
}

/// `addTags` answers with the contact read after the tags changed: not with a read of it
/// that another request began before.
#[tokio::test]
async fn a_tag_change_answers_with_the_tag_while_an_older_read_is_out() {
    let (app, proxy) = spawn_behind_proxy(ProviderId::Whautomate).await;
    let id = "whautomate:64f1a2b3c4d5e6f7a8b9c004";
    let (reached, release) = proxy.hold(Method::GET, "/v1/contacts/64f1a2b3c4d5e6f7a8b9c004");
    let before = send(
        &app,
        "query($id: ID!) { contact(id: $id) { tags } }",
        json!({ "id": id }),
    );
    reached.await.unwrap();

    let tagged = send(
        &app,
        "mutation($id: ID!) { addTags(id: $id, tags: [\"gold\"]) {
            contact { tags } userErrors { code } } }",
        json!({ "id": id }),
    );
    let tagged = answer_without_waiting(tagged, release).await;
    assert_eq!(tagged["addTags"]["userErrors"], json!([]));
    let tags = tagged["addTags"]["contact"]["tags"].as_array().unwrap();
    assert!(tags.contains(&json!("gold")), "{tags:?}");
    before.await.unwrap();
}
