//! What one request may cost (`[limits]`): upstream calls, a deadline, records scanned for a
//! filter, import rows; and cursors that cannot be forged.

use crate::helpers::{enum_name, error_codes, spawn_app, spawn_app_with, TestApp};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use contact_gateway::config::Secret;
use contact_gateway::contact::ProviderId;
use contact_gateway::gateway::cursor::fingerprint;
use contact_gateway::sandbox::{api_key, Fault};
use futures::stream::{self, StreamExt};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// API requests the five simulators received since their counters were reset.
fn upstream_calls(app: &TestApp) -> u64 {
    ProviderId::ALL
        .iter()
        .map(|id| app.sandbox.control(*id).request_count())
        .sum()
}

fn reset_upstream(app: &TestApp) {
    for id in ProviderId::ALL {
        app.sandbox.control(id).reset_requests();
    }
}

#[tokio::test]
async fn one_request_makes_at_most_max_upstream_calls_and_the_rest_fail_with_a_code() {
    // Every error is counted here, so none are left out by `max_errors`.
    let app = spawn_app_with(|c| c.limits.max_errors = 10_000).await;
    // 2,400 distinct ids, each a lookup of its own (through the request's loader, whose
    // batches run in spawned tasks).
    let fields: Vec<String> = (0..2_400)
        .map(|i| {
            let provider = if i % 2 == 0 {
                "magicblocks"
            } else {
                "consuelo"
            };
            format!("c{i}: contact(id: \"{provider}:no-such-contact-{i}\") {{ id }}")
        })
        .collect();
    let query = format!("{{ {} }}", fields.join(" "));
    reset_upstream(&app);
    let body = app.graphql(&query, json!({})).await;

    assert_eq!(
        upstream_calls(&app),
        100,
        "max_upstream_calls defaults to 100"
    );
    let codes = error_codes(&body);
    assert_eq!(codes.len(), 2_300, "one error per field past the budget");
    assert!(
        codes.iter().all(|c| c == "REQUEST_BUDGET_EXCEEDED"),
        "{:?}",
        &body["errors"][0]
    );
    // Each field past the budget has its error; the ones within it are answered (no such
    // contact: null, without an error).
    let errored: HashSet<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"][0].as_str().unwrap())
        .collect();
    assert_eq!(errored.len(), 2_300);
    let answered: Vec<(&String, &Value)> = body["data"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(field, _)| !errored.contains(field.as_str()))
        .collect();
    assert_eq!(answered.len(), 100);
    assert!(answered.iter().all(|(_, value)| value.is_null()));
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("max_upstream_calls"), "{message}");

    // The budget is the request's: the next request has its own.
    reset_upstream(&app);
    let data = app
        .data(
            r#"{ a: contact(id: "magicblocks:other-1") { id } b: contact(id: "consuelo:other-2") { id } }"#,
            json!({}),
        )
        .await;
    assert_eq!(data, json!({ "a": null, "b": null }));
    assert_eq!(upstream_calls(&app), 2);
}

/// Adds `count` contacts to the MagicBlocks simulator through its own API; the one at `rare`
/// works for `rare_company`, the others for "Bulk Co".
async fn add_magicblocks_contacts(app: &TestApp, count: usize, rare: usize, rare_company: &str) {
    let url = format!(
        "{}/v1/contacts",
        app.sandbox.base_url(ProviderId::Magicblocks)
    );
    let key = api_key(ProviderId::Magicblocks);
    let created = stream::iter(0..count)
        .map(|i| {
            let company = if i == rare { rare_company } else { "Bulk Co" };
            let body = json!({
                "name": { "first": format!("Bulk{i}"), "last": "Person" },
                "custom": { "company": company },
            });
            let request = app.client.post(&url).bearer_auth(key).json(&body).send();
            async move { request.await.map(|r| r.status().is_success()) }
        })
        .buffer_unordered(16)
        .filter(|ok| std::future::ready(matches!(ok, Ok(true))))
        .count()
        .await;
    assert_eq!(created, count);
}

