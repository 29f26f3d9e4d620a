//! MagicBlocks simulator, from magicblocks.txt and NOTES Decision 1.
//!
//! - Auth `Authorization: Bearer <key>` (magicblocks.txt "Authentication").
//! - `GET /v1/contacts?limit=&offset=&email=&phone=` → `{"data": [...], "total": N}`
//!   (the read paths were lost from the page; Decision 1 settles the conventional ones).
//!   Default `limit` 20, at most 100.
//! - `GET /v1/contacts/{id}`, `POST /v1/contacts` → 201, `PUT /v1/contacts/{id}` → 200
//!   (replaces the writable fields). No delete, no tags.
//! - Error bodies are not documented; this simulator answers
//!   `{"statusCode": 404, "error": "Not Found", "message": "..."}`.

use super::control::{
    percent_encoded, straddling_message, Echo, Echoed, SimControl, JSON_ESCAPED_KEY,
};
use super::{body_object, header, json, lock, now_secs, seed, uint_param};
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Page size when the client sends no `limit`.
pub const DEFAULT_LIMIT: usize = 20;
pub const MAX_LIMIT: usize = 100;

struct Store {
    contacts: Vec<Value>,
    next_id: u64,
}

type Shared = Arc<Mutex<Store>>;

/// This simulator, as the sandbox runs it.
pub const SIMULATOR: super::Simulator = super::Simulator {
    build,
    api_key: "sbx_mgb_9Tq4Wz7Lk2Rn8Vd3",
    settings: &[],
    region: None,
};

fn build() -> (Router, Arc<SimControl>) {
    let store: Shared = Arc::new(Mutex::new(Store {
        contacts: seed::magicblocks(),
        next_id: 1,
    }));
    let reader = store.clone();
    let control = Arc::new(
        SimControl::new(
            Box::new(move || lock(&reader).contacts.clone()),
            error,
            None,
        )
        .echoing(Echo {
            received: |headers| bearer_key(headers),
            answer: echo,
        }),
    );
    let router = Router::new()
        .route("/v1/contacts", get(list).post(create))
        .route("/v1/contacts/{id}", get(get_one).put(replace))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "Not found") })
        .method_not_allowed_fallback(|| async {
            error(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
        })
        .layer(middleware::from_fn(auth))
        .with_state(store);
    (router, control)
}

pub(super) fn error(status: StatusCode, message: &str) -> Response {
    json(
        status,
        json!({
            "statusCode": status.as_u16(),
            "error": status.canonical_reason().unwrap_or("Error"),
            "message": message,
        }),
    )
}

/// magicblocks.txt: "Authorization: Bearer YOUR_API_KEY".
async fn auth(req: Request, next: Next) -> Response {
    let expected = format!(
        "Bearer {}",
        super::api_key(crate::contact::ProviderId::Magicblocks)
    );
    match header(req.headers(), "authorization") {
        Some(value) if value == expected => next.run(req).await,
        Some(_) => error(StatusCode::UNAUTHORIZED, "Invalid or expired API token"),
        None => error(StatusCode::UNAUTHORIZED, "Missing Authorization header"),
    }
}

