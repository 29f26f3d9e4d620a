//! `contacts` paging and filters across providers: every matching contact exactly once, in
//! provider order, whatever `first`; every filter honoured on every provider.

use crate::helpers::{enum_name, error_codes, spawn_app, TestApp};
use contact_gateway::contact::ProviderId;
use serde_json::{json, Value};

const LISTING: [ProviderId; 4] = [
    ProviderId::Magicblocks,
    ProviderId::Consuelo,
    ProviderId::Whautomate,
    ProviderId::Maiagent,
];

fn ids(nodes: &[Value]) -> Vec<String> {
    nodes
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_string())
        .collect()
}

/// What the simulators hold, as global ids in the order `contacts` must return them.
fn everything(app: &TestApp) -> Vec<String> {
    LISTING
        .iter()
        .flat_map(|id| {
            app.sandbox
                .control(*id)
                .records()
                .iter()
                .map(|r| format!("{id}:{}", r["id"].as_str().unwrap()))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test]
async fn paging_returns_every_contact_exactly_once_for_any_page_size() {
    let app = spawn_app().await;
    let expected = everything(&app);
    assert!(expected.len() >= 60);
    for first in [1, 5, 7] {
        let got = ids(&app.all_contacts(&[], json!(null), first).await);
        assert_eq!(got, expected, "first = {first}");
    }
}

/// Mainbrainer's contacts come from the gateway's ledger of what it wrote (ledger.rs), after
/// every provider's: they page exactly once too, in the order they were written.
#[tokio::test]
async fn ledger_contacts_page_exactly_once_after_the_providers() {
    let app = spawn_app().await;
    let mut expected = everything(&app);
    let create =
        "mutation($input: CreateContactInput!) { createContact(input: $input) { contact { id } } }";
    let mut written = Vec::new();
    for n in 0..7 {
        let input = json!({ "input": { "provider": "MAINBRAINER", "firstName": format!("Paged{n}"),
            "emails": [{ "address": format!("paged{n}@ledger.example") }] } });
        let data = app.data(create, input).await;
        written.push(
            data["createContact"]["contact"]["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    expected.extend(written.iter().cloned());
    for first in [1, 5, 7] {
        let got = ids(&app.all_contacts(&[], json!(null), first).await);
        assert_eq!(got, expected, "first = {first}");
    }
    for first in [2, 7, 8] {
        let got = ids(&app.all_contacts(&["MAINBRAINER"], json!(null), first).await);
        assert_eq!(got, written, "first = {first}");
    }
    // A filter is checked on the ledger's copies as on any provider's contacts.
    let got = ids(&app
        .all_contacts(&["MAINBRAINER"], json!({ "search": "paged3" }), 2)
        .await);
    assert_eq!(got, [written[3].clone()]);
}

#[tokio::test]
async fn total_count_is_the_sum_only_when_every_provider_reports_one() {
    let app = spawn_app().await;
    let query = "query($p: [ProviderId!], $f: ContactFilter) { contacts(providers: $p, filter: $f, first: 2) { totalCount } }";
    let count = |data: Value| data["contacts"]["totalCount"].clone();
    // MagicBlocks, Consuelo and MaiAgent report totals; Whautomate's bare array does not.
    let reporting = ["MAGICBLOCKS", "CONSUELO", "MAIAGENT"];
    let held: usize = [
        ProviderId::Magicblocks,
        ProviderId::Consuelo,
        ProviderId::Maiagent,
    ]
    .iter()
    .map(|id| app.sandbox.control(*id).records().len())
    .sum();
    assert_eq!(
        count(app.data(query, json!({ "p": reporting })).await),
        json!(held)
    );
    assert_eq!(
        count(app.data(query, json!({ "p": null })).await),
        Value::Null
    );
    // A filter the gateway re-checks makes the providers' totals meaningless.
    let filtered = app
        .data(query, json!({ "p": reporting, "f": { "search": "a" } }))
        .await;
    assert_eq!(count(filtered), Value::Null);

    // The total stays the same on later pages (providers paged past still count).
    let data = app
        .data(
            "query($p: [ProviderId!]) { contacts(providers: $p, first: 30) { pageInfo { endCursor } } }",
            json!({ "p": reporting }),
        )
        .await;
    let after = data["contacts"]["pageInfo"]["endCursor"].clone();
    let later = app
        .data(
            "query($p: [ProviderId!], $a: String) { contacts(providers: $p, first: 2, after: $a) { totalCount } }",
            json!({ "p": reporting, "a": after }),
        )
        .await;
    assert_eq!(count(later), json!(held));
}

#[tokio::test]
async fn a_cursor_from_other_arguments_or_tampered_is_bad_user_input() {
    let app = spawn_app().await;
    let data = app
        .data(
            "{ contacts(providers: [CONSUELO], first: 2) { pageInfo { endCursor } } }",
            json!({}),
        )
        .await;
    let cursor = data["contacts"]["pageInfo"]["endCursor"]
        .as_str()
        .unwrap()
        .to_string();
    let query = "query($p: [ProviderId!], $a: String) { contacts(providers: $p, first: 2, after: $a) { nodes { id } } }";
    let foreign = app
        .graphql(query, json!({ "p": ["MAIAGENT"], "a": cursor }))
        .await;
    assert_eq!(error_codes(&foreign), ["BAD_USER_INPUT"]);
    let mut tampered = cursor.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let body = app
        .graphql(query, json!({ "p": ["CONSUELO"], "a": tampered }))
        .await;
    assert_eq!(error_codes(&body), ["BAD_USER_INPUT"], "{body}");
    let ok = app
        .graphql(query, json!({ "p": ["CONSUELO"], "a": cursor }))
        .await;
    assert!(ok["errors"].is_null());
}

/// The contract's filter semantics, evaluated here on the unified contacts independently of
/// the gateway's code.
fn satisfies(contact: &Value, filter: &Value) -> bool {
    let lower = |v: &Value| v.as_str().unwrap_or("").to_lowercase();
    let digits = |v: &Value| {
        v.as_str()
            .unwrap_or("")
            .chars()
            .filter(char::is_ascii_digit)
            .collect::<String>()
    };
    let emails: Vec<String> = contact["emails"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| lower(&e["address"]))
        .collect();
    let phones = contact["phones"].as_array().unwrap();
    if let Some(email) = filter.get("email") {
        if !emails.contains(&lower(email)) {
            return false;
        }
    }
    if let Some(e164) = filter.get("expectE164") {
        if !phones.iter().any(|p| p["e164"] == *e164) {
            return false;
        }
    }
    if let Some(tags) = filter.get("tags") {
        let have = contact["tags"].as_array().unwrap();
        if !tags.as_array().unwrap().iter().all(|t| have.contains(t)) {
            return false;
        }
    }
    if let Some(company) = filter.get("company") {
        if lower(&contact["company"]) != lower(company) {
            return false;
        }
    }
    if let Some(search) = filter.get("search") {
        let s = lower(search);
        let phone_like = s
            .chars()
            .all(|c| c.is_ascii_digit() || " +-().".contains(c));
        let hit = lower(&contact["displayName"]).contains(&s)
            || emails.iter().any(|e| e.contains(&s))
            || lower(&contact["company"]).contains(&s)
            || (phone_like
                && phones.iter().any(|p| {
                    digits(&p["number"]).contains(&digits(search))
                        || digits(&p["e164"]).contains(&digits(search))
                }));
        if !hit {
            return false;
        }
    }
    true
}

#[tokio::test]
async fn every_filter_on_every_provider_returns_exactly_the_matching_contacts() {
    let app = spawn_app().await;
    let filters = [
        json!({ "search": "an" }),
        json!({ "search": "LIN" }),
        json!({ "search": "555-01" }),
        json!({ "search": "northwind" }),
        json!({ "email": "Daniel.Lin@PacificRimFoods.com" }),
        json!({ "email": "olivia.bennett@northwindtraders.com" }),
        json!({ "phone": "+61 491 570 156", "expectE164": "+61491570156" }),
        json!({ "phone": "(415) 555-0142", "expectE164": "+14155550142" }),
        json!({ "phone": "+886912345678", "expectE164": "+886912345678" }),
        json!({ "tags": ["vip"] }),
        json!({ "tags": ["vip", "line"] }),
        json!({ "tags": ["VIP"] }),
        json!({ "company": "northwind traders" }),
        json!({ "search": "a", "company": "Northwind Traders" }),
        json!({ "search": "e", "tags": ["vip"] }),
    ];
    for provider in LISTING {
        let all = app
            .all_contacts(&[&enum_name(provider)], json!(null), 100)
            .await;
        for filter in &filters {
            let mut sent = filter.clone();
            sent.as_object_mut().unwrap().remove("expectE164");
            let expected: Vec<Value> = all
                .iter()
                .filter(|c| satisfies(c, filter))
                .cloned()
                .collect();
            for first in [3, 100] {
                let got = app
                    .all_contacts(&[&enum_name(provider)], sent.clone(), first)
                    .await;
                assert_eq!(
                    ids(&got),
                    ids(&expected),
                    "{provider} {filter} first = {first}"
                );
            }
        }
    }
    // Filters the test sample relies on do match something somewhere.
    for (filter, at_least) in [
        (json!({ "tags": ["vip"] }), 1),
        (json!({ "phone": "+886 912 345 678" }), 2),
        (json!({ "company": "northwind traders" }), 2),
        (json!({ "search": "555-01" }), 2),
    ] {
        let got = app.all_contacts(&[], filter.clone(), 50).await;
        assert!(got.len() >= at_least, "{filter}: {got:?}");
    }
}

/// Upstream requests per listing provider since the last reset, resetting them.
fn listing_calls(app: &TestApp) -> Vec<u64> {
    LISTING
        .iter()
        .map(|id| {
            let control = app.sandbox.control(*id);
            let count = control.request_count();
            control.reset_requests();
            count
        })
        .collect()
}

#[tokio::test]
async fn a_page_the_first_provider_fills_asks_no_other_once_sizes_are_known() {
    let app = spawn_app().await;
    let query =
        "{ contacts(first: 3, noCache: true) { nodes { id } pageInfo { hasNextPage endCursor } } }";
    listing_calls(&app);
    // Nothing is known yet: every listing provider is asked at once.
    let cold = app.data(query, json!({})).await;
    assert_eq!(listing_calls(&app), [1, 1, 1, 1]);
    // MagicBlocks holds more than 3 contacts: the same page asks it alone.
    let warm = app.data(query, json!({})).await;
    assert_eq!(listing_calls(&app), [1, 0, 0, 0]);
    assert_eq!(warm, cold);
    assert_eq!(warm["contacts"]["pageInfo"]["hasNextPage"], true);
    let expected = everything(&app);
    assert_eq!(
        ids(warm["contacts"]["nodes"].as_array().unwrap()),
        expected[..3]
    );
}

#[tokio::test]
async fn a_provider_that_shrank_since_its_size_was_seen_still_pages_exactly_once() {
    let app = spawn_app().await;
    let providers = ["CONSUELO", "WHAUTOMATE"];
    let consuelo = app.sandbox.control(ProviderId::Consuelo).records().len();
    let first = consuelo as i64 - 1;
    // Learn Consuelo's size: one page of `first` needs `first + 1` = all it holds.
    app.all_contacts(&providers, json!(null), first).await;
    let gone = format!(
        "consuelo:{}",
        app.sandbox.control(ProviderId::Consuelo).records()[0]["id"]
            .as_str()
            .unwrap()
    );
    let deleted = app
        .data(
            "mutation($id: ID!) { deleteContact(id: $id) { userErrors { message } } }",
            json!({ "id": gone }),
        )
        .await;
    assert_eq!(deleted["deleteContact"]["userErrors"], json!([]));
    // Consuelo now holds `first` contacts, one fewer than the gateway saw: the first page asks
    // it alone, comes back short, and asks Whautomate after it.
    listing_calls(&app);
    let expected: Vec<String> = everything(&app)
        .into_iter()
        .filter(|id| id.starts_with("consuelo:") || id.starts_with("whautomate:"))
        .collect();
    let got = ids(&app.all_contacts(&providers, json!(null), first).await);
    assert_eq!(got, expected);
    assert!(!got.contains(&gone));
}
