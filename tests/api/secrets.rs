//! No response holds a provider key or a 10-character fragment of one, tried as an attacker
//! would: every simulator in echo mode puts the key it received into its answers (error
//! messages, names, notes, tags, custom fields; plain, JSON-escaped and percent-encoded).
//! That logs stay clean is tested with the logs.

use crate::helpers::{error_codes, spawn_app, TestApp};
use contact_gateway::contact::ProviderId;
use contact_gateway::sandbox::{self, Fault};
use serde_json::{json, Value};

/// The shortest fragment of a key no response may hold.
const FRAGMENT: usize = 10;

/// POSTs a query; returns the response body as sent, unparsed.
async fn body_text(app: &TestApp, query: &str, variables: Value) -> String {
    let response = app
        .client
        .post(format!("{}/graphql", app.address))
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .expect("gateway answers");
    response.text().await.expect("a body")
}

/// Fails when `body` holds any provider's key, or `FRAGMENT` of its characters in a row:
/// as sent, in any string it holds (JSON-unescaped), and in those strings percent-decoded
/// and `\u`-unescaped (repeatedly, for layered encodings).
fn assert_no_key(body: &str) {
    let mut texts = vec![body.to_string()];
    if let Ok(json) = serde_json::from_str::<Value>(body) {
        collect_strings(&json, &mut texts);
    }
    let decoded: Vec<String> = texts.iter().map(|t| fully_decoded(t)).collect();
    texts.extend(decoded);
    for id in ProviderId::ALL {
        let key = sandbox::api_key(id);
        let fragments: Vec<&str> = if key.len() <= FRAGMENT {
            vec![key]
        } else {
            (0..=key.len() - FRAGMENT)
                .map(|i| &key[i..i + FRAGMENT])
                .collect()
        };
        for text in &texts {
            if let Some(f) = fragments.iter().find(|f| text.contains(**f)) {
                panic!("the {id} key leaked (`{f}`) in:\n{text}\n\nbody: {body}");
            }
        }
    }
}

fn collect_strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        Value::Object(map) => {
            for (k, v) in map {
                out.push(k.clone());
                collect_strings(v, out);
            }
        }
        _ => {}
    }
}

/// `%XX` and `\uXXXX` decoded until nothing changes.
fn fully_decoded(text: &str) -> String {
    let mut current = text.to_string();
    loop {
        let next = decode_once(&current);
        if next == current {
            return current;
        }
        current = next;
    }
}

