//! `importContacts`: the gateway parses the CSV itself and creates row by row; one bad row
//! never stops the others, and a file-level problem sends nothing.

use crate::helpers::spawn_app;
use contact_gateway::contact::ProviderId;
use serde_json::{json, Value};
use std::time::Instant;

const IMPORT: &str = "mutation($p: ProviderId!, $csv: String!) { importContacts(provider: $p, csv: $csv) {
    createdCount failedCount userErrors { field message code }
    results { line status contact { id displayName primaryEmail primaryPhone company tags customFields } userErrors { field message code } errorCode } } }";

#[tokio::test]
async fn rows_are_created_and_bad_rows_reported_without_stopping_the_rest() {
    let app = spawn_app().await;
    // A BOM, CRLF line ends, a quoted field with a comma and one with a line break, a blank
    // line, a row with a bad email and one with too many cells.
    let csv = "\u{feff}First Name,last_name,Email,Phone,Company,Tags,custom.plan\r\n\
               Ada,Lovelace,ada@engines.example.com,+1 415 555 0171,\"Engines, Ltd\",vip;beta,pro\r\n\
               \r\n\
               Grace,Hopper,not-an-email,+1 415 555 0172,Navy,,\r\n\
               Alan,Turing,alan@bletchley.example.com,,\"Bletchley\nPark\",,free\r\n\
               Too,Many,too@many.example.com,,x,,y,extra\r\n";
    let control = app.sandbox.control(ProviderId::Magicblocks);
    let before = control.records().len();
    control.reset_requests();
    let data = app
        .data(IMPORT, json!({ "p": "MAGICBLOCKS", "csv": csv }))
        .await;
    let payload = &data["importContacts"];
    assert_eq!(payload["userErrors"], json!([]), "{payload:#}");
    // Magicblocks holds no tags: that row is refused, not silently stripped.
    let results = payload["results"].as_array().unwrap();
    let summary: Vec<(u64, String, Option<String>)> = results
        .iter()
        .map(|r| {
            (
                r["line"].as_u64().unwrap(),
                r["status"].as_str().unwrap().to_string(),
                r["userErrors"][0]["code"].as_str().map(str::to_string),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (2, "FAILED".into(), Some("FIELD_NOT_SUPPORTED".into())),
            (4, "FAILED".into(), Some("INVALID_EMAIL".into())),
            (5, "CREATED".into(), None),
            (7, "FAILED".into(), Some("MALFORMED_ROW".into())),
        ]
    );
    assert_eq!(
        (
            payload["createdCount"].clone(),
            payload["failedCount"].clone()
        ),
        (json!(1), json!(3))
    );
    let alan = &results[2]["contact"];
    assert_eq!(alan["displayName"], "Alan Turing");
    assert_eq!(
        alan["company"], "Bletchley\nPark",
        "a quoted line break is kept"
    );
    assert_eq!(alan["customFields"]["plan"], "free");
    assert_eq!(control.records().len(), before + 1);
    assert_eq!(control.request_count(), 1, "only the good row was sent");

    // The same file into Whautomate, which holds tags: Ada's tags and quoted company are
    // refused only where Whautomate cannot hold them (email, company).
    let data = app
        .data(IMPORT, json!({ "p": "WHAUTOMATE", "csv": "first name,last name,phone,tags,custom.plan\nAda,Lovelace,+1 415 555 0171,\"vip;beta\",pro\n" }))
        .await;
    let row = &data["importContacts"]["results"][0];
    assert_eq!(row["status"], "CREATED", "{row}");
    assert_eq!(row["contact"]["tags"], json!(["vip", "beta"]));
}

#[tokio::test]
async fn a_file_level_problem_sends_nothing() {
    let app = spawn_app().await;
    for csv in [
        "",
        "favourite colour,email\nblue,a@b.example.com\n",
        "email,email\na@b.example.com,c@d.example.com\n",
    ] {
        let control = app.sandbox.control(ProviderId::Consuelo);
        control.reset_requests();
        let data = app
            .data(IMPORT, json!({ "p": "CONSUELO", "csv": csv }))
            .await;
        let payload = &data["importContacts"];
        assert_eq!(
            payload["userErrors"][0]["code"], "INVALID_CSV",
            "{csv:?}: {payload}"
        );
        assert_eq!(payload["results"], json!([]));
        assert_eq!(control.request_count(), 0);
    }
}

#[tokio::test]
async fn mainbrainer_imports_by_upsert() {
    let app = spawn_app().await;
    let csv = "firstName,email,phone,emailOptIn,smsOptIn\nKari,kari@fjord.example.com,+47 908 12 777,yes,no\n";
    let control = app.sandbox.control(ProviderId::Mainbrainer);
    control.reset_requests();
    let data = app
        .data(IMPORT, json!({ "p": "MAINBRAINER", "csv": csv }))
        .await;
    assert_eq!(data["importContacts"]["createdCount"], 1, "{data}");
    let body = &control.requests()[0].body;
    assert_eq!(control.requests()[0].path, "/contacts/insertupdate");
    assert_eq!(
        (body["emailOptIn"].clone(), body["mobileOptIn"].clone()),
        (json!(true), json!(false))
    );
}

#[tokio::test]
async fn ten_thousand_rows_stream_through() {
    let app = spawn_app().await;
    let mut csv = String::from("firstName,lastName,email\n");
    for i in 0..10_000 {
        csv += &format!("Row{i},Import,row{i}@bulk.example.com\n");
    }
    let control = app.sandbox.control(ProviderId::Consuelo);
    let before = control.records().len();
    let started = Instant::now();
    let data = app
        .data("mutation($csv: String!) { importContacts(provider: CONSUELO, csv: $csv) { createdCount failedCount results { line status } } }", json!({ "csv": csv }))
        .await;
    let payload = &data["importContacts"];
    assert_eq!(
        (
            payload["createdCount"].clone(),
            payload["failedCount"].clone()
        ),
        (json!(10_000), json!(0))
    );
    let lines: Vec<u64> = payload["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    assert_eq!(
        lines,
        (2..10_002).collect::<Vec<u64>>(),
        "results in row order"
    );
    assert_eq!(control.records().len(), before + 10_000);
    // Rows are created concurrently, so the store's order is not the file's.
    let emails: std::collections::HashSet<String> = control
        .records()
        .iter()
        .filter_map(|r: &Value| r["email"].as_str().map(str::to_string))
        .collect();
    assert!((0..10_000).all(|i| emails.contains(&format!("row{i}@bulk.example.com"))));
    eprintln!("10,000 rows imported in {:?}", started.elapsed());
}

#[tokio::test]
async fn maiagent_imports_row_by_row() {
    let app = spawn_app().await;
    let csv = "name,email,phone\n";
    let data = app
        .data(IMPORT, json!({ "p": "MAIAGENT", "csv": csv }))
        .await;
    assert_eq!(
        data["importContacts"]["userErrors"][0]["code"], "INVALID_CSV",
        "`name` is not a unified column"
    );

    let csv = "firstName,lastName,email,phone\nMing,Chen,ming.chen@example.com,0912 555 001\nBad,Row,not-an-email,\n";
    let control = app.sandbox.control(ProviderId::Maiagent);
    control.reset_requests();
    let data = app
        .data(IMPORT, json!({ "p": "MAIAGENT", "csv": csv }))
        .await;
    let payload = &data["importContacts"];
    assert_eq!(
        (
            payload["createdCount"].clone(),
            payload["failedCount"].clone()
        ),
        (json!(1), json!(1))
    );
    assert_eq!(
        payload["results"][0]["contact"]["primaryPhone"],
        "+886912555001"
    );
    let requests = control.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        (requests[0].method.as_str(), requests[0].path.as_str()),
        ("POST", "/api/contacts/")
    );
}
