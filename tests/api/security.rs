//! Tried as an attacker would: cross-site posts, malformed bodies, amplification by errors and
//! directives, and the GraphQL-over-HTTP answers a client relies on.

use crate::helpers::{error_codes, spawn_app, spawn_app_with, TestApp};
use contact_gateway::contact::ProviderId;
use serde_json::{json, Value};

fn total_requests(app: &TestApp) -> u64 {
    ProviderId::ALL
        .iter()
        .map(|id| app.sandbox.control(*id).request_count())
        .sum()
}

const CREATE: &str = r#"{"query":"mutation { createContact(input: { provider: CONSUELO, firstName: \"Mallory\", emails: [{ address: \"mallory@evil.example\" }] }) { contact { id } } }"}"#;

/// A web page on another site can make a browser POST `text/plain` or a form without a
/// preflight: neither runs anything.
#[tokio::test]
async fn cross_site_text_and_form_posts_get_415_and_write_nothing() {
    let app = spawn_app().await;
    let url = format!("{}/graphql", app.address);
    for content_type in [
        "text/plain;charset=UTF-8",
        "multipart/form-data; boundary=XyZ",
        "application/x-www-form-urlencoded",
    ] {
        let body = if content_type.starts_with("multipart") {
            format!("--XyZ\r\nContent-Disposition: form-data; name=\"operations\"\r\n\r\n{CREATE}\r\n--XyZ--\r\n")
        } else {
            CREATE.to_string()
        };
        let response = app
            .client
            .post(&url)
            .header("content-type", content_type)
            .header("origin", "https://evil.example")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 415, "{content_type}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body["errors"][0]["extensions"]["code"],
            "UNSUPPORTED_MEDIA_TYPE"
        );
    }
    assert_eq!(total_requests(&app), 0, "nothing reached a provider");
}

async fn post(app: &TestApp, accept: &str, body: &str) -> (u16, String, Value) {
    let response = app
        .client
        .post(format!("{}/graphql", app.address))
        .header("content-type", "application/json")
        .header("accept", accept)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (status, content_type, body)
}

#[tokio::test]
async fn answers_follow_accept_and_request_errors_have_no_data() {
    let app = spawn_app().await;
    let (status, content_type, _) =
        post(&app, "application/json", r#"{"query":"{ __typename }"}"#).await;
    assert_eq!(
        (status, content_type.starts_with("application/json")),
        (200, true)
    );
    let graphql_json = "application/graphql-response+json";
    let (status, content_type, _) = post(&app, graphql_json, r#"{"query":"{ __typename }"}"#).await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with(graphql_json), "{content_type}");
    for (query, code) in [
        ("{", "GRAPHQL_PARSE_FAILED"),
        ("{ nope }", "GRAPHQL_VALIDATION_FAILED"),
    ] {
        let body = json!({ "query": query }).to_string();
        let (status, _, answer) = post(&app, graphql_json, &body).await;
        assert_eq!(status, 400, "{query}: {answer}");
        assert!(answer.get("data").is_none(), "{answer}");
        assert_eq!(error_codes(&answer), [code]);
        // The older media type keeps 200 for these, still without `data`.
        let (status, _, answer) = post(&app, "application/json", &body).await;
        assert_eq!(status, 200, "{query}: {answer}");
        assert!(answer.get("data").is_none(), "{answer}");
    }
    // A variable of the wrong type is a request error too.
    let body =
        r#"{"query":"query($id: ID!) { contact(id: $id) { id } }","variables":{"id":{"x":1}}}"#;
    let (status, _, answer) = post(&app, graphql_json, body).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer.get("data").is_none());
}

#[tokio::test]
async fn malformed_bodies_get_a_coded_json_error_not_debug_text() {
    let app = spawn_app().await;
    for body in [
        "{not json",
        "[1, 2",
        "\"just a string\"",
        r#"{"variables":{}}"#,
        "",
    ] {
        let (status, _, answer) = post(&app, "application/json", body).await;
        assert_eq!(status, 400, "{body:?}: {answer}");
        assert_eq!(error_codes(&answer), ["BAD_REQUEST"], "{body:?}");
        let message = answer["errors"][0]["message"].as_str().unwrap();
        assert!(
            !message.contains("Custom {") && !message.contains("Io("),
            "{message}"
        );
    }
}

/// A body over the limit is 413 whether it declares its length or streams it chunked.
#[tokio::test]
async fn an_oversized_chunked_body_gets_413() {
    let app = spawn_app().await;
    let big = format!(
        r#"{{"query":"{{ __typename }} #{}"}}"#,
        "x".repeat(3 * 1024 * 1024)
    );
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = big
        .into_bytes()
        .chunks(64 * 1024)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let response = app
        .client
        .post(format!("{}/graphql", app.address))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["errors"][0]["extensions"]["code"].is_string(),
        "{body}"
    );
}

