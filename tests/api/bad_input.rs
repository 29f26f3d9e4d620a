//! Input a caller gets wrong, or sends to probe: ids of a format the provider's document
//! excludes are refused before any call, a CSV with an unbalanced quote never merges rows,
//! and no message quotes a long value whole.

use crate::helpers::{error_codes, spawn_app};
use contact_gateway::contact::ProviderId;
use serde_json::{json, Value};

#[tokio::test]
async fn ids_whose_format_a_document_fixes_are_checked_before_any_call() {
    let app = spawn_app().await;
    let query = "query($id: ID!) { contact(id: $id) { id } }";
    for (id, provider) in [
        ("maiagent:not-a-uuid", ProviderId::Maiagent),
        (
            "maiagent:3b1f8e2a-6c4d-4e7a-9f10-00000000001",
            ProviderId::Maiagent,
        ),
        ("mainbrainer:con_01HSBX7K2M0000001", ProviderId::Mainbrainer),
        ("mainbrainer:-5", ProviderId::Mainbrainer),
    ] {
        let control = app.sandbox.control(provider);
        control.reset_requests();
        let body = app.graphql(query, json!({ "id": id })).await;
        assert_eq!(error_codes(&body), ["BAD_USER_INPUT"], "{id}: {body}");
        let error = &body["errors"][0];
        assert_eq!(
            error["extensions"]["provider"],
            provider.as_str().to_uppercase()
        );
        assert!(
            error["message"].as_str().unwrap().contains(id),
            "the message names the id: {error}"
        );
        assert_eq!(body["data"]["contact"], Value::Null);
        assert_eq!(control.request_count(), 0, "{id}: no call");
    }
    // Ids of the documented format go on as before: a MaiAgent UUID no record has is asked
    // for (and is null); a Mainbrainer integer meets "no read endpoint".
    let control = app.sandbox.control(ProviderId::Maiagent);
    control.reset_requests();
    let body = app
        .graphql(
            query,
            json!({ "id": "maiagent:3b1f8e2a-6c4d-4e7a-9f10-999999999999" }),
        )
        .await;
    assert_eq!(body["data"]["contact"], Value::Null, "{body}");
    assert_eq!(control.request_count(), 1);
    let body = app
        .graphql(query, json!({ "id": "mainbrainer:1329318" }))
        .await;
    assert_eq!(error_codes(&body), ["UNSUPPORTED_BY_PROVIDER"]);
    // Federation resolves entities through the same lookup.
    let body = app
        .graphql(
            r#"{ _entities(representations: [{ __typename: "Contact", id: "maiagent:x" }]) { ... on Contact { id } } }"#,
            json!({}),
        )
        .await;
    assert_eq!(error_codes(&body), ["BAD_USER_INPUT"], "{body}");
}

const IMPORT: &str = "mutation($csv: String!) { importContacts(provider: CONSUELO, csv: $csv) {
    createdCount failedCount userErrors { message code }
    results { line status contact { primaryEmail } userErrors { message code } } } }";

#[tokio::test]
async fn an_unbalanced_quote_fails_its_row_and_the_rows_after_it_still_import() {
    let app = spawn_app().await;
    let control = app.sandbox.control(ProviderId::Consuelo);
    for (csv, bad_line) in [
        // Never closed: the csv crate read lines 3-5 as one contact.
        (
            "firstName,lastName,email\n\
             Ada,Lovelace,ada@quote.example.com\n\
             \"Grace,Hopper,grace@quote.example.com\n\
             Alan,Turing,alan@quote.example.com\n\
             Edsger,Dijkstra,edsger@quote.example.com\n",
            3,
        ),
        // Closed by a later row's quote in the middle of a cell.
        (
            "firstName,lastName,email\n\
             Ada,Lovelace,ada@quote2.example.com\n\
             Grace,\"Hopper,grace@quote2.example.com\n\
             Alan,Turing,alan@quote2.example.com\n\
             Edsger,\"Dijkstra\",edsger@quote2.example.com\n",
            3,
        ),
    ] {
        control.reset_requests();
        let data = app.data(IMPORT, json!({ "csv": csv })).await;
        let payload = &data["importContacts"];
        assert_eq!(payload["userErrors"], json!([]), "{payload:#}");
        let summary: Vec<(u64, String, Value)> = payload["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["line"].as_u64().unwrap(),
                    r["status"].as_str().unwrap().to_string(),
                    r["userErrors"][0]["code"].clone(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (2, "CREATED".into(), Value::Null),
                (bad_line, "FAILED".into(), json!("MALFORMED_ROW")),
                (4, "CREATED".into(), Value::Null),
                (5, "CREATED".into(), Value::Null),
            ],
            "{payload:#}"
        );
        let message = payload["results"][1]["userErrors"][0]["message"]
            .as_str()
            .unwrap();
        assert!(message.contains("line 3"), "{message}");
        // Each good row made one contact with its own email; the bad one sent nothing.
        let sent: Vec<Value> = control
            .requests()
            .iter()
            .map(|r| r.body["email"].clone())
            .collect();
        assert_eq!(sent.len(), 3, "{sent:?}");
        assert!(sent.iter().all(|e| e
            .as_str()
            .is_some_and(|e| e.ends_with(".example.com") && !e.contains('\n'))));
    }
}

/// Every `message` in a response.
fn messages(body: &Value, out: &mut Vec<String>) {
    match body {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("message", Value::String(m)) => out.push(m.clone()),
                    _ => messages(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| messages(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn no_message_quotes_a_long_value_whole() {
    let app = spawn_app().await;
    let long = "7".repeat(1_000_000);
    let header = format!("firstName,x{long}\nAda,1\n");
    let cases: Vec<(&str, Value)> = vec![
        ("query($v: ID!) { contact(id: $v) { id } }", json!({ "v": long })),
        ("query($v: ID!) { contact(id: $v) { id } }", json!({ "v": format!("{long}:1") })),
        ("query($v: ID!) { contact(id: $v) { id } }", json!({ "v": format!("maiagent:{long}") })),
        ("query($v: String) { contacts(filter: { phone: $v }) { edges { cursor } } }", json!({ "v": format!("x{long}") })),
        ("query($v: String) { contacts(after: $v) { edges { cursor } } }", json!({ "v": long })),
        ("query($v: String) { normalizePhone(phone: \"4155550100\", defaultRegion: $v) { e164 } }", json!({ "v": long })),
        (
            "mutation($v: ID!) { updateContact(id: $v, input: { notes: \"x\" }) { userErrors { message code } } }",
            json!({ "v": format!("maiagent:{long}") }),
        ),
        (
            "mutation($v: ID!) { deleteContact(id: $v) { userErrors { message code } } }",
            json!({ "v": long }),
        ),
        ("mutation($v: String!) { importContacts(provider: CONSUELO, csv: $v) { userErrors { message code } } }", json!({ "v": header })),
        (
            "mutation($v: String!) { importContacts(provider: CONSUELO, csv: $v) { results { userErrors { message code } } } }",
            json!({ "v": format!("firstName,smsOptIn\nAda,{long}\n") }),
        ),
    ];
    for (query, variables) in cases {
        let body = app.graphql(query, variables).await;
        let mut found = Vec::new();
        messages(&body, &mut found);
        assert!(!found.is_empty(), "{query}: no message");
        for message in found {
            assert!(
                message.len() < 400,
                "{query}: a message of {} bytes: {}…",
                message.len(),
                message.chars().take(200).collect::<String>()
            );
            assert!(
                message.contains("777…"),
                "{query}: the value is quoted, cut: {message}"
            );
        }
    }
}
