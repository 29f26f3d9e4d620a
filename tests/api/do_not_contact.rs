//! The do-not-contact registry: recorded in the store before any call, propagated inline and
//! then by the outbox until applied (across a crash, and by one of several gateways at a
//! time), read back by `isDoNotContact`, `doNotContactEntries` and `Contact.consent`, and
//! enforced on writes that would opt a registered phone or email in. The durable tests run on
//! every store `store_urls` gives (SQLite; PostgreSQL with `TEST_DATABASE_URL`).

use crate::helpers::{error_codes, sandbox_config, store_urls, GatewayProcess, TestApp};
use contact_gateway::config::Config;
use contact_gateway::contact::ProviderId;
use contact_gateway::gateway::Gateway;
use contact_gateway::sandbox::{Fault, Sandbox};
use contact_gateway::startup::Application;
use contact_gateway::store::Store;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const ADD: &str = "mutation($input: DoNotContactInput!) { addToDoNotContact(input: $input) {
    results { provider status message code attempts nextAttemptAt }
    entry { phone email reason createdAt removedAt results { provider status code attempts } }
    userErrors { field code message } } }";
const REMOVE: &str =
    "mutation($input: DoNotContactInput!) { removeFromDoNotContact(input: $input) {
    results { provider status message code }
    entry { phone email removedAt results { provider status } }
    userErrors { field code message } } }";
const ENTRIES: &str = "query($phone: String, $email: String, $first: Int, $after: String) {
    doNotContactEntries(phone: $phone, email: $email, first: $first, after: $after) {
        edges { cursor node { phone email reason createdAt results { provider status code attempts nextAttemptAt } } }
        nodes { phone }
        pageInfo { hasNextPage endCursor }
        totalCount } }";
const IS_DNC: &str =
    "query($phone: String, $email: String) { isDoNotContact(phone: $phone, email: $email) }";

/// A gateway on the simulators keeping its state in `store` (default: a fresh SQLite file),
/// and a handle on it to read the store's counters.
async fn spawn(store: Option<&str>) -> (TestApp, Arc<Gateway>) {
    if std::env::var_os("TEST_LOG").is_some() {
        contact_gateway::telemetry::init("info");
    }
    let sandbox = Arc::new(Sandbox::start().await.expect("sandbox starts"));
    let mut config =
        Config::with_providers("127.0.0.1:0".parse().unwrap(), sandbox.provider_configs());
    config.store.url = store.map(str::to_string);
    let app = Application::build_over_sandbox(config, sandbox.clone())
        .await
        .expect("app builds");
    let gateway = app.gateway();
    let address = format!("http://{}", app.address());
    tokio::spawn(app.run_until(std::future::pending()));
    let app = TestApp {
        address,
        client: reqwest::Client::new(),
        sandbox,
    };
    (app, gateway)
}

/// The phones of the do-not-contact requests `provider`'s simulator received, in order.
fn dnc_requests(sandbox: &Sandbox, provider: ProviderId) -> Vec<String> {
    sandbox
        .control(provider)
        .requests()
        .into_iter()
        .filter_map(|r| match provider {
            ProviderId::Consuelo if r.path == "/v1/dnc" => {
                r.body["phone"].as_str().map(String::from)
            }
            ProviderId::Mainbrainer if r.path == "/contacts/insertupdate" => Some(format!(
                "+{}{}",
                r.body["mobileCountryCode"], r.body["mobileNumber"]
            )),
            _ => None,
        })
        .collect()
}

fn count_of(requests: &[String], phone: &str) -> usize {
    requests.iter().filter(|p| *p == phone).count()
}

