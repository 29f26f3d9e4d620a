//! What an operator watches, through HTTP: `/metrics` (Prometheus text, moving with the
//! traffic) and `/readyz` (the store answering or not); and the spans the real binary sends to
//! an OTLP receiver, over gRPC (the default) and over HTTP.

use crate::helpers::spawn_app_and_gateway;
use crate::helpers::TestApp;
use contact_gateway::config::Config;
use contact_gateway::gateway::Gateway;
use contact_gateway::sandbox::Sandbox;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Sophie Tran at Whautomate.
const SOPHIE: &str = "whautomate:64f1a2b3c4d5e6f7a8b9c002";
const CONTACT: &str = "query($id: ID!) { contact(id: $id) { id displayName } }";

/// A gateway on the simulators, and a handle on it (its store).
async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> (TestApp, Arc<Gateway>) {
    spawn_app_and_gateway(adjust).await
}

/// One sample of the Prometheus text format: name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Parses the Prometheus text exposition format line by line, failing on any line that does
/// not follow its grammar (`# HELP`, `# TYPE`, or `name{label="value",…} value`).
fn parse_prometheus(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let words: Vec<&str> = comment.split_whitespace().collect();
            match words.as_slice() {
                ["TYPE", name, kind] => {
                    assert!(is_name(name), "bad name in {line:?}");
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(kind),
                        "bad type in {line:?}"
                    );
                }
                ["HELP", name, ..] => assert!(is_name(name), "bad name in {line:?}"),
                _ => {}
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line:?}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series, BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("unclosed labels in {line:?}"));
                let mut labels = BTreeMap::new();
                let mut rest = body;
                while !rest.is_empty() {
                    let (label, after) = rest
                        .split_once("=\"")
                        .unwrap_or_else(|| panic!("bad label in {line:?}"));
                    assert!(is_name(label), "bad label name in {line:?}");
                    // The value runs to the next unescaped quote.
                    let mut end = None;
                    let mut escaped = false;
                    for (i, c) in after.char_indices() {
                        match (escaped, c) {
                            (false, '\\') => escaped = true,
                            (false, '"') => {
                                end = Some(i);
                                break;
                            }
                            _ => escaped = false,
                        }
                    }
                    let end = end.unwrap_or_else(|| panic!("unclosed label value in {line:?}"));
                    labels.insert(label.to_string(), after[..end].to_string());
                    rest = &after[end + 1..];
                    rest = rest.strip_prefix(',').unwrap_or(rest);
                }
                (name, labels)
            }
        };
        assert!(is_name(name), "bad metric name in {line:?}");
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    samples
}

impl TestApp {
    async fn metrics(&self) -> Vec<Sample> {
        let response = self
            .client
            .get(format!("{}/metrics", self.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"].to_str().unwrap();
        assert!(content_type.starts_with("text/plain"), "{content_type}");
        parse_prometheus(&response.text().await.unwrap())
    }
}

/// The sum of `name`'s samples whose labels include `wanted`.
fn total(samples: &[Sample], name: &str, wanted: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            wanted
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(v))
        })
        .map(|s| s.value)
        .sum()
}

