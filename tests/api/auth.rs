//! Inbound auth through HTTP: who may call, who may write, what a refused request costs (no
//! upstream call), JWTs of every supported kind, rate limits per caller, CORS, exposure.

use crate::helpers::{error_codes, spawn_app_with, TestApp};
use contact_gateway::config::{ApiKey, AuthConfig, CorsConfig, JwtConfig, JwtKey, Role, Secret};
use contact_gateway::contact::ProviderId;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::time::{SystemTime, UNIX_EPOCH};

const READ_KEY: &str = "test-read-key-0123456789abcdef";
const WRITE_KEY: &str = "test-write-key-0123456789abcdef";
const HS_SECRET: &str = "a-test-only-hs256-secret-of-32-bytes-or-more";
const ISSUER: &str = "https://auth.example.com/";
const AUDIENCE: &str = "contact-gateway";

fn key(name: &str, key: &str, role: Role) -> ApiKey {
    ApiKey {
        name: name.into(),
        sha256: Sha256::digest(key.as_bytes()).into(),
        role,
    }
}

fn auth(jwt: Option<JwtKey>) -> AuthConfig {
    AuthConfig {
        keys: vec![
            key("reader", READ_KEY, Role::Read),
            key("writer", WRITE_KEY, Role::Write),
        ],
        jwt: jwt.map(|key| JwtConfig {
            issuer: ISSUER.into(),
            audience: AUDIENCE.into(),
            key,
            write_scope: "contacts:write".into(),
        }),
        rate_per_sec_per_caller: None,
    }
}

fn upstream(app: &TestApp) -> u64 {
    ProviderId::ALL
        .iter()
        .map(|id| app.sandbox.control(*id).request_count())
        .sum()
}

/// Posts `query` with `Authorization: Bearer <credential>` (none when `None`).
async fn call(
    app: &TestApp,
    credential: Option<&str>,
    query: &str,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = app
        .client
        .post(format!("{}/graphql", app.address))
        .json(&json!({ "query": query }));
    if let Some(credential) = credential {
        request = request.bearer_auth(credential);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.json().await.unwrap())
}

const LIST: &str = "{ contacts(first: 2) { nodes { id } } }";
const CREATE: &str = r#"mutation { createContact(input: { provider: CONSUELO, firstName: "Auth", emails: [{ address: "auth.test@example.com" }] }) { contact { id } userErrors { code } } }"#;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(scope: &str, exp: u64, aud: &str, iss: &str) -> Value {
    json!({ "sub": "user-7", "iss": iss, "aud": aud, "exp": exp, "scope": scope })
}

fn hs256(claims: &Value, secret: &str) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/api/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

#[tokio::test]
async fn no_or_unknown_credential_is_401_and_nothing_goes_upstream() {
    let app = spawn_app_with(|c| c.auth = Some(auth(None))).await;
    for credential in [None, Some("not-a-key"), Some("")] {
        let (status, headers, body) = call(&app, credential, LIST).await;
        assert_eq!(status, 401, "{credential:?}: {body}");
        assert_eq!(headers["www-authenticate"], "Bearer");
        assert_eq!(error_codes(&body), ["UNAUTHENTICATED"]);
    }
    assert_eq!(upstream(&app), 0);
    // The GraphiQL page itself loads without a credential.
    let page = app
        .client
        .get(format!("{}/graphql", app.address))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("graphiql"));
}

#[tokio::test]
async fn a_read_key_reads_and_cannot_write_a_write_key_writes() {
    let app = spawn_app_with(|c| c.auth = Some(auth(None))).await;
    let (status, _, body) = call(&app, Some(READ_KEY), LIST).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"]["contacts"]["nodes"].as_array().unwrap().len(),
        2
    );
    let consuelo = app.sandbox.control(ProviderId::Consuelo);
    consuelo.reset_requests();
    let (_, _, body) = call(&app, Some(READ_KEY), CREATE).await;
    assert_eq!(error_codes(&body), ["FORBIDDEN"], "{body}");
    assert_eq!(
        body["errors"][0]["path"],
        json!(["createContact"]),
        "{body}"
    );
    assert_eq!(consuelo.request_count(), 0, "nothing sent upstream");
    // Fields behind a fragment are refused too, with the code.
    let fragment = r#"mutation { ...F } fragment F on Mutation { deleteContact(id: "consuelo:contact_1001") { deletedId } }"#;
    let (_, _, body) = call(&app, Some(READ_KEY), fragment).await;
    assert_eq!(error_codes(&body), ["FORBIDDEN"], "{body}");
    assert_eq!(consuelo.request_count(), 0, "nothing sent upstream");
    let (_, _, body) = call(&app, Some(WRITE_KEY), CREATE).await;
    assert!(
        body["data"]["createContact"]["contact"]["id"].is_string(),
        "{body}"
    );
}

