//! Lookups batch through one DataLoader, reads are cached, and the fan-out runs in parallel.

use crate::helpers::spawn_app;
use contact_gateway::contact::ProviderId;
use contact_gateway::sandbox::Fault;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn upstream_total(app: &crate::helpers::TestApp) -> u64 {
    ProviderId::ALL
        .iter()
        .map(|id| app.sandbox.control(*id).request_count())
        .sum()
}

fn reset(app: &crate::helpers::TestApp) {
    for id in ProviderId::ALL {
        app.sandbox.control(id).reset_requests();
    }
}

#[tokio::test]
async fn duplicate_lookups_in_one_request_collapse_into_one_upstream_call() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for provider in [
        ProviderId::Magicblocks,
        ProviderId::Consuelo,
        ProviderId::Whautomate,
        ProviderId::Maiagent,
    ] {
        for record in app.sandbox.control(provider).records().iter().take(5) {
            ids.push(format!("{provider}:{}", record["id"].as_str().unwrap()));
        }
    }
    // 20 distinct ids, each asked for twice or three times: 50 aliases.
    let aliases: Vec<String> = (0..50)
        .map(|i| {
            format!(
                "c{i}: contact(id: \"{}\", noCache: true) {{ id }}",
                ids[i % ids.len()]
            )
        })
        .collect();
    reset(&app);
    let data = app
        .data(&format!("{{ {} }}", aliases.join(" ")), json!({}))
        .await;
    for i in 0..50 {
        assert_eq!(data[format!("c{i}")]["id"], json!(ids[i % ids.len()]));
    }
    assert_eq!(upstream_total(&app), 20, "one call per distinct id");
    for provider in [
        ProviderId::Magicblocks,
        ProviderId::Consuelo,
        ProviderId::Whautomate,
        ProviderId::Maiagent,
    ] {
        assert_eq!(
            app.sandbox.control(provider).request_count(),
            5,
            "{provider}"
        );
    }
}

#[tokio::test]
async fn federation_entity_lookups_use_the_same_loader() {
    let app = spawn_app().await;
    let id = format!(
        "consuelo:{}",
        app.sandbox.control(ProviderId::Consuelo).records()[0]["id"]
            .as_str()
            .unwrap()
    );
    reset(&app);
    let data = app
        .data(
            "query($r: [_Any!]!) { _entities(representations: $r) { ... on Contact { id displayName } } }",
            json!({ "r": [{ "__typename": "Contact", "id": id }, { "__typename": "Contact", "id": id }] }),
        )
        .await;
    assert_eq!(data["_entities"][0]["id"], json!(id));
    assert_eq!(data["_entities"][1]["id"], json!(id));
    assert_eq!(upstream_total(&app), 1);
}

