//! The response cache through HTTP: a repeated query is answered from it (`Contact-Gateway-Cache:
//! hit`) with no upstream call and no resolver work, and every change its answer was built on
//! retires it: a write, a do-not-contact change, a fresh read; `noCache`, errors and other
//! callers never get a kept answer.

use crate::helpers::spawn_app_and_gateway;
use crate::helpers::TestApp;
use contact_gateway::config::{ApiKey, AuthConfig, Config, Role};
use contact_gateway::contact::ProviderId;
use contact_gateway::gateway::Gateway;
use contact_gateway::sandbox::Fault;
use contact_gateway::store::Store;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Sophie Tran at Whautomate: a provider that says nothing about consent, so the registry
/// alone answers `consent`.
const SOPHIE: &str = "whautomate:64f1a2b3c4d5e6f7a8b9c002";
const SOPHIE_PHONE: &str = "+61491570156";
const CONTACT: &str =
    "query($id: ID!) { contact(id: $id) { id displayName company consent { doNotContact } } }";

/// A gateway on the simulators, and a handle on it to read its store's counters.
async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> (TestApp, Arc<Gateway>) {
    spawn_app_and_gateway(adjust).await
}

async fn spawn() -> (TestApp, Arc<Gateway>) {
    spawn_with(|_| {}).await
}

fn store(gateway: &Gateway) -> &Store {
    gateway.store.as_ref().expect("the gateway has a store")
}

/// Upstream requests made so far, all providers.
fn upstream(app: &TestApp) -> u64 {
    ProviderId::ALL
        .iter()
        .map(|id| app.sandbox.control(*id).request_count())
        .sum()
}

/// What a POST answered: the cache header (`None` when absent) and the body.
async fn post(
    app: &TestApp,
    bearer: Option<&str>,
    query: &str,
    variables: Value,
) -> (Option<String>, Value) {
    let mut request = app
        .client
        .post(format!("{}/graphql", app.address))
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(key) = bearer {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.expect("gateway answers");
    assert!(response.status().is_success(), "HTTP {}", response.status());
    let cache = response
        .headers()
        .get("contact-gateway-cache")
        .map(|v| v.to_str().unwrap().to_string());
    (cache, response.json().await.expect("JSON"))
}

async fn ask(app: &TestApp, query: &str, variables: Value) -> (Option<String>, Value) {
    post(app, None, query, variables).await
}

fn hit() -> Option<String> {
    Some("hit".into())
}

fn miss() -> Option<String> {
    Some("miss".into())
}

#[tokio::test]
async fn a_repeated_query_is_answered_from_the_cache_without_calls_or_resolver_work() {
    let (app, gateway) = spawn().await;
    let vars = json!({ "id": SOPHIE });
    let (first, body) = ask(&app, CONTACT, vars.clone()).await;
    assert_eq!(first, miss());
    assert_eq!(
        body["data"]["contact"]["displayName"], "Sophie Tran",
        "{body:#}"
    );
    let (calls, registry_reads) = (upstream(&app), store(&gateway).registry_reads());
    let (second, again) = ask(&app, CONTACT, vars.clone()).await;
    assert_eq!(second, hit());
    assert_eq!(again, body);
    assert_eq!(upstream(&app), calls, "no upstream call");
    // `consent` reads the do-not-contact registry whenever it resolves: nothing resolved.
    assert_eq!(
        store(&gateway).registry_reads(),
        registry_reads,
        "no resolver work"
    );

    // The same query written differently, and over GET: the normalized entry answers it.
    let respaced = "query ($id: ID!) {\n  contact(id: $id) {\n    id, displayName company\n    consent { doNotContact } # the registry\n  }\n}";
    let (cache, other) = ask(&app, respaced, vars.clone()).await;
    assert_eq!((cache, &other), (hit(), &body));
    let response = app
        .client
        .get(format!("{}/graphql", app.address))
        .header("accept", "application/json")
        .query(&[("query", CONTACT), ("variables", &vars.to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["contact-gateway-cache"], "hit");
    assert_eq!(response.json::<Value>().await.unwrap(), body);

    // A persisted query, once its hash is known: by hash alone, from the cache.
    let hash = format!("{:x}", Sha256::digest(CONTACT.as_bytes()));
    let persisted = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });
    let by_hash = |with_query: bool| {
        let mut request = json!({ "variables": vars, "extensions": persisted });
        if with_query {
            request["query"] = json!(CONTACT);
        }
        app.client
            .post(format!("{}/graphql", app.address))
            .json(&request)
            .send()
    };
    let registered = by_hash(true).await.unwrap();
    assert_eq!(registered.headers()["contact-gateway-cache"], "hit");
    for _ in 0..2 {
        let response = by_hash(false).await.unwrap();
        assert_eq!(response.headers()["contact-gateway-cache"], "hit");
        assert_eq!(response.json::<Value>().await.unwrap(), body);
    }
    assert_eq!(upstream(&app), calls);
    assert_eq!(store(&gateway).registry_reads(), registry_reads);

    // A batch is never answered from the response cache: its operations run.
    let batch = app
        .client
        .post(format!("{}/graphql", app.address))
        .json(&json!([{ "query": CONTACT, "variables": vars }]))
        .send()
        .await
        .unwrap();
    assert!(batch.headers().get("contact-gateway-cache").is_none());
    assert_eq!(batch.json::<Value>().await.unwrap(), json!([body]));
    assert!(
        store(&gateway).registry_reads() > registry_reads,
        "it resolved"
    );
}

#[tokio::test]
async fn a_write_retires_the_answers_built_on_what_it_wrote() {
    let (app, _) = spawn().await;
    let id = "consuelo:contact_1004";
    let list = "{ contacts(providers: [CONSUELO], first: 5) { nodes { id company } } }";
    let company_in_list = |body: &Value| {
        body["data"]["contacts"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == id)
            .map(|n| n["company"].clone())
            .unwrap()
    };
    let (_, before) = ask(&app, CONTACT, json!({ "id": id })).await;
    assert_eq!(before["data"]["contact"]["company"], "Solana Realty");
    assert_eq!(ask(&app, CONTACT, json!({ "id": id })).await.0, hit());
    let (_, listed) = ask(&app, list, json!({})).await;
    assert_eq!(company_in_list(&listed), "Solana Realty");
    assert_eq!(ask(&app, list, json!({})).await.0, hit());

    let update =
        "mutation($id: ID!) { updateContact(id: $id, input: { company: \"Solana Homes\" }) {
        contact { company } userErrors { code } } }";
    let (cache, written) = ask(&app, update, json!({ "id": id })).await;
    assert_eq!(cache, None, "a mutation is never cached");
    assert_eq!(
        written["data"]["updateContact"]["userErrors"],
        json!([]),
        "{written:#}"
    );

    let (cache, after) = ask(&app, CONTACT, json!({ "id": id })).await;
    assert_eq!(cache, miss());
    assert_eq!(
        after["data"]["contact"]["company"], "Solana Homes",
        "read your write"
    );
    let (cache, listed) = ask(&app, list, json!({})).await;
    assert_eq!(cache, miss());
    assert_eq!(company_in_list(&listed), "Solana Homes");
    // And the new answers are kept in turn.
    assert_eq!(ask(&app, CONTACT, json!({ "id": id })).await.0, hit());
}

