//! Gentle with providers (`[providers.<id>]` budgets): a 429 pauses the provider, a read is
//! retried through passing failures and a write never is, a breaker stops calling a provider
//! that keeps failing and lets it back, and a bucket spaces calls — each refusal made before
//! calling, never past the request's deadline.

use crate::helpers::{enum_name, error_codes, spawn_app, spawn_app_with, TestApp};
use contact_gateway::config::Bucket;
use contact_gateway::contact::ProviderId;
use contact_gateway::sandbox::Fault;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const LOOKUP: &str = "query($id: ID!) { contact(id: $id, noCache: true) { id } }";

/// The global id of the `n`th seeded contact of `provider`.
fn seeded_id(app: &TestApp, provider: ProviderId, n: usize) -> String {
    let native = app.sandbox.control(provider).records()[n]["id"].clone();
    let native = native
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| native.to_string());
    format!("{provider}:{native}")
}

fn calls(app: &TestApp, provider: ProviderId) -> u64 {
    app.sandbox.control(provider).request_count()
}

async fn lookup(app: &TestApp, provider: ProviderId) -> Value {
    let id = seeded_id(app, provider, 0);
    app.graphql(LOOKUP, json!({ "id": id })).await
}

#[tokio::test]
async fn a_429_with_a_long_retry_after_makes_the_next_calls_fail_at_once_without_calling() {
    let app = spawn_app().await;
    let consuelo = ProviderId::Consuelo;
    app.sandbox
        .control(consuelo)
        .set_fault(Some(Fault::RateLimited {
            retry_after_secs: 120,
        }));
    let body = lookup(&app, consuelo).await;
    assert_eq!(error_codes(&body), ["PROVIDER_RATE_LIMITED"], "{body}");
    assert_eq!(
        body["errors"][0]["extensions"]["retryAfterSecs"],
        json!(120)
    );
    assert_eq!(calls(&app, consuelo), 1);

    // The provider would answer now, but it asked for two minutes: longer than a request may
    // wait (`max_retry_after_secs`, 30), so the next call fails at once and is not sent.
    app.sandbox.control(consuelo).set_fault(None);
    let started = Instant::now();
    let body = lookup(&app, consuelo).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "it did not wait"
    );
    assert_eq!(error_codes(&body), ["PROVIDER_RATE_LIMITED"], "{body}");
    let error = &body["errors"][0];
    assert_eq!(error["extensions"]["provider"], json!(enum_name(consuelo)));
    let retry_after = error["extensions"]["retryAfterSecs"].as_u64().unwrap();
    assert!((118..=120).contains(&retry_after), "{retry_after}");
    assert_eq!(calls(&app, consuelo), 1, "nothing was sent");

    // The others still answer, in a fan-out beside Consuelo's error and on their own.
    let body = app
        .graphql(
            "{ contacts(first: 100, noCache: true) { nodes { provider } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_codes(&body), ["PROVIDER_RATE_LIMITED"], "{body}");
    let providers: Vec<&str> = body["data"]["contacts"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["provider"].as_str().unwrap())
        .collect();
    for other in ["MAGICBLOCKS", "WHAUTOMATE", "MAIAGENT"] {
        assert!(providers.contains(&other), "{other} is missing: {body}");
    }
    assert!(!providers.contains(&"CONSUELO"));
    assert_eq!(calls(&app, consuelo), 1);
    let body = lookup(&app, ProviderId::Maiagent).await;
    assert!(body.get("errors").is_none(), "{body}");
}

#[tokio::test]
async fn a_short_retry_after_is_waited_out() {
    let app = spawn_app().await;
    let maiagent = ProviderId::Maiagent;
    app.sandbox.control(maiagent).set_fault_times(
        Fault::RateLimited {
            retry_after_secs: 1,
        },
        1,
    );
    let body = lookup(&app, maiagent).await;
    assert_eq!(error_codes(&body), ["PROVIDER_RATE_LIMITED"], "{body}");
    // Within the request's deadline: the next call waits for the second to pass, then goes.
    let started = Instant::now();
    let body = lookup(&app, maiagent).await;
    let waited = started.elapsed();
    assert!(body.get("errors").is_none(), "{body}");
    assert!(waited >= Duration::from_millis(900), "{waited:?}");
    assert_eq!(calls(&app, maiagent), 2);
}