#[tokio::test]
async fn metrics_are_prometheus_text_and_move_with_the_traffic() {
    let (app, _) = spawn_with(|_| {}).await;
    let before = app.metrics().await;
    let whautomate = [("provider", "whautomate")];
    let upstream_before = total(
        &before,
        "contact_gateway_upstream_requests_total",
        &whautomate,
    );

    let data = app.data(CONTACT, json!({ "id": SOPHIE })).await;
    assert_eq!(data["contact"]["displayName"], "Sophie Tran");
    // Again in another shape: not the same answer, but the read cache has the contact.
    let again = "query($id: ID!) { contact(id: $id) { id } }";
    app.data(again, json!({ "id": SOPHIE })).await;

    let after = app.metrics().await;
    let upstream = "contact_gateway_upstream_requests_total";
    assert!(
        total(
            &after,
            upstream,
            &[
                ("provider", "whautomate"),
                ("method", "GET"),
                ("status", "200")
            ]
        ) >= 1.0,
    );
    assert!(total(&after, upstream, &whautomate) >= upstream_before + 1.0);
    let histogram = "contact_gateway_upstream_request_duration_seconds_count";
    assert!(total(&after, histogram, &whautomate) >= 1.0);
    assert!(after.iter().any(|s| s.name
        == "contact_gateway_upstream_request_duration_seconds_bucket"
        && s.labels.get("le").is_some_and(|le| le == "+Inf")));
    let http = "contact_gateway_http_requests_total";
    assert!(total(&after, http, &[("operation", "query"), ("outcome", "ok")]) >= 2.0);
    let cache = "contact_gateway_cache_requests_total";
    assert!(total(&after, cache, &[("tier", "read"), ("result", "hit")]) >= 1.0);
    assert!(total(&after, cache, &[("tier", "response"), ("result", "miss")]) >= 1.0);
    for name in [
        "contact_gateway_limiter_waits_total",
        "contact_gateway_breaker_state",
    ] {
        assert!(
            after.iter().any(|s| s.name == name
                && s.labels.get("provider").map(String::as_str) == Some("whautomate")),
            "{name} for whautomate"
        );
    }
    assert_eq!(
        total(
            &after,
            "contact_gateway_breaker_state",
            &[("provider", "whautomate"), ("state", "closed")]
        ),
        1.0
    );
    assert!(after
        .iter()
        .any(|s| s.name == "contact_gateway_outbox_pending"));
    assert!(after
        .iter()
        .any(|s| s.name == "contact_gateway_outbox_oldest_pending_age_seconds"));
}

#[tokio::test]
async fn readyz_says_whether_the_store_answers() {
    let (app, gateway) = spawn_with(|_| {}).await;
    let ready = app
        .client
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["parts"]["store"], "ok");

    // The store goes away: its pool is closed, as when the process loses its database.
    gateway.store.as_ref().unwrap().pool().close().await;
    let gone = app
        .client
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 503);
    let body: Value = gone.json().await.unwrap();
    assert_eq!(body["ready"], false);
    assert_ne!(body["parts"]["store"], "ok");
    // Liveness is another question: the process still serves.
    let alive = app
        .client
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(alive.status(), 200);
}