#[tokio::test]
async fn federation_a_failing_provider_nulls_only_its_own_representations() {
    let app = spawn_app().await;
    let native = |provider: ProviderId| {
        app.sandbox.control(provider).records()[0]["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let magicblocks = format!("magicblocks:{}", native(ProviderId::Magicblocks));
    let maiagent = format!("maiagent:{}", native(ProviderId::Maiagent));
    let consuelo = format!("consuelo:{}", native(ProviderId::Consuelo));
    app.sandbox
        .control(ProviderId::Maiagent)
        .set_fault(Some(Fault::Status(500)));
    reset(&app);
    // What a router sends: one `_entities` with the representations of several subgraphs'
    // references; MaiAgent's twice, and one id that is not a contact id.
    let reps: Vec<Value> = [&magicblocks, &maiagent, &consuelo, &maiagent, "bogus"]
        .iter()
        .map(|id| json!({ "__typename": "Contact", "id": id }))
        .collect();
    let body = app
        .graphql(
            "query($r: [_Any!]!) { _entities(representations: $r) { ... on Contact { id provider } } }",
            json!({ "r": reps }),
        )
        .await;
    let entities = &body["data"]["_entities"];
    assert_eq!(entities[0]["id"], json!(magicblocks), "{body:#}");
    assert_eq!(entities[1], Value::Null, "{body:#}");
    assert_eq!(entities[2]["id"], json!(consuelo), "{body:#}");
    assert_eq!(entities[3], Value::Null, "{body:#}");
    assert_eq!(entities[4], Value::Null, "{body:#}");
    // One error per failed representation, at its own index, coded; the provider's name it.
    let mut errors: Vec<(Value, Value, Value)> = body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| {
            (
                e["path"].clone(),
                e["extensions"]["code"].clone(),
                e["extensions"]["provider"].clone(),
            )
        })
        .collect();
    errors.sort_by_key(|(path, _, _)| path.to_string());
    assert_eq!(
        errors,
        vec![
            (
                json!(["_entities", 1]),
                json!("PROVIDER_UNAVAILABLE"),
                json!("MAIAGENT")
            ),
            (
                json!(["_entities", 3]),
                json!("PROVIDER_UNAVAILABLE"),
                json!("MAIAGENT")
            ),
            (
                json!(["_entities", 4]),
                json!("BAD_USER_INPUT"),
                Value::Null
            ),
        ],
        "{body:#}"
    );
    // Still one upstream read per distinct contact; the failing one was retried twice (a
    // 5xx on a read is, `retries = 2`).
    let calls = |id: ProviderId| app.sandbox.control(id).request_count();
    assert_eq!(calls(ProviderId::Magicblocks), 1);
    assert_eq!(calls(ProviderId::Consuelo), 1);
    assert_eq!(calls(ProviderId::Maiagent), 3);
    assert_eq!(upstream_total(&app), 5);
}

#[tokio::test]
async fn a_cached_read_sends_nothing_upstream_unless_the_request_opts_out() {
    let app = spawn_app().await;
    let id = format!(
        "maiagent:{}",
        app.sandbox.control(ProviderId::Maiagent).records()[3]["id"]
            .as_str()
            .unwrap()
    );
    let lookup =
        "query($id: ID!, $n: Boolean) { contact(id: $id, noCache: $n) { id displayName } }";
    reset(&app);
    let first = app.data(lookup, json!({ "id": id })).await;
    assert_eq!(upstream_total(&app), 1);
    let again = app.data(lookup, json!({ "id": id })).await;
    assert_eq!(again, first);
    assert_eq!(upstream_total(&app), 1, "a hit sends nothing upstream");
    app.data(lookup, json!({ "id": id, "n": true })).await;
    assert_eq!(upstream_total(&app), 2, "noCache asks the provider");

    let listing = "query($n: Boolean) { contacts(first: 30, noCache: $n) { nodes { id } } }";
    reset(&app);
    let first = app.data(listing, json!({})).await;
    let calls = upstream_total(&app);
    assert!(calls >= 4);
    assert_eq!(app.data(listing, json!({})).await, first);
    assert_eq!(
        upstream_total(&app),
        calls,
        "list pages come from the cache"
    );
    app.data(listing, json!({ "n": true })).await;
    // The providers the page's contacts come from are asked again (those it does not need
    // are not: README "Reading").
    let mut providers: Vec<&str> = first["contacts"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().split(':').next().unwrap())
        .collect();
    providers.dedup();
    assert_eq!(upstream_total(&app), calls + providers.len() as u64);

    // Contacts seen in a listing are cached for lookups too.
    let listed = first["contacts"]["nodes"][0]["id"].clone();
    reset(&app);
    app.data(lookup, json!({ "id": listed })).await;
    assert_eq!(upstream_total(&app), 0);
}

#[tokio::test]
async fn the_fan_out_asks_every_provider_at_once() {
    let app = spawn_app().await;
    let latency = Duration::from_millis(400);
    for id in ProviderId::ALL {
        app.sandbox.control(id).set_latency(latency);
    }
    let started = Instant::now();
    let data = app
        .data(
            "{ contacts(first: 100, noCache: true) { nodes { provider } } }",
            json!({}),
        )
        .await;
    let elapsed = started.elapsed();
    assert!(data["contacts"]["nodes"].as_array().unwrap().len() > 60);
    // Sequential calls to four listing providers would take at least 4 × 400 ms.
    assert!(
        elapsed < latency * 3,
        "took {elapsed:?}: the providers were not asked in parallel"
    );
    assert!(elapsed >= latency);
}

/// Distinct lookups on one provider go concurrently, at most `max_concurrency` at a time.
#[tokio::test]
async fn lookups_per_provider_are_bounded_by_max_concurrency() {
    let latency = Duration::from_millis(200);
    let elapsed_with = |bound: usize| async move {
        let app = crate::helpers::spawn_app_with(|c| {
            for p in c.providers.values_mut() {
                p.max_concurrency = bound;
            }
        })
        .await;
        let control = app.sandbox.control(ProviderId::Maiagent);
        let ids: Vec<String> = control
            .records()
            .iter()
            .take(6)
            .map(|r| format!("maiagent:{}", r["id"].as_str().unwrap()))
            .collect();
        control.set_latency(latency);
        let aliases: Vec<String> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| format!("c{i}: contact(id: \"{id}\") {{ id }}"))
            .collect();
        let started = Instant::now();
        app.data(&format!("{{ {} }}", aliases.join(" ")), json!({}))
            .await;
        started.elapsed()
    };
    let unbounded = elapsed_with(8).await;
    let bounded = elapsed_with(2).await;
    // Six 200 ms calls: together in one round at 8, in three rounds at 2.
    assert!(
        unbounded < latency * 2,
        "6 lookups with a bound of 8 took {unbounded:?}"
    );
    assert!(
        bounded >= latency * 3,
        "6 lookups with a bound of 2 took only {bounded:?}"
    );
}

