//! Reads through the real router against the simulators: every adapter's mapping, every
//! adapter's upstream request, paging and filters.

use crate::helpers::{enum_name, error_codes, spawn_app, TestApp};
use contact_gateway::contact::ProviderId;
use contact_gateway::sandbox::{api_key, RecordedRequest};
use serde_json::{json, Value};
use std::collections::HashSet;

const LISTING: [ProviderId; 4] = [
    ProviderId::Magicblocks,
    ProviderId::Consuelo,
    ProviderId::Whautomate,
    ProviderId::Maiagent,
];

const CONTACT_FIELDS: &str = "id provider nativeId displayName name { first middle last full }
    emails { address type primary } phones { number e164 type primary } primaryEmail primaryPhone
    company notes tags stage groups { id name kind } customFields
    consent { emailOptIn smsOptIn doNotContact } isTest createdAt updatedAt raw";

fn header<'a>(request: &'a RecordedRequest, name: &str) -> Option<&'a str> {
    request
        .headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// The auth header the contract says each provider gets.
fn expected_auth(id: ProviderId) -> (&'static str, String) {
    let key = api_key(id);
    match id {
        ProviderId::Whautomate => ("x-api-key", key.to_string()),
        ProviderId::Maiagent => ("authorization", format!("Api-Key {key}")),
        _ => ("authorization", format!("Bearer {key}")),
    }
}

fn assert_signed(id: ProviderId, request: &RecordedRequest) {
    let (name, value) = expected_auth(id);
    assert_eq!(
        header(request, name),
        Some(value.as_str()),
        "{id}: auth header on {request:?}"
    );
    assert_eq!(header(request, "accept"), Some("application/json"), "{id}");
    assert_eq!(
        header(request, "user-agent"),
        Some(concat!("contact-gateway/", env!("CARGO_PKG_VERSION"))),
        "{id}"
    );
}

async fn list_all(app: &TestApp, id: ProviderId, first: i64) -> Vec<Value> {
    app.all_contacts(&[&enum_name(id)], json!(null), first)
        .await
}