#[tokio::test]
async fn with_json_logs_every_line_of_the_real_binary_is_json_the_banner_included() {
    use crate::helpers::{binary, sandbox_config_with, terminate};
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let sandbox = Sandbox::start().await.unwrap();
    let config = sandbox_config_with(&sandbox, "[telemetry]\nlog_format = \"json\"");
    let store = tempfile::tempdir().unwrap();
    let mut child = binary()
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(config.path())
        .arg("--store")
        .arg(format!(
            "sqlite://{}",
            store.path().join("store.db").display()
        ))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let printed = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let mut lines = Vec::new();
    let graphql = loop {
        let line = lines_rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("the banner is logged");
        let parsed: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        lines.push(line);
        if let Some(url) = parsed["fields"]["graphql"].as_str() {
            break url.to_string();
        }
    };
    let body: Value = reqwest::Client::new()
        .post(&graphql)
        .json(&json!({ "query": CONTACT, "variables": { "id": SOPHIE } }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["data"]["contact"]["displayName"], "Sophie Tran");
    terminate(&mut child);
    lines.extend(lines_rx.iter());
    let parsed: Vec<Value> = lines
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    // The request's own lines: the upstream call, and the one line per request.
    assert!(parsed
        .iter()
        .any(|line| line["fields"]["message"] == "upstream call"));
    assert!(parsed
        .iter()
        .any(|line| line["fields"]["message"] == "finished processing request"));
    let printed = printed.join().unwrap();
    assert!(printed.is_empty(), "stdout is not JSON: {printed:?}");
}

#[test]
fn telemetry_keys_are_checked() {
    let parse = |text: &str| Config::parse(text, |_| None);
    let json = parse("[telemetry]\nlog_format = \"json\"").unwrap();
    assert_eq!(
        json.telemetry.log_format,
        contact_gateway::config::LogFormat::Json
    );
    for bad in [
        "[telemetry]\nlog_format = \"xml\"",
        "[telemetry]\nlog_fromat = \"json\"",
        "[telemetry]\notlp_endpoint = \"localhost:4317\"",
        "[telemetry]\notlp_protocol = \"udp\"",
    ] {
        let error = parse(bad).expect_err(bad).to_string();
        assert!(
            error.contains("telemetry") || error.contains("log_f") || error.contains("otlp"),
            "{bad}: {error}"
        );
    }
}

/// POSTs `query` with `Contact-Gateway-Diagnostics: providers`.
async fn diagnosed(app: &TestApp, query: &str, variables: Value) -> reqwest::Response {
    app.client
        .post(format!("{}/graphql", app.address))
        .header("Contact-Gateway-Diagnostics", "providers")
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn diagnostics_show_where_the_time_went_per_provider() {
    let (app, _) = spawn_with(|_| {}).await;
    // Without the header: no extensions.
    let plain = app.graphql(CONTACT, json!({ "id": SOPHIE })).await;
    assert!(plain.get("extensions").is_none(), "{plain}");

    // The same query again, asking: not the kept answer, but run, with the read cache's hit.
    let response = diagnosed(&app, CONTACT, json!({ "id": SOPHIE })).await;
    assert_ne!(
        response
            .headers()
            .get("contact-gateway-cache")
            .and_then(|v| v.to_str().ok()),
        Some("hit")
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["contact"]["displayName"], "Sophie Tran");
    let whautomate = &body["extensions"]["providers"]["whautomate"];
    assert_eq!(whautomate["cacheHits"], 1, "{body:#}");
    assert_eq!(whautomate["calls"], 0, "{body:#}");

    // A fresh contact, with a provider failing once: a call, a miss, a retry.
    app.sandbox
        .control(contact_gateway::contact::ProviderId::Whautomate)
        .set_fault_times(contact_gateway::sandbox::Fault::Status(503), 1);
    let other = "whautomate:64f1a2b3c4d5e6f7a8b9c001";
    let body: Value = diagnosed(&app, CONTACT, json!({ "id": other }))
        .await
        .json()
        .await
        .unwrap();
    assert!(body.get("errors").is_none(), "{body:#}");
    let whautomate = &body["extensions"]["providers"]["whautomate"];
    assert_eq!(whautomate["calls"], 2, "{body:#}");
    assert_eq!(whautomate["retries"], 1, "{body:#}");
    assert_eq!(whautomate["cacheMisses"], 1, "{body:#}");
    assert!(whautomate["latencyMs"].is_u64(), "{body:#}");
    // Counts only: no key, no path.
    let text = body["extensions"].to_string();
    for secret in app.sandbox.provider_configs().values() {
        assert!(!text.contains(secret.api_key.expose()), "{text}");
    }
    assert!(!text.contains("/contacts"), "{text}");
}

/// What an OTLP receiver was sent, export by export.
type Exports = Arc<std::sync::Mutex<Vec<ExportTraceServiceRequest>>>;

/// An in-test OTLP receiver on a loopback port, speaking one of the two protocols.
#[derive(Clone, Copy, Debug)]
enum Receiver {
    /// OTLP/HTTP: POST /v1/traces, protobuf.
    Http,
    /// OTLP/gRPC: opentelemetry-proto's `TraceService` on a tonic server.
    Grpc,
}

/// The gRPC receiver's `TraceService`: keeps every export.
struct Collector(Exports);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(Default::default()))
    }
}

impl Receiver {
    /// Starts it on a loopback port: the port, and what it will be sent.
    async fn start(self) -> (u16, Exports) {
        use prost::Message;
        let received: Exports = Arc::default();
        let kept = received.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        match self {
            Receiver::Http => {
                let receiver = axum::Router::new().route(
                    "/v1/traces",
                    axum::routing::post(move |body: axum::body::Bytes| {
                        let kept = kept.clone();
                        async move {
                            let request =
                                ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                            kept.lock().unwrap().push(request);
                            (
                                [("content-type", "application/x-protobuf")],
                                Vec::<u8>::new(),
                            )
                        }
                    }),
                );
                tokio::spawn(async move { axum::serve(listener, receiver).await });
            }
            Receiver::Grpc => {
                let server = tonic::transport::Server::builder()
                    .add_service(TraceServiceServer::new(Collector(kept)))
                    .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
                tokio::spawn(server);
            }
        }
        (port, received)
    }