#[tokio::test]
async fn jwts_are_checked_for_signature_issuer_audience_expiry_and_scope() {
    let app = spawn_app_with(|c| {
        c.auth = Some(auth(Some(JwtKey::Hs256(Secret::new(HS_SECRET)))));
    })
    .await;
    let later = now() + 600;
    let writer = hs256(
        &claims("contacts:read contacts:write", later, AUDIENCE, ISSUER),
        HS_SECRET,
    );
    let (_, _, body) = call(&app, Some(&writer), CREATE).await;
    assert!(
        body["data"]["createContact"]["contact"]["id"].is_string(),
        "{body}"
    );
    let reader = hs256(&claims("contacts:read", later, AUDIENCE, ISSUER), HS_SECRET);
    let (status, _, body) = call(&app, Some(&reader), LIST).await;
    assert_eq!(status, 200, "{body}");
    let (_, _, body) = call(&app, Some(&reader), CREATE).await;
    assert_eq!(error_codes(&body), ["FORBIDDEN"]);
    for (what, token) in [
        (
            "expired",
            hs256(
                &claims("contacts:write", now() - 3600, AUDIENCE, ISSUER),
                HS_SECRET,
            ),
        ),
        (
            "wrong audience",
            hs256(
                &claims("contacts:write", later, "another-api", ISSUER),
                HS_SECRET,
            ),
        ),
        (
            "wrong issuer",
            hs256(
                &claims("contacts:write", later, AUDIENCE, "https://evil.example/"),
                HS_SECRET,
            ),
        ),
        (
            "wrong signature",
            hs256(
                &claims("contacts:write", later, AUDIENCE, ISSUER),
                "another-secret-that-is-32-bytes-long!!",
            ),
        ),
    ] {
        let (status, _, body) = call(&app, Some(&token), LIST).await;
        assert_eq!(status, 401, "{what}: {body}");
        assert_eq!(error_codes(&body), ["UNAUTHENTICATED"], "{what}");
    }
}

#[tokio::test]
async fn rs256_and_es256_public_keys_verify_their_tokens() {
    for (public, private, algorithm) in [
        (
            "jwt-rs256-public.pem",
            "jwt-rs256-private.pem",
            Algorithm::RS256,
        ),
        (
            "jwt-es256-public.pem",
            "jwt-es256-private.pem",
            Algorithm::ES256,
        ),
    ] {
        let app =
            spawn_app_with(|c| c.auth = Some(auth(Some(JwtKey::PublicKeyPem(fixture(public))))))
                .await;
        let signing = match algorithm {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(&fixture(private)).unwrap(),
            _ => EncodingKey::from_ec_pem(&fixture(private)).unwrap(),
        };
        let token = encode(
            &Header::new(algorithm),
            &claims("", now() + 600, AUDIENCE, ISSUER),
            &signing,
        )
        .unwrap();
        let (status, _, body) = call(&app, Some(&token), LIST).await;
        assert_eq!(status, 200, "{algorithm:?}: {body}");
        // The same claims signed with the shared-secret scheme are refused (no algorithm switch).
        let forged = hs256(&claims("", now() + 600, AUDIENCE, ISSUER), HS_SECRET);
        assert_eq!(call(&app, Some(&forged), LIST).await.0, 401);
    }
}

