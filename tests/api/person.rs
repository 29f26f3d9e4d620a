//! One person across providers: `Contact.duplicatesOf` and `Query.person` find a seeded
//! person's records in the other providers through the providers' own searches, with the
//! reasons and each field's provenance; a provider that cannot search contributes none; the
//! searches spend the request's upstream budget, are shared within a request, cached across
//! requests and retired by writes; a failing provider loses only its own part.

use crate::helpers::{error_codes, spawn_app, spawn_app_with, TestApp};
use contact_gateway::contact::ProviderId;
use contact_gateway::sandbox::{Fault, RecordedRequest};
use serde_json::{json, Value};
use std::collections::HashMap;

const OLIVIA_MB: &str = "magicblocks:con_01HSBX7K2M0000001";
const OLIVIA_CO: &str = "consuelo:contact_1001";
const OLIVIA_WA: &str = "whautomate:64f1a2b3c4d5e6f7a8b9c00c";
const OLIVIA_EMAIL: &str = "olivia.bennett@northwindtraders.com";
const OLIVIA_PHONE: &str = "+14155550142";
const CHEN_WA: &str = "whautomate:64f1a2b3c4d5e6f7a8b9c001";
const CHEN_MA: &str = "maiagent:3b1f8e2a-6c4d-4e7a-9f10-000000000001";
const CHEN_CO: &str = "consuelo:contact_1013";
const CHEN_EMAIL: &str = "meiling.chen@formosatech.com.tw";
const CHEN_PHONE: &str = "+886912345678";

const DUPLICATES: &str = "query($id: ID!) { contact(id: $id) {
    id duplicatesOf { contact { id provider } reasons { field value } } } }";

const PERSON: &str =
    "query($email: String, $phone: String) { person(email: $email, phone: $phone) {
    contacts { id provider updatedAt }
    fields { name value provider updatedAt contactId } } }";

fn email(value: &str) -> Value {
    json!({ "field": "EMAIL", "value": value })
}

fn phone(value: &str) -> Value {
    json!({ "field": "PHONE", "value": value })
}

/// `duplicatesOf` of `id` as (contact id, reasons).
async fn duplicates(app: &TestApp, id: &str) -> Vec<(String, Value)> {
    let data = app.data(DUPLICATES, json!({ "id": id })).await;
    data["contact"]["duplicatesOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["contact"]["id"].as_str().unwrap().to_string(),
                m["reasons"].clone(),
            )
        })
        .collect()
}

fn ids(contacts: &Value) -> Vec<&str> {
    contacts
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect()
}

fn reset(app: &TestApp) {
    for id in ProviderId::ALL {
        app.sandbox.control(id).reset_requests();
    }
}

fn calls(app: &TestApp) -> HashMap<ProviderId, u64> {
    ProviderId::ALL
        .into_iter()
        .map(|id| (id, app.sandbox.control(id).request_count()))
        .filter(|(_, n)| *n > 0)
        .collect()
}

