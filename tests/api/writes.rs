//! Every mutation on every provider, through the real router against the simulators: the
//! exact upstream request, the unified result, and that what a patch leaves out survives it
//! (read back from the simulator's store, not from the gateway's cache).

use crate::helpers::{error_codes, spawn_app, spawn_app_with, TestApp};
use contact_gateway::contact::ProviderId;
use contact_gateway::sandbox::{Fault, RecordedRequest, WHAUTOMATE_LOCATION_REQUIRED};
use serde_json::{json, Map, Value};

const PAYLOAD: &str = "contact { id provider nativeId displayName name { first middle last } emails { address } phones { e164 }
    primaryEmail primaryPhone company notes tags stage groups { id kind } customFields consent { emailOptIn smsOptIn } isTest }
    userErrors { field message code } warnings { field message code }";

fn create_mutation() -> String {
    format!(
        "mutation($input: CreateContactInput!) {{ createContact(input: $input) {{ {PAYLOAD} }} }}"
    )
}

fn update_mutation() -> String {
    format!("mutation($id: ID!, $input: UpdateContactInput!) {{ updateContact(id: $id, input: $input) {{ {PAYLOAD} }} }}")
}

fn upsert_mutation() -> String {
    format!("mutation($input: UpsertContactInput!) {{ upsertContact(input: $input) {{ created {PAYLOAD} }} }}")
}

/// The simulator's stored record with this id.
fn stored(app: &TestApp, provider: ProviderId, native: &str) -> Option<Value> {
    let key = if provider == ProviderId::Mainbrainer {
        "contactId"
    } else {
        "id"
    };
    app.sandbox
        .control(provider)
        .records()
        .into_iter()
        .find(|r| {
            r[key]
                .as_str()
                .map(str::to_string)
                .or(r[key].as_i64().map(|n| n.to_string()))
                .as_deref()
                == Some(native)
        })
}

/// The record without the keys a write is expected to change.
fn without(record: &Value, keys: &[&str]) -> Map<String, Value> {
    let mut map = record.as_object().unwrap().clone();
    for key in keys {
        map.remove(*key);
    }
    map
}

/// The API requests (not control calls) the gateway sent since the last reset.
fn sent(app: &TestApp, provider: ProviderId) -> Vec<RecordedRequest> {
    app.sandbox.control(provider).requests()
}

fn reset_all(app: &TestApp) {
    for id in ProviderId::ALL {
        app.sandbox.control(id).reset_requests();
    }
}

fn total_requests(app: &TestApp) -> u64 {
    ProviderId::ALL
        .iter()
        .map(|id| app.sandbox.control(*id).request_count())
        .sum()
}

fn no_user_errors(payload: &Value) {
    assert_eq!(payload["userErrors"], json!([]), "{payload:#}");
    assert_eq!(
        payload["warnings"],
        json!([]),
        "everything was stored as given: {payload:#}"
    );
}

#[tokio::test]
async fn create_sends_each_providers_documented_body() {
    let app = spawn_app().await;
    let cases = [
        (
            ProviderId::Magicblocks,
            json!({ "provider": "MAGICBLOCKS", "firstName": "Nora", "lastName": "Quinn",
                    "emails": [{ "address": "nora@quinn.example.com", "type": "work" }],
                    "phones": [{ "number": "+61 491 570 110", "type": "mobile" }],
                    "company": "Quinn & Co", "customFields": { "plan": "pro" }, "isTest": true }),
        ),
        (
            ProviderId::Consuelo,
            json!({ "provider": "CONSUELO", "firstName": "Nora", "lastName": "Quinn",
                    "emails": [{ "address": "nora@quinn.example.com" }], "phones": [{ "number": "(415) 555-0110" }],
                    "company": "Quinn & Co" }),
        ),
        (
            ProviderId::Whautomate,
            json!({ "provider": "WHAUTOMATE", "firstName": "Nora", "lastName": "Quinn",
                    "phones": [{ "number": "+44 7911 123456" }], "tags": ["trial"], "stage": "Lead",
                    "notes": "met at the fair", "customFields": { "source": "fair" } }),
        ),
        (
            ProviderId::Maiagent,
            json!({ "provider": "MAIAGENT", "firstName": "Nora", "lastName": "Quinn",
                    "emails": [{ "address": "nora@quinn.example.com" }], "phones": [{ "number": "0912 000 110" }] }),
        ),
        (
            ProviderId::Mainbrainer,
            json!({ "provider": "MAINBRAINER", "firstName": "Nora", "lastName": "Quinn",
                    "emails": [{ "address": "nora.mb@quinn.example.com" }], "phones": [{ "number": "+47 908 12 599" }],
                    "company": "Quinn & Co" }),
        ),
    ];
    for (provider, input) in cases {
        reset_all(&app);
        let data = app
            .data(&create_mutation(), json!({ "input": input }))
            .await;
        let payload = &data["createContact"];
        no_user_errors(payload);
        let contact = &payload["contact"];
        assert_eq!(
            contact["provider"],
            json!(provider.as_str().to_uppercase()),
            "{provider}"
        );
        assert_eq!(
            contact["displayName"], "Nora Quinn",
            "{provider}: {contact}"
        );
        let requests = sent(&app, provider);
        assert_eq!(
            requests.len(),
            1,
            "{provider}: one create, nothing else: {requests:?}"
        );
        let request = &requests[0];
        let body = &request.body;
        match provider {
            ProviderId::Magicblocks => {
                assert_eq!(
                    (request.method.as_str(), request.path.as_str()),
                    ("POST", "/v1/contacts")
                );
                assert_eq!(body["name"]["first"], "Nora");
                assert_eq!(body["emails"][0]["address"], "nora@quinn.example.com");
                assert_eq!(body["phones"][0]["number"], "+61491570110");
                assert_eq!(body["custom"]["plan"], "pro");
                assert_eq!(body["custom"]["company"], "Quinn & Co");
                assert_eq!(body["isTest"], true);
                assert!(
                    body.get("sendMessageEvents").is_none(),
                    "no side-effect flags"
                );
                assert_eq!(contact["company"], "Quinn & Co");
            }
            ProviderId::Consuelo => {
                assert_eq!(
                    (request.method.as_str(), request.path.as_str()),
                    ("POST", "/v1/contacts")
                );
                assert_eq!(
                    without(body, &[]),
                    json!({ "workspaceId": "ws_sandbox", "firstName": "Nora", "lastName": "Quinn",
                            "phone": "+14155550110", "email": "nora@quinn.example.com", "company": "Quinn & Co" })
                        .as_object()
                        .unwrap()
                        .clone()
                );
            }
            ProviderId::Whautomate => {
                assert_eq!(
                    (request.method.as_str(), request.path.as_str()),
                    ("POST", "/v1/contacts")
                );
                assert_eq!(body["name"], "Nora Quinn");
                assert_eq!(body["phoneNumber"], "+447911123456");
                assert_eq!(body["tags"], json!(["trial"]));
                assert!(body.get("id").is_none(), "never send an id on create");
                assert_eq!(contact["tags"], json!(["trial"]));
                assert_eq!(contact["stage"], "Lead");
            }
            ProviderId::Maiagent => {
                assert_eq!(
                    (request.method.as_str(), request.path.as_str()),
                    ("POST", "/api/contacts/")
                );
                assert_eq!(body["name"], "Nora Quinn");
                // maiagent.txt: phoneNumber is sent as a string (NOTES Decision 4).
                assert!(body["phoneNumber"].is_string(), "{body}");
                assert_eq!(contact["primaryPhone"], "+886912000110");
            }
            ProviderId::Mainbrainer => {
                assert_eq!(
                    (request.method.as_str(), request.path.as_str()),
                    ("POST", "/contacts/insertupdate")
                );
                assert_eq!(body["mobileCountryCode"], 47);
                assert_eq!(body["mobileNumber"], 90812599);
                // Decision 5: both opt-ins explicit on create, false without consent.
                assert_eq!(
                    (body["mobileOptIn"].clone(), body["emailOptIn"].clone()),
                    (json!(false), json!(false))
                );
                assert_eq!(body["email"], "nora.mb@quinn.example.com");
                assert!(body.get("contactId").is_none() || body["contactId"].is_null());
                let properties = body["propertyFields"].as_array().unwrap();
                assert!(
                    properties
                        .contains(&json!({ "propertyName": "firstname", "propertyValue": "Nora" })),
                    "{body}"
                );
                assert_eq!(
                    contact["consent"],
                    json!({ "emailOptIn": false, "smsOptIn": false })
                );
            }
        }
        // The store holds it: the next read goes to the provider and finds it.
        let native = contact["nativeId"].as_str().unwrap();
        assert!(
            stored(&app, provider, native).is_some(),
            "{provider}: {native} is stored"
        );
    }
}

