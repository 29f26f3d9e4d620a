//! JSON-array batches (Apollo's `BatchHttpLink`), through HTTP.

use crate::helpers::{spawn_app, spawn_app_with};
use contact_gateway::contact::ProviderId;
use serde_json::{json, Value};

async fn post(app: &crate::helpers::TestApp, body: &Value, key: Option<&str>) -> (u16, Value) {
    let mut request = app
        .client
        .post(format!("{}/graphql", app.address))
        .json(body);
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn a_batch_answers_each_operation_in_order() {
    let app = spawn_app().await;
    let id = format!(
        "maiagent:{}",
        app.sandbox.control(ProviderId::Maiagent).records()[0]["id"]
            .as_str()
            .unwrap()
    );
    let batch = json!([
        { "query": "{ providers { id } }" },
        { "query": "query($id: ID!) { contact(id: $id) { id } }", "variables": { "id": id } },
        { "query": "{ nope }" },
    ]);
    let (status, body) = post(&app, &batch, None).await;
    assert_eq!(status, 200);
    let results = body.as_array().expect("an array of results");
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["data"]["providers"].as_array().unwrap().len(), 5);
    assert_eq!(results[1]["data"]["contact"]["id"], json!(id));
    assert!(
        results[2].get("data").is_none(),
        "an operation that does not validate has no data"
    );
    assert_eq!(
        results[2]["errors"][0]["extensions"]["code"],
        "GRAPHQL_VALIDATION_FAILED"
    );
}

#[tokio::test]
async fn a_batch_is_bounded_shares_one_budget_and_takes_no_idempotency_key() {
    let app = spawn_app_with(|c| {
        c.limits.max_batch = 3;
        c.limits.max_upstream_calls = 2;
    })
    .await;
    let four = json!([{ "query": "{ __typename }" }, { "query": "{ __typename }" }, { "query": "{ __typename }" }, { "query": "{ __typename }" }]);
    let (status, body) = post(&app, &four, None).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("max_batch"));
    // Three lookups of distinct contacts in three operations: the batch's one budget of two
    // upstream calls holds for all of them.
    let ids: Vec<String> = app.sandbox.control(ProviderId::Maiagent).records()[..3]
        .iter()
        .map(|r| format!("maiagent:{}", r["id"].as_str().unwrap()))
        .collect();
    let batch: Vec<Value> = ids
        .iter()
        .map(|id| json!({ "query": "query($id: ID!) { contact(id: $id, noCache: true) { id } }", "variables": { "id": id } }))
        .collect();
    app.sandbox.control(ProviderId::Maiagent).reset_requests();
    let (status, _) = post(&app, &Value::Array(batch), None).await;
    assert_eq!(status, 200);
    assert_eq!(app.sandbox.control(ProviderId::Maiagent).request_count(), 2);
    let (status, body) = post(&app, &json!([{ "query": "{ __typename }" }]), Some("k-1")).await;
    assert_eq!(status, 400, "{body}");
}