#[tokio::test]
async fn a_seeded_person_is_found_in_the_other_providers_from_each_side_with_the_reasons() {
    let app = spawn_app().await;
    let both = json!([email(OLIVIA_EMAIL), phone(OLIVIA_PHONE)]);
    // Olivia: email and phone in MagicBlocks and Consuelo; the phone alone in Whautomate,
    // which holds no email. Each side finds the other two, in ProviderId order.
    let expected = [
        (
            OLIVIA_MB,
            vec![
                (OLIVIA_CO, both.clone()),
                (OLIVIA_WA, json!([phone(OLIVIA_PHONE)])),
            ],
        ),
        (
            OLIVIA_CO,
            vec![
                (OLIVIA_MB, both.clone()),
                (OLIVIA_WA, json!([phone(OLIVIA_PHONE)])),
            ],
        ),
        (
            OLIVIA_WA,
            vec![
                (OLIVIA_MB, json!([phone(OLIVIA_PHONE)])),
                (OLIVIA_CO, json!([phone(OLIVIA_PHONE)])),
            ],
        ),
        // Chen Mei-Ling: MaiAgent holds her phone as Taiwanese national digits (912345678).
        (
            CHEN_WA,
            vec![
                (CHEN_CO, json!([phone(CHEN_PHONE)])),
                (CHEN_MA, json!([phone(CHEN_PHONE)])),
            ],
        ),
        (
            CHEN_CO,
            vec![
                (CHEN_WA, json!([phone(CHEN_PHONE)])),
                (CHEN_MA, json!([email(CHEN_EMAIL), phone(CHEN_PHONE)])),
            ],
        ),
        (
            CHEN_MA,
            vec![
                (CHEN_CO, json!([email(CHEN_EMAIL), phone(CHEN_PHONE)])),
                (CHEN_WA, json!([phone(CHEN_PHONE)])),
            ],
        ),
        // Sophie Tran, in two providers by phone.
        (
            "magicblocks:con_01HSBX7K2M0000002",
            vec![(
                "whautomate:64f1a2b3c4d5e6f7a8b9c002",
                json!([phone("+61491570156")]),
            )],
        ),
        (
            "whautomate:64f1a2b3c4d5e6f7a8b9c002",
            vec![(
                "magicblocks:con_01HSBX7K2M0000002",
                json!([phone("+61491570156")]),
            )],
        ),
        // Someone in one provider only.
        ("consuelo:contact_1004", vec![]),
    ];
    for (id, matches) in expected {
        let expected: Vec<(String, Value)> = matches
            .into_iter()
            .map(|(other, reasons)| (other.to_string(), reasons))
            .collect();
        assert_eq!(duplicates(&app, id).await, expected, "duplicatesOf {id}");
    }
}