async fn list(State(store): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let limit = match uint_param(q.get("limit"), "limit") {
        Ok(None) => DEFAULT_LIMIT,
        Ok(Some(0)) => return error(StatusCode::BAD_REQUEST, "`limit` must be at least 1"),
        Ok(Some(n)) => n.min(MAX_LIMIT),
        Err(m) => return error(StatusCode::BAD_REQUEST, &m),
    };
    let offset = match uint_param(q.get("offset"), "offset") {
        Ok(n) => n.unwrap_or(0),
        Err(m) => return error(StatusCode::BAD_REQUEST, &m),
    };
    // Decision 1: `?email=` matches any email exactly, case-insensitively; `?phone=` matches
    // any phone's E.164 number exactly.
    let email = q.get("email").map(|e| e.trim().to_lowercase());
    let phone = q.get("phone").map(|p| p.trim().to_string());
    let store = lock(&store);
    let matching: Vec<&Value> = store
        .contacts
        .iter()
        .filter(|c| {
            email.as_ref().is_none_or(|e| {
                items(c, "emails").any(|i| {
                    i["address"]
                        .as_str()
                        .is_some_and(|a| a.to_lowercase() == *e)
                })
            }) && phone.as_ref().is_none_or(|p| {
                items(c, "phones").any(|i| i["number"].as_str() == Some(p.as_str()))
            })
        })
        .collect();
    let total = matching.len();
    let data: Vec<Value> = matching
        .into_iter()
        .skip(offset)
        .take(limit)
        .cloned()
        .collect();
    json(StatusCode::OK, json!({ "data": data, "total": total }))
}

fn items<'a>(contact: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    contact[key].as_array().into_iter().flatten()
}

async fn get_one(State(store): State<Shared>, Path(id): Path<String>) -> Response {
    match lock(&store)
        .contacts
        .iter()
        .find(|c| c["id"] == id.as_str())
    {
        Some(c) => json(StatusCode::OK, c.clone()),
        None => error(StatusCode::NOT_FOUND, &format!("Contact {id} not found")),
    }
}

/// magicblocks.txt: "Success (201): The Contact has been created successfully.
/// Bad Request (400) Invalid or missing data."
async fn create(State(store): State<Shared>, body: Bytes) -> Response {
    let body = match body_object(&body) {
        Ok(b) => b,
        Err(m) => return error(StatusCode::BAD_REQUEST, &m),
    };
    let now = now_secs();
    let mut store = lock(&store);
    let id = format!("con_01HSBX7K2N{:07}", store.next_id);
    let mut record = json!({
        "id": id,
        "firstSeen": now,
        "modifiedAt": now,
        "lastSeen": now,
        "sessionCount": 0,
        "link": format!("https://app.magicblocks.ai/contacts/{id}"),
        "preview": false,
    });
    if let Err(m) = apply_writable(&mut record, &body) {
        return error(StatusCode::BAD_REQUEST, &m);
    }
    let has_name = ["first", "middle", "last"]
        .iter()
        .any(|k| record["name"][*k].as_str().is_some_and(|s| !s.is_empty()));
    let has_channel = ["emails", "phones"]
        .iter()
        .any(|k| record[*k].as_array().is_some_and(|a| !a.is_empty()));
    if !has_name && !has_channel {
        return error(
            StatusCode::BAD_REQUEST,
            "A contact needs a name, an email or a phone",
        );
    }
    store.next_id += 1;
    store.contacts.push(record.clone());
    json(StatusCode::CREATED, record)
}

/// magicblocks.txt: "PUT /v1/contacts/{contactId} ... The update is matched by Contact ID".
/// Whether PUT replaces or merges is not documented; this simulator replaces every writable
/// field (name, emails, phones, custom, isTest, userKnowledge) with the body's, absent ones
/// reset to empty, so a client that sends the whole record (Decision 1) is right either way.
async fn replace(State(store): State<Shared>, Path(id): Path<String>, body: Bytes) -> Response {
    let body = match body_object(&body) {
        Ok(b) => b,
        Err(m) => return error(StatusCode::BAD_REQUEST, &m),
    };
    let mut store = lock(&store);
    let Some(record) = store.contacts.iter_mut().find(|c| c["id"] == id.as_str()) else {
        return error(StatusCode::NOT_FOUND, &format!("Contact {id} not found"));
    };
    let mut updated = record.clone();
    if let Err(m) = apply_writable(&mut updated, &body) {
        return error(StatusCode::BAD_REQUEST, &m);
    }
    // magicblocks.txt update example: "modifiedAt": 1730256720, "lastSeen": 1730256720.
    let now = now_secs();
    updated["modifiedAt"] = json!(now);
    updated["lastSeen"] = json!(now);
    *record = updated.clone();
    json(StatusCode::OK, updated)
}