/// The key property of a patch: what it leaves out keeps its value, including fields the
/// unified model does not hold (read back from the simulator's store).
#[tokio::test]
async fn an_update_changes_only_what_the_patch_names() {
    let app = spawn_app().await;
    let cases = [
        (
            ProviderId::Magicblocks,
            "con_01HSBX7K2M0000001",
            json!({ "lastName": "Bennett-Hale" }),
            vec!["name", "generatedName", "modifiedAt", "lastSeen"],
        ),
        (
            ProviderId::Consuelo,
            "contact_1001",
            json!({ "notes": "Moved to the EMEA team" }),
            vec!["notes", "updatedAt"],
        ),
        (
            ProviderId::Whautomate,
            "64f1a2b3c4d5e6f7a8b9c004",
            json!({ "stage": "Customer" }),
            vec!["stage", "updatedAt", "tags", "customFields"],
        ),
        (
            ProviderId::Maiagent,
            "3b1f8e2a-6c4d-4e7a-9f10-000000000005",
            json!({ "emails": [{ "address": "new.address@example.com" }] }),
            vec!["email", "updatedAt"],
        ),
    ];
    for (provider, native, input, changed) in cases {
        let before = stored(&app, provider, native).unwrap();
        reset_all(&app);
        let data = app
            .data(
                &update_mutation(),
                json!({ "id": format!("{provider}:{native}"), "input": input }),
            )
            .await;
        no_user_errors(&data["updateContact"]);
        let after = stored(&app, provider, native).unwrap();
        assert_eq!(
            without(&after, &changed),
            without(&before, &changed),
            "{provider}: only the patched field changed"
        );
        let requests = sent(&app, provider);
        let writes: Vec<&RecordedRequest> = requests.iter().filter(|r| r.method != "GET").collect();
        assert_eq!(writes.len(), 1, "{provider}: {requests:?}");
        match provider {
            ProviderId::Magicblocks => {
                assert_eq!(after["name"]["last"], "Bennett-Hale");
                assert_eq!(after["name"]["first"], before["name"]["first"]);
                assert_eq!(writes[0].method, "PUT");
                // read-merge-write: the whole record, userKnowledge included
                assert_eq!(writes[0].body["userKnowledge"], before["userKnowledge"]);
            }
            ProviderId::Consuelo => {
                assert_eq!(
                    (writes[0].method.as_str(), writes[0].path.as_str()),
                    ("PATCH", "/v1/contacts/contact_1001")
                );
                assert_eq!(writes[0].body, json!({ "notes": "Moved to the EMEA team" }));
            }
            ProviderId::Whautomate => {
                assert_eq!(writes[0].method, "PUT");
                assert_eq!(after["stage"], "Customer");
                assert_eq!(after["location"], before["location"], "location survives");
                // The seed served tags/customFields JSON-encoded; the values survive.
                let tags = |v: &Value| {
                    if let Some(s) = v.as_str() {
                        serde_json::from_str::<Value>(s).unwrap()
                    } else {
                        v.clone()
                    }
                };
                assert_eq!(tags(&after["tags"]), tags(&before["tags"]));
                assert_eq!(tags(&after["customFields"]), tags(&before["customFields"]));
            }
            ProviderId::Maiagent => {
                assert_eq!(
                    (writes[0].method.as_str(), writes[0].path.as_str()),
                    ("PATCH", format!("/api/contacts/{native}/").as_str())
                );
                assert_eq!(after["email"], "new.address@example.com");
            }
            ProviderId::Mainbrainer => unreachable!(),
        }
    }
}

