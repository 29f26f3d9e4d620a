//! A readable Mainbrainer: it documents no read endpoint, so the gateway keeps a ledger (in its
//! store) of every record it wrote there, and `contact` / `contacts` serve the ledger's copies
//! with `source: GATEWAY_LEDGER`. An id the gateway never wrote is UNSUPPORTED_BY_PROVIDER.

use crate::helpers::{error_codes, sandbox_config, spawn_app, store_urls, GatewayProcess, TestApp};
use contact_gateway::contact::ProviderId;
use contact_gateway::sandbox::Sandbox;
use serde_json::{json, Value};

const CREATE: &str = "mutation($input: CreateContactInput!) { createContact(input: $input) {
    contact { id source } userErrors { code message } } }";
const UPDATE: &str =
    "mutation($id: ID!, $input: UpdateContactInput!) { updateContact(id: $id, input: $input) {
    contact { id source company name { first last } } userErrors { field code message } } }";
const READ: &str =
    "query($id: ID!) { contact(id: $id) { id source nativeId name { first last full }
    primaryEmail primaryPhone company customFields groups { id kind } updatedAt
    consent { emailOptIn smsOptIn } raw } }";
const LIST: &str = "query($p: [ProviderId!], $after: String) { contacts(providers: $p, first: 100, after: $after) {
    nodes { id source company } totalCount pageInfo { hasNextPage endCursor } } }";

fn ada(email: &str, phone: &str) -> Value {
    json!({ "input": {
        "provider": "MAINBRAINER", "firstName": "Ada", "lastName": "Lovelace",
        "emails": [{ "address": email }], "phones": [{ "number": phone }],
        "company": "Analytical Engines", "customFields": { "interest": "looms" },
        "emailOptIn": true, "smsOptIn": false
    } })
}

async fn create(app: &TestApp, input: Value) -> String {
    let data = app.data(CREATE, input).await;
    let payload = &data["createContact"];
    assert_eq!(payload["userErrors"], json!([]), "{payload}");
    assert_eq!(payload["contact"]["source"], "GATEWAY_LEDGER");
    payload["contact"]["id"].as_str().unwrap().to_string()
}

async fn read(app: &TestApp, id: &str) -> Value {
    app.data(READ, json!({ "id": id })).await["contact"].clone()
}

