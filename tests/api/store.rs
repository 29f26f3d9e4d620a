//! The store shared by gateway processes: SQLite always, PostgreSQL when `TEST_DATABASE_URL`
//! is set (`.ci/run` starts one).

use crate::helpers::{sandbox_config, store_urls, GatewayProcess};
use contact_gateway::contact::ProviderId;
use contact_gateway::sandbox::Sandbox;
use serde_json::json;
use std::time::Duration;

const UPSERT: &str = "mutation($input: UpsertContactInput!) { upsertContact(input: $input) { created contact { id } userErrors { code message } } }";

/// Four upserts of one new email at once, two through each of two gateway processes on one
/// store: the provider gets one create, and every answer names that contact.
#[tokio::test]
async fn concurrent_upserts_across_two_gateways_make_one_contact() {
    for (backend, store, _keep) in store_urls().await {
        let sandbox = Sandbox::start().await.unwrap();
        let config = sandbox_config(&sandbox);
        let a = GatewayProcess::start(&config, &store);
        let b = GatewayProcess::start(&config, &store);
        let consuelo = sandbox.control(ProviderId::Consuelo);
        // Slow enough that every upsert looks for a match before any has created one.
        consuelo.set_latency(Duration::from_millis(200));
        consuelo.reset_requests();
        let input = json!({ "input": { "provider": "CONSUELO", "firstName": "Four",
            "emails": [{ "address": "four.at.once@example.com" }] } });
        let answers =
            futures::future::join_all([&a, &b, &a, &b].map(|g| g.data(UPSERT, input.clone())))
                .await;
        let ids: Vec<_> = answers
            .iter()
            .map(|d| d["upsertContact"]["contact"]["id"].clone())
            .collect();
        assert!(
            ids.iter().all(|id| id == &ids[0] && id.is_string()),
            "{backend}: {answers:?}"
        );
        let creates = consuelo
            .requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path == "/v1/contacts")
            .count();
        assert_eq!(creates, 1, "{backend}: one create upstream");
    }
}