#[tokio::test]
async fn a_mainbrainer_update_goes_by_contact_id_with_only_the_changes() {
    let app = spawn_app().await;
    let record = app.sandbox.control(ProviderId::Mainbrainer).records()[0].clone();
    let native = record["contactId"]
        .to_string()
        .trim_matches('"')
        .to_string();
    reset_all(&app);
    let data = app
        .data(&update_mutation(), json!({ "id": format!("mainbrainer:{native}"), "input": { "company": "Harbourline Ltd" } }))
        .await;
    no_user_errors(&data["updateContact"]);
    let requests = sent(&app, ProviderId::Mainbrainer);
    assert_eq!(requests.len(), 1);
    let body = &requests[0].body;
    assert_eq!(body["contactId"].to_string().trim_matches('"'), native);
    // Decision 5: on update only the opt-ins the caller gave (none here).
    assert!(
        body.get("mobileOptIn").is_none() && body.get("emailOptIn").is_none(),
        "{body}"
    );
    let after = stored(&app, ProviderId::Mainbrainer, &native).unwrap();
    assert_eq!(
        without(&after, &["propertyFields"]),
        without(&record, &["propertyFields"]),
        "email, mobile and opt-ins survive"
    );
}

#[tokio::test]
async fn null_clears_and_absent_keeps() {
    let app = spawn_app().await;
    let id = "consuelo:contact_1001";
    let before = stored(&app, ProviderId::Consuelo, "contact_1001").unwrap();
    assert!(before["notes"].is_string());
    let data = app
        .data(
            &update_mutation(),
            json!({ "id": id, "input": { "notes": null } }),
        )
        .await;
    no_user_errors(&data["updateContact"]);
    let after = stored(&app, ProviderId::Consuelo, "contact_1001").unwrap();
    assert!(
        after["notes"].is_null() || after.get("notes").is_none(),
        "{after}"
    );
    assert_eq!(after["company"], before["company"]);
    assert_eq!(data["updateContact"]["contact"]["notes"], Value::Null);
}

#[tokio::test]
async fn a_write_invalidates_the_cached_read() {
    let app = spawn_app().await;
    let read = "query($id: ID!) { contact(id: $id) { company } }";
    let id = "consuelo:contact_1002";
    let before = app.data(read, json!({ "id": id })).await;
    let list = "{ contacts(providers: [CONSUELO], first: 50) { nodes { id company } } }";
    app.data(list, json!({})).await;
    app.data(
        &update_mutation(),
        json!({ "id": id, "input": { "company": "Renamed Ltd" } }),
    )
    .await;
    let after = app.data(read, json!({ "id": id })).await;
    assert_ne!(after, before);
    assert_eq!(after["contact"]["company"], "Renamed Ltd");
    let listed = app.data(list, json!({})).await;
    let node = listed["contacts"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == id)
        .unwrap()
        .clone();
    assert_eq!(
        node["company"], "Renamed Ltd",
        "the cached list page was dropped too"
    );

    let created = app
        .data(&create_mutation(), json!({ "input": { "provider": "CONSUELO", "firstName": "Fresh", "emails": [{ "address": "fresh@example.com" }] } }))
        .await;
    let new_id = created["createContact"]["contact"]["id"].clone();
    let listed = app.data(list, json!({})).await;
    assert!(
        listed["contacts"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["id"] == new_id),
        "a create shows in the next list"
    );
}

#[tokio::test]
async fn upsert_updates_a_match_or_creates() {
    let app = spawn_app().await;
    // Consuelo: emulated by the gateway (search, then PATCH or POST).
    let existing = json!({ "provider": "CONSUELO", "emails": [{ "address": "olivia.bennett@northwindtraders.com" }], "notes": "upserted" });
    reset_all(&app);
    let data = app
        .data(&upsert_mutation(), json!({ "input": existing }))
        .await;
    let payload = &data["upsertContact"];
    no_user_errors(payload);
    assert_eq!(payload["created"], false);
    assert_eq!(payload["contact"]["id"], "consuelo:contact_1001");
    assert_eq!(payload["contact"]["notes"], "upserted");
    let methods: Vec<String> = sent(&app, ProviderId::Consuelo)
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        methods,
        [
            "POST /v1/contacts/search",
            "PATCH /v1/contacts/contact_1001"
        ]
    );

    let fresh = json!({ "provider": "CONSUELO", "firstName": "Una", "emails": [{ "address": "una@example.com" }] });
    let data = app
        .data(&upsert_mutation(), json!({ "input": fresh }))
        .await;
    assert_eq!(data["upsertContact"]["created"], true);
    let again = app
        .data(&upsert_mutation(), json!({ "input": fresh }))
        .await;
    assert_eq!(
        again["upsertContact"]["created"], false,
        "the second upsert finds the first"
    );
    assert_eq!(
        again["upsertContact"]["contact"]["id"],
        data["upsertContact"]["contact"]["id"]
    );

    // Whautomate matches by phone (it has no email).
    let by_phone = json!({ "provider": "WHAUTOMATE", "firstName": "Emily", "lastName": "Clarke", "phones": [{ "number": "+447700900231" }], "stage": "Customer" });
    let data = app
        .data(&upsert_mutation(), json!({ "input": by_phone }))
        .await;
    assert_eq!(data["upsertContact"]["created"], false);
    assert_eq!(
        data["upsertContact"]["contact"]["id"],
        "whautomate:64f1a2b3c4d5e6f7a8b9c004"
    );

    // Mainbrainer: natively, by its documented matching rules (no contactId sent). It may
    // update a match, so consent must be stated, never defaulted.
    reset_all(&app);
    let unstated = json!({ "provider": "MAINBRAINER", "emails": [{ "address": "james.whitfield@harbourline.co.uk" }] });
    let data = app
        .data(&upsert_mutation(), json!({ "input": unstated }))
        .await;
    let fields: Vec<Value> = data["upsertContact"]["userErrors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].clone())
        .collect();
    assert_eq!(
        fields,
        [json!(["input", "emailOptIn"]), json!(["input", "smsOptIn"])]
    );
    assert_eq!(total_requests(&app), 0);
    let mb = json!({ "provider": "MAINBRAINER", "emails": [{ "address": "james.whitfield@harbourline.co.uk" }],
                     "phones": [{ "number": "+447700900123" }], "company": "Harbourline",
                     "emailOptIn": true, "smsOptIn": true });
    let data = app.data(&upsert_mutation(), json!({ "input": mb })).await;
    no_user_errors(&data["upsertContact"]);
    let requests = sent(&app, ProviderId::Mainbrainer);
    assert_eq!(requests.len(), 1);
    assert!(requests[0].body.get("contactId").is_none() || requests[0].body["contactId"].is_null());
    assert_eq!(
        data["upsertContact"]["contact"]["id"], "mainbrainer:1329301",
        "matched by email and mobile"
    );
}