#[tokio::test]
async fn a_do_not_contact_change_retires_the_answers_showing_consent() {
    let (app, _) = spawn().await;
    let vars = json!({ "id": SOPHIE });
    let is_dnc = "query($phone: String) { isDoNotContact(phone: $phone) }";
    let phone = json!({ "phone": SOPHIE_PHONE });
    let (_, body) = ask(&app, CONTACT, vars.clone()).await;
    assert_eq!(body["data"]["contact"]["consent"], Value::Null);
    assert_eq!(ask(&app, CONTACT, vars.clone()).await.0, hit());
    let (_, body) = ask(&app, is_dnc, phone.clone()).await;
    assert_eq!(body["data"]["isDoNotContact"], false);
    assert_eq!(ask(&app, is_dnc, phone.clone()).await.0, hit());

    let add =
        "mutation($phone: String) { addToDoNotContact(input: { phone: $phone, providers: [] }) {
        userErrors { code } } }";
    let (_, added) = ask(&app, add, phone.clone()).await;
    assert_eq!(
        added["data"]["addToDoNotContact"]["userErrors"],
        json!([]),
        "{added:#}"
    );
    let (cache, body) = ask(&app, CONTACT, vars.clone()).await;
    assert_eq!(cache, miss());
    assert_eq!(
        body["data"]["contact"]["consent"]["doNotContact"], true,
        "{body:#}"
    );
    let (cache, body) = ask(&app, is_dnc, phone.clone()).await;
    assert_eq!(
        (cache, &body["data"]["isDoNotContact"]),
        (miss(), &json!(true))
    );
    assert_eq!(ask(&app, CONTACT, vars.clone()).await.0, hit());

    let remove = "mutation($phone: String) { removeFromDoNotContact(input: { phone: $phone }) {
        userErrors { code } } }";
    ask(&app, remove, phone.clone()).await;
    let (cache, body) = ask(&app, CONTACT, vars.clone()).await;
    assert_eq!(cache, miss());
    assert_eq!(body["data"]["contact"]["consent"], Value::Null, "{body:#}");
    let (cache, body) = ask(&app, is_dnc, phone).await;
    assert_eq!(
        (cache, &body["data"]["isDoNotContact"]),
        (miss(), &json!(false))
    );
}