fn decode_once(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let hex = |s: &[char]| -> Option<u32> {
        s.iter()
            .try_fold(0u32, |acc, c| Some(acc * 16 + c.to_digit(16)?))
    };
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '%' && i + 3 <= chars.len() {
            if let Some(v) = hex(&chars[i + 1..i + 3]).and_then(char::from_u32) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        if chars[i] == '\\' && chars.get(i + 1) == Some(&'u') && i + 6 <= chars.len() {
            if let Some(v) = hex(&chars[i + 2..i + 6]).and_then(char::from_u32) {
                out.push(v);
                i += 6;
                continue;
            }
        }
        if chars[i] == '\\' && chars.get(i + 1) == Some(&'/') {
            out.push('/');
            i += 2;
            continue;
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

fn echo_on(app: &TestApp, providers: &[ProviderId]) {
    for id in providers {
        app.sandbox.control(*id).set_echo_key(true);
    }
}

/// The native id of a provider's first seeded contact.
fn first_id(app: &TestApp, id: ProviderId) -> String {
    let record = &app.sandbox.control(id).records()[0];
    let native = record["id"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| record["id"].to_string());
    format!("{id}:{native}")
}

const CONTACT: &str = "query($id: ID!) { contact(id: $id, noCache: true) {
    id displayName name { first middle last full } notes tags customFields company raw } }";

#[test]
fn the_check_finds_a_key_in_every_form() {
    let key = sandbox::api_key(ProviderId::Consuelo);
    let percent: String = key.bytes().map(|b| format!("%{b:02X}")).collect();
    let escaped: String = key.bytes().map(|b| format!("\\u{b:04x}")).collect();
    for leaked in [
        format!(r#"{{"a":"x{key}"}}"#),
        format!(r#"{{"a":"{}…"}}"#, &key[..FRAGMENT]),
        format!(r#"{{"a":"{percent}"}}"#),
        format!(r#"{{"a":"{escaped}"}}"#),
        // Escaped twice: the string holds `\u0073…`, which a client may decode again.
        format!(r#"{{"a":"{}"}}"#, escaped.replace('\\', "\\\\")),
        format!(r#"{{"{key}":1}}"#),
    ] {
        let caught = std::panic::catch_unwind(|| assert_no_key(&leaked));
        assert!(caught.is_err(), "{leaked}");
    }
    assert_no_key(&format!(r#"{{"a":"{}***"}}"#, &key[..FRAGMENT - 1]));
}

#[tokio::test]
async fn mainbrainers_status_error_message_is_passed_on_without_the_key() {
    let app = spawn_app().await;
    echo_on(&app, &[ProviderId::Mainbrainer]);
    let body = body_text(
        &app,
        "mutation($input: CreateContactInput!) { createContact(input: $input) {
            contact { id raw } userErrors { field message code } } }",
        json!({ "input": { "provider": "MAINBRAINER", "firstName": "Nora",
                "emails": [{ "address": "nora.echo@quinn.example.com" }] } }),
    )
    .await;
    assert_no_key(&body);
    // The 200 `{"status":"Error"}` is still a refusal with its (redacted) message.
    let body: Value = serde_json::from_str(&body).unwrap();
    let error = &body["data"]["createContact"]["userErrors"][0];
    assert_eq!(error["code"], "PROVIDER_VALIDATION", "{body}");
    assert!(
        error["message"].as_str().unwrap().contains("***"),
        "{error}"
    );
}

#[tokio::test]
async fn an_error_message_is_redacted_before_it_is_cut() {
    let app = spawn_app().await;
    // MagicBlocks' errors come as text, Whautomate's as `{"message"}`: each with the key
    // across the 300th character, where a message is cut.
    for id in [ProviderId::Magicblocks, ProviderId::Whautomate] {
        let contact = first_id(&app, id);
        echo_on(&app, &[id]);
        app.sandbox.control(id).set_fault(Some(Fault::Status(400)));
        let body = body_text(&app, CONTACT, json!({ "id": contact })).await;
        assert_no_key(&body);
        let parsed: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(error_codes(&parsed), ["PROVIDER_REJECTED"], "{body}");
        assert!(
            parsed["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("the request carried the key"),
            "the message is still quoted: {body}"
        );
    }
}

#[tokio::test]
async fn a_json_escaped_echo_is_redacted() {
    let app = spawn_app().await;
    echo_on(&app, &[ProviderId::Consuelo]);
    // Consuelo's simulator writes the key only `\u0073\u0062…`, into `notes` and
    // `customFields.echo`: the answer holds no plain fragment of it.
    let body = body_text(
        &app,
        "query($id: ID!) { contact(id: $id) { notes customFields raw } }",
        json!({ "id": first_id(&app, ProviderId::Consuelo) }),
    )
    .await;
    assert_no_key(&body);
    let parsed: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(parsed["data"]["contact"]["notes"], "noted: ***", "{body}");
    assert_eq!(
        parsed["data"]["contact"]["customFields"]["echo"], "***",
        "{body}"
    );
}

#[tokio::test]
async fn a_percent_encoded_echo_is_redacted() {
    let app = spawn_app().await;
    echo_on(&app, &[ProviderId::Whautomate, ProviderId::Maiagent]);
    // Whautomate's `customFields.echo` and MaiAgent's `sourceId` (in `raw`) hold `%73%62…`.
    for (id, field, pointer) in [
        (
            ProviderId::Whautomate,
            "customFields",
            "/data/contact/customFields/echo",
        ),
        (ProviderId::Maiagent, "raw", "/data/contact/raw/sourceId"),
    ] {
        let body = body_text(
            &app,
            &format!("query($id: ID!) {{ contact(id: $id) {{ {field} }} }}"),
            json!({ "id": first_id(&app, id) }),
        )
        .await;
        assert_no_key(&body);
        let parsed: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed.pointer(pointer), Some(&json!("***")), "{id}: {body}");
    }
}

#[tokio::test]
async fn raw_custom_fields_names_notes_and_tags_hold_no_key() {
    let app = spawn_app().await;
    echo_on(&app, &ProviderId::ALL);
    // Every provider's listing, every field a contact has.
    let body = body_text(
        &app,
        "{ contacts(first: 100) { edges { node {
            id displayName name { first middle last full } emails { address } phones { number e164 }
            primaryEmail primaryPhone company notes tags stage groups { id name } customFields raw } }
            pageInfo { hasNextPage endCursor } } }",
        json!({}),
    )
    .await;
    assert_no_key(&body);
    let parsed: Value = serde_json::from_str(&body).unwrap();
    let nodes = parsed["data"]["contacts"]["edges"].as_array().unwrap();
    assert!(!nodes.is_empty(), "{body}");
    let whautomate = nodes
        .iter()
        .map(|e| &e["node"])
        .find(|n| n["id"].as_str().unwrap().starts_with("whautomate:"))
        .unwrap_or_else(|| panic!("a Whautomate contact in {body}"));
    assert!(
        whautomate["tags"]
            .as_array()
            .unwrap()
            .contains(&json!("***")),
        "{whautomate}"
    );
    // One contact, and what a write answers.
    for id in [
        ProviderId::Magicblocks,
        ProviderId::Consuelo,
        ProviderId::Whautomate,
        ProviderId::Maiagent,
    ] {
        let body = body_text(&app, CONTACT, json!({ "id": first_id(&app, id) })).await;
        assert_no_key(&body);
        assert!(body.contains("***"), "{id}: {body}");
    }
    let body = body_text(
        &app,
        "mutation($input: CreateContactInput!) { createContact(input: $input) {
            contact { id displayName notes tags customFields raw } userErrors { message code } } }",
        json!({ "input": { "provider": "WHAUTOMATE", "firstName": "Nora",
                "phones": [{ "number": "+44 7911 123456" }], "tags": ["trial"] } }),
    )
    .await;
    assert_no_key(&body);
    assert!(body.contains("Echo ***"), "{body}");
}