/// Sets the writable fields of `record` from a create/update body (replace semantics) and
/// recomputes the derived ones (`generatedName`, `primaryEmail`, `primaryPhone`).
///
/// The nested body (magicblocks.txt "Sample Request") is the main form. The flat body of the
/// page's "Example cURL Commands" (`email`, `first_name`, `last_name`, `tags`) is accepted too
/// when no nested field is present; `tags` are not in the response model and are dropped.
pub(super) fn apply_writable(record: &mut Value, body: &Map<String, Value>) -> Result<(), String> {
    let nested = [
        "name",
        "emails",
        "phones",
        "custom",
        "isTest",
        "userKnowledge",
    ]
    .iter()
    .any(|k| body.contains_key(*k));
    let flat;
    let body = if !nested
        && ["email", "first_name", "last_name"]
            .iter()
            .any(|k| body.contains_key(*k))
    {
        flat = flat_to_nested(body)?;
        &flat
    } else {
        body
    };

    let name = match body.get("name") {
        None | Some(Value::Null) => json!({"first": "", "middle": "", "last": ""}),
        Some(Value::Object(n)) => {
            let part = |k: &str| match n.get(k) {
                None | Some(Value::Null) => Ok(String::new()),
                Some(Value::String(s)) => Ok(s.clone()),
                Some(_) => Err(format!("name.{k} must be a string")),
            };
            json!({"first": part("first")?, "middle": part("middle")?, "last": part("last")?})
        }
        Some(_) => return Err("name must be an object {first, middle, last}".into()),
    };
    let emails = channel_list(body.get("emails"), "emails", "address", |a| {
        super::valid_email(a)
    })?;
    // magicblocks.txt example phones are E.164 ("+61412345678").
    let phones = channel_list(body.get("phones"), "phones", "number", |n| {
        n.starts_with('+')
            && n.len() >= 8
            && n.len() <= 16
            && n[1..].chars().all(|c| c.is_ascii_digit())
    })?;
    // The request key is `custom`; the response key is `customFields`.
    let custom = match body.get("custom") {
        None | Some(Value::Null) => json!({}),
        Some(Value::Object(c)) => Value::Object(c.clone()),
        Some(_) => return Err("custom must be an object".into()),
    };
    let is_test = match body.get("isTest") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err("isTest must be a boolean".into()),
    };
    let knowledge = match body.get("userKnowledge") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err("userKnowledge must be a string".into()),
    };
    // `sendMessageEvents`, `flowEditorName`, `flowEditorLink` trigger agent flows upstream;
    // they are accepted and not stored.

    let generated = generated_name(&name, &emails, &phones);
    let obj = record.as_object_mut().expect("a record is an object");
    obj.insert("name".into(), name);
    obj.insert("generatedName".into(), generated);
    obj.insert("emails".into(), Value::Array(emails.clone()));
    match primary(&emails) {
        Some(p) => obj.insert("primaryEmail".into(), p),
        None => obj.remove("primaryEmail"),
    };
    obj.insert("phones".into(), Value::Array(phones.clone()));
    match primary(&phones) {
        Some(p) => obj.insert("primaryPhone".into(), p),
        None => obj.remove("primaryPhone"),
    };
    obj.insert("isTest".into(), Value::Bool(is_test));
    obj.insert("userKnowledge".into(), Value::String(knowledge));
    obj.insert("customFields".into(), custom);
    Ok(())
}

fn flat_to_nested(body: &Map<String, Value>) -> Result<Map<String, Value>, String> {
    let text = |k: &str| match body.get(k) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(format!("{k} must be a string")),
    };
    let email = text("email")?;
    let mut nested = Map::new();
    nested.insert(
        "name".into(),
        json!({"first": text("first_name")?, "middle": "", "last": text("last_name")?}),
    );
    if !email.is_empty() {
        nested.insert(
            "emails".into(),
            json!([{"address": email, "type": "work", "primary": true}]),
        );
    }
    Ok(nested)
}

