//! A recording stand-in for a provider's REST API, for the adapters' request-side unit tests:
//! it listens on 127.0.0.1:0, records every request and answers with a canned payload.
//!
//! Also the small fixtures the adapters' write tests share.

use crate::config::{ProviderConfig, Secret};
use crate::contact::{Email, Phone, ProviderId};
use crate::providers::http::UpstreamClient;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::Value;
use std::sync::{Arc, Mutex};

/// The API key every test client signs with.
pub const KEY: &str = "test-key-123";

/// One request as the upstream saw it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: Method,
    /// The path as sent, still percent-encoded.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Option<Value>,
}

impl Recorded {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

type Respond = dyn Fn(&Recorded) -> (u16, Value) + Send + Sync;

#[derive(Clone)]
struct Recorder {
    seen: Arc<Mutex<Vec<Recorded>>>,
    respond: Arc<Respond>,
}

/// A running stand-in and a client of the adapter's provider pointed at it.
pub struct Upstream {
    pub client: UpstreamClient,
    seen: Arc<Mutex<Vec<Recorded>>>,
}

impl Upstream {
    pub fn requests(&self) -> Vec<Recorded> {
        self.seen.lock().expect("recorder lock").clone()
    }
}

/// Starts a stand-in answering every request with `respond(request)` = (status, JSON body).
pub async fn spawn(
    provider: ProviderId,
    region: &str,
    respond: impl Fn(&Recorded) -> (u16, Value) + Send + Sync + 'static,
) -> Upstream {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorder = Recorder {
        seen: seen.clone(),
        respond: Arc::new(respond),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("local address");
    let app = Router::new().fallback(record).with_state(recorder);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let mut config = ProviderConfig::new(format!("http://{addr}"), Secret::new(KEY));
    config.default_region = region.to_string();
    Upstream {
        client: UpstreamClient::new(provider, &config),
        seen,
    }
}

async fn record(
    State(recorder): State<Recorder>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query = uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let request = Recorded {
        method,
        path: uri.path().to_string(),
        query,
        headers,
        body: serde_json::from_slice(&body).ok(),
    };
    let (status, payload) = (recorder.respond)(&request);
    recorder.seen.lock().expect("recorder lock").push(request);
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(payload)).into_response()
}

/// A primary phone already in E.164, as the gateway's validation hands it to an adapter.
pub fn primary_phone(e164: &str) -> Phone {
    Phone {
        number: e164.into(),
        e164: Some(e164.into()),
        kind: None,
        primary: true,
    }
}

/// A primary email, as the gateway's validation hands it to an adapter.
pub fn primary_email(address: &str) -> Email {
    Email {
        address: address.into(),
        kind: None,
        primary: true,
    }
}
