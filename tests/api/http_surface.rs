//! The HTTP surface: GraphiQL, GET queries, health, and the limits that are on by default.

use crate::helpers::{error_codes, spawn_app, spawn_app_with};
use serde_json::{json, Value};

#[tokio::test]
async fn healthz_answers_ok() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_browser_gets_graphiql_and_a_client_gets_json_from_get() {
    let app = spawn_app().await;
    let page = app
        .client
        .get(format!("{}/graphql", app.address))
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page
        .text()
        .await
        .unwrap()
        .to_lowercase()
        .contains("graphiql"));

    let body: Value = app
        .client
        .get(format!("{}/graphql", app.address))
        .query(&[("query", "{ providers { id enabled } }")])
        .header("accept", "application/json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["data"]["providers"].as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn get_refuses_a_mutation() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(format!("{}/graphql", app.address))
        .query(&[(
            "query",
            "mutation { deleteContact(id: \"maiagent:x\") { userErrors { message } } }",
        )])
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    let body: Value = response.json().await.unwrap();
    assert!(body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("POST"));
}

#[tokio::test]
async fn an_oversized_body_gets_413_and_the_gateway_keeps_serving() {
    let app = spawn_app_with(|c| c.limits.max_body_bytes = 1024).await;
    let big = json!({ "query": format!("{{ providers {{ id }} }} #{}", "x".repeat(4096)) });
    let response = app
        .client
        .post(format!("{}/graphql", app.address))
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let data = app.data("{ providers { id } }", json!({})).await;
    assert_eq!(data["providers"].as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn introspection_passes_the_default_limits_and_deep_or_costly_queries_do_not() {
    let app = spawn_app().await;
    // GraphiQL's own introspection query must fit the default depth and complexity.
    let introspection = include_str!("introspection.graphql");
    let data = app.data(introspection, json!({})).await;
    assert!(data["__schema"]["types"].as_array().unwrap().len() > 10);

    let app = spawn_app_with(|c| c.limits.max_depth = 3).await;
    let deep = app
        .graphql(
            "{ contacts { edges { node { name { first } } } } }",
            json!({}),
        )
        .await;
    assert!(
        deep["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("nested too deep"),
        "{deep}"
    );
    let app = spawn_app_with(|c| c.limits.max_complexity = 50).await;
    let costly = app
        .graphql("{ contacts(first: 100) { nodes { id } } }", json!({}))
        .await;
    assert!(
        costly["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("too complex"),
        "{costly}"
    );
    assert!(costly["data"].is_null());
}

#[tokio::test]
async fn normalize_phone_reads_any_format() {
    let app = spawn_app().await;
    let data = app
        .data(
            r#"{ a: normalizePhone(phone: "(415) 555-1234") { input e164 valid countryCode nationalNumber region }
                 b: normalizePhone(phone: "020 7946 0958", defaultRegion: "GB") { e164 valid countryCode region }
                 c: normalizePhone(phone: "call me maybe") { e164 valid } }"#,
            json!({}),
        )
        .await;
    assert_eq!(
        data["a"],
        json!({ "input": "(415) 555-1234", "e164": "+14155551234", "valid": true, "countryCode": 1, "nationalNumber": "4155551234", "region": "US" })
    );
    assert_eq!(
        data["b"],
        json!({ "e164": "+442079460958", "valid": true, "countryCode": 44, "region": "GB" })
    );
    assert_eq!(data["c"], json!({ "e164": null, "valid": false }));

    let bad = app
        .graphql(
            r#"{ normalizePhone(phone: "1", defaultRegion: "Narnia") { e164 } }"#,
            json!({}),
        )
        .await;
    assert_eq!(error_codes(&bad), ["BAD_USER_INPUT"]);
}

#[tokio::test]
async fn malformed_ids_and_arguments_are_bad_user_input() {
    let app = spawn_app().await;
    for id in ["nonsense", "hubspot:1", "maiagent:"] {
        let body = app
            .graphql(
                "query($id: ID!) { contact(id: $id) { id } }",
                json!({ "id": id }),
            )
            .await;
        assert_eq!(error_codes(&body), ["BAD_USER_INPUT"], "{id}: {body}");
    }
    for args in [
        "first: 101",
        "first: -1",
        "after: \"bm90IGEgY3Vyc29y\"",
        "filter: { phone: \"not a phone\" }",
    ] {
        let body = app
            .graphql(
                &format!("{{ contacts({args}) {{ nodes {{ id }} }} }}"),
                json!({}),
            )
            .await;
        assert_eq!(error_codes(&body), ["BAD_USER_INPUT"], "{args}: {body}");
    }
}

/// The playground is served from the binary: the page loads only the gateway's own files, and
/// each of them is there.
#[tokio::test]
async fn graphiql_loads_only_files_the_gateway_serves() {
    let app = spawn_app().await;
    let page = app
        .client
        .get(format!("{}/graphql", app.address))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let sources: Vec<&str> = page
        .split(['"', '\''])
        .filter(|s| s.starts_with("/assets/") || s.starts_with("http"))
        .collect();
    assert_eq!(sources.len(), 4, "{sources:?}");
    for source in sources {
        assert!(
            source.starts_with("/assets/graphiql/"),
            "an outside file: {source}"
        );
        let response = app
            .client
            .get(format!("{}{source}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{source}");
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            content_type.starts_with("text/"),
            "{source}: {content_type}"
        );
        assert!(response.bytes().await.unwrap().len() > 1000, "{source}");
    }
}
