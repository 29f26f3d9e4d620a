//! `ProviderInfo.fields` says, per writable field, whether each provider can read, write,
//! clear and filter it. Every claim is checked here against what the simulators really store:
//! for each provider and writable field, a value is created, updated and cleared through the
//! gateway, and the simulator's record (`records()`) and the gateway's read must agree with
//! what the provider's `fields` say.

use crate::helpers::{spawn_app, TestApp};
use contact_gateway::contact::ProviderId;
use contact_gateway::sandbox::seed::{MAIAGENT_INBOXES, WHAUTOMATE_LOCATIONS};
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicU32, Ordering};

/// The writable fields, in the field table's order (`src/fields.rs`).
const FIELDS: [&str; 14] = [
    "firstName",
    "middleName",
    "lastName",
    "emails",
    "phones",
    "company",
    "notes",
    "tags",
    "stage",
    "groupIds",
    "customFields",
    "emailOptIn",
    "smsOptIn",
    "isTest",
];

const READ: &str =
    "query($id: ID!) { contact(id: $id) { name { first middle last } emails { address }
    phones { e164 } company notes tags stage groups { id } customFields
    consent { emailOptIn smsOptIn } isTest } }";
const CREATE: &str = "mutation($input: CreateContactInput!) { createContact(input: $input) {
    contact { id nativeId } userErrors { field code message } warnings { field code message } } }";
const UPDATE: &str =
    "mutation($id: ID!, $input: UpdateContactInput!) { updateContact(id: $id, input: $input) {
    contact { id } userErrors { field code message } warnings { field code message } } }";

/// Fresh values: every marker, phone and email differs from every other.
struct Values {
    provider: ProviderId,
    next: AtomicU32,
}

impl Values {
    fn n(&self) -> u32 {
        self.next.fetch_add(1, Ordering::SeqCst)
    }

    /// A phone number the provider's region reads back as the E.164 it was written as.
    fn phone(&self) -> String {
        match self.provider {
            // The MaiAgent simulator keeps national digits, read in Taiwan.
            ProviderId::Maiagent => format!("+886912345{:03}", self.n()),
            _ => format!("+14155550{:03}", self.n()),
        }
    }

    /// The `which`-th (1 or 2) value of `field`, as the GraphQL input gives it.
    fn sample(&self, field: &str, which: usize) -> Value {
        let word = |prefix: &str| json!(format!("{prefix}{}", self.n()));
        match field {
            "firstName" => word("Givenname"),
            "middleName" => word("Middlename"),
            "lastName" => word("Surname"),
            "emails" => json!([{ "address": format!("fields{}@support.example", self.n()) }]),
            "phones" => json!([{ "number": self.phone() }]),
            "company" => word("Company"),
            "notes" => word("Notes"),
            "tags" => json!([format!("tag{}", self.n())]),
            "stage" => word("Stage"),
            "groupIds" => {
                let id = match self.provider {
                    ProviderId::Maiagent => MAIAGENT_INBOXES[which - 1].0.to_string(),
                    ProviderId::Whautomate => WHAUTOMATE_LOCATIONS[which - 1].0.to_string(),
                    ProviderId::Mainbrainer => {
                        format!("0b5e4a6c-1111-4222-8333-44445555660{which}")
                    }
                    _ => format!("group{which}"),
                };
                json!([id])
            }
            "customFields" => json!({ "fieldKey": format!("custom{}", self.n()) }),
            // false first, so that a clear is seen taking a true away.
            "emailOptIn" | "smsOptIn" | "isTest" => json!(which == 2),
            other => panic!("unknown field {other}"),
        }
    }

    /// A create input holding `field: value` and what the provider needs besides (a name, a
    /// phone, an email, each unless it is the field under test).
    fn create_input(&self, field: &str, value: &Value, writes: &Map<String, Value>) -> Value {
        let mut input = json!({ "provider": self.provider.as_str().to_ascii_uppercase() });
        let base = [
            ("firstName", json!("Base")),
            ("lastName", json!("Line")),
            ("phones", json!([{ "number": self.phone() }])),
            (
                "emails",
                json!([{ "address": format!("base{}@support.example", self.n()) }]),
            ),
        ];
        for (name, base) in base {
            if name != field && writes[name] == json!(true) {
                input[name] = base;
            }
        }
        input[field] = value.clone();
        input
    }
}

/// What the gateway shows for `field` of a `contact` answer, in the input's terms.
fn shown(field: &str, contact: &Value) -> Value {
    let list = |items: &Value, key: &str| -> Value {
        Value::Array(
            items
                .as_array()
                .map(|items| items.iter().map(|i| i[key].clone()).collect())
                .unwrap_or_default(),
        )
    };
    match field {
        "firstName" => contact["name"]["first"].clone(),
        "middleName" => contact["name"]["middle"].clone(),
        "lastName" => contact["name"]["last"].clone(),
        "emails" => list(&contact["emails"], "address"),
        "phones" => list(&contact["phones"], "e164"),
        "groupIds" => list(&contact["groups"], "id"),
        "customFields" => contact["customFields"]["fieldKey"].clone(),
        "emailOptIn" => contact["consent"]["emailOptIn"].clone(),
        "smsOptIn" => contact["consent"]["smsOptIn"].clone(),
        other => contact[other].clone(),
    }
}