#[tokio::test]
async fn person_returns_every_contact_holding_the_email_or_phone_with_each_fields_provenance() {
    let app = spawn_app().await;
    // By email (any case): Whautomate holds no email, so it is not among them.
    let data = app
        .data(
            PERSON,
            json!({ "email": "Olivia.Bennett@NorthwindTraders.COM" }),
        )
        .await;
    assert_eq!(ids(&data["person"]["contacts"]), [OLIVIA_MB, OLIVIA_CO]);

    // By email and phone (any format): all three.
    let data = app
        .data(
            PERSON,
            json!({ "email": OLIVIA_EMAIL, "phone": "(415) 555-0142" }),
        )
        .await;
    let person = &data["person"];
    assert_eq!(ids(&person["contacts"]), [OLIVIA_MB, OLIVIA_CO, OLIVIA_WA]);
    let updated: HashMap<&str, &Value> = person["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].as_str().unwrap(), &c["updatedAt"]))
        .collect();
    let fields = person["fields"].as_array().unwrap();
    // Every value names its provider, its contact and that contact's updatedAt.
    for field in fields {
        let contact = field["contactId"].as_str().unwrap();
        assert!(
            contact.starts_with(&field["provider"].as_str().unwrap().to_lowercase()),
            "{field}"
        );
        assert_eq!(&field["updatedAt"], updated[contact], "{field}");
    }
    let values = |name: &str| -> Vec<(Value, String)> {
        fields
            .iter()
            .filter(|f| f["name"] == name)
            .map(|f| (f["value"].clone(), f["contactId"].as_str().unwrap().into()))
            .collect()
    };
    // Most recently updated first: Whautomate (2025-01-28), Consuelo (2024-11-04),
    // MagicBlocks (2024-10-29).
    assert_eq!(
        values("firstName"),
        [
            (json!("Olivia"), OLIVIA_WA.into()),
            (json!("Olivia"), OLIVIA_CO.into()),
            (json!("Olivia"), OLIVIA_MB.into()),
        ]
    );
    assert_eq!(
        values("notes"),
        [
            (
                json!("Booked a team offsite class for March"),
                OLIVIA_WA.into()
            ),
            (json!("Prefers calls after 2pm PT"), OLIVIA_CO.into()),
        ]
    );
    assert_eq!(
        values("company"),
        [
            (json!("Northwind Traders"), OLIVIA_CO.into()),
            (json!("Northwind Traders"), OLIVIA_MB.into()),
        ]
    );
    // In the shape the write inputs take (E.164 phones), so it can be written elsewhere.
    assert_eq!(
        values("phones")[0],
        (
            json!([{ "number": OLIVIA_PHONE, "type": null, "primary": true }]),
            OLIVIA_WA.to_string()
        )
    );
    assert_eq!(
        values("emails").last().unwrap().0,
        json!([{ "address": OLIVIA_EMAIL, "type": "work", "primary": true }])
    );
    let names: Vec<&str> = fields.iter().map(|f| f["name"].as_str().unwrap()).collect();
    let mut grouped = names.clone();
    grouped.dedup();
    assert_eq!(
        grouped,
        [
            "firstName",
            "lastName",
            "emails",
            "phones",
            "company",
            "notes",
            "tags",
            "stage",
            "groupIds",
            "customFields",
            "isTest"
        ],
        "field by field, in the write inputs' order"
    );

    // By a phone only: Chen Mei-Ling in Consuelo, Whautomate and MaiAgent (national digits).
    let data = app
        .data(PERSON, json!({ "phone": "+886 912 345 678" }))
        .await;
    assert_eq!(
        ids(&data["person"]["contacts"]),
        [CHEN_CO, CHEN_WA, CHEN_MA]
    );
}

#[tokio::test]
async fn person_needs_a_well_formed_email_or_phone_and_is_null_when_nobody_matches() {
    let app = spawn_app().await;
    reset(&app);
    for (variables, says) in [
        (json!({}), "an email or a phone"),
        (json!({ "email": "  ", "phone": "" }), "an email or a phone"),
        (json!({ "phone": "call me" }), "not a phone number"),
        (json!({ "email": "not-an-email" }), "not an email address"),
    ] {
        let body = app.graphql(PERSON, variables.clone()).await;
        assert_eq!(
            error_codes(&body),
            ["BAD_USER_INPUT"],
            "{variables}: {body}"
        );
        assert_eq!(body["data"]["person"], Value::Null);
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(says), "{message}");
        assert_eq!(body["errors"][0]["path"], json!(["person"]));
    }
    assert!(calls(&app).is_empty(), "nothing was asked upstream");

    let body = app
        .graphql(
            PERSON,
            json!({ "email": "nobody@example.com", "phone": "+14155550100" }),
        )
        .await;
    assert_eq!(body, json!({ "data": { "person": null } }));
}

#[tokio::test]
async fn a_provider_that_cannot_search_a_field_contributes_none_and_is_not_asked() {
    let app = spawn_app().await;
    reset(&app);
    // James Whitfield is in Consuelo and Mainbrainer with the same email and phone, but
    // Mainbrainer reads nothing: from Consuelo he has no other record.
    assert_eq!(duplicates(&app, "consuelo:contact_1002").await, []);
    assert_eq!(
        app.sandbox.control(ProviderId::Mainbrainer).request_count(),
        0
    );
    // Whautomate holds no email: it was asked for the phone only.
    let whautomate: Vec<RecordedRequest> = app.sandbox.control(ProviderId::Whautomate).requests();
    let searched: Vec<&str> = whautomate
        .iter()
        .flat_map(|r| &r.query)
        .filter(|(name, _)| name == "searchText")
        .map(|(_, value)| value.as_str())
        .collect();
    assert_eq!(searched, ["447700900123"], "{whautomate:?}");

    // By email only, no provider without email search is asked at all (a fresh gateway:
    // nothing cached from the searches above).
    let app = spawn_app().await;
    reset(&app);
    let data = app
        .data(
            PERSON,
            json!({ "email": "james.whitfield@harbourline.co.uk" }),
        )
        .await;
    assert_eq!(ids(&data["person"]["contacts"]), ["consuelo:contact_1002"]);
    let asked = calls(&app);
    assert_eq!(
        asked,
        HashMap::from([
            (ProviderId::Magicblocks, 1),
            (ProviderId::Consuelo, 1),
            (ProviderId::Maiagent, 1)
        ])
    );
}