#[tokio::test]
async fn keys_from_a_jwks_url_are_fetched_and_unknown_key_ids_refused() {
    let jwks: Value = serde_json::from_slice(&fixture("jwks.json")).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let jwks_url = format!(
        "http://{}/.well-known/jwks.json",
        listener.local_addr().unwrap()
    );
    let served = axum::Router::new().route(
        "/.well-known/jwks.json",
        axum::routing::get(move || {
            let jwks = jwks.clone();
            async move { axum::Json(jwks) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, served).await });
    let app = spawn_app_with(|c| c.auth = Some(auth(Some(JwtKey::Jwks(jwks_url))))).await;
    let signing = EncodingKey::from_rsa_pem(&fixture("jwt-rs256-private.pem")).unwrap();
    let token_with = |kid: &str| {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.into());
        encode(
            &header,
            &claims("contacts:write", now() + 600, AUDIENCE, ISSUER),
            &signing,
        )
        .unwrap()
    };
    let (status, _, body) = call(&app, Some(&token_with("test-rs256")), LIST).await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = call(&app, Some(&token_with("rotated-away")), LIST).await;
    assert_eq!(status, 401, "{body}");
}

#[tokio::test]
async fn one_caller_past_its_rate_gets_429_and_others_are_not_slowed() {
    let app = spawn_app_with(|c| {
        let mut config = auth(None);
        config.rate_per_sec_per_caller = Some(2);
        c.auth = Some(config);
    })
    .await;
    let query = "{ __typename }";
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(call(&app, Some(READ_KEY), query).await.0);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    let (status, headers, body) = loop {
        let answer = call(&app, Some(READ_KEY), query).await;
        if answer.0 == 429 {
            break answer;
        }
    };
    assert_eq!(status, 429);
    assert_eq!(error_codes(&body), ["RATE_LIMITED"]);
    assert!(
        headers["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert_eq!(
        call(&app, Some(WRITE_KEY), query).await.0,
        200,
        "another caller has its own bucket"
    );
}

async fn preflight(app: &TestApp, origin: &str) -> reqwest::Response {
    app.client
        .request(reqwest::Method::OPTIONS, format!("{}/graphql", app.address))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn cors_allows_the_configured_origins_only() {
    let app = spawn_app_with(|c| {
        c.cors = Some(CorsConfig {
            allow_origins: vec!["https://app.example.com".into()],
            allow_credentials: false,
            max_age_secs: 600,
        });
    })
    .await;
    let allowed = preflight(&app, "https://app.example.com").await;
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let headers = allowed.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    for name in [
        "authorization",
        "content-type",
        "idempotency-key",
        "traceparent",
        "apollo-require-preflight",
        "contact-gateway-diagnostics",
    ] {
        assert!(headers.contains(name), "{name} in {headers}");
    }
    let refused = preflight(&app, "https://evil.example").await;
    assert!(refused
        .headers()
        .get("access-control-allow-origin")
        .is_none());
    let simple = app
        .client
        .post(format!("{}/graphql", app.address))
        .header("origin", "https://app.example.com")
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    let exposed = simple.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    for name in [
        "idempotent-replayed",
        "retry-after",
        "contact-gateway-cache",
    ] {
        assert!(exposed.contains(name), "{name} in {exposed}");
    }
}

#[tokio::test]
async fn without_cors_no_origin_is_allowed_and_the_sandbox_allows_local_dev_servers() {
    let app = spawn_app_with(|_| {}).await;
    let response = preflight(&app, "http://localhost:5173").await;
    assert!(response
        .headers()
        .get("access-control-allow-origin")
        .is_none());

    let sandbox =
        contact_gateway::startup::Application::build_sandbox("127.0.0.1:0".parse().unwrap(), None)
            .await
            .unwrap();
    let address = format!("http://{}", sandbox.address());
    tokio::spawn(sandbox.run_until(std::future::pending()));
    let client = reqwest::Client::new();
    for (origin, allowed) in [
        ("http://localhost:5173", true),
        ("http://127.0.0.1:8080", true),
        ("https://evil.example", false),
    ] {
        let response = client
            .request(reqwest::Method::OPTIONS, format!("{address}/graphql"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
            .await
            .unwrap();
        assert_eq!(
            response
                .headers()
                .get("access-control-allow-origin")
                .is_some(),
            allowed,
            "{origin}"
        );
    }
}