/// A written value as `shown` would show it.
fn as_shown(field: &str, value: &Value) -> Value {
    match field {
        "emails" => json!([value[0]["address"]]),
        "phones" => json!([value[0]["number"]]),
        "customFields" => value["fieldKey"].clone(),
        _ => value.clone(),
    }
}

/// Whether the gateway shows `value` (a list: among others; a flag cleared reads false).
fn shows(field: &str, contact: &Value, value: &Value) -> bool {
    let (got, wanted) = (shown(field, contact), as_shown(field, value));
    match (&got, &wanted) {
        (Value::Array(got), Value::Array(wanted)) => wanted.iter().all(|w| got.contains(w)),
        _ => got == wanted,
    }
}

/// The text that shows `value` in a simulator's record (`None` for a flag: a record is then
/// compared with itself before the change).
fn marker(field: &str, value: &Value) -> Option<String> {
    match field {
        "emailOptIn" | "smsOptIn" | "isTest" => None,
        "emails" => value[0]["address"].as_str().map(str::to_string),
        // Stored as E.164, or as its national digits (the last nine hold in every case here).
        "phones" => value[0]["number"]
            .as_str()
            .map(|n| n[n.len() - 9..].to_string()),
        "customFields" => value["fieldKey"].as_str().map(str::to_string),
        "tags" | "groupIds" => value[0].as_str().map(str::to_string),
        _ => value.as_str().map(str::to_string),
    }
}

/// The simulator's record of `native`, timestamps left out.
fn record(app: &TestApp, provider: ProviderId, native: &str) -> Value {
    let mut record = app
        .sandbox
        .control(provider)
        .records()
        .into_iter()
        .find(|r| {
            // Mainbrainer's `contactId` is a number.
            r["id"].as_str() == Some(native)
                || native.parse::<i64>().is_ok_and(|n| r["contactId"] == n)
        })
        .unwrap_or_else(|| panic!("{provider}: the simulator holds no {native}"));
    if let Some(fields) = record.as_object_mut() {
        fields.retain(|k, _| {
            let k = k.to_ascii_lowercase();
            !["modified", "updated", "lastseen"]
                .iter()
                .any(|t| k.contains(t))
        });
    }
    record
}

fn stores(record: &Value, marker: &str) -> bool {
    record.to_string().contains(marker)
}

/// The `ContactFilter` that finds a contact by `value` of `field`, where one does.
fn filter_by(field: &str, value: &Value) -> Option<Value> {
    Some(match field {
        "firstName" | "middleName" | "lastName" => json!({ "search": value }),
        "emails" => json!({ "email": value[0]["address"] }),
        "phones" => json!({ "phone": value[0]["number"] }),
        "company" => json!({ "company": value }),
        "tags" => json!({ "tags": value }),
        _ => return None,
    })
}

/// Whether a write's payload took the value as given (no userErrors, no warnings).
fn clean(payload: &Value) -> bool {
    payload["userErrors"] == json!([]) && payload["warnings"] == json!([])
}