#[tokio::test]
async fn no_cache_asks_the_provider_every_time_and_retires_what_was_kept() {
    let (app, _) = spawn().await;
    let whautomate = app.sandbox.control(ProviderId::Whautomate);
    let vars = json!({ "id": SOPHIE });
    ask(&app, CONTACT, vars.clone()).await;
    assert_eq!(ask(&app, CONTACT, vars.clone()).await.0, hit());

    let literal = "query($id: ID!) { contact(id: $id, noCache: true) { id displayName } }";
    let variable =
        "query($id: ID!, $fresh: Boolean) { contact(id: $id, noCache: $fresh) { id displayName } }";
    for (query, vars) in [
        (literal, json!({ "id": SOPHIE })),
        (variable, json!({ "id": SOPHIE, "fresh": true })),
    ] {
        for _ in 0..2 {
            let before = whautomate.request_count();
            let (cache, body) = ask(&app, query, vars.clone()).await;
            assert_eq!(cache, miss(), "{query}");
            assert_eq!(body["data"]["contact"]["displayName"], "Sophie Tran");
            assert_eq!(
                whautomate.request_count(),
                before + 1,
                "{query}: asked each time"
            );
        }
    }
    // A fresh read replaced what the read cache held: the answer built on the old read retired.
    assert_eq!(ask(&app, CONTACT, vars.clone()).await.0, miss());
    // The same variable document without `noCache` is kept.
    let vars = json!({ "id": SOPHIE, "fresh": false });
    ask(&app, variable, vars.clone()).await;
    assert_eq!(ask(&app, variable, vars).await.0, hit());

    let list = "{ contacts(providers: [WHAUTOMATE], first: 3, noCache: true) { nodes { id } } }";
    for _ in 0..2 {
        let before = whautomate.request_count();
        assert_eq!(ask(&app, list, json!({})).await.0, miss());
        assert!(whautomate.request_count() > before, "listed each time");
    }
}

#[tokio::test]
async fn answers_with_errors_are_not_kept() {
    // The failures must not open Whautomate's breaker: its answer after them is what is kept.
    let (app, _) = spawn_with(|c| {
        for p in c.providers.values_mut() {
            p.budget.breaker_failures = u32::MAX;
        }
    })
    .await;
    let whautomate = app.sandbox.control(ProviderId::Whautomate);
    whautomate.set_fault(Some(Fault::Status(503)));
    // One provider failing: the others' contacts beside its error.
    let list = "{ contacts(providers: [CONSUELO, WHAUTOMATE], first: 20) { nodes { id } } }";
    for _ in 0..2 {
        let before = whautomate.request_count();
        let (cache, body) = ask(&app, list, json!({})).await;
        assert_eq!(cache, miss());
        assert_eq!(
            body["data"]["contacts"]["nodes"].as_array().unwrap().len(),
            13,
            "{body:#}"
        );
        assert!(body["errors"].is_array(), "{body:#}");
        assert!(whautomate.request_count() > before, "asked each time");
    }
    whautomate.set_fault(None);
    let (cache, body) = ask(&app, list, json!({})).await;
    assert_eq!(cache, miss());
    assert!(body.get("errors").is_none(), "{body:#}");
    assert_eq!(ask(&app, list, json!({})).await.0, hit());
    // No such contact: the read cache keeps no "not found", nor does the response cache.
    let missing = json!({ "id": "whautomate:64f1a2b3c4d5e6f7a8b9cfff" });
    for _ in 0..2 {
        let before = whautomate.request_count();
        let (cache, body) = ask(&app, CONTACT, missing.clone()).await;
        assert_eq!(
            (cache, &body["data"]["contact"]),
            (miss(), &Value::Null),
            "{body:#}"
        );
        assert_eq!(whautomate.request_count(), before + 1);
    }
}

#[tokio::test]
async fn one_caller_never_gets_anothers_answer() {
    let keys = [
        ("alice", "alice-key-0123456789abcdef"),
        ("bob", "bob-key-0123456789abcdef"),
    ];
    let (app, _) = spawn_with(|config| {
        config.auth = Some(AuthConfig {
            keys: keys
                .iter()
                .map(|(name, key)| ApiKey {
                    name: (*name).into(),
                    sha256: Sha256::digest(key.as_bytes()).into(),
                    role: Role::Read,
                })
                .collect(),
            jwt: None,
            rate_per_sec_per_caller: None,
        });
    })
    .await;
    let vars = json!({ "id": SOPHIE });
    let [(_, alice), (_, bob)] = keys;
    assert_eq!(
        post(&app, Some(alice), CONTACT, vars.clone()).await.0,
        miss()
    );
    assert_eq!(
        post(&app, Some(alice), CONTACT, vars.clone()).await.0,
        hit()
    );
    assert_eq!(post(&app, Some(bob), CONTACT, vars.clone()).await.0, miss());
    assert_eq!(post(&app, Some(bob), CONTACT, vars).await.0, hit());
}

#[tokio::test]
async fn ttl_zero_turns_the_response_cache_off() {
    let (app, _) = spawn_with(|config| config.cache.ttl_secs = 0).await;
    let whautomate = app.sandbox.control(ProviderId::Whautomate);
    for _ in 0..2 {
        let before = whautomate.request_count();
        let (cache, body) = ask(&app, CONTACT, json!({ "id": SOPHIE })).await;
        assert_eq!(cache, None);
        assert_eq!(body["data"]["contact"]["displayName"], "Sophie Tran");
        assert_eq!(whautomate.request_count(), before + 1);
    }
}
