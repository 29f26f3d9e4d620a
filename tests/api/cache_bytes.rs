//! `[cache] max_bytes`: the read cache is bounded by an estimate of what its entries hold (a
//! list window weighs its contacts), beside `max_entries`. The soak found it bounded by entry
//! count only, holding 766 MiB of stamped-out list windows.

use crate::helpers::spawn_app_with;
use contact_gateway::contact::ProviderId;
use serde_json::json;
use std::time::Duration;

const READ: &str = "query($id: ID!) { contact(id: $id) { id company } }";
const LIST: &str = "{ contacts(providers: [CONSUELO], first: 20) { nodes { id company } } }";
const ID: &str = "consuelo:contact_1001";

/// Upstream calls for three reads of one contact, spaced past moka's housekeeping interval
/// (300 ms), so an entry over the budget has been dropped by the third.
async fn upstream_calls_for_three_reads(max_bytes: u64) -> u64 {
    let app = spawn_app_with(|c| {
        c.cache.max_bytes = max_bytes;
        // Only the read cache: the response cache would answer the repeats.
        c.cache.max_response_bytes = 0;
    })
    .await;
    let control = app.sandbox.control(ProviderId::Consuelo);
    control.reset_requests();
    for _ in 0..3 {
        let data = app.data(READ, json!({ "id": ID })).await;
        assert_eq!(data["contact"]["id"], ID);
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    control.request_count()
}

/// A contact is kept under the default budget (one call for three reads); a budget smaller
/// than any contact keeps none (the third read asks again), however few entries are held.
#[tokio::test]
async fn the_read_cache_keeps_no_more_bytes_than_max_bytes() {
    assert_eq!(upstream_calls_for_three_reads(64 * 1024 * 1024).await, 1);
    assert!(upstream_calls_for_three_reads(100).await >= 2);
}

/// Under a budget smaller than a list window, reads after a write still show it.
#[tokio::test]
async fn reads_after_a_write_show_it_under_a_small_budget() {
    let app = spawn_app_with(|c| c.cache.max_bytes = 16 * 1024).await;
    for _ in 0..2 {
        app.data(LIST, json!({})).await;
        app.data(READ, json!({ "id": ID })).await;
    }
    let written = app
        .data(
            "mutation($id: ID!) { updateContact(id: $id, input: { company: \"Budget Ltd\" }) {
                contact { company } userErrors { code } } }",
            json!({ "id": ID }),
        )
        .await;
    assert_eq!(written["updateContact"]["userErrors"], json!([]));
    let read = app.data(READ, json!({ "id": ID })).await;
    assert_eq!(read["contact"]["company"], "Budget Ltd");
    let listed = app.data(LIST, json!({})).await;
    let node = listed["contacts"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == ID)
        .cloned()
        .unwrap();
    assert_eq!(node["company"], "Budget Ltd");
}