#[tokio::test]
async fn delete_where_documented_and_a_refusal_is_a_user_error() {
    let app = spawn_app().await;
    let delete = "mutation($id: ID!) { deleteContact(id: $id) { deletedId userErrors { field message code } } }";
    for (provider, native, path) in [
        (
            ProviderId::Consuelo,
            "contact_1012",
            "/v1/contacts/contact_1012",
        ),
        (
            ProviderId::Whautomate,
            "64f1a2b3c4d5e6f7a8b9c00b",
            "/v1/contacts/64f1a2b3c4d5e6f7a8b9c00b",
        ),
        (
            ProviderId::Maiagent,
            "3b1f8e2a-6c4d-4e7a-9f10-000000000002",
            "/api/contacts/3b1f8e2a-6c4d-4e7a-9f10-000000000002/",
        ),
    ] {
        reset_all(&app);
        let id = format!("{provider}:{native}");
        let data = app.data(delete, json!({ "id": id })).await;
        assert_eq!(
            data["deleteContact"],
            json!({ "deletedId": id, "userErrors": [] })
        );
        let requests = sent(&app, provider);
        assert_eq!(
            (requests[0].method.as_str(), requests[0].path.as_str()),
            ("DELETE", path)
        );
        assert!(stored(&app, provider, native).is_none(), "{id} is gone");
        let again = app.data(delete, json!({ "id": id })).await;
        assert_eq!(again["deleteContact"]["userErrors"][0]["code"], "NOT_FOUND");
    }
    // maiagent.txt: 400 while the contact still has conversations; it stays.
    let id = "maiagent:3b1f8e2a-6c4d-4e7a-9f10-000000000001";
    let data = app.data(delete, json!({ "id": id })).await;
    let error = &data["deleteContact"]["userErrors"][0];
    assert_eq!(error["code"], "CANNOT_DELETE");
    assert!(
        error["message"].as_str().unwrap().contains("conversations"),
        "{error}"
    );
    assert!(stored(
        &app,
        ProviderId::Maiagent,
        "3b1f8e2a-6c4d-4e7a-9f10-000000000001"
    )
    .is_some());

    // No delete documented: refused before any call.
    for id in ["magicblocks:con_01HSBX7K2M0000001", "mainbrainer:1329301"] {
        reset_all(&app);
        let body = app.graphql(delete, json!({ "id": id })).await;
        assert_eq!(error_codes(&body), ["UNSUPPORTED_BY_PROVIDER"], "{id}");
        assert_eq!(total_requests(&app), 0);
    }
}

#[tokio::test]
async fn tags_are_added_and_removed_idempotently_where_a_provider_has_them() {
    let app = spawn_app().await;
    let add = format!(
        "mutation($id: ID!, $t: [String!]!) {{ addTags(id: $id, tags: $t) {{ {PAYLOAD} }} }}"
    );
    let remove = format!(
        "mutation($id: ID!, $t: [String!]!) {{ removeTags(id: $id, tags: $t) {{ {PAYLOAD} }} }}"
    );
    let id = "whautomate:64f1a2b3c4d5e6f7a8b9c003";
    let start: Vec<Value> = app
        .data(
            "query($id: ID!) { contact(id: $id) { tags } }",
            json!({ "id": id }),
        )
        .await["contact"]["tags"]
        .as_array()
        .unwrap()
        .clone();
    reset_all(&app);
    let data = app.data(&add, json!({ "id": id, "t": ["gold"] })).await;
    no_user_errors(&data["addTags"]);
    let requests = sent(&app, ProviderId::Whautomate);
    assert_eq!(
        (
            requests[0].method.as_str(),
            requests[0].path.as_str(),
            requests[0].body.clone()
        ),
        (
            "POST",
            "/v1/contacts/64f1a2b3c4d5e6f7a8b9c003/tags/add",
            json!({ "tags": ["gold"] })
        )
    );
    let mut expected = start.clone();
    expected.push(json!("gold"));
    assert_eq!(data["addTags"]["contact"]["tags"], json!(expected));
    // Again: a no-op that succeeds.
    let data = app.data(&add, json!({ "id": id, "t": ["gold"] })).await;
    assert_eq!(data["addTags"]["contact"]["tags"], json!(expected));
    let data = app
        .data(&remove, json!({ "id": id, "t": ["gold", "never-there"] }))
        .await;
    no_user_errors(&data["removeTags"]);
    assert_eq!(data["removeTags"]["contact"]["tags"], json!(start));

    for id in [
        "magicblocks:con_01HSBX7K2M0000001",
        "consuelo:contact_1001",
        "maiagent:3b1f8e2a-6c4d-4e7a-9f10-000000000003",
        "mainbrainer:1329301",
    ] {
        reset_all(&app);
        let body = app.graphql(&add, json!({ "id": id, "t": ["x"] })).await;
        assert_eq!(error_codes(&body), ["UNSUPPORTED_BY_PROVIDER"], "{id}");
        assert_eq!(total_requests(&app), 0, "{id}: nothing sent");
    }
}

