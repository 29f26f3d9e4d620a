//! A write the provider applied is answered as applied, even when the gateway's read of the
//! contact after it fails: the soak found `addTags` applied at Whautomate and answered
//! `PROVIDER_RATE_LIMITED` (its read-back met a 429), so a client believed nothing happened.

use crate::changes::{update_until_received, WsSubscriber};
use crate::consistency::spawn_behind_proxy;
use axum::http::Method;
use contact_gateway::contact::ProviderId;
use contact_gateway::sandbox::Fault;
use serde_json::{json, Value};
use std::time::Duration;

const TAGS: &str = "query($id: ID!) { contact(id: $id) { tags } }";

/// Whautomate takes the tag; the read-back that follows is answered 429 (the fault is set
/// while the tag answer is held, after the simulator applied it). The mutation answers the
/// change as made: no error, no contact, a `READ_BACK_FAILED` warning; the tag is stored, the
/// cached contact retired, and the change published.
#[tokio::test]
async fn a_tag_change_whose_read_back_fails_is_answered_as_applied() {
    let (app, proxy) = spawn_behind_proxy(ProviderId::Whautomate).await;
    let native = "64f1a2b3c4d5e6f7a8b9c005";
    let id = format!("whautomate:{native}");
    let mut changes = WsSubscriber::open(&app.address, json!({})).await;
    let graphql = format!("{}/graphql", app.address);
    update_until_received(&graphql, None, "consuelo:contact_1002", &mut changes).await;
    // Cached without the tag.
    let before = app.data(TAGS, json!({ "id": id })).await;
    assert!(!before["contact"]["tags"].to_string().contains("soak-gold"));

    let control = app.sandbox.control(ProviderId::Whautomate);
    control.reset_requests();
    let (reached, release) = proxy.hold(Method::POST, &format!("/v1/contacts/{native}/tags/add"));
    let client = (app.client.clone(), graphql.clone());
    let mutation = tokio::spawn(async move {
        let (client, url) = client;
        let query = "mutation($id: ID!) { addTags(id: $id, tags: [\"soak-gold\"]) {
            contact { id tags } userErrors { code } warnings { field code message } } }";
        let body: Value = client
            .post(url)
            .json(&json!({ "query": query, "variables": { "id": id } }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body
    });
    reached.await.unwrap();
    control.set_fault_times(
        Fault::RateLimited {
            retry_after_secs: 0,
        },
        1,
    );
    release.send(()).unwrap();
    let body = mutation.await.unwrap();

    let sent: Vec<(String, String)> = control
        .requests()
        .into_iter()
        .map(|r| (r.method, r.path))
        .collect();
    assert_eq!(
        sent,
        [
            ("POST".into(), format!("/v1/contacts/{native}/tags/add")),
            ("GET".into(), format!("/v1/contacts/{native}")),
        ],
        "the tag change, then the read-back that met the 429"
    );
    assert!(body.get("errors").is_none(), "answered as failed: {body:#}");
    let payload = &body["data"]["addTags"];
    assert_eq!(payload["userErrors"], json!([]), "{body:#}");
    assert_eq!(payload["contact"], Value::Null, "{body:#}");
    assert_eq!(
        payload["warnings"][0]["code"], "READ_BACK_FAILED",
        "{body:#}"
    );
    let message = payload["warnings"][0]["message"].as_str().unwrap();
    assert!(message.contains("applied the tag change"), "{message}");

    // Stored at the provider, and no longer read from the cache without it.
    let stored = control
        .records()
        .into_iter()
        .find(|r| r["id"] == native)
        .unwrap();
    assert!(stored["tags"].to_string().contains("soak-gold"), "{stored}");
    let after = app
        .data(TAGS, json!({ "id": format!("whautomate:{native}") }))
        .await;
    assert!(
        after["contact"]["tags"].to_string().contains("soak-gold"),
        "{after}"
    );
    // Published, without a contact (it could not be read).
    let change = loop {
        let change = changes
            .change(Duration::from_secs(5))
            .await
            .expect("the tag change is published");
        if change["id"] == format!("whautomate:{native}") {
            break change;
        }
    };
    assert_eq!(change["kind"], "UPDATED", "{change}");
    assert_eq!(change["contact"], Value::Null, "{change}");
}
