//! Each adapter's mapping, read through the gateway from its simulator: the unified contact
//! of a record per provider (quirks included) is snapshot-tested, and the quirks asserted.

use crate::helpers::spawn_app;
use serde_json::{json, Value};

const FIELDS: &str = "id provider nativeId displayName name { first middle last full }
    emails { address type primary } phones { number e164 type primary } primaryEmail primaryPhone
    company notes tags stage groups { id name kind } customFields
    consent { emailOptIn smsOptIn doNotContact } isTest createdAt updatedAt";

async fn contact(app: &crate::helpers::TestApp, id: &str) -> Value {
    let data = app
        .data(
            &format!("query($id: ID!) {{ contact(id: $id) {{ {FIELDS} }} }}"),
            json!({ "id": id }),
        )
        .await;
    data["contact"].clone()
}

#[tokio::test]
async fn each_provider_record_maps_to_the_unified_contact() {
    let app = spawn_app().await;
    for (name, id) in [
        (
            "magicblocks_nested_record",
            "magicblocks:con_01HSBX7K2M0000001",
        ),
        ("consuelo_flat_record", "consuelo:contact_1001"),
        (
            "whautomate_encoded_tags",
            "whautomate:64f1a2b3c4d5e6f7a8b9c004",
        ),
        (
            "maiagent_integer_phone",
            "maiagent:3b1f8e2a-6c4d-4e7a-9f10-000000000001",
        ),
    ] {
        let mapped = contact(&app, id).await;
        insta::with_settings!({ sort_maps => true, snapshot_suffix => name }, {
            insta::assert_json_snapshot!(mapped);
        });
    }
}

#[tokio::test]
async fn documented_quirks_are_read_right() {
    let app = spawn_app().await;

    // maiagent.txt: phoneNumber is an integer without country code; epoch-ms string times.
    let c = contact(&app, "maiagent:3b1f8e2a-6c4d-4e7a-9f10-000000000001").await;
    assert_eq!(c["primaryPhone"], "+886912345678");
    assert_eq!(c["phones"][0]["number"], "912345678");
    assert!(c["createdAt"].as_str().unwrap().starts_with("20"), "{c}");
    assert_eq!(c["groups"][0]["kind"], "INBOX");

    // whautomate: tags and customFields as JSON-encoded strings; no email field.
    let c = contact(&app, "whautomate:64f1a2b3c4d5e6f7a8b9c004").await;
    assert_eq!(c["tags"], json!(["trial", "newsletter"]));
    assert_eq!(c["customFields"]["referral"], "friend");
    assert_eq!(c["emails"], json!([]));
    assert_eq!(c["stage"], "Follow-up Required");
    assert_eq!(c["groups"][0]["kind"], "LOCATION");

    // magicblocks: `name` empty, so `generatedName` names the contact; epoch-second times.
    let listed = app
        .sandbox
        .control(contact_gateway::contact::ProviderId::Magicblocks)
        .records();
    let visitor = listed
        .iter()
        .find(|r| r["name"]["first"] == "" && r["name"]["last"] == "")
        .expect("the seed has an anonymous visitor");
    let c = contact(
        &app,
        &format!("magicblocks:{}", visitor["id"].as_str().unwrap()),
    )
    .await;
    let generated = format!(
        "{} {}",
        visitor["generatedName"]["first"].as_str().unwrap(),
        visitor["generatedName"]["last"].as_str().unwrap()
    );
    assert_eq!(c["displayName"].as_str().unwrap(), generated.trim());
    let seconds = visitor["firstSeen"].as_i64().unwrap();
    let expected = chrono::DateTime::from_timestamp(seconds, 0).unwrap();
    let got = chrono::DateTime::parse_from_rfc3339(c["createdAt"].as_str().unwrap()).unwrap();
    assert_eq!(got, expected);

    // consuelo: the workspace is the contact's group.
    let c = contact(&app, "consuelo:contact_1001").await;
    assert_eq!(c["groups"][0]["kind"], "WORKSPACE");
    assert_eq!(c["company"], "Northwind Traders");
}

/// The same person in two providers is found in both by one email or one phone, whatever
/// format each provider stores the number in.
#[tokio::test]
async fn one_person_in_several_providers_is_found_in_each() {
    let app = spawn_app().await;
    let ids = |nodes: Vec<Value>| -> Vec<String> {
        nodes
            .iter()
            .map(|n| n["id"].as_str().unwrap().to_string())
            .collect()
    };
    let by_email = app
        .all_contacts(
            &[],
            json!({ "email": "OLIVIA.BENNETT@northwindtraders.com" }),
            10,
        )
        .await;
    assert_eq!(
        ids(by_email),
        ["magicblocks:con_01HSBX7K2M0000001", "consuelo:contact_1001"]
    );
    let by_phone = app
        .all_contacts(&[], json!({ "phone": "+886 912 345 678" }), 10)
        .await;
    assert_eq!(
        ids(by_phone),
        [
            "consuelo:contact_1013",
            "whautomate:64f1a2b3c4d5e6f7a8b9c001",
            "maiagent:3b1f8e2a-6c4d-4e7a-9f10-000000000001"
        ]
    );
}