/// `results` as provider → status.
fn statuses(results: &Value) -> HashMap<String, String> {
    results
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["provider"].as_str().unwrap().to_string(),
                r["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Polls `check` every 100 ms until it holds, at most `limit`.
async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `doNotContactEntries` through the gateway at `url` until `done` holds of it, at most `limit`.
async fn entries_until(
    url: &str,
    variables: Value,
    limit: Duration,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let data = query(url, ENTRIES, variables.clone()).await;
        let connection = &data["doNotContactEntries"];
        if done(connection) {
            return connection.clone();
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {connection:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether the first entry is applied at Consuelo and Mainbrainer (the others have no
/// mechanism: UNSUPPORTED).
fn first_applied(connection: &Value) -> bool {
    let results = &connection["edges"][0]["node"]["results"];
    results.as_array().is_some_and(|r| !r.is_empty()) && {
        let statuses = statuses(results);
        ["CONSUELO", "MAINBRAINER"]
            .iter()
            .all(|p| statuses.get(*p).map(String::as_str) == Some("APPLIED"))
    }
}

/// A query through the HTTP surface of a gateway at `url` (a process), `data` only.
async fn query(url: &str, query: &str, variables: Value) -> Value {
    let body: Value = reqwest::Client::new()
        .post(url)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .expect("gateway answers")
        .json()
        .await
        .expect("JSON");
    assert!(body.get("errors").is_none(), "unexpected errors: {body:#}");
    body["data"].clone()
}

#[tokio::test]
async fn a_provider_answering_503_is_pending_until_the_outbox_applies_it() {
    for (backend, store, _keep) in store_urls().await {
        let (app, _) = spawn(Some(&store)).await;
        let consuelo = app.sandbox.control(ProviderId::Consuelo);
        consuelo.set_fault(Some(Fault::Status(503)));
        let phone = "+14155550161";
        let input = json!({ "input": { "phone": "(415) 555-0161", "reason": "asked by phone",
            "providers": ["CONSUELO", "MAINBRAINER"] } });
        let data = app.data(ADD, input.clone()).await;
        let added = &data["addToDoNotContact"];
        assert_eq!(added["userErrors"], json!([]), "{backend}");
        let results = &added["results"];
        assert_eq!(results[0]["provider"], "CONSUELO");
        assert_eq!(results[0]["status"], "PENDING", "{backend}: {results:#}");
        assert_eq!(results[0]["code"], "PROVIDER_UNAVAILABLE");
        assert_eq!(results[0]["attempts"], 1);
        assert!(results[0]["nextAttemptAt"].is_string());
        assert_eq!(results[1]["status"], "APPLIED", "{backend}: {results:#}");
        assert_eq!(added["entry"]["phone"], phone);
        assert_eq!(added["entry"]["reason"], "asked by phone");
        assert!(added["entry"]["removedAt"].is_null());

        // The outbox keeps trying while the provider fails…
        let sandbox = &app.sandbox;
        eventually(Duration::from_secs(15), "a retry", || async move {
            count_of(&dnc_requests(sandbox, ProviderId::Consuelo), phone) >= 2
        })
        .await;
        // …and applies it once the provider recovers.
        consuelo.set_fault(None);
        let url = format!("{}/graphql", app.address);
        let connection = entries_until(
            &url,
            json!({ "phone": phone }),
            Duration::from_secs(30),
            "the outbox to apply it",
            first_applied,
        )
        .await;
        assert_eq!(connection["totalCount"], 1, "{backend}: the entry once");
        let node = &connection["edges"][0]["node"];
        assert_eq!(
            statuses(&node["results"]),
            HashMap::from([
                ("CONSUELO".to_string(), "APPLIED".to_string()),
                ("MAINBRAINER".to_string(), "APPLIED".to_string())
            ])
        );
        let tries = count_of(&dnc_requests(&app.sandbox, ProviderId::Consuelo), phone);
        assert!(tries >= 3, "{backend}: called until applied ({tries})");
        assert_eq!(node["results"][0]["attempts"], tries as u64);
        assert!(node["results"][0]["nextAttemptAt"].is_null());

        // Applied: nothing more is sent, and adding it again finds the entry.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let again = app.data(ADD, input).await;
        assert_eq!(
            again["addToDoNotContact"]["entry"]["createdAt"],
            node["createdAt"]
        );
        assert_eq!(
            statuses(&again["addToDoNotContact"]["results"])
                .values()
                .collect::<Vec<_>>(),
            ["APPLIED", "APPLIED"]
        );
        assert_eq!(
            count_of(&dnc_requests(&app.sandbox, ProviderId::Consuelo), phone),
            tries,
            "{backend}: an applied propagation is not sent again"
        );
        assert_eq!(
            count_of(&dnc_requests(&app.sandbox, ProviderId::Mainbrainer), phone),
            1,
            "{backend}"
        );
    }
}

/// The real binary, killed with SIGKILL while the inline call to a slow provider is in
/// flight, then started again on the same store: the entry is there once and the outbox
/// propagates it.
#[tokio::test]
async fn a_gateway_killed_mid_propagation_finishes_it_after_a_restart() {
    for (backend, store, _keep) in store_urls().await {
        let sandbox = Sandbox::start().await.unwrap();
        let config = sandbox_config(&sandbox);
        let consuelo = sandbox.control(ProviderId::Consuelo);
        consuelo.set_latency(Duration::from_secs(5));
        let mut first = GatewayProcess::start(&config, &store);
        let phone = "+14155550162";
        let url = first.url.clone();
        let in_flight = tokio::spawn(async move {
            let _ = reqwest::Client::new()
                .post(url)
                .json(&json!({ "query": ADD, "variables": { "input": { "phone": phone } } }))
                .send()
                .await;
        });
        let sb = &sandbox;
        eventually(
            Duration::from_secs(10),
            "the call to Consuelo",
            || async move { count_of(&dnc_requests(sb, ProviderId::Consuelo), phone) == 1 },
        )
        .await;
        first.child.kill().unwrap(); // SIGKILL
        first.child.wait().unwrap();
        let _ = in_flight.await;
        consuelo.set_latency(Duration::ZERO);

        let second = GatewayProcess::start(&config, &store);
        let connection = entries_until(
            &second.url,
            json!({ "phone": phone }),
            Duration::from_secs(40),
            "the restarted gateway to apply it",
            first_applied,
        )
        .await;
        assert_eq!(connection["totalCount"], 1, "{backend}: the entry once");
        let node = &connection["edges"][0]["node"];
        assert_eq!(
            statuses(&node["results"])
                .get("CONSUELO")
                .map(String::as_str),
            Some("APPLIED"),
            "{backend}: {node:#}"
        );
        let sent = count_of(&dnc_requests(&sandbox, ProviderId::Consuelo), phone);
        assert!(
            sent >= 2,
            "{backend}: sent again after the crash (at least once), got {sent}"
        );
        assert!(count_of(&dnc_requests(&sandbox, ProviderId::Mainbrainer), phone) >= 1);
    }
}

/// Two gateway processes on one store with a slow provider: propagations left pending by a
/// gateway that crashed, and the same phones added through both at once, are each sent
/// exactly once.
#[tokio::test]
async fn two_gateways_on_one_store_send_each_propagation_once() {
    for (backend, store, _keep) in store_urls().await {
        let sandbox = Sandbox::start().await.unwrap();
        let config = sandbox_config(&sandbox);
        // Left by a gateway that died holding them: due, their leases over.
        let seeded = Store::open(&store).await.unwrap();
        let crashed: Vec<String> = (0..8).map(|n| format!("+1415555017{n}")).collect();
        for phone in &crashed {
            let (entry, _) = seeded.add_dnc_entry(Some(phone), None, None).await.unwrap();
            seeded
                .open_dnc_propagation(&entry.id, ProviderId::Consuelo, "crashed", Duration::ZERO)
                .await
                .unwrap();
        }
        drop(seeded);
        sandbox
            .control(ProviderId::Consuelo)
            .set_latency(Duration::from_millis(300));
        let a = GatewayProcess::start(&config, &store);
        let b = GatewayProcess::start(&config, &store);
        let added: Vec<String> = (0..4).map(|n| format!("+1415555018{n}")).collect();
        let adds = added.iter().flat_map(|phone| {
            [&a, &b].map(|g| {
                let input = json!({ "input": { "phone": phone } });
                async move { query(&g.url, ADD, input).await }
            })
        });
        for answer in futures::future::join_all(adds).await {
            let results = statuses(&answer["addToDoNotContact"]["results"]);
            assert!(
                results["CONSUELO"] == "APPLIED" || results["CONSUELO"] == "PENDING",
                "{backend}: {answer:#}"
            );
        }
        let connection = entries_until(
            &a.url,
            json!({ "first": 100 }),
            Duration::from_secs(40),
            "every propagation applied",
            |connection| {
                let edges = connection["edges"].as_array().unwrap();
                edges.len() == 12
                    && edges.iter().all(|e| {
                        statuses(&e["node"]["results"])
                            .get("CONSUELO")
                            .map(String::as_str)
                            == Some("APPLIED")
                    })
            },
        )
        .await;
        assert_eq!(
            connection["totalCount"], 12,
            "{backend}: one entry per phone"
        );
        let consuelo = dnc_requests(&sandbox, ProviderId::Consuelo);
        let mainbrainer = dnc_requests(&sandbox, ProviderId::Mainbrainer);
        for phone in crashed.iter().chain(&added) {
            assert_eq!(
                count_of(&consuelo, phone),
                1,
                "{backend}: {phone} sent to Consuelo once: {consuelo:?}"
            );
        }
        for phone in &added {
            assert_eq!(
                count_of(&mainbrainer, phone),
                1,
                "{backend}: {phone} sent to Mainbrainer once"
            );
        }
    }
}

#[tokio::test]
async fn the_registry_answers_lookups_pages_and_removals() {
    let (app, _) = spawn(None).await;
    app.data(
        ADD,
        json!({ "input": { "phone": "(415) 555-0150", "reason": "asked", "providers": [] } }),
    )
    .await;
    app.data(
        ADD,
        json!({ "input": { "email": "Opt.Out@Example.com", "providers": [] } }),
    )
    .await;
    for n in 1..=3 {
        let input = json!({ "input": { "phone": format!("+1415555015{n}"), "providers": [] } });
        app.data(ADD, input).await;
    }

    let is = |phone: Option<&str>, email: Option<&str>| {
        let variables = json!({ "phone": phone, "email": email });
        let app = &app;
        async move { app.data(IS_DNC, variables).await["isDoNotContact"].clone() }
    };
    assert_eq!(is(Some("+1 415 555 0150"), None).await, true);
    assert_eq!(is(None, Some("opt.out@EXAMPLE.com")).await, true);
    assert_eq!(
        is(Some("+14155550199"), Some("opt.out@example.com")).await,
        true
    );
    assert_eq!(is(Some("+14155550199"), None).await, false);
    assert_eq!(is(None, Some("someone@example.com")).await, false);
    for bad in [json!({}), json!({ "phone": "not a phone" })] {
        let body = app.graphql(IS_DNC, bad.clone()).await;
        assert_eq!(error_codes(&body), ["BAD_USER_INPUT"], "{bad}");
    }

    // Paging: each entry once, oldest first.
    let mut after = Value::Null;
    let mut seen = Vec::new();
    loop {
        let data = app
            .data(ENTRIES, json!({ "first": 2, "after": after }))
            .await;
        let connection = &data["doNotContactEntries"];
        assert_eq!(connection["totalCount"], 5);
        let edges = connection["edges"].as_array().unwrap();
        assert!(edges.len() <= 2);
        seen.extend(edges.iter().map(|e| {
            let node = &e["node"];
            node["phone"]
                .as_str()
                .or(node["email"].as_str())
                .unwrap()
                .to_string()
        }));
        if connection["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = connection["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(
        seen,
        [
            "+14155550150",
            "opt.out@example.com",
            "+14155550151",
            "+14155550152",
            "+14155550153"
        ]
    );
    let data = app
        .data(ENTRIES, json!({ "phone": "(415) 555-0150" }))
        .await;
    let connection = &data["doNotContactEntries"];
    assert_eq!(connection["totalCount"], 1);
    assert_eq!(connection["nodes"][0]["phone"], "+14155550150");
    assert_eq!(connection["edges"][0]["node"]["reason"], "asked");
    let data = app.data(ENTRIES, json!({ "first": 0 })).await;
    assert_eq!(
        data["doNotContactEntries"]["pageInfo"],
        json!({ "hasNextPage": false, "endCursor": null })
    );
    assert_eq!(data["doNotContactEntries"]["totalCount"], 5);
    let body = app.graphql(ENTRIES, json!({ "first": 101 })).await;
    assert_eq!(error_codes(&body), ["BAD_USER_INPUT"]);
    let body = app.graphql(ENTRIES, json!({ "after": "nope" })).await;
    assert_eq!(error_codes(&body), ["BAD_USER_INPUT"]);

    // Removal changes the gateway's registry only.
    for id in ProviderId::ALL {
        app.sandbox.control(id).reset_requests();
    }
    let data = app
        .data(REMOVE, json!({ "input": { "phone": "+14155550150" } }))
        .await;
    let removed = &data["removeFromDoNotContact"];
    assert_eq!(removed["userErrors"], json!([]));
    assert_eq!(removed["entry"]["phone"], "+14155550150");
    assert!(removed["entry"]["removedAt"].is_string());
    let results = removed["results"].as_array().unwrap();
    assert_eq!(results.len(), 5, "every enabled provider");
    for result in results {
        assert_eq!(result["status"], "UNSUPPORTED");
        let message = result["message"].as_str().unwrap();
        assert!(
            message.contains("documents no way to undo")
                && message.contains("opting back in would assume consent"),
            "{message}"
        );
    }
    let sent: u64 = ProviderId::ALL
        .iter()
        .map(|id| app.sandbox.control(*id).request_count())
        .sum();
    assert_eq!(sent, 0, "no provider is called");
    assert_eq!(is(Some("+14155550150"), None).await, false);
    let data = app.data(ENTRIES, json!({})).await;
    assert_eq!(data["doNotContactEntries"]["totalCount"], 4);
    let again = app
        .data(REMOVE, json!({ "input": { "phone": "+14155550150" } }))
        .await;
    assert_eq!(
        again["removeFromDoNotContact"]["userErrors"][0]["code"],
        "NOT_FOUND"
    );
}

#[tokio::test]
async fn consent_shows_the_registry_across_providers_in_one_store_query() {
    let (app, gateway) = spawn(None).await;
    // Sophie Tran (MagicBlocks and Whautomate) by phone; Daniel Lin (Consuelo and MaiAgent)
    // by email, given in another case.
    for input in [
        json!({ "phone": "+61 491 570 156", "providers": [] }),
        json!({ "email": "DANIEL.LIN@pacificrimfoods.com", "providers": [] }),
    ] {
        app.data(ADD, json!({ "input": input })).await;
    }
    let store = gateway.store.clone().unwrap();
    let listing = "query($p: [ProviderId!]) { contacts(providers: $p, first: 100) { nodes {
        id provider phones { e164 } emails { address } consent { emailOptIn smsOptIn doNotContact } } } }";
    let before = store.registry_reads();
    let data = app
        .data(
            listing,
            json!({ "p": ["CONSUELO", "WHAUTOMATE", "MAIAGENT", "MAGICBLOCKS"] }),
        )
        .await;
    assert_eq!(
        store.registry_reads() - before,
        1,
        "one store query for the whole request"
    );
    let nodes = data["contacts"]["nodes"].as_array().unwrap();
    assert!(nodes.len() > 20, "{}", nodes.len());
    let mut hit_providers: Vec<String> = Vec::new();
    for node in nodes {
        let phones: Vec<&str> = node["phones"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["e164"].as_str())
            .collect();
        let emails: Vec<String> = node["emails"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["address"].as_str().unwrap().to_lowercase())
            .collect();
        let registered = phones.contains(&"+61491570156")
            || emails.contains(&"daniel.lin@pacificrimfoods.com".to_string());
        if registered {
            hit_providers.push(node["provider"].as_str().unwrap().to_string());
            // These providers say nothing about consent: the registry alone answers.
            assert_eq!(
                node["consent"],
                json!({ "emailOptIn": null, "smsOptIn": null, "doNotContact": true }),
                "{node:#}"
            );
        } else {
            assert!(
                node["consent"].is_null() || node["consent"]["doNotContact"] != true,
                "{node:#}"
            );
        }
    }
    hit_providers.sort();
    assert_eq!(
        hit_providers,
        ["CONSUELO", "MAGICBLOCKS", "MAIAGENT", "WHAUTOMATE"],
        "whichever provider the contact came from"
    );

    // One contact by id: the same answer; a request not asking for consent reads nothing.
    let one = app
        .data(
            "{ contact(id: \"whautomate:64f1a2b3c4d5e6f7a8b9c002\") { consent { doNotContact } } }",
            json!({}),
        )
        .await;
    assert_eq!(one["contact"]["consent"]["doNotContact"], true);
    let before = store.registry_reads();
    app.data("{ contacts(first: 50) { nodes { id } } }", json!({}))
        .await;
    assert_eq!(store.registry_reads(), before);
}

#[tokio::test]
async fn opting_in_a_registered_phone_or_email_is_refused_before_any_call() {
    let (app, _) = spawn(None).await;
    let phone = "+14155550188";
    let email = "optout@example.com";
    app.data(ADD, json!({ "input": { "phone": phone, "providers": [] } }))
        .await;
    app.data(ADD, json!({ "input": { "email": email, "providers": [] } }))
        .await;
    let mainbrainer = app.sandbox.control(ProviderId::Mainbrainer);
    mainbrainer.reset_requests();
    let create = "mutation($input: CreateContactInput!) { createContact(input: $input) { contact { id } userErrors { field code message } } }";
    let update = "mutation($id: ID!, $input: UpdateContactInput!) { updateContact(id: $id, input: $input) { contact { id } userErrors { field code message } } }";
    let upsert = "mutation($input: UpsertContactInput!) { upsertContact(input: $input) { contact { id } userErrors { field code message } } }";
    let import = "mutation($csv: String!) { importContacts(provider: MAINBRAINER, csv: $csv) { results { line status userErrors { field code } } } }";
    let refused = |data: &Value, field: &str, expected: &str| {
        let errors = data.as_object().unwrap().values().next().unwrap()["userErrors"].clone();
        assert_eq!(
            errors,
            json!([{ "field": ["input", field], "code": expected,
                     "message": errors[0]["message"].clone() }]),
            "{data:#}"
        );
    };

    let data = app
        .data(
            create,
            json!({ "input": { "provider": "MAINBRAINER", "firstName": "Ann",
            "phones": [{ "number": "(415) 555-0188" }], "smsOptIn": true, "emailOptIn": false } }),
        )
        .await;
    refused(&data, "smsOptIn", "DO_NOT_CONTACT");
    let data = app
        .data(create, json!({ "input": { "provider": "MAINBRAINER", "firstName": "Ann",
            "emails": [{ "address": "OptOut@Example.com" }], "smsOptIn": false, "emailOptIn": true } }))
        .await;
    refused(&data, "emailOptIn", "DO_NOT_CONTACT");
    let data = app
        .data(
            update,
            json!({ "id": "mainbrainer:1329301",
            "input": { "phones": [{ "number": phone }], "smsOptIn": true } }),
        )
        .await;
    refused(&data, "smsOptIn", "DO_NOT_CONTACT");
    // Mainbrainer cannot be read, so the contact's own phones cannot be checked.
    let data = app
        .data(
            update,
            json!({ "id": "mainbrainer:1329301", "input": { "smsOptIn": true } }),
        )
        .await;
    refused(&data, "phones", "REQUIRED");
    let data = app
        .data(
            upsert,
            json!({ "input": { "provider": "MAINBRAINER", "firstName": "Ann",
            "phones": [{ "number": phone }], "smsOptIn": true, "emailOptIn": true } }),
        )
        .await;
    refused(&data, "smsOptIn", "DO_NOT_CONTACT");
    assert_eq!(mainbrainer.request_count(), 0, "nothing was sent");

    let csv = format!(
        "firstName,phone,email,smsOptIn,emailOptIn\nAnn,{phone},,yes,no\nBo,+14155550189,,yes,no\nCy,,{email},no,yes\n"
    );
    let data = app.data(import, json!({ "csv": csv })).await;
    let rows = data["importContacts"]["results"].as_array().unwrap();
    let row = |n: usize| (rows[n]["status"].clone(), rows[n]["userErrors"].clone());
    assert_eq!(
        row(0),
        (
            json!("FAILED"),
            json!([{ "field": ["smsOptIn"], "code": "DO_NOT_CONTACT" }])
        )
    );
    assert_eq!(row(1), (json!("CREATED"), json!([])));
    assert_eq!(
        row(2),
        (
            json!("FAILED"),
            json!([{ "field": ["emailOptIn"], "code": "DO_NOT_CONTACT" }])
        )
    );
    assert_eq!(mainbrainer.request_count(), 1, "only the unregistered row");

    // Opting out stays possible, and opting in is once the entry is removed.
    let data = app
        .data(
            create,
            json!({ "input": { "provider": "MAINBRAINER", "firstName": "Ann",
            "phones": [{ "number": phone }], "smsOptIn": false, "emailOptIn": false } }),
        )
        .await;
    assert_eq!(data["createContact"]["userErrors"], json!([]));
    app.data(REMOVE, json!({ "input": { "phone": phone } }))
        .await;
    let data = app
        .data(
            create,
            json!({ "input": { "provider": "MAINBRAINER", "firstName": "Ann",
            "phones": [{ "number": phone }], "smsOptIn": true, "emailOptIn": false } }),
        )
        .await;
    assert_eq!(data["createContact"]["userErrors"], json!([]));
}

/// Workers claiming at once, each on its own connection: every due propagation is claimed by
/// exactly one of them (the lease is re-checked in the claiming UPDATE itself; PostgreSQL
/// also skips rows another claim has locked).
#[tokio::test]
async fn concurrent_claims_take_each_due_row_once() {
    for (backend, store, _keep) in store_urls().await {
        let seeded = Store::open(&store).await.unwrap();
        for n in 0..30 {
            let phone = format!("+1415555{:04}", 2000 + n);
            let (entry, _) = seeded
                .add_dnc_entry(Some(&phone), None, None)
                .await
                .unwrap();
            seeded
                .open_dnc_propagation(&entry.id, ProviderId::Consuelo, "crashed", Duration::ZERO)
                .await
                .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        let workers = (0..8).map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let store = Store::open(&store).await.unwrap();
                let mut claimed = Vec::new();
                while let Some(c) = store
                    .claim_due_dnc(
                        ProviderId::Consuelo,
                        &format!("w{w}"),
                        Duration::from_secs(60),
                    )
                    .await
                    .unwrap()
                {
                    claimed.push(c.entry.id);
                }
                claimed
            })
        });
        let mut all: Vec<String> = futures::future::join_all(workers)
            .await
            .into_iter()
            .flat_map(Result::unwrap)
            .collect();
        assert_eq!(all.len(), 30, "{backend}: every row claimed once");
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 30, "{backend}: no row claimed twice");
    }
}