/// `emails` / `phones`: arrays of `{<key>: string, type: string, primary: bool}`.
fn channel_list(
    value: Option<&Value>,
    field: &str,
    key: &str,
    valid: impl Fn(&str) -> bool,
) -> Result<Vec<Value>, String> {
    let items = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(format!("{field} must be an array")),
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let text = item[key]
                .as_str()
                .ok_or_else(|| format!("{field}[{i}].{key} is required"))?;
            if !valid(text) {
                return Err(format!("{field}[{i}].{key} `{text}` is not valid"));
            }
            let kind = match &item["type"] {
                Value::Null => "other",
                Value::String(s) => s.as_str(),
                _ => return Err(format!("{field}[{i}].type must be a string")),
            };
            let primary = match &item["primary"] {
                Value::Null => false,
                Value::Bool(b) => *b,
                _ => return Err(format!("{field}[{i}].primary must be a boolean")),
            };
            Ok(json!({ key: text, "type": kind, "primary": primary }))
        })
        .collect()
}

/// The item flagged primary, else the first.
fn primary(items: &[Value]) -> Option<Value> {
    items
        .iter()
        .find(|i| i["primary"] == true)
        .or_else(|| items.first())
        .cloned()
}

/// `generatedName`: the name when it has any part; otherwise one made from the email's local
/// part, or "Visitor <last four digits>" for an anonymous contact.
fn generated_name(name: &Value, emails: &[Value], phones: &[Value]) -> Value {
    let has_name = ["first", "middle", "last"]
        .iter()
        .any(|k| name[*k].as_str().is_some_and(|s| !s.is_empty()));
    if has_name {
        return name.clone();
    }
    if let Some(local) = primary(emails).and_then(|e| {
        e["address"]
            .as_str()
            .and_then(|a| a.split('@').next())
            .map(str::to_string)
    }) {
        let mut chars = local.chars();
        let first = chars
            .next()
            .map(|c| c.to_uppercase().chain(chars).collect::<String>())
            .unwrap_or_default();
        return json!({"first": first, "middle": "", "last": ""});
    }
    let tail = primary(phones)
        .and_then(|p| {
            p["number"]
                .as_str()
                .map(|n| n[n.len().saturating_sub(4)..].to_string())
        })
        .unwrap_or_default();
    json!({"first": "Visitor", "middle": "", "last": tail})
}

/// The key of `Authorization: Bearer <key>`.
fn bearer_key(headers: &axum::http::HeaderMap) -> Option<String> {
    header(headers, "authorization")?
        .strip_prefix("Bearer ")
        .map(str::to_string)
}

/// Echo mode: errors (undocumented bodies) come as text carrying the key across the 300th
/// character; each record carries it in `name.last`, JSON-escaped in `userKnowledge` and
/// percent-encoded in `customFields.echo`.
fn echo(key: &str, status: StatusCode, mut answer: Value) -> Echoed {
    if status.is_client_error() || status.is_server_error() {
        let message = answer["message"].as_str().unwrap_or("error").to_string();
        return Echoed::Text(straddling_message(&message, key));
    }
    let records: Vec<&mut Value> = match answer.get_mut("data") {
        Some(Value::Array(items)) => items.iter_mut().collect(),
        _ => vec![&mut answer],
    };
    for record in records.into_iter().filter(|r| r.get("id").is_some()) {
        record["name"]["last"] = json!(key);
        record["userKnowledge"] = json!(format!("noted: {JSON_ESCAPED_KEY}"));
        if let Some(custom) = record["customFields"].as_object_mut() {
            custom.insert("echo".into(), json!(percent_encoded(key)));
        }
    }
    Echoed::Json(answer)
}