/// Amplification by errors: many failing fields give at most `max_errors` errors, and a body of
/// repeated directives is refused whole.
#[tokio::test]
async fn errors_and_directives_cannot_amplify_a_request() {
    let app = spawn_app_with(|c| c.limits.max_complexity = 100_000).await;
    let aliases: Vec<String> = (0..300)
        .map(|i| format!("c{i}: contact(id: \"no-such-provider:{i}\") {{ id }}"))
        .collect();
    let body = app
        .graphql(&format!("{{ {} }}", aliases.join(" ")), json!({}))
        .await;
    let codes = error_codes(&body);
    assert_eq!(
        codes.len(),
        101,
        "100 errors and one that says the rest were left out"
    );
    assert_eq!(codes.last().unwrap(), "TOO_MANY_ERRORS");
    assert_eq!(total_requests(&app), 0);

    let include = "@include(if: true) ".repeat(50_000);
    let query = format!("{{ __typename {include} }}");
    let response = app
        .client
        .post(format!("{}/graphql", app.address))
        .json(&json!({ "query": query }))
        .send()
        .await
        .unwrap();
    let text = response.text().await.unwrap();
    assert!(
        text.len() < 10_000,
        "a small answer, not one error per directive: {} bytes",
        text.len()
    );
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(error_codes(&body).len(), 1, "{body}");
}

#[tokio::test]
async fn an_argument_the_schema_cannot_read_is_bad_user_input() {
    let app = spawn_app().await;
    let body = app
        .graphql(
            "{ contacts(first: 2147483648) { nodes { id } } }",
            json!({}),
        )
        .await;
    assert!(
        error_codes(&body).iter().all(|c| !c.is_empty()),
        "every error has a code: {body}"
    );
    assert!(!error_codes(&body).is_empty(), "{body}");
}

/// A client trickling its request headers is disconnected after the header-read timeout
/// (10 s), instead of holding a connection (and the process at shutdown) forever.
#[tokio::test]
async fn a_slow_header_client_is_disconnected() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app().await;
    let address = app.address.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    stream
        .write_all(b"POST /graphql HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut closed = false;
    for _ in 0..30 {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        // One more header byte a second: never a whole header block.
        if stream.write_all(b"X").await.is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 1024];
        match tokio::time::timeout(std::time::Duration::from_millis(10), stream.read(&mut buf))
            .await
        {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            _ => {}
        }
    }
    assert!(closed, "the connection is still open after 30 s");
    let waited = started.elapsed().as_secs();
    assert!((9..=15).contains(&waited), "disconnected after {waited} s");
}

/// SIGTERM waits for requests in flight at most `shutdown_grace_secs`.
#[tokio::test]
async fn shutdown_waits_for_requests_in_flight_at_most_the_grace_period() {
    use contact_gateway::config::Config;
    use contact_gateway::sandbox::{Fault, Sandbox};
    use contact_gateway::startup::Application;
    let sandbox = std::sync::Arc::new(Sandbox::start().await.unwrap());
    let mut config =
        Config::with_providers("127.0.0.1:0".parse().unwrap(), sandbox.provider_configs());
    config.limits.shutdown_grace_secs = 1;
    let app = Application::build_over_sandbox(config, sandbox.clone())
        .await
        .unwrap();
    let url = format!("http://{}/graphql", app.address());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    sandbox
        .control(ProviderId::Maiagent)
        .set_fault(Some(Fault::Hang));
    let hung = tokio::spawn(async move {
        reqwest::Client::new()
            .post(url)
            .json(&json!({ "query": "{ contacts(providers: [MAIAGENT]) { nodes { id } } }" }))
            .send()
            .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    stop.send(()).unwrap();
    serving.await.unwrap().unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= std::time::Duration::from_millis(900)
            && waited < std::time::Duration::from_secs(5),
        "stopped after {waited:?}"
    );
    hung.abort();
}

#[tokio::test]
async fn other_methods_and_paths_get_coded_json_errors() {
    let app = spawn_app().await;
    for (method, path, status) in [
        (reqwest::Method::PUT, "/graphql", 405),
        (reqwest::Method::DELETE, "/graphql", 405),
        (reqwest::Method::GET, "/nope", 404),
    ] {
        let response = app
            .client
            .request(method.clone(), format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{method} {path}");
        let body: Value = response.json().await.unwrap();
        assert!(
            body["errors"][0]["extensions"]["code"].is_string(),
            "{body}"
        );
    }
}