#[tokio::test]
async fn the_searches_count_against_max_upstream_calls_and_a_tight_budget_is_an_error() {
    // Olivia in MagicBlocks: a lookup, then her email and phone in Consuelo and MaiAgent and
    // her phone in Whautomate: 6 calls.
    let app = spawn_app_with(|c| c.limits.max_upstream_calls = 6).await;
    reset(&app);
    let body = app.graphql(DUPLICATES, json!({ "id": OLIVIA_MB })).await;
    assert!(body.get("errors").is_none(), "{body}");
    assert_eq!(
        calls(&app),
        HashMap::from([
            (ProviderId::Magicblocks, 1),
            (ProviderId::Consuelo, 2),
            (ProviderId::Whautomate, 1),
            (ProviderId::Maiagent, 2)
        ])
    );

    // One call fewer: a search is not sent, and the field says so rather than miss silently.
    let app = spawn_app_with(|c| c.limits.max_upstream_calls = 5).await;
    reset(&app);
    let body = app.graphql(DUPLICATES, json!({ "id": OLIVIA_MB })).await;
    assert_eq!(error_codes(&body), ["REQUEST_BUDGET_EXCEEDED"], "{body}");
    let error = &body["errors"][0];
    assert_eq!(error["path"], json!(["contact", "duplicatesOf"]));
    assert!(error["extensions"]["provider"].is_string(), "{error}");
    assert_eq!(calls(&app).values().sum::<u64>(), 5);
    // What the budget allowed is still there.
    assert_eq!(body["data"]["contact"]["id"], OLIVIA_MB);
    assert!(body["data"]["contact"]["duplicatesOf"].is_array(), "{body}");

    // `person` likewise: three providers search emails, a budget of one leaves two errors.
    let app = spawn_app_with(|c| c.limits.max_upstream_calls = 1).await;
    let body = app.graphql(PERSON, json!({ "email": OLIVIA_EMAIL })).await;
    assert_eq!(
        error_codes(&body),
        ["REQUEST_BUDGET_EXCEEDED", "REQUEST_BUDGET_EXCEEDED"],
        "{body}"
    );
}

/// Every listing or search request a provider received, as text: none may repeat.
fn searches(app: &TestApp, provider: ProviderId) -> Vec<String> {
    app.sandbox
        .control(provider)
        .requests()
        .into_iter()
        .filter(|r| r.query.iter().any(|(k, _)| k != "workspaceId") || r.method == "POST")
        .map(|r| format!("{} {} {:?} {}", r.method, r.path, r.query, r.body))
        .collect()
}