#[tokio::test]
async fn concurrent_requests_for_one_uncached_contact_make_one_upstream_call() {
    let app = spawn_app().await;
    let control = app.sandbox.control(ProviderId::Maiagent);
    let native = control.records()[0]["id"].as_str().unwrap().to_string();
    let query = format!("{{ contact(id: \"maiagent:{native}\") {{ id displayName }} }}");
    // Slow enough that the second request arrives while the first one's call is in flight.
    control.set_latency(Duration::from_millis(300));
    reset(&app);
    let (a, b) = tokio::join!(app.data(&query, json!({})), app.data(&query, json!({})));
    assert_eq!(a, b);
    assert_eq!(a["contact"]["id"], json!(format!("maiagent:{native}")));
    assert_eq!(
        control.request_count(),
        1,
        "two requests, one upstream call: {:?}",
        control.requests()
    );
}

/// Lookups run in their own request's span: the upstream log line of each carries the id of
/// the request that caused it (the loader is per request, its batches in that span).
#[tokio::test]
async fn each_requests_upstream_log_lines_carry_its_own_request_id() {
    let mut child = crate::helpers::binary()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let logs = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap());
    let url = crate::helpers::wait_for_url(&mut child);
    let client = reqwest::Client::new();
    let ids: Vec<String> = {
        let body: serde_json::Value = client
            .post(&url)
            .json(&json!({ "query": "{ contacts(providers: [MAIAGENT], first: 2) { nodes { nativeId } } }" }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["data"]["contacts"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["nativeId"].as_str().unwrap().to_string())
            .collect()
    };
    let lookup = |request_id: &'static str, native: String| {
        let client = client.clone();
        let url = url.clone();
        async move {
            let query = format!("{{ contact(id: \"maiagent:{native}\", noCache: true) {{ id }} }}");
            let response = client
                .post(&url)
                .header("x-request-id", request_id)
                .json(&json!({ "query": query }))
                .send()
                .await
                .unwrap();
            assert_eq!(response.headers()["x-request-id"], request_id);
            let body: serde_json::Value = response.json().await.unwrap();
            assert!(body.get("errors").is_none(), "{body}");
        }
    };
    tokio::join!(
        lookup("req-alpha", ids[0].clone()),
        lookup("req-beta", ids[1].clone())
    );
    crate::helpers::terminate(&mut child);
    let logs = logs.join().unwrap();
    for (request_id, native) in [("req-alpha", &ids[0]), ("req-beta", &ids[1])] {
        let line = logs
            .lines()
            .find(|l| {
                l.contains("upstream call") && l.contains(&format!("/api/contacts/{native}/"))
            })
            .unwrap_or_else(|| panic!("no upstream line for {native}: {logs}"));
        assert!(
            line.contains(&format!("id={request_id}")),
            "the upstream call for {native} should carry request {request_id}: {line}"
        );
    }
}