fn ids(nodes: &Value) -> Vec<&str> {
    nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_mainbrainer_contact_written_through_the_gateway_reads_back_from_its_ledger() {
    let app = spawn_app().await;
    let control = app.sandbox.control(ProviderId::Mainbrainer);
    let id = create(&app, ada("ada@engines.example", "+14155550190")).await;
    let native = id.strip_prefix("mainbrainer:").unwrap().to_string();
    let number: i64 = native.parse().unwrap();
    let stored = control
        .records()
        .into_iter()
        .find(|r| r["contactId"] == number)
        .expect("Mainbrainer holds it");
    assert_eq!(stored["email"], "ada@engines.example");

    control.reset_requests();
    let contact = read(&app, &id).await;
    assert_eq!(contact["source"], "GATEWAY_LEDGER");
    assert_eq!(contact["name"]["full"], "Ada Lovelace");
    assert_eq!(contact["primaryEmail"], "ada@engines.example");
    assert_eq!(contact["primaryPhone"], "+14155550190");
    assert_eq!(contact["company"], "Analytical Engines");
    assert_eq!(contact["customFields"], json!({ "interest": "looms" }));
    assert_eq!(
        contact["consent"],
        json!({ "emailOptIn": true, "smsOptIn": false })
    );
    assert_eq!(
        contact["groups"],
        json!([{ "id": contact_gateway::sandbox::MAINBRAINER_LIST_ID, "kind": "LIST" }])
    );
    assert!(contact["updatedAt"].is_string(), "{contact}");
    assert_eq!(contact["raw"]["contactId"], number);

    let listed = app.data(LIST, json!({ "p": ["MAINBRAINER"] })).await;
    assert_eq!(
        listed["contacts"]["nodes"],
        json!([{ "id": id, "source": "GATEWAY_LEDGER", "company": "Analytical Engines" }])
    );
    assert_eq!(listed["contacts"]["totalCount"], 1);
    assert_eq!(control.request_count(), 0, "reads never reach Mainbrainer");

    // The default listing has it after every provider's contacts, once; the others are the
    // providers' own.
    let all = app.all_contacts(&[], json!(null), 50).await;
    let mine: Vec<&Value> = all.iter().filter(|n| n["id"] == json!(id)).collect();
    assert_eq!(mine.len(), 1);
    assert_eq!(all.last().unwrap()["id"], json!(id));

    // What the providers say about it.
    let data = app
        .data(
            "{ providers { id capabilities ledgerCapabilities } contact(id: \"consuelo:contact_1001\") { source } }",
            json!({}),
        )
        .await;
    assert_eq!(data["contact"]["source"], "PROVIDER");
    let mainbrainer = &data["providers"][4];
    assert_eq!(mainbrainer["id"], "MAINBRAINER");
    assert_eq!(mainbrainer["ledgerCapabilities"], json!(["LIST", "GET"]));
    assert_eq!(
        mainbrainer["capabilities"],
        json!([
            "LIST",
            "GET",
            "CREATE",
            "UPDATE",
            "UPSERT",
            "DO_NOT_CONTACT",
            "IMPORT"
        ]),
        "no SEARCH, no DELETE, no TAGS"
    );
    for other in &data["providers"].as_array().unwrap()[..4] {
        assert_eq!(other["ledgerCapabilities"], json!([]), "{other}");
    }
}

#[tokio::test]
async fn updates_upserts_imports_and_opt_outs_through_the_gateway_show_in_the_ledger_copy() {
    let app = spawn_app().await;
    let id = create(&app, ada("ada@engines.example", "+14155550191")).await;

    // An update sends only the changes; the ledger's copy keeps the rest.
    let data = app
        .data(
            UPDATE,
            json!({ "id": id, "input": { "company": "Difference Engines", "lastName": null,
                "customFields": { "interest": null, "era": "victorian" } } }),
        )
        .await;
    let payload = &data["updateContact"];
    assert_eq!(payload["userErrors"], json!([]), "{payload}");
    assert_eq!(payload["contact"]["source"], "GATEWAY_LEDGER");
    assert_eq!(
        payload["contact"]["name"],
        json!({ "first": "Ada", "last": null }),
        "the answer is the whole ledger copy, not only the change"
    );
    let contact = read(&app, &id).await;
    assert_eq!(contact["company"], "Difference Engines");
    assert_eq!(contact["name"]["full"], "Ada");
    assert_eq!(contact["primaryEmail"], "ada@engines.example");
    assert_eq!(
        contact["customFields"],
        json!({ "interest": null, "era": "victorian" })
    );

    // Tags: Mainbrainer has none (lists only); refused before any call, the copy unchanged.
    let body = app
        .graphql(
            "mutation($id: ID!) { addTags(id: $id, tags: [\"vip\"]) { contact { id } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(error_codes(&body), ["UNSUPPORTED_BY_PROVIDER"]);
    assert_eq!(read(&app, &id).await, contact);

    // A native upsert matching it by email and mobile (Mainbrainer's own rule).
    let upsert = "mutation($input: UpsertContactInput!) { upsertContact(input: $input) {
        contact { id source } userErrors { code message } } }";
    let data = app
        .data(
            upsert,
            json!({ "input": { "provider": "MAINBRAINER", "emails": [{ "address": "ada@engines.example" }],
                "phones": [{ "number": "+14155550191" }], "emailOptIn": false, "smsOptIn": true } }),
        )
        .await;
    assert_eq!(data["upsertContact"]["contact"]["id"], json!(id), "{data}");
    let contact = read(&app, &id).await;
    assert_eq!(
        contact["consent"],
        json!({ "emailOptIn": false, "smsOptIn": true })
    );
    assert_eq!(contact["company"], "Difference Engines", "kept");

    // An import row (Mainbrainer upserts row by row).
    let data = app
        .data(
            "mutation($csv: String!) { importContacts(provider: MAINBRAINER, csv: $csv) {
                results { contact { id source } userErrors { message } } } }",
            json!({ "csv": "firstName,email,phone\nGrace,grace@cobol.example,+14155550192\n" }),
        )
        .await;
    let row = &data["importContacts"]["results"][0];
    assert_eq!(row["contact"]["source"], "GATEWAY_LEDGER", "{row}");
    let imported = row["contact"]["id"].as_str().unwrap().to_string();
    assert_eq!(read(&app, &imported).await["name"]["full"], "Grace");

    // A do-not-contact opt-out touches the contact holding that mobile and no email: a
    // phone-only contact. Its ledger copy shows it at once (ledger reads are never cached).
    let phone_only = create(
        &app,
        json!({ "input": { "provider": "MAINBRAINER", "firstName": "Phoebe",
            "phones": [{ "number": "+14155550193" }], "smsOptIn": true } }),
    )
    .await;
    assert_eq!(read(&app, &phone_only).await["consent"]["smsOptIn"], true);
    let data = app
        .data(
            "mutation { addToDoNotContact(input: { phone: \"+14155550193\", providers: [MAINBRAINER] }) {
                results { status } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data["addToDoNotContact"]["results"],
        json!([{ "status": "APPLIED" }])
    );
    let contact = read(&app, &phone_only).await;
    assert_eq!(contact["consent"]["smsOptIn"], false, "{contact}");

    // Every one, in the order first written.
    let listed = app.data(LIST, json!({ "p": ["MAINBRAINER"] })).await;
    assert_eq!(
        ids(&listed["contacts"]["nodes"]),
        [id.as_str(), imported.as_str(), phone_only.as_str()]
    );
}