#[tokio::test]
async fn contacts_of_a_request_asking_for_the_same_email_or_phone_share_one_search() {
    // No read cache: only the request's loader can share a search.
    let app = spawn_app_with(|c| {
        c.cache.ttl_secs = 0;
        c.limits.max_upstream_calls = 1_000;
    })
    .await;
    reset(&app);
    let query = "{
        a: contact(id: \"magicblocks:con_01HSBX7K2M0000001\") { duplicatesOf { contact { id } } }
        b: contact(id: \"consuelo:contact_1001\") { duplicatesOf { contact { id } } }
        c: person(email: \"olivia.bennett@northwindtraders.com\", phone: \"+14155550142\") { contacts { id } }
        page: contacts(providers: [MAGICBLOCKS, CONSUELO, WHAUTOMATE], first: 40) {
            nodes { id duplicatesOf { contact { id } reasons { field value } } } }
    }";
    let data = app.data(query, json!({})).await;
    assert_eq!(data["a"]["duplicatesOf"].as_array().unwrap().len(), 2);
    assert_eq!(data["b"]["duplicatesOf"].as_array().unwrap().len(), 2);
    assert_eq!(data["c"]["contacts"].as_array().unwrap().len(), 3);
    let nodes = data["page"]["nodes"].as_array().unwrap();
    assert!(nodes.len() > 30, "{}", nodes.len());
    for provider in [
        ProviderId::Magicblocks,
        ProviderId::Consuelo,
        ProviderId::Whautomate,
        ProviderId::Maiagent,
    ] {
        let sent = searches(&app, provider);
        assert!(!sent.is_empty(), "{provider} was searched");
        let mut once = sent.clone();
        once.sort();
        once.dedup();
        assert_eq!(
            once.len(),
            sent.len(),
            "{provider} searched twice: {sent:#?}"
        );
    }
}

#[tokio::test]
async fn searches_are_cached_like_other_reads_and_a_write_retires_them() {
    let app = spawn_app().await;
    assert_eq!(
        duplicates(&app, OLIVIA_MB).await[0],
        (
            OLIVIA_CO.to_string(),
            json!([email(OLIVIA_EMAIL), phone(OLIVIA_PHONE)])
        )
    );
    reset(&app);
    duplicates(&app, OLIVIA_MB).await;
    assert!(
        calls(&app).is_empty(),
        "served from the cache: {:?}",
        calls(&app)
    );

    // Consuelo's Olivia changes her email: the next read shows it, the cached search is gone.
    let update = "mutation($id: ID!, $input: UpdateContactInput!) {
        updateContact(id: $id, input: $input) { userErrors { message } } }";
    let data = app
        .data(
            update,
            json!({ "id": OLIVIA_CO, "input": { "emails": [{ "address": "olivia@bennett.example" }] } }),
        )
        .await;
    assert_eq!(data["updateContact"]["userErrors"], json!([]));
    assert_eq!(
        duplicates(&app, OLIVIA_MB).await[0],
        (OLIVIA_CO.to_string(), json!([phone(OLIVIA_PHONE)]))
    );
}

#[tokio::test]
async fn a_failing_provider_loses_only_its_own_part_with_an_error() {
    let app = spawn_app_with(|c| {
        for p in c.providers.values_mut() {
            p.budget.retries = 0;
        }
    })
    .await;
    app.sandbox
        .control(ProviderId::Maiagent)
        .set_fault(Some(Fault::Status(500)));

    let body = app
        .graphql(PERSON, json!({ "email": CHEN_EMAIL, "phone": CHEN_PHONE }))
        .await;
    assert_eq!(error_codes(&body), ["PROVIDER_UNAVAILABLE"], "{body}");
    let error = &body["errors"][0];
    assert_eq!(error["path"], json!(["person"]));
    assert_eq!(error["extensions"]["provider"], "MAIAGENT");
    assert_eq!(ids(&body["data"]["person"]["contacts"]), [CHEN_CO, CHEN_WA]);

    let body = app.graphql(DUPLICATES, json!({ "id": CHEN_WA })).await;
    assert_eq!(error_codes(&body), ["PROVIDER_UNAVAILABLE"], "{body}");
    assert_eq!(
        body["errors"][0]["path"],
        json!(["contact", "duplicatesOf"])
    );
    assert_eq!(
        body["data"]["contact"]["duplicatesOf"],
        json!([{ "contact": { "id": CHEN_CO, "provider": "CONSUELO" }, "reasons": [phone(CHEN_PHONE)] }])
    );

    // Only the failing provider holds this one: nobody found, and the error says why.
    let body = app
        .graphql(PERSON, json!({ "email": "yijun.lin@gmail.com" }))
        .await;
    assert_eq!(error_codes(&body), ["PROVIDER_UNAVAILABLE"], "{body}");
    assert_eq!(body["data"]["person"], Value::Null);
}
