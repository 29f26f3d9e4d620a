//! A failing provider never blanks the others: each fault yields the contract's code on that
//! provider's error, the other providers' contacts still return, and no key leaks.

use crate::helpers::{enum_name, error_codes, spawn_app_with};
use contact_gateway::contact::ProviderId;
use contact_gateway::sandbox::{api_key, Fault};
use serde_json::{json, Value};
use std::collections::HashSet;

fn providers_of(body: &Value) -> HashSet<String> {
    body["data"]["contacts"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["provider"].as_str().unwrap().to_string())
        .collect()
}

fn assert_no_key(body: &Value) {
    let text = body.to_string();
    for id in ProviderId::ALL {
        assert!(
            !text.contains(api_key(id)),
            "the {id} key leaked into {text}"
        );
    }
}

#[tokio::test]
async fn each_fault_gives_its_code_while_the_others_return() {
    let app = spawn_app_with(|c| {
        for p in c.providers.values_mut() {
            p.timeout_ms = 400;
            // Each fault answers for itself: no breaker opened by the ones before it, no
            // retries (`provider_budgets.rs` tests both).
            p.budget.breaker_failures = u32::MAX;
            p.budget.retries = 0;
        }
    })
    .await;
    let cases = [
        (Fault::Status(401), "PROVIDER_AUTH_FAILED"),
        (Fault::Status(403), "PROVIDER_AUTH_FAILED"),
        // A 429 pauses the provider for its `Retry-After`: the next case waits a second.
        (
            Fault::RateLimited {
                retry_after_secs: 1,
            },
            "PROVIDER_RATE_LIMITED",
        ),
        (Fault::Status(500), "PROVIDER_UNAVAILABLE"),
        (Fault::Status(503), "PROVIDER_UNAVAILABLE"),
        (Fault::MalformedJson, "PROVIDER_UNAVAILABLE"),
        (Fault::Hang, "PROVIDER_UNAVAILABLE"),
        (Fault::DropConnection, "PROVIDER_UNAVAILABLE"),
    ];
    for failing in [ProviderId::Consuelo, ProviderId::Maiagent] {
        let native = app.sandbox.control(failing).records()[0]["id"]
            .as_str()
            .unwrap()
            .to_string();
        for (fault, code) in &cases {
            let label = format!("{failing} {fault:?}");
            app.sandbox.control(failing).set_fault(Some(fault.clone()));

            let body = app
                .graphql(
                    "{ contacts(first: 100, noCache: true) { nodes { id provider } } }",
                    json!({}),
                )
                .await;
            assert_eq!(error_codes(&body), [*code], "{label}: {body}");
            let error = &body["errors"][0];
            assert_eq!(
                error["extensions"]["provider"],
                json!(enum_name(failing)),
                "{label}"
            );
            assert_eq!(error["path"], json!(["contacts"]), "{label}");
            if let Fault::RateLimited { retry_after_secs } = fault {
                assert_eq!(
                    error["extensions"]["retryAfterSecs"],
                    json!(retry_after_secs)
                );
            }
            let returned = providers_of(&body);
            assert!(!returned.contains(&enum_name(failing)), "{label}");
            assert_eq!(
                returned.len(),
                3,
                "{label}: the other three listing providers return: {returned:?}"
            );
            assert_no_key(&body);

            let body = app
                .graphql(
                    "query($id: ID!) { contact(id: $id, noCache: true) { id } }",
                    json!({ "id": format!("{failing}:{native}") }),
                )
                .await;
            assert_eq!(
                error_codes(&body),
                [*code],
                "{label} on contact(id): {body}"
            );
            assert_no_key(&body);

            app.sandbox.control(failing).set_fault(None);
        }
    }
}

/// A `base_url` with a wrong prefix answers 404 on every path. For MaiAgent, whose listing ends
/// with a 404 past its last page, that 404 on the first page is an error too, the same one
/// Whautomate gives (`PROVIDER_REJECTED`, status 404), never zero contacts; the other providers'
/// contacts still come back.
#[tokio::test]
async fn a_wrong_base_url_is_an_error_not_an_empty_listing() {
    for failing in [ProviderId::Maiagent, ProviderId::Whautomate] {
        let app = spawn_app_with(|c| {
            let config = c.providers.get_mut(&failing).unwrap();
            config.base_url = format!("{}/wrong-prefix", config.base_url);
        })
        .await;
        let body = app
            .graphql(
                "{ contacts(first: 100, noCache: true) { nodes { id provider } } }",
                json!({}),
            )
            .await;
        assert_eq!(
            error_codes(&body),
            ["PROVIDER_REJECTED"],
            "{failing}: {body}"
        );
        let error = &body["errors"][0];
        assert_eq!(error["extensions"]["provider"], json!(enum_name(failing)));
        assert_eq!(
            error["extensions"]["status"],
            json!(404),
            "{failing}: {body}"
        );
        assert_eq!(error["path"], json!(["contacts"]));
        let returned = providers_of(&body);
        assert!(!returned.contains(&enum_name(failing)), "{failing}");
        assert_eq!(
            returned.len(),
            3,
            "{failing}: the others return: {returned:?}"
        );
        let requests = app.sandbox.control(failing).requests();
        assert!(!requests.is_empty(), "{failing} was asked");
        assert!(
            requests
                .iter()
                .all(|r| r.path.starts_with("/wrong-prefix/")),
            "{failing}: the simulator answered the wrong path"
        );
    }
}
