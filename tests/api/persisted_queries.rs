//! Automatic persisted queries (Apollo's protocol), through HTTP.

use crate::helpers::{error_codes, spawn_app};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const QUERY: &str = "{ providers { id enabled } }";

fn hash(query: &str) -> String {
    format!("{:x}", Sha256::digest(query.as_bytes()))
}

async fn post(app: &crate::helpers::TestApp, body: Value) -> Value {
    app.client
        .post(format!("{}/graphql", app.address))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_hash_alone_runs_once_the_query_is_known() {
    let app = spawn_app().await;
    let persisted = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash(QUERY) } });
    let unknown = post(&app, json!({ "extensions": persisted })).await;
    assert_eq!(
        error_codes(&unknown),
        ["PERSISTED_QUERY_NOT_FOUND"],
        "{unknown}"
    );
    assert_eq!(unknown["errors"][0]["message"], "PersistedQueryNotFound");
    let registered = post(&app, json!({ "query": QUERY, "extensions": persisted })).await;
    assert_eq!(
        registered["data"]["providers"].as_array().unwrap().len(),
        5,
        "{registered}"
    );
    let by_hash = post(&app, json!({ "extensions": persisted })).await;
    assert_eq!(by_hash["data"], registered["data"]);
    // By GET too, as Apollo Client sends hashed queries.
    let url = format!(
        "{}/graphql?extensions={}",
        app.address,
        urlencode(&persisted.to_string())
    );
    let by_get: Value = app
        .client
        .get(url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(by_get["data"], registered["data"], "{by_get}");
}

#[tokio::test]
async fn a_query_whose_hash_does_not_match_is_refused() {
    let app = spawn_app().await;
    let wrong = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash("{ other }") } });
    let body = post(&app, json!({ "query": QUERY, "extensions": wrong })).await;
    assert_eq!(error_codes(&body), ["BAD_USER_INPUT"], "{body}");
    // And the wrong hash was not kept for the query.
    let body = post(&app, json!({ "extensions": wrong })).await;
    assert_eq!(error_codes(&body), ["PERSISTED_QUERY_NOT_FOUND"]);
}

#[tokio::test]
async fn a_hashed_mutation_by_get_is_refused() {
    let app = spawn_app().await;
    let mutation =
        r#"mutation { addTags(id: "whautomate:x", tags: ["a"]) { userErrors { code } } }"#;
    let persisted = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash(mutation) } });
    post(&app, json!({ "query": mutation, "extensions": persisted })).await;
    let url = format!(
        "{}/graphql?extensions={}",
        app.address,
        urlencode(&persisted.to_string())
    );
    let response = app.client.get(url).send().await.unwrap();
    assert_eq!(response.status(), 405);
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