#[tokio::test]
async fn a_read_is_retried_through_two_503s_and_a_write_is_not() {
    let app = spawn_app().await;
    let maiagent = ProviderId::Maiagent;
    let control = app.sandbox.control(maiagent);

    control.set_fault_times(Fault::Status(503), 2);
    let body = lookup(&app, maiagent).await;
    assert!(
        body.get("errors").is_none(),
        "the third try answers: {body}"
    );
    assert_eq!(
        body["data"]["contact"]["id"],
        json!(seeded_id(&app, maiagent, 0))
    );
    assert_eq!(calls(&app, maiagent), 3);

    // A search sent as POST (Consuelo's) is a read too.
    let consuelo = ProviderId::Consuelo;
    app.sandbox
        .control(consuelo)
        .set_fault_times(Fault::Status(503), 2);
    let body = app
        .graphql(
            "{ contacts(providers: [CONSUELO], filter: { search: \"a\" }, noCache: true) { nodes { id } } }",
            json!({}),
        )
        .await;
    assert!(body.get("errors").is_none(), "{body}");
    let searches = app.sandbox.control(consuelo).requests();
    assert_eq!(searches.len(), 3, "{searches:?}");
    assert!(searches
        .iter()
        .all(|r| r.method == "POST" && r.path == "/v1/contacts/search"));

    // A create is sent once: a write is never retried.
    control.reset_requests();
    let stored = control.records().len();
    control.set_fault_times(Fault::Status(503), 2);
    let body = app
        .graphql(
            "mutation($input: CreateContactInput!) { createContact(input: $input) { contact { id } } }",
            json!({ "input": { "provider": "MAIAGENT", "firstName": "Once",
                               "emails": [{ "address": "once@example.com" }] } }),
        )
        .await;
    assert_eq!(error_codes(&body), ["PROVIDER_UNAVAILABLE"], "{body}");
    let sent = control.requests();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].method, "POST");
    assert_eq!(control.records().len(), stored);
}

#[tokio::test]
async fn the_breaker_stops_calling_a_failing_provider_and_closes_once_it_is_back() {
    let magicblocks = ProviderId::Magicblocks;
    let app = spawn_app_with(|c| {
        let budget = &mut c.providers.get_mut(&magicblocks).unwrap().budget;
        budget.breaker_failures = 3;
        budget.breaker_cooldown = Duration::from_secs(2);
        budget.retries = 0;
    })
    .await;
    app.sandbox
        .control(magicblocks)
        .set_fault(Some(Fault::Status(503)));
    for _ in 0..3 {
        let body = lookup(&app, magicblocks).await;
        assert_eq!(error_codes(&body), ["PROVIDER_UNAVAILABLE"], "{body}");
    }
    assert_eq!(calls(&app, magicblocks), 3);

    // Open: calls fail at once, with a message that says why, and never reach it.
    let body = lookup(&app, magicblocks).await;
    assert_eq!(error_codes(&body), ["PROVIDER_UNAVAILABLE"], "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("circuit breaker"), "{message}");
    let body = app
        .graphql(
            "{ contacts(first: 100, noCache: true) { nodes { provider } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_codes(&body), ["PROVIDER_UNAVAILABLE"], "{body}");
    let nodes = body["data"]["contacts"]["nodes"].as_array().unwrap();
    assert!(!nodes.is_empty(), "the others answer: {body}");
    assert!(nodes.iter().all(|n| n["provider"] != json!("MAGICBLOCKS")));
    // Healthy again, but the cooldown has not passed: still not called.
    app.sandbox.control(magicblocks).set_fault(None);
    let body = lookup(&app, magicblocks).await;
    assert_eq!(error_codes(&body), ["PROVIDER_UNAVAILABLE"], "{body}");
    assert_eq!(calls(&app, magicblocks), 3, "nothing reached it while open");

    // After the cooldown one probe goes through; it answers, and the breaker closes.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    for expected_calls in [4, 5, 6] {
        let body = lookup(&app, magicblocks).await;
        assert!(body.get("errors").is_none(), "{body}");
        assert_eq!(calls(&app, magicblocks), expected_calls);
    }
}

#[tokio::test]
async fn a_bucket_spaces_calls_and_refuses_one_that_cannot_fit_the_deadline() {
    let maiagent = ProviderId::Maiagent;
    let app = spawn_app_with(|c| {
        // A call a second, one at a time, and requests of 1.6 s.
        c.providers.get_mut(&maiagent).unwrap().budget.bucket = Some(Bucket {
            rate_per_sec: 1.0,
            burst: 1,
        });
        c.limits.request_timeout_ms = 1600;
    })
    .await;
    let ids: Vec<String> = (0..3).map(|n| seeded_id(&app, maiagent, n)).collect();
    let query = "query($a: ID!, $b: ID!, $c: ID!) {
        a: contact(id: $a, noCache: true) { id }
        b: contact(id: $b, noCache: true) { id }
        c: contact(id: $c, noCache: true) { id } }";
    let started = Instant::now();
    let body = app
        .graphql(query, json!({ "a": ids[0], "b": ids[1], "c": ids[2] }))
        .await;
    let took = started.elapsed();
    // The first goes at once, the second a second later; the third would go at 2 s, past the
    // deadline, so it fails as soon as that is known, unsent.
    assert_eq!(error_codes(&body), ["PROVIDER_RATE_LIMITED"], "{body}");
    assert_eq!(body["errors"][0]["extensions"]["retryAfterSecs"], json!(1));
    let answered = ["a", "b", "c"]
        .iter()
        .filter(|field| body["data"][**field]["id"].is_string())
        .count();
    assert_eq!(answered, 2, "{body}");
    assert_eq!(calls(&app, maiagent), 2);
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_millis(1600),
        "{took:?}"
    );
    // Other providers are not paced by it.
    let started = Instant::now();
    let body = lookup(&app, ProviderId::Magicblocks).await;
    assert!(body.get("errors").is_none(), "{body}");
    assert!(started.elapsed() < Duration::from_millis(300));
}