#[tokio::test]
async fn a_rare_filter_reads_at_most_max_scan_records_a_page_and_paging_finds_the_match_once() {
    let app = spawn_app().await;
    add_magicblocks_contacts(&app, 10_000, 6_543, "Rare Widgets Ltd").await;
    let control = app.sandbox.control(ProviderId::Magicblocks);
    let held = control.records().len();
    assert!(held > 10_000);

    let query = r#"query($after: String) {
        contacts(filter: { company: "rare widgets ltd" }, first: 5, after: $after) {
            edges { cursor node { id displayName company } }
            pageInfo { hasNextPage endCursor }
        } }"#;
    let mut after = Value::Null;
    let mut found = Vec::new();
    let mut pages = 0;
    let mut empty_pages_with_more = 0;
    loop {
        pages += 1;
        assert!(pages <= 100, "paging did not end");
        reset_upstream(&app);
        let data = app.data(query, json!({ "after": after })).await;
        // The records the gateway asked MagicBlocks for on this page.
        let read: u64 = control
            .requests()
            .iter()
            .filter(|r| r.path == "/v1/contacts")
            .map(|r| {
                r.query
                    .iter()
                    .find(|(k, _)| k == "limit")
                    .and_then(|(_, v)| v.parse::<u64>().ok())
                    .expect("a listing asks for a limit")
            })
            .sum();
        assert!(read <= 500, "page {pages} read {read} MagicBlocks records");
        let connection = &data["contacts"];
        let edges = connection["edges"].as_array().unwrap();
        found.extend(edges.iter().map(|e| e["node"]["displayName"].clone()));
        let page_info = &connection["pageInfo"];
        if page_info["hasNextPage"] != json!(true) {
            break;
        }
        assert!(
            page_info["endCursor"].is_string(),
            "hasNextPage without an endCursor: {page_info}"
        );
        if edges.is_empty() {
            empty_pages_with_more += 1;
        }
        after = page_info["endCursor"].clone();
    }
    assert_eq!(found, [json!("Bulk6543 Person")], "the match, exactly once");
    // 10,000+ records at 500 a page: the scan went on over many pages, most of them empty.
    assert!(pages as usize >= held / 500, "{pages} pages");
    assert!(empty_pages_with_more >= 15, "{empty_pages_with_more}");
}

#[tokio::test]
async fn a_hung_provider_is_cut_at_the_request_deadline_and_the_others_come_back() {
    let app = spawn_app_with(|c| {
        c.limits.request_timeout_ms = 1_500;
        for p in c.providers.values_mut() {
            p.timeout_ms = 10_000;
        }
    })
    .await;
    app.sandbox
        .control(ProviderId::Consuelo)
        .set_fault(Some(Fault::Hang));

    let started = Instant::now();
    let body = app
        .graphql(
            "{ contacts(providers: [MAGICBLOCKS, CONSUELO, MAIAGENT], first: 100) { nodes { provider } } }",
            json!({}),
        )
        .await;
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1_500) && elapsed < Duration::from_secs(5),
        "cut at request_timeout_ms, not timeout_ms: {elapsed:?}"
    );
    assert_eq!(error_codes(&body), ["REQUEST_TIMEOUT"], "{body}");
    assert_eq!(
        body["errors"][0]["extensions"]["provider"],
        json!(enum_name(ProviderId::Consuelo))
    );
    let providers: Vec<&str> = body["data"]["contacts"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["provider"].as_str().unwrap())
        .collect();
    assert!(providers.contains(&"MAGICBLOCKS") && providers.contains(&"MAIAGENT"));
    assert!(!providers.contains(&"CONSUELO"));

    // A write the deadline cut may have been applied, and says so.
    let body = app
        .graphql(
            r#"mutation { createContact(input: { provider: CONSUELO, firstName: "Hung", lastName: "Up" }) { contact { id } } }"#,
            json!({}),
        )
        .await;
    assert_eq!(error_codes(&body), ["REQUEST_TIMEOUT"], "{body}");
    assert_eq!(
        body["errors"][0]["extensions"]["mayHaveBeenApplied"],
        json!(true)
    );
}