#[tokio::test]
async fn do_not_contact_reaches_consuelo_and_mainbrainer_and_says_unsupported_elsewhere() {
    let app = spawn_app().await;
    let dnc = "mutation($input: DoNotContactInput!) { addToDoNotContact(input: $input) { results { provider status message code } userErrors { field code message } } }";
    reset_all(&app);
    let data = app
        .data(
            dnc,
            json!({ "input": { "phone": "(415) 555-0142", "reason": "asked by phone" } }),
        )
        .await;
    let results = data["addToDoNotContact"]["results"].as_array().unwrap();
    let status: Vec<(String, String)> = results
        .iter()
        .map(|r| {
            (
                r["provider"].as_str().unwrap().to_string(),
                r["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        status,
        [
            ("MAGICBLOCKS".into(), "UNSUPPORTED".into()),
            ("CONSUELO".into(), "APPLIED".into()),
            ("WHAUTOMATE".into(), "UNSUPPORTED".into()),
            ("MAIAGENT".into(), "UNSUPPORTED".into()),
            ("MAINBRAINER".into(), "APPLIED".into()),
        ]
    );
    let consuelo = sent(&app, ProviderId::Consuelo);
    assert_eq!(
        (consuelo[0].method.as_str(), consuelo[0].path.as_str()),
        ("POST", "/v1/dnc")
    );
    assert_eq!(
        consuelo[0].body,
        json!({ "workspaceId": "ws_sandbox", "phone": "+14155550142", "reason": "asked by phone" })
    );
    let mainbrainer = sent(&app, ProviderId::Mainbrainer);
    assert_eq!(
        mainbrainer[0].body,
        json!({ "mobileCountryCode": 1, "mobileNumber": 4155550142_i64, "mobileOptIn": false })
    );
    for quiet in [
        ProviderId::Magicblocks,
        ProviderId::Whautomate,
        ProviderId::Maiagent,
    ] {
        assert!(sent(&app, quiet).is_empty());
    }

    // A provider refusing it (a 4xx) is FAILED with its code; the others still apply. (A 5xx
    // is PENDING and retried: tests/api/do_not_contact.rs.)
    app.sandbox
        .control(ProviderId::Consuelo)
        .set_fault(Some(Fault::Status(422)));
    let data = app.data(dnc, json!({ "input": { "phone": "+14155550143", "providers": ["CONSUELO", "MAINBRAINER"] } })).await;
    let results = &data["addToDoNotContact"]["results"];
    assert_eq!(results[0]["status"], "FAILED");
    assert_eq!(results[0]["code"], "PROVIDER_REJECTED");
    assert_eq!(results[1]["status"], "APPLIED");
    app.sandbox.control(ProviderId::Consuelo).set_fault(None);

    reset_all(&app);
    for input in [
        json!({}),
        json!({ "phone": "not a phone" }),
        json!({ "email": "nope" }),
    ] {
        let data = app.data(dnc, json!({ "input": input })).await;
        assert!(
            !data["addToDoNotContact"]["userErrors"]
                .as_array()
                .unwrap()
                .is_empty(),
            "{input}"
        );
        assert_eq!(data["addToDoNotContact"]["results"], json!([]));
    }
    assert_eq!(total_requests(&app), 0, "bad input sends nothing");
}

#[tokio::test]
async fn bad_input_is_a_user_error_and_sends_nothing() {
    let app = spawn_app().await;
    let cases = [
        (
            create_mutation(),
            json!({ "input": { "provider": "CONSUELO", "firstName": "A", "emails": [{ "address": "not-an-email" }] } }),
            "INVALID_EMAIL",
            vec!["input", "emails", "0", "address"],
        ),
        (
            create_mutation(),
            json!({ "input": { "provider": "MAIAGENT", "firstName": "A", "phones": [{ "number": "12" }] } }),
            "INVALID_PHONE",
            vec!["input", "phones", "0", "number"],
        ),
        (
            create_mutation(),
            json!({ "input": { "provider": "WHAUTOMATE", "firstName": "A" } }),
            "REQUIRED",
            vec!["input", "phones"],
        ),
        (
            create_mutation(),
            json!({ "input": { "provider": "MAINBRAINER", "firstName": "A" } }),
            "REQUIRED",
            vec!["input", "emails"],
        ),
        (
            create_mutation(),
            json!({ "input": { "provider": "WHAUTOMATE", "firstName": "A", "phones": [{ "number": "+14155550100" }], "emails": [{ "address": "a@example.com" }] } }),
            "FIELD_NOT_SUPPORTED",
            vec!["input", "emails"],
        ),
        (
            create_mutation(),
            json!({ "input": { "provider": "CONSUELO", "firstName": "A", "tags": ["x"] } }),
            "FIELD_NOT_SUPPORTED",
            vec!["input", "tags"],
        ),
        (
            create_mutation(),
            json!({ "input": { "provider": "CONSUELO", "firstName": "x".repeat(500) } }),
            "TOO_LONG",
            vec!["input", "firstName"],
        ),
        (
            update_mutation(),
            json!({ "id": "hubspot:1", "input": { "notes": "x" } }),
            "INVALID_ID",
            vec!["id"],
        ),
        (
            update_mutation(),
            json!({ "id": "maiagent:not-a-uuid", "input": { "firstName": "x" } }),
            "INVALID_ID",
            vec!["id"],
        ),
        (
            update_mutation(),
            json!({ "id": "mainbrainer:con_01HSBX7K2M0000001", "input": { "company": "x" } }),
            "INVALID_ID",
            vec!["id"],
        ),
        (
            update_mutation(),
            json!({ "id": "consuelo:contact_1001", "input": { "phones": [{ "number": "bogus" }] } }),
            "INVALID_PHONE",
            vec!["input", "phones", "0", "number"],
        ),
        (
            update_mutation(),
            json!({ "id": "whautomate:64f1a2b3c4d5e6f7a8b9c001", "input": { "phones": null } }),
            "REQUIRED",
            vec!["input", "phones"],
        ),
    ];
    for (query, variables, code, field) in cases {
        reset_all(&app);
        let body = app.graphql(&query, variables.clone()).await;
        assert!(body["errors"].is_null(), "{variables}: {body}");
        let payload = body["data"].as_object().unwrap().values().next().unwrap();
        let error = &payload["userErrors"][0];
        assert_eq!(error["code"], code, "{variables}: {payload}");
        assert_eq!(error["field"], json!(field), "{variables}: {payload}");
        assert!(!error["message"].as_str().unwrap().is_empty());
        assert_eq!(payload["contact"], Value::Null);
        assert_eq!(
            total_requests(&app),
            0,
            "{variables}: nothing sent upstream"
        );
    }
    // An unknown id is found out by the provider; nothing is written.
    reset_all(&app);
    let data = app
        .data(
            &update_mutation(),
            json!({ "id": "whautomate:000000000000000000000000", "input": { "notes": "x" } }),
        )
        .await;
    assert_eq!(data["updateContact"]["userErrors"][0]["code"], "NOT_FOUND");
    assert!(sent(&app, ProviderId::Whautomate)
        .iter()
        .all(|r| r.method == "GET"));
}

#[tokio::test]
async fn a_providers_own_validation_error_becomes_a_user_error_with_its_message() {
    let app = spawn_app().await;
    // The MaiAgent simulator refuses an unknown inbox id, as Django REST Framework would.
    let data = app
        .data(&create_mutation(), json!({ "input": { "provider": "MAIAGENT", "firstName": "A", "groupIds": ["no-such-inbox"] } }))
        .await;
    let error = &data["createContact"]["userErrors"][0];
    assert_eq!(error["code"], "PROVIDER_VALIDATION", "{data}");
    assert!(
        error["message"].as_str().unwrap().contains("MaiAgent"),
        "{error}"
    );
}

#[tokio::test]
async fn a_create_that_times_out_is_not_retried_and_says_it_may_have_been_applied() {
    let app = spawn_app_with(|c| {
        for p in c.providers.values_mut() {
            p.timeout_ms = 300;
        }
    })
    .await;
    app.sandbox
        .control(ProviderId::Consuelo)
        .set_fault(Some(Fault::Hang));
    reset_all(&app);
    let body = app
        .graphql(&create_mutation(), json!({ "input": { "provider": "CONSUELO", "firstName": "Slow", "emails": [{ "address": "slow@example.com" }] } }))
        .await;
    assert_eq!(error_codes(&body), ["PROVIDER_UNAVAILABLE"]);
    let error = &body["errors"][0];
    assert_eq!(error["extensions"]["mayHaveBeenApplied"], true);
    assert!(
        error["message"].as_str().unwrap().contains("not retry"),
        "{error}"
    );
    assert_eq!(
        app.sandbox.control(ProviderId::Consuelo).request_count(),
        1,
        "exactly one attempt"
    );
}

#[tokio::test]
async fn capabilities_match_what_the_adapters_do() {
    let app = spawn_app().await;
    let data = app
        .data("{ providers { id capabilities } }", json!({}))
        .await;
    let got: Vec<(String, Vec<String>)> = data["providers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["id"].as_str().unwrap().to_string(),
                p["capabilities"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c.as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect();
    let expect = |id: &str, caps: &[&str]| {
        (
            id.to_string(),
            caps.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
        )
    };
    assert_eq!(
        got,
        [
            expect(
                "MAGICBLOCKS",
                &["LIST", "GET", "SEARCH", "CREATE", "UPDATE", "UPSERT", "IMPORT"]
            ),
            expect(
                "CONSUELO",
                &[
                    "LIST",
                    "GET",
                    "SEARCH",
                    "CREATE",
                    "UPDATE",
                    "UPSERT",
                    "DELETE",
                    "DO_NOT_CONTACT",
                    "IMPORT"
                ]
            ),
            expect(
                "WHAUTOMATE",
                &[
                    "LIST", "GET", "SEARCH", "CREATE", "UPDATE", "UPSERT", "DELETE", "TAGS",
                    "IMPORT"
                ]
            ),
            expect(
                "MAIAGENT",
                &["LIST", "GET", "SEARCH", "CREATE", "UPDATE", "UPSERT", "DELETE", "IMPORT"]
            ),
            // LIST and GET from the gateway's ledger (ledger.rs).
            expect(
                "MAINBRAINER",
                &[
                    "LIST",
                    "GET",
                    "CREATE",
                    "UPDATE",
                    "UPSERT",
                    "DO_NOT_CONTACT",
                    "IMPORT"
                ]
            ),
        ]
    );
    // Each of these is exercised in this file (Mainbrainer's reads in ledger.rs); what is not
    // listed is refused before any call.
}

/// maiagent.txt stores phoneNumber as an integer of national digits: a number from another
/// country loses its country code. The write happened, so it is not an error, but the gateway
/// says so instead of returning a silently different phone.
#[tokio::test]
async fn a_value_the_provider_did_not_store_as_given_is_a_warning() {
    let app = spawn_app().await;
    let data = app
        .data(
            &create_mutation(),
            json!({ "input": { "provider": "MAIAGENT", "firstName": "Sam", "lastName": "Abroad", "phones": [{ "number": "+1 415 555 0199" }] } }),
        )
        .await;
    let payload = &data["createContact"];
    assert_eq!(payload["userErrors"], json!([]));
    assert!(
        payload["contact"]["id"].is_string(),
        "the contact was created"
    );
    let warning = &payload["warnings"][0];
    assert_eq!(warning["code"], "FIELD_NOT_STORED", "{payload:#}");
    assert_eq!(warning["field"], json!(["input", "phones", "0", "number"]));
    assert!(
        warning["message"]
            .as_str()
            .unwrap()
            .contains("+14155550199"),
        "{warning}"
    );
}

#[tokio::test]
async fn consent_cannot_be_cleared_to_unknown() {
    let app = spawn_app().await;
    reset_all(&app);
    let data = app
        .data(
            &update_mutation(),
            json!({ "id": "mainbrainer:1329301", "input": { "smsOptIn": null } }),
        )
        .await;
    let error = &data["updateContact"]["userErrors"][0];
    assert_eq!(error["code"], "INVALID");
    assert_eq!(error["field"], json!(["input", "smsOptIn"]));
    assert_eq!(total_requests(&app), 0);
}

/// whautomate.txt's PUT replaces the record, so an update is read-merge-write: two patches of
/// one contact at once must both survive (NOTES 3.5.1: serialize writes per contact).
#[tokio::test]
async fn concurrent_patches_of_one_contact_both_survive() {
    let app = spawn_app().await;
    // Latency makes the two reads overlap if nothing orders the writes.
    app.sandbox
        .control(ProviderId::Whautomate)
        .set_latency(std::time::Duration::from_millis(150));
    let id = "whautomate:64f1a2b3c4d5e6f7a8b9c006";
    let update = update_mutation();
    let stage = app.data(
        &update,
        json!({ "id": id, "input": { "stage": "Customer" } }),
    );
    let notes = app.data(
        &update,
        json!({ "id": id, "input": { "notes": "Prefers mornings" } }),
    );
    let (stage, notes) = tokio::join!(stage, notes);
    no_user_errors(&stage["updateContact"]);
    no_user_errors(&notes["updateContact"]);
    let stored = stored(&app, ProviderId::Whautomate, "64f1a2b3c4d5e6f7a8b9c006").unwrap();
    assert_eq!(
        (stored["stage"].clone(), stored["notes"].clone()),
        (json!("Customer"), json!("Prefers mornings"))
    );
}

/// Upsert on the two providers not covered above: MagicBlocks (match by email through its
/// `?email=` lookup, then read-merge-write) and MaiAgent (match through `search`, then PATCH).
#[tokio::test]
async fn upsert_on_magicblocks_and_maiagent() {
    let app = spawn_app().await;
    let mb = json!({ "provider": "MAGICBLOCKS", "emails": [{ "address": "olivia.bennett@northwindtraders.com" }], "customFields": { "tier": "gold" } });
    reset_all(&app);
    let data = app.data(&upsert_mutation(), json!({ "input": mb })).await;
    no_user_errors(&data["upsertContact"]);
    assert_eq!(data["upsertContact"]["created"], false);
    assert_eq!(
        data["upsertContact"]["contact"]["id"],
        "magicblocks:con_01HSBX7K2M0000001"
    );
    let methods: Vec<String> = sent(&app, ProviderId::Magicblocks)
        .iter()
        .map(|r| r.method.clone())
        .collect();
    assert_eq!(
        methods.last().map(String::as_str),
        Some("PUT"),
        "{methods:?}"
    );
    let stored_mb = stored(&app, ProviderId::Magicblocks, "con_01HSBX7K2M0000001").unwrap();
    assert_eq!(stored_mb["customFields"]["tier"], "gold");
    assert_eq!(
        stored_mb["customFields"]["role"], "Head of Growth",
        "the other custom fields survive"
    );

    let ma_existing = json!({ "provider": "MAIAGENT", "firstName": "Daniel", "lastName": "Lin",
                              "emails": [{ "address": "daniel.lin@pacificrimfoods.com" }] });
    let data = app
        .data(&upsert_mutation(), json!({ "input": ma_existing }))
        .await;
    no_user_errors(&data["upsertContact"]);
    assert_eq!(data["upsertContact"]["created"], false);
    assert_eq!(
        data["upsertContact"]["contact"]["id"],
        "maiagent:3b1f8e2a-6c4d-4e7a-9f10-000000000002"
    );
    let ma_new = json!({ "provider": "MAIAGENT", "firstName": "New", "lastName": "Person", "emails": [{ "address": "new.person@example.com" }] });
    let data = app
        .data(&upsert_mutation(), json!({ "input": ma_new }))
        .await;
    assert_eq!(data["upsertContact"]["created"], true);
}

/// Tag names are exact everywhere (README: the `tags` filter matches exact names, as the
/// providers' own filters do): `removeTags(["VIP"])` on a Whautomate contact tagged `vip`
/// removes nothing, and Whautomate keeps `vip`.
#[tokio::test]
async fn removing_a_tag_in_another_case_keeps_the_contacts_tag() {
    let app = spawn_app().await;
    let remove = format!(
        "mutation($id: ID!, $t: [String!]!) {{ removeTags(id: $id, tags: $t) {{ {PAYLOAD} }} }}"
    );
    let native = "64f1a2b3c4d5e6f7a8b9c001";
    let before = stored(&app, ProviderId::Whautomate, native).unwrap();
    assert_eq!(before["tags"], json!(["vip", "line"]));
    reset_all(&app);
    let data = app
        .data(
            &remove,
            json!({ "id": format!("whautomate:{native}"), "t": ["VIP"] }),
        )
        .await;
    no_user_errors(&data["removeTags"]);
    assert_eq!(
        data["removeTags"]["contact"]["tags"],
        json!(["vip", "line"])
    );
    assert!(
        sent(&app, ProviderId::Whautomate)
            .iter()
            .all(|r| r.method != "PUT"),
        "no fallback rewrites the tags"
    );
    let after = stored(&app, ProviderId::Whautomate, native).unwrap();
    assert_eq!(
        after["tags"],
        json!(["vip", "line"]),
        "the simulator still has `vip`"
    );
}

/// Whether a failed write may have happened is known where it failed, and said only then: a
/// dropped connection after sending may have been applied; a 500 or a refused connection not.
#[tokio::test]
async fn a_failed_write_says_it_may_have_been_applied_only_when_it_may() {
    let app = spawn_app_with(|c| {
        // Nothing listens on port 9 of loopback: the connection is refused, nothing is sent.
        c.providers.get_mut(&ProviderId::Maiagent).unwrap().base_url = "http://127.0.0.1:9".into();
    })
    .await;
    let create = |provider: &str| json!({ "input": { "provider": provider, "firstName": "Ada", "emails": [{ "address": "ada.maybe@example.com" }] } });
    let consuelo = app.sandbox.control(ProviderId::Consuelo);
    for (fault, may) in [
        (Fault::DropConnection, Some(true)),
        (Fault::Status(500), None),
    ] {
        consuelo.set_fault(Some(fault.clone()));
        let body = app.graphql(&create_mutation(), create("CONSUELO")).await;
        assert_eq!(
            error_codes(&body),
            ["PROVIDER_UNAVAILABLE"],
            "{fault:?}: {body}"
        );
        assert_eq!(
            body["errors"][0]["extensions"]
                .get("mayHaveBeenApplied")
                .and_then(|v| v.as_bool()),
            may,
            "{fault:?}: {body}"
        );
    }
    let body = app.graphql(&create_mutation(), create("MAIAGENT")).await;
    assert_eq!(error_codes(&body), ["PROVIDER_UNAVAILABLE"], "{body}");
    assert!(
        body["errors"][0]["extensions"]
            .get("mayHaveBeenApplied")
            .is_none(),
        "a refused connection sent nothing: {body}"
    );
}

/// Two upserts of one new email at once: the second waits for the first and updates what it
/// created, so the provider gets one create.
#[tokio::test]
async fn concurrent_upserts_of_one_new_email_make_one_contact() {
    let app = spawn_app().await;
    let consuelo = app.sandbox.control(ProviderId::Consuelo);
    // Slow enough that both upserts look for a match before either has created one.
    consuelo.set_latency(std::time::Duration::from_millis(150));
    reset_all(&app);
    let input = |notes: &str| {
        json!({ "input": { "provider": "CONSUELO", "firstName": "Twice", "notes": notes,
                           "emails": [{ "address": "twice.at.once@example.com" }] } })
    };
    let mutation = upsert_mutation();
    let (a, b) = tokio::join!(
        app.data(&mutation, input("first")),
        app.data(&mutation, input("second"))
    );
    let (a, b) = (&a["upsertContact"], &b["upsertContact"]);
    assert_eq!(a["contact"]["id"], b["contact"]["id"], "{a} {b}");
    let mut created = [a["created"].clone(), b["created"].clone()];
    created.sort_by_key(|v| v.to_string());
    assert_eq!(created, [json!(false), json!(true)]);
    let creates = consuelo
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/contacts")
        .count();
    assert_eq!(creates, 1, "{:?}", consuelo.requests());
}

/// Clearing the only name part a contact has is refused by the gateway, for every provider
/// that requires a name, with the field's path and before any write is sent.
#[tokio::test]
async fn clearing_the_last_name_part_is_refused_before_any_write() {
    let app = spawn_app().await;
    for (provider, extra) in [
        ("MAIAGENT", json!({})),
        (
            "WHAUTOMATE",
            json!({ "phones": [{ "number": "+14155550199" }] }),
        ),
    ] {
        let mut input = json!({ "provider": provider, "firstName": "Solo" });
        input
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let created = app
            .data(&create_mutation(), json!({ "input": input }))
            .await;
        let id = created["createContact"]["contact"]["id"].clone();
        assert!(id.is_string(), "{created}");
        reset_all(&app);
        let data = app
            .data(
                &update_mutation(),
                json!({ "id": id, "input": { "firstName": null } }),
            )
            .await;
        let errors = &data["updateContact"]["userErrors"];
        assert_eq!(errors[0]["code"], "REQUIRED", "{provider}: {data}");
        assert_eq!(errors[0]["field"], json!(["input", "firstName"]), "{data}");
        let writes: Vec<_> = app
            .sandbox
            .control(provider.to_lowercase().parse().unwrap())
            .requests()
            .into_iter()
            .filter(|r| r.method != "GET")
            .collect();
        assert!(writes.is_empty(), "{provider}: nothing written: {writes:?}");
        // Replacing the name is fine.
        let data = app
            .data(
                &update_mutation(),
                json!({ "id": id, "input": { "firstName": null, "lastName": "Other" } }),
            )
            .await;
        assert_eq!(data["updateContact"]["userErrors"], json!([]), "{data}");
        assert_eq!(data["updateContact"]["contact"]["displayName"], "Other");
    }
}

/// NOTES 3.5.3: a Whautomate account may require a location on create. Without one its 400 is
/// a userError naming the config key; with `location_id` set the contact joins that location.
#[tokio::test]
async fn a_whautomate_account_that_requires_a_location_takes_the_configured_one() {
    let input = json!({ "input": { "provider": "WHAUTOMATE", "firstName": "Nora", "lastName": "Quinn",
        "phones": [{ "number": "+44 7911 123457" }] } });
    let app = spawn_app().await;
    let whautomate = app.sandbox.control(ProviderId::Whautomate);
    whautomate.set_account_setting(WHAUTOMATE_LOCATION_REQUIRED, true);
    let data = app.data(&create_mutation(), input.clone()).await;
    let payload = &data["createContact"];
    assert_eq!(payload["contact"], Value::Null, "{payload:#}");
    let error = &payload["userErrors"][0];
    assert_eq!(error["code"], "PROVIDER_VALIDATION", "{payload:#}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("providers.whautomate.location_id"),
        "{message}"
    );
    assert!(sent(&app, ProviderId::Whautomate)[0]
        .body
        .get("location")
        .is_none());

    let app = spawn_app_with(|c| {
        let whautomate = c.providers.get_mut(&ProviderId::Whautomate).unwrap();
        whautomate
            .settings
            .insert("location_id".into(), "loc_london".into());
    })
    .await;
    let whautomate = app.sandbox.control(ProviderId::Whautomate);
    whautomate.set_account_setting(WHAUTOMATE_LOCATION_REQUIRED, true);
    let data = app.data(&create_mutation(), input).await;
    let payload = &data["createContact"];
    no_user_errors(payload);
    assert_eq!(
        payload["contact"]["groups"],
        json!([{ "id": "loc_london", "kind": "LOCATION" }])
    );
    let native = payload["contact"]["nativeId"].as_str().unwrap();
    let record = stored(&app, ProviderId::Whautomate, native).expect("stored");
    assert_eq!(
        record["location"],
        json!({ "id": "loc_london", "title": "London Wellness Centre" })
    );
}