/// Checks one provider's `fields`; returns every claim the simulator contradicts.
async fn check(app: &TestApp, provider: ProviderId, fields: &[Value]) -> Vec<String> {
    let mut wrong = Vec::new();
    let support: Map<String, Value> = fields
        .iter()
        .map(|f| (f["field"].as_str().unwrap().to_string(), f.clone()))
        .collect();
    let writes: Map<String, Value> = support
        .iter()
        .map(|(k, f)| (k.clone(), f["write"].clone()))
        .collect();
    let values = Values {
        provider,
        next: AtomicU32::new(100 * provider as u32),
    };
    let control = app.sandbox.control(provider);
    for field in FIELDS {
        let claim = |what: &str| support[field][what] == json!(true);
        let (read, write, clear, filter) = (
            claim("read"),
            claim("write"),
            claim("clear"),
            claim("filter"),
        );
        let mut fail = |what: String| wrong.push(format!("{provider} {field}: {what}"));
        let (v1, v2) = (values.sample(field, 1), values.sample(field, 2));

        // Write: a create holding the value.
        control.reset_requests();
        let input = values.create_input(field, &v1, &writes);
        let created = app.data(CREATE, json!({ "input": input })).await["createContact"].clone();
        if !write {
            let refused = created["userErrors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["code"] == "FIELD_NOT_SUPPORTED" && e["field"][1] == field);
            if !refused || control.request_count() > 0 {
                fail(format!(
                    "write: false, but the create was not refused: {created}"
                ));
            }
            continue;
        }
        if !clean(&created) {
            fail(format!("write: true, but the create answered {created}"));
            continue;
        }
        let id = created["contact"]["id"].as_str().unwrap().to_string();
        let native = created["contact"]["nativeId"].as_str().unwrap().to_string();
        let before = record(app, provider, &native);
        if let Some(marker) = marker(field, &v1) {
            if !stores(&before, &marker) {
                fail(format!(
                    "write: true, but the record lacks {marker}: {before}"
                ));
            }
        }
        let contact = app.data(READ, json!({ "id": id })).await["contact"].clone();
        if read != shows(field, &contact, &v1) {
            fail(format!("read: {read}, but the gateway shows {contact}"));
        }
        if filter {
            let by = filter_by(field, &v1).expect("a filterable field");
            let found = app
                .all_contacts(&[&provider.as_str().to_ascii_uppercase()], by.clone(), 100)
                .await;
            if !found.iter().any(|c| c["id"] == json!(id)) {
                fail(format!("filter: true, but {by} does not find it"));
            }
        }

        // Write again: an update.
        let updated = app
            .data(UPDATE, json!({ "id": id, "input": { field: v2 } }))
            .await["updateContact"]
            .clone();
        if !clean(&updated) {
            fail(format!("write: true, but the update answered {updated}"));
            continue;
        }
        let after = record(app, provider, &native);
        match marker(field, &v2) {
            Some(marker) if !stores(&after, &marker) => fail(format!(
                "write: true, but the record lacks {marker}: {after}"
            )),
            None if after == before => fail(format!("write: true, but the record kept {after}")),
            _ => {}
        }
        let contact = app.data(READ, json!({ "id": id })).await["contact"].clone();
        if read != shows(field, &contact, &v2) {
            fail(format!(
                "read: {read}, but after the update the gateway shows {contact}"
            ));
        }

        // Clear: null (a custom field's key set to null).
        let none = if field == "customFields" {
            json!({ "fieldKey": null })
        } else {
            Value::Null
        };
        let body = app
            .graphql(UPDATE, json!({ "id": id, "input": { field: none } }))
            .await;
        let cleared_ok = body.get("errors").is_none()
            && body["data"]["updateContact"]["userErrors"] == json!([]);
        let after = record(app, provider, &native);
        let contact = app.data(READ, json!({ "id": id })).await["contact"].clone();
        let still_stored = marker(field, &v2).is_some_and(|m| stores(&after, &m));
        let still_shown = shows(field, &contact, &v2);
        if clear && !(cleared_ok && !still_stored && !still_shown) {
            fail(format!(
                "clear: true, but the clear answered {body}; record {after}, read {contact}"
            ));
        }
        if !clear && (cleared_ok || (read && !still_shown)) {
            fail(format!(
                "clear: false, but the clear answered {body}; read {contact}"
            ));
        }
    }
    wrong
}

#[tokio::test]
async fn every_providers_field_support_matches_what_its_simulator_stores() {
    let app = spawn_app().await;
    let data = app
        .data(
            "{ providers { id fields { field read write clear filter } } }",
            json!({}),
        )
        .await;
    let mut wrong = Vec::new();
    for (provider, info) in ProviderId::ALL
        .into_iter()
        .zip(data["providers"].as_array().unwrap())
    {
        let fields = info["fields"].as_array().unwrap();
        let names: Vec<&str> = fields
            .iter()
            .map(|f| f["field"].as_str().unwrap())
            .collect();
        assert_eq!(names, FIELDS, "{provider}: one entry per writable field");
        for f in fields {
            if f["clear"] == json!(true) && f["write"] != json!(true) {
                wrong.push(format!(
                    "{provider} {}: clears what it cannot write",
                    f["field"]
                ));
            }
        }
        wrong.extend(check(&app, provider, fields).await);
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The whole table, as the README shows it: per field and provider, `r`ead, `w`rite, `c`lear
/// and `f`ilter, `-` where not.
#[tokio::test]
async fn the_field_support_table() {
    let app = spawn_app().await;
    let data = app
        .data(
            "{ providers { id fields { field read write clear filter } } }",
            json!({}),
        )
        .await;
    let providers = data["providers"].as_array().unwrap();
    let mut lines = vec![format!(
        "{:<13}{}",
        "",
        providers
            .iter()
            .map(|p| format!("{:<12}", p["id"].as_str().unwrap()))
            .collect::<String>()
    )];
    for (i, field) in FIELDS.iter().enumerate() {
        let cells: String = providers
            .iter()
            .map(|p| {
                let f = &p["fields"][i];
                assert_eq!(f["field"], *field);
                let flags: String = ["read", "write", "clear", "filter"]
                    .iter()
                    .map(|k| match f[*k] == json!(true) {
                        true => k.chars().next().unwrap(),
                        false => '-',
                    })
                    .collect();
                format!("{flags:<12}")
            })
            .collect();
        lines.push(format!("{field:<13}{cells}"));
    }
    let table: Vec<&str> = lines.iter().map(|l| l.trim_end()).collect();
    insta::assert_snapshot!(table.join("\n"));
}