#[tokio::test]
async fn one_requests_deadline_does_not_fail_another_waiting_for_the_same_contact() {
    let app = spawn_app_with(|c| c.limits.request_timeout_ms = 1_000).await;
    let control = app.sandbox.control(ProviderId::Consuelo);
    let native = control.records()[0]["id"].as_str().unwrap().to_string();
    let query = format!(r#"{{ contact(id: "consuelo:{native}") {{ id }} }}"#);
    // The first request's call hangs past its deadline; the second joins that same load
    // half-way, and Consuelo is fast again by the time the first is cut.
    control.set_latency(Duration::from_secs(3));
    let first = app.graphql(&query, json!({}));
    let second = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let second = app.graphql(&query, json!({}));
        let recover = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            control.set_latency(Duration::ZERO);
        };
        tokio::join!(second, recover).0
    };
    let (first, second) = tokio::join!(first, second);
    assert_eq!(error_codes(&first), ["REQUEST_TIMEOUT"], "{first}");
    assert_eq!(
        second["data"]["contact"]["id"],
        json!(format!("consuelo:{native}")),
        "{second}"
    );
}

const IMPORT: &str = "mutation($csv: String!) { importContacts(provider: CONSUELO, csv: $csv) {
    createdCount failedCount userErrors { field code message } } }";

fn csv_rows(count: usize) -> String {
    let mut csv = String::from("firstName,lastName,email\n");
    for i in 0..count {
        csv += &format!("Row{i},Import,row{i}@budget.example.com\n");
    }
    csv
}

#[tokio::test]
async fn an_import_past_max_import_rows_is_refused_before_any_call() {
    let app = spawn_app_with(|c| c.limits.max_import_rows = 3).await;
    let control = app.sandbox.control(ProviderId::Consuelo);
    control.reset_requests();
    let data = app.data(IMPORT, json!({ "csv": csv_rows(4) })).await;
    let payload = &data["importContacts"];
    assert_eq!(payload["createdCount"], 0);
    assert_eq!(payload["userErrors"][0]["code"], "INVALID_CSV");
    assert_eq!(payload["userErrors"][0]["field"], json!(["csv"]));
    let message = payload["userErrors"][0]["message"].as_str().unwrap();
    assert!(message.contains("max_import_rows"), "{message}");
    assert_eq!(control.request_count(), 0, "nothing was sent");

    let data = app.data(IMPORT, json!({ "csv": csv_rows(3) })).await;
    assert_eq!(data["importContacts"]["createdCount"], 3);
}

#[tokio::test]
async fn an_import_is_exempt_from_the_request_budget_and_deadline() {
    let app = spawn_app_with(|c| {
        c.limits.max_upstream_calls = 5;
        c.limits.request_timeout_ms = 200;
    })
    .await;
    let control = app.sandbox.control(ProviderId::Consuelo);
    // 2,000 rows, 8 at a time, 2 ms each: well past the 200 ms deadline.
    control.set_latency(Duration::from_millis(2));
    control.reset_requests();
    let started = Instant::now();
    let data = app.data(IMPORT, json!({ "csv": csv_rows(2_000) })).await;
    assert!(started.elapsed() > Duration::from_millis(200));
    let payload = &data["importContacts"];
    assert_eq!(
        (
            payload["createdCount"].clone(),
            payload["failedCount"].clone()
        ),
        (json!(2_000), json!(0)),
        "{payload}"
    );
    assert_eq!(control.request_count(), 2_000);

    // Other requests still have the tiny budget.
    let fields: Vec<String> = (0..8)
        .map(|i| format!("c{i}: contact(id: \"consuelo:none-{i}\") {{ id }}"))
        .collect();
    let body = app
        .graphql(&format!("{{ {} }}", fields.join(" ")), json!({}))
        .await;
    assert_eq!(error_codes(&body), vec!["REQUEST_BUDGET_EXCEEDED"; 3]);
}