#[tokio::test]
async fn the_first_query_returns_contacts_from_the_four_listing_providers() {
    let app = spawn_app().await;
    let data = app
        .data(
            "{ providers { id capabilities ledgerCapabilities } contacts(first: 50) { nodes { id provider displayName primaryPhone } } }",
            json!({}),
        )
        .await;
    let providers: HashSet<&str> = data["contacts"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["provider"].as_str().unwrap())
        .collect();
    assert_eq!(
        providers,
        HashSet::from(["MAGICBLOCKS", "CONSUELO", "WHAUTOMATE", "MAIAGENT"])
    );
    let capabilities: Vec<Value> = data["providers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["capabilities"].clone())
        .collect();
    for listed in &capabilities[..4] {
        for capability in ["LIST", "GET"] {
            assert!(
                listed.as_array().unwrap().contains(&json!(capability)),
                "{capabilities:?}"
            );
        }
    }
    // Mainbrainer lists only what the gateway wrote (its ledger, empty here: ledger.rs).
    assert_eq!(
        data["providers"][4]["ledgerCapabilities"],
        json!(["LIST", "GET"]),
        "{data}"
    );
}

/// Every record a simulator holds comes back once, in its order, and `contact(id)` returns
/// the same contact by its global id.
#[tokio::test]
async fn every_listing_provider_pages_through_all_its_records_and_gets_each_by_id() {
    let app = spawn_app().await;
    for id in LISTING {
        let records = app.sandbox.control(id).records();
        let expected: Vec<String> = records
            .iter()
            .map(|r| format!("{id}:{}", r["id"].as_str().unwrap()))
            .collect();
        for first in [3, 100] {
            let listed = list_all(&app, id, first).await;
            let ids: Vec<String> = listed
                .iter()
                .map(|n| n["id"].as_str().unwrap().to_string())
                .collect();
            assert_eq!(ids, expected, "{id} with first = {first}");
        }
        let query = format!("query($id: ID!) {{ contact(id: $id) {{ {CONTACT_FIELDS} }} }}");
        for (global, record) in expected.iter().zip(&records) {
            let data = app.data(&query, json!({ "id": global })).await;
            let contact = &data["contact"];
            assert_eq!(contact["id"], json!(global));
            // Minus the fields that carry credentials (Decision 6: MaiAgent `mcpCredentials`).
            let mut expected = record.clone();
            if let Some(fields) = expected.as_object_mut() {
                fields.remove("mcpCredentials");
            }
            assert_eq!(
                contact["raw"], expected,
                "{global}: raw is the record as the provider holds it"
            );
        }
    }
}

#[tokio::test]
async fn each_adapter_sends_the_documented_get_request() {
    let app = spawn_app().await;
    for id in LISTING {
        let control = app.sandbox.control(id);
        let native = control.records()[0]["id"].as_str().unwrap().to_string();
        control.reset_requests();
        let global = format!("{id}:{native}");
        let data = app
            .data(
                "query($id: ID!) { contact(id: $id) { id } }",
                json!({ "id": global }),
            )
            .await;
        assert_eq!(data["contact"]["id"], json!(global));
        let requests = control.requests();
        assert_eq!(requests.len(), 1, "{id}: {requests:?}");
        let expected_path = match id {
            ProviderId::Maiagent => format!("/api/contacts/{native}/"),
            _ => format!("/v1/contacts/{native}"),
        };
        assert_eq!(
            (requests[0].method.as_str(), requests[0].path.as_str()),
            ("GET", expected_path.as_str())
        );
        assert_signed(id, &requests[0]);
    }
}

#[tokio::test]
async fn each_adapter_sends_the_documented_list_request() {
    let app = spawn_app().await;
    for id in LISTING {
        let control = app.sandbox.control(id);
        control.reset_requests();
        app.data(
            "query($p: [ProviderId!]) { contacts(providers: $p, first: 5) { nodes { id } } }",
            json!({ "p": [enum_name(id)] }),
        )
        .await;
        let requests = control.requests();
        assert_eq!(requests.len(), 1, "{id}: {requests:?}");
        let request = &requests[0];
        assert_signed(id, request);
        let query: Vec<(&str, &str)> = request
            .query
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let (path, params): (&str, Vec<(&str, &str)>) = match id {
            ProviderId::Magicblocks => ("/v1/contacts", vec![("limit", "6"), ("offset", "0")]),
            ProviderId::Consuelo => (
                "/v1/contacts",
                vec![
                    ("workspaceId", "ws_sandbox"),
                    ("limit", "6"),
                    ("offset", "0"),
                ],
            ),
            ProviderId::Whautomate => ("/v1/contacts", vec![("page", "1"), ("limit", "6")]),
            ProviderId::Maiagent => ("/api/contacts/", vec![("page", "1"), ("pageSize", "6")]),
            ProviderId::Mainbrainer => unreachable!(),
        };
        assert_eq!(
            (request.method.as_str(), request.path.as_str()),
            ("GET", path),
            "{id}"
        );
        for param in params {
            assert!(
                query.contains(&param),
                "{id}: {param:?} missing from {query:?}"
            );
        }
    }
}

#[tokio::test]
async fn an_unknown_contact_is_null_and_mainbrainer_reads_are_unsupported_without_a_call() {
    let app = spawn_app().await;
    for id in LISTING {
        // MaiAgent ids are UUIDs (an id of another format is refused before any call).
        let native = if id == ProviderId::Maiagent {
            "3b1f8e2a-6c4d-4e7a-9f10-999999999999"
        } else {
            "does-not-exist"
        };
        let body = app
            .data(
                "query($id: ID!) { contact(id: $id) { id } }",
                json!({ "id": format!("{id}:{native}") }),
            )
            .await;
        assert_eq!(body["contact"], Value::Null, "{id}");
    }
    let control = app.sandbox.control(ProviderId::Mainbrainer);
    control.reset_requests();
    let body = app
        .graphql("{ contact(id: \"mainbrainer:1329318\") { id } }", json!({}))
        .await;
    assert_eq!(error_codes(&body), ["UNSUPPORTED_BY_PROVIDER"]);
    assert_eq!(body["errors"][0]["extensions"]["provider"], "MAINBRAINER");
    assert_eq!(control.request_count(), 0);
}

/// What each adapter sends upstream for a text, email and phone search (pushed down where the
/// provider's API can narrow; the gateway re-checks every contact either way).
#[tokio::test]
async fn each_adapter_pushes_searches_down_as_documented() {
    let app = spawn_app().await;
    let query = "query($p: [ProviderId!], $f: ContactFilter) { contacts(providers: $p, filter: $f, first: 5) { nodes { id } } }";
    let cases: [(&str, Value); 3] = [
        ("text", json!({ "search": "Bennett" })),
        (
            "email",
            json!({ "email": "olivia.bennett@northwindtraders.com" }),
        ),
        ("phone", json!({ "phone": "(415) 555-0142" })),
    ];
    for id in LISTING {
        for (what, filter) in &cases {
            let control = app.sandbox.control(id);
            control.reset_requests();
            app.data(query, json!({ "p": [enum_name(id)], "f": filter }))
                .await;
            let requests = control.requests();
            let label = format!("{id} {what} search: {requests:?}");
            let param = |name: &str| -> Option<String> {
                requests
                    .first()?
                    .query
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
            };
            match (id, *what) {
                (ProviderId::Magicblocks, "text") => {
                    assert_eq!(param("email").or(param("phone")), None, "{label}")
                }
                (ProviderId::Magicblocks, "email") => {
                    assert_eq!(
                        param("email").as_deref(),
                        Some("olivia.bennett@northwindtraders.com"),
                        "{label}"
                    )
                }
                (ProviderId::Magicblocks, _) => {
                    assert_eq!(param("phone").as_deref(), Some("+14155550142"), "{label}")
                }
                (ProviderId::Consuelo, _) => {
                    let r = &requests[0];
                    assert_eq!(
                        (r.method.as_str(), r.path.as_str()),
                        ("POST", "/v1/contacts/search"),
                        "{label}"
                    );
                    assert_eq!(r.body["workspaceId"], "ws_sandbox", "{label}");
                    let expected = match *what {
                        "text" => "Bennett",
                        "email" => "olivia.bennett@northwindtraders.com",
                        _ => "+14155550142",
                    };
                    assert_eq!(r.body["query"], expected, "{label}");
                }
                // whautomate.txt: no email field, so nothing to ask.
                (ProviderId::Whautomate, "email") => assert!(requests.is_empty(), "{label}"),
                (ProviderId::Whautomate, "text") => {
                    assert_eq!(param("searchText").as_deref(), Some("Bennett"), "{label}")
                }
                (ProviderId::Whautomate, _) => assert_eq!(
                    param("searchText").as_deref(),
                    Some("14155550142"),
                    "{label}"
                ),
                (ProviderId::Maiagent, "text") => {
                    assert_eq!(param("search").as_deref(), Some("Bennett"), "{label}")
                }
                (ProviderId::Maiagent, "email") => {
                    assert_eq!(
                        param("search").as_deref(),
                        Some("olivia.bennett@northwindtraders.com"),
                        "{label}"
                    )
                }
                // maiagent.txt: numbers are stored as national digits.
                (ProviderId::Maiagent, _) => {
                    assert_eq!(param("search").as_deref(), Some("4155550142"), "{label}")
                }
                _ => unreachable!(),
            }
            for request in &requests {
                assert_signed(id, request);
            }
        }
    }
}

/// Decision 6: `raw` is the provider's record minus the fields that carry credentials, so
/// MaiAgent's `mcpCredentials` ("the contact's MCP credentials") reaches no client, by id or
/// in a listing, while the rest of the record does.
#[tokio::test]
async fn maiagent_mcp_credentials_never_reach_raw() {
    let app = spawn_app().await;
    let record = app
        .sandbox
        .control(ProviderId::Maiagent)
        .records()
        .into_iter()
        .find(|r| r.get("mcpCredentials").is_some())
        .expect("the simulator has a contact with MCP credentials");
    let secret = record["mcpCredentials"].as_str().unwrap().to_string();
    let global = format!("maiagent:{}", record["id"].as_str().unwrap());

    let data = app
        .data(
            "query($id: ID!) { contact(id: $id, noCache: true) { raw } }",
            json!({ "id": global }),
        )
        .await;
    let raw = &data["contact"]["raw"];
    assert!(raw.get("mcpCredentials").is_none(), "{raw}");
    assert!(!raw.to_string().contains(&secret), "{raw}");
    let mut expected = record.clone();
    expected.as_object_mut().unwrap().remove("mcpCredentials");
    assert_eq!(*raw, expected, "the rest of the record as received");

    let data = app
        .data(
            "{ contacts(providers: [MAIAGENT], first: 100, noCache: true) { nodes { raw } } }",
            json!({}),
        )
        .await;
    let nodes = data["contacts"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 34);
    assert!(!data.to_string().contains("mcpCredentials"), "{data}");
}

/// A national number read in a region where it is not valid is served as received, never as
/// a wrong E.164 (MaiAgent's `912345678` read as US would be `+1912345678`).
#[tokio::test]
async fn a_phone_invalid_in_the_providers_region_is_served_as_received() {
    for (region, expect_e164) in [("TW", true), ("US", false)] {
        let app = crate::helpers::spawn_app_with(|c| {
            c.providers
                .get_mut(&ProviderId::Maiagent)
                .unwrap()
                .default_region = region.into();
        })
        .await;
        let record = app
            .sandbox
            .control(ProviderId::Maiagent)
            .records()
            .into_iter()
            .find(|r| r["phoneNumber"].is_number())
            .expect("a seeded contact with an integer phone");
        let digits = record["phoneNumber"].to_string();
        let id = format!("maiagent:{}", record["id"].as_str().unwrap());
        let data = app
            .data(
                "query($id: ID!) { contact(id: $id) { primaryPhone phones { number e164 } } }",
                json!({ "id": id }),
            )
            .await;
        let contact = &data["contact"];
        assert_eq!(contact["phones"][0]["number"], json!(digits));
        if expect_e164 {
            let e164 = format!("+886{digits}");
            assert_eq!(contact["primaryPhone"], json!(e164), "{region}: {data}");
            assert_eq!(contact["phones"][0]["e164"], json!(e164));
        } else {
            assert_eq!(contact["primaryPhone"], json!(digits), "{region}: {data}");
            assert_eq!(contact["phones"][0]["e164"], Value::Null);
        }
    }
}