#[tokio::test]
async fn a_mainbrainer_id_the_gateway_never_wrote_is_unsupported_by_provider() {
    let app = spawn_app().await;
    let control = app.sandbox.control(ProviderId::Mainbrainer);
    control.reset_requests();
    // Seeded at Mainbrainer, never written through the gateway.
    for native in ["1329301", "999999"] {
        let body = app
            .graphql(
                "query($id: ID!) { contact(id: $id) { id } }",
                json!({ "id": format!("mainbrainer:{native}") }),
            )
            .await;
        assert_eq!(error_codes(&body), ["UNSUPPORTED_BY_PROVIDER"], "{body}");
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains("did not write"), "{message}");
    }
    assert_eq!(control.request_count(), 0);
    // Not a Mainbrainer id at all: the caller's mistake, as before.
    let body = app
        .graphql("{ contact(id: \"mainbrainer:abc\") { id } }", json!({}))
        .await;
    assert_eq!(error_codes(&body), ["BAD_USER_INPUT"]);
}

/// The ledger is durable: a restarted gateway (the real binary, on the same store) serves
/// what an earlier process wrote, and goes on recording.
#[tokio::test]
async fn the_ledger_survives_a_gateway_restart() {
    for (backend, store, _keep) in store_urls().await {
        let sandbox = Sandbox::start().await.unwrap();
        let config = sandbox_config(&sandbox);
        let first = GatewayProcess::start(&config, &store);
        let data = first
            .data(CREATE, ada("ada@restart.example", "+14155550195"))
            .await;
        let id = data["createContact"]["contact"]["id"]
            .as_str()
            .unwrap()
            .to_string();
        let before = first.data(READ, json!({ "id": id })).await["contact"].clone();
        assert_eq!(before["source"], "GATEWAY_LEDGER", "{backend}");
        drop(first);

        let second = GatewayProcess::start(&config, &store);
        let after = second.data(READ, json!({ "id": id })).await["contact"].clone();
        assert_eq!(after, before, "{backend}: the same copy after a restart");
        let listed = second.data(LIST, json!({ "p": ["MAINBRAINER"] })).await;
        assert_eq!(
            ids(&listed["contacts"]["nodes"]),
            [id.as_str()],
            "{backend}"
        );

        let data = second
            .data(
                UPDATE,
                json!({ "id": id, "input": { "company": "After Restart" } }),
            )
            .await;
        assert_eq!(data["updateContact"]["userErrors"], json!([]), "{backend}");
        drop(second);
        let third = GatewayProcess::start(&config, &store);
        let last = third.data(READ, json!({ "id": id })).await["contact"].clone();
        assert_eq!(last["company"], "After Restart", "{backend}");
        assert_eq!(last["name"], before["name"], "{backend}");
    }
}