/// A cursor from the first page of `contacts(first: 2)`.
async fn a_cursor(app: &TestApp) -> String {
    let data = app
        .data(
            "{ contacts(first: 2) { pageInfo { hasNextPage endCursor } } }",
            json!({}),
        )
        .await;
    data["contacts"]["pageInfo"]["endCursor"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn page_after(app: &TestApp, cursor: &str) -> Value {
    app.graphql(
        "query($after: String) { contacts(first: 2, after: $after) { nodes { id } } }",
        json!({ "after": cursor }),
    )
    .await
}

#[tokio::test]
async fn a_forged_cursor_is_refused() {
    let app = spawn_app().await;
    let cursor = a_cursor(&app).await;
    assert_eq!(
        error_codes(&page_after(&app, &cursor).await),
        Vec::<String>::new()
    );

    // Valid base64 and the same layout, another offset: the signature no longer matches.
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(&cursor).unwrap()).unwrap();
    let parts: Vec<&str> = text.split(':').collect();
    assert_eq!(parts[2], "2", "the offset field of {text}");
    let mut edited = parts.clone();
    edited[2] = "40";
    let kept_tag = URL_SAFE_NO_PAD.encode(edited.join(":"));
    // Re-checksummed as anyone could with a keyless hash of the body.
    let body = edited[..edited.len() - 1].join(":");
    let checksum = format!("{:x}", fingerprint(&body.as_str()));
    let rechecked = URL_SAFE_NO_PAD.encode(format!("{body}:{checksum}"));
    for forged in [kept_tag, rechecked] {
        reset_upstream(&app);
        let body = page_after(&app, &forged).await;
        assert_eq!(error_codes(&body), ["BAD_USER_INPUT"], "{forged}: {body}");
        assert_eq!(upstream_calls(&app), 0, "refused before any call");
    }
}

#[tokio::test]
async fn a_cursor_signed_with_another_secret_is_refused_and_replicas_share_one() {
    let secret = |s: &str| {
        let s = s.to_string();
        move |c: &mut contact_gateway::config::Config| {
            c.limits.cursor_secret = Some(Secret::new(s));
        }
    };
    let ours = spawn_app_with(secret("the secret this deployment shares")).await;
    let replica = spawn_app_with(secret("the secret this deployment shares")).await;
    let other = spawn_app_with(secret("another deployment's own secret")).await;
    let unconfigured = spawn_app().await;

    let cursor = a_cursor(&ours).await;
    assert_eq!(
        error_codes(&page_after(&replica, &cursor).await),
        Vec::<String>::new()
    );
    assert_eq!(
        error_codes(&page_after(&other, &cursor).await),
        ["BAD_USER_INPUT"]
    );
    assert_eq!(
        error_codes(&page_after(&unconfigured, &cursor).await),
        ["BAD_USER_INPUT"]
    );
}

#[tokio::test]
async fn first_zero_asks_no_provider_and_first_out_of_range_is_bad_user_input() {
    let app = spawn_app().await;
    let cursor = a_cursor(&app).await;
    reset_upstream(&app);
    for after in [Value::Null, json!(cursor)] {
        let data = app
            .data(
                "query($after: String) { contacts(first: 0, after: $after) { edges { cursor } totalCount pageInfo { hasNextPage endCursor } } }",
                json!({ "after": after }),
            )
            .await;
        assert_eq!(
            data["contacts"],
            json!({ "edges": [], "totalCount": null, "pageInfo": { "hasNextPage": false, "endCursor": null } })
        );
    }
    assert_eq!(upstream_calls(&app), 0, "first: 0 sends nothing upstream");

    // In the query text and as a variable.
    for first in ["-1", "101", "2147483648"] {
        let body = app
            .graphql(
                &format!("{{ contacts(first: {first}) {{ nodes {{ id }} }} }}"),
                json!({}),
            )
            .await;
        assert_eq!(
            error_codes(&body),
            ["BAD_USER_INPUT"],
            "first: {first}: {body}"
        );
        let body = app
            .graphql(
                "query($first: Int) { contacts(first: $first) { nodes { id } } }",
                json!({ "first": first.parse::<i64>().unwrap() }),
            )
            .await;
        assert_eq!(
            error_codes(&body),
            ["BAD_USER_INPUT"],
            "first: {first}: {body}"
        );
    }
    assert_eq!(upstream_calls(&app), 0);
}