    /// The `[telemetry]` lines that send spans to it on `port`: gRPC is the default, so its
    /// lines name no protocol.
    fn telemetry(self, port: u16) -> String {
        let protocol = match self {
            Receiver::Http => "otlp_protocol = \"http\"\n",
            Receiver::Grpc => "",
        };
        format!(
            "[telemetry]\notlp_endpoint = \"http://127.0.0.1:{port}\"\n{protocol}\
             service_name = \"gateway-under-test\"\n"
        )
    }
}

// Multi-threaded: the receiver answers while the test waits for the gateway to stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_otlp_receiver_gets_the_request_span_with_the_upstream_call_as_its_child() {
    the_request_span_and_its_upstream_call_reach(Receiver::Http).await;
}

/// The same over gRPC, the protocol used when `otlp_protocol` is not set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_otlp_grpc_receiver_gets_the_same_spans_by_default() {
    the_request_span_and_its_upstream_call_reach(Receiver::Grpc).await;
}

/// The real binary sends its spans to `receiver`: the request's span (under the client's
/// `traceparent`), the upstream call's span under it (the one whose id went upstream), and a
/// listing's span per provider.
async fn the_request_span_and_its_upstream_call_reach(receiver: Receiver) {
    use crate::helpers::{binary, sandbox_config_with, terminate, wait_for_url};

    let (port, received) = receiver.start().await;
    let sandbox = Sandbox::start().await.unwrap();
    let config = sandbox_config_with(&sandbox, &receiver.telemetry(port));
    let store = tempfile::tempdir().unwrap();
    let mut child = binary()
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(config.path())
        .arg("--store")
        .arg(format!(
            "sqlite://{}",
            store.path().join("store.db").display()
        ))
        .stdout(std::process::Stdio::piped())
        .stderr(if std::env::var_os("TEST_LOG").is_some() {
            std::process::Stdio::inherit()
        } else {
            std::process::Stdio::null()
        })
        .spawn()
        .unwrap();
    let graphql = wait_for_url(&mut child);

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_span = "00f067aa0ba902b7";
    let body: Value = reqwest::Client::new()
        .post(&graphql)
        .header("traceparent", format!("00-{trace_id}-{client_span}-01"))
        .json(&json!({ "query": CONTACT, "variables": { "id": SOPHIE } }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["data"]["contact"]["displayName"], "Sophie Tran");
    // A listing fans out: a span per provider.
    let listed: Value = reqwest::Client::new()
        .post(&graphql)
        .json(&json!({ "query": "{ contacts(first: 2) { nodes { id } } }" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(listed.get("errors").is_none(), "{listed}");

    // The upstream call carried the client's trace on.
    let upstream = sandbox
        .control(contact_gateway::contact::ProviderId::Whautomate)
        .requests();
    let traceparent = upstream
        .iter()
        .flat_map(|r| r.headers.iter())
        .find(|(name, _)| name == "traceparent")
        .map(|(_, value)| value.clone())
        .expect("traceparent sent upstream");
    assert!(
        traceparent.starts_with(&format!("00-{trace_id}-")),
        "{traceparent}"
    );

    // Spans are sent at the latest when the gateway stops.
    terminate(&mut child);
    let requests = received.lock().unwrap().clone();
    let spans: Vec<_> = requests
        .iter()
        .flat_map(|r| r.resource_spans.iter())
        .flat_map(|r| r.scope_spans.iter())
        .flat_map(|s| s.spans.iter())
        .collect();
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let request = spans
        .iter()
        .find(|s| s.name == "request")
        .unwrap_or_else(|| {
            let names: Vec<_> = spans.iter().map(|s| &s.name).collect();
            panic!(
                "{receiver:?}: no request span in {} exports: {names:?}",
                requests.len()
            )
        });
    assert_eq!(hex(&request.trace_id), trace_id);
    assert_eq!(hex(&request.parent_span_id), client_span);
    let call = spans
        .iter()
        .find(|s| s.name == "upstream call")
        .expect("the upstream call's span");
    assert_eq!(call.trace_id, request.trace_id);
    // A descendant of the request's span, and the one whose id went upstream.
    let mut parent = call.parent_span_id.clone();
    while parent != request.span_id {
        let up = spans
            .iter()
            .find(|s| s.span_id == parent)
            .unwrap_or_else(|| panic!("the upstream call is not under the request"));
        parent = up.parent_span_id.clone();
    }
    assert!(traceparent.contains(&hex(&call.span_id)), "{traceparent}");
    // The listing: a span per provider (Mainbrainer's answer may come from the ledger, with
    // no upstream call), its upstream calls as their children.
    let fanned: Vec<_> = spans.iter().filter(|s| s.name == "provider").collect();
    assert_eq!(fanned.len(), 5, "one span per provider");
    let under_a_provider = fanned
        .iter()
        .filter(|provider| {
            spans
                .iter()
                .any(|s| s.name == "upstream call" && s.parent_span_id == provider.span_id)
        })
        .count();
    assert!(
        under_a_provider >= 4,
        "{under_a_provider} providers' calls under their span"
    );
    let service = requests[0].resource_spans[0]
        .resource
        .as_ref()
        .unwrap()
        .attributes
        .iter()
        .find(|a| a.key == "service.name")
        .and_then(|a| a.value.as_ref())
        .map(|v| format!("{v:?}"))
        .unwrap_or_default();
    assert!(service.contains("gateway-under-test"), "{service}");
}

/// Counted in a process of its own (the real binary): the test binary's recorder is shared by
/// every test running beside this one.
#[tokio::test]
async fn mutations_with_an_idempotency_key_are_counted_as_mutations() {
    use crate::helpers::{sandbox_config, GatewayProcess};
    let sandbox = Sandbox::start().await.unwrap();
    let config = sandbox_config(&sandbox);
    let store = tempfile::tempdir().unwrap();
    let gateway = GatewayProcess::start(
        &config,
        &format!("sqlite://{}", store.path().join("store.db").display()),
    );
    let create = json!({
        "query": "mutation($input: CreateContactInput!) { createContact(input: $input) { contact { id } userErrors { code } } }",
        "variables": { "input": { "provider": "MAGICBLOCKS", "firstName": "Keyed", "lastName": "Counted" } },
    });
    let client = reqwest::Client::new();
    // The first run, then its replay.
    for replayed in [false, true] {
        let response = client
            .post(&gateway.url)
            .header("Idempotency-Key", "counted-once")
            .json(&create)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers().contains_key("idempotent-replayed"),
            replayed
        );
        let body: Value = response.json().await.unwrap();
        assert!(
            body["data"]["createContact"]["contact"]["id"].is_string(),
            "{body}"
        );
    }
    // The key again for another write: refused, not run.
    let mut other = create.clone();
    other["variables"]["input"]["firstName"] = json!("Other");
    let reused = client
        .post(&gateway.url)
        .header("Idempotency-Key", "counted-once")
        .json(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(reused.status(), 422);
    let text = client
        .get(gateway.url.replace("/graphql", "/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let samples = parse_prometheus(&text);
    let http = "contact_gateway_http_requests_total";
    assert_eq!(
        total(
            &samples,
            http,
            &[("operation", "mutation"), ("outcome", "ok")]
        ),
        2.0,
        "{text}"
    );
    assert_eq!(
        total(
            &samples,
            http,
            &[("operation", "mutation"), ("outcome", "refused")]
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        total(&samples, http, &[("operation", "unknown")]),
        0.0,
        "{text}"
    );
    assert_eq!(
        total(&samples, http, &[("operation", "none")]),
        0.0,
        "{text}"
    );
}