/// Updates of one contact through two gateway processes at once: each lands in the shared
/// ledger (writes to one record take turns in the store), none overwrites another's merge.
#[tokio::test]
async fn concurrent_updates_through_two_gateways_all_land_in_the_ledger() {
    for (backend, store, _keep) in store_urls().await {
        let sandbox = Sandbox::start().await.unwrap();
        let config = sandbox_config(&sandbox);
        let a = GatewayProcess::start(&config, &store);
        let b = GatewayProcess::start(&config, &store);
        let data = a
            .data(CREATE, ada("ada@twice.example", "+14155550196"))
            .await;
        let id = data["createContact"]["contact"]["id"].clone();
        let updates = (0..6).map(|n| {
            let gateway = if n % 2 == 0 { &a } else { &b };
            let input = json!({ "customFields": { format!("k{n}"): format!("v{n}") } });
            gateway.data(UPDATE, json!({ "id": id, "input": input }))
        });
        for data in futures::future::join_all(updates).await {
            assert_eq!(data["updateContact"]["userErrors"], json!([]), "{backend}");
        }
        let contact = b.data(READ, json!({ "id": id })).await["contact"].clone();
        let mut expected = json!({ "interest": "looms" });
        for n in 0..6 {
            expected[format!("k{n}")] = json!(format!("v{n}"));
        }
        assert_eq!(contact["customFields"], expected, "{backend}");
    }
}

/// Opting a contact in checks its phones and emails against the do-not-contact registry. For
/// a Mainbrainer contact the gateway wrote, the ledger's copy gives them; a list the gateway
/// never wrote may still be held by Mainbrainer, so the caller is asked for it.
#[tokio::test]
async fn opting_a_ledger_contact_in_checks_what_the_ledger_holds() {
    let app = spawn_app().await;
    let registered = "+14155550197";
    let with_phone = create(
        &app,
        json!({ "input": { "provider": "MAINBRAINER", "firstName": "Reg",
            "phones": [{ "number": registered }], "smsOptIn": false } }),
    )
    .await;
    let email_only = create(
        &app,
        json!({ "input": { "provider": "MAINBRAINER", "firstName": "Eve",
            "emails": [{ "address": "eve@ledger.example" }] } }),
    )
    .await;
    app.data(
        "mutation($p: String!) { addToDoNotContact(input: { phone: $p, providers: [] }) { entry { phone } } }",
        json!({ "p": registered }),
    )
    .await;
    let control = app.sandbox.control(ProviderId::Mainbrainer);
    control.reset_requests();
    let opt_in = json!({ "smsOptIn": true });
    let code = |data: &Value| {
        let errors = &data["updateContact"]["userErrors"];
        (errors[0]["field"].clone(), errors[0]["code"].clone())
    };
    let data = app
        .data(UPDATE, json!({ "id": with_phone, "input": opt_in }))
        .await;
    assert_eq!(
        code(&data),
        (json!(["input", "smsOptIn"]), json!("DO_NOT_CONTACT")),
        "the ledger's phone is checked: {data}"
    );
    let data = app
        .data(UPDATE, json!({ "id": email_only, "input": opt_in }))
        .await;
    assert_eq!(
        code(&data),
        (json!(["input", "phones"]), json!("REQUIRED")),
        "{data}"
    );
    assert_eq!(control.request_count(), 0, "nothing was sent");
    // Given the phones, the opt-in goes through.
    let data = app
        .data(
            UPDATE,
            json!({ "id": email_only, "input": { "smsOptIn": true, "phones": [{ "number": "+14155550198" }] } }),
        )
        .await;
    assert_eq!(data["updateContact"]["userErrors"], json!([]), "{data}");
}
