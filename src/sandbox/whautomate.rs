//! Whautomate simulator, from whautomate.txt and NOTES §3 / Decision 3.
//!
//! - Auth header `x-api-key: <key>`.
//! - `GET /v1/contacts?page=&limit=&searchText=&tags=&locationId=&channel=` → a bare JSON
//!   array (1-based pages, no total; a short page is the last). Default `limit` 10, at most 100.
//! - `POST /v1/contacts` (200, as documented), `GET/PUT/DELETE /v1/contacts/{id}`; PUT
//!   replaces the record and needs `name` and `phoneNumber`.
//! - `POST /v1/contacts/{id}/tags/add` and `/tags/remove`, body `{"tags": [..]}` → `{id, tags}`.
//! - An account may require a `location` on create (NOTES 3.5.3; off unless
//!   `WHAUTOMATE_LOCATION_REQUIRED` is set): a create without one is a 400.
//! - Contacts have no email field. Some seeded records carry `tags`/`customFields` as
//!   JSON-encoded strings (the webhook quirk).
//! - Error bodies are not documented; the `proxy` path parameter hints at AWS API Gateway,
//!   whose style `{"message": "..."}` is used here.

use super::control::{
    percent_encoded, straddling_message, Echo, Echoed, SimControl, JSON_ESCAPED_KEY,
};
use super::{body_object, contains_ci, digits, header, json, lock, now_iso, seed, uint_param};
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Page size when the client sends no `limit`.
pub const DEFAULT_LIMIT: usize = 10;
pub const MAX_LIMIT: usize = 100;

struct Entry {
    record: Value,
    /// The webhook payload's `channel` ("Whatsapp", "Instagram", …); filterable, not served
    /// (the REST contact schema has no such field).
    channel: String,
}

struct Store {
    contacts: Vec<Entry>,
    next_id: u64,
}

type Shared = Arc<Mutex<Store>>;

/// This simulator, as the sandbox runs it.
pub const SIMULATOR: super::Simulator = super::Simulator {
    build,
    api_key: "sbx_wha_3Kc7Nf1Sb9Ue4Gp6",
    settings: &[],
    region: None,
};

fn build() -> (Router, Arc<SimControl>) {
    let contacts: Vec<Entry> = seed::whautomate()
        .into_iter()
        .map(|(record, channel)| Entry {
            record,
            channel: channel.to_string(),
        })
        .collect();
    let next_id = contacts.len() as u64 + 1;
    let store: Shared = Arc::new(Mutex::new(Store { contacts, next_id }));
    let reader = store.clone();
    let control = Arc::new(
        SimControl::new(
            Box::new(move || {
                lock(&reader)
                    .contacts
                    .iter()
                    .map(|e| e.record.clone())
                    .collect()
            }),
            error,
            None,
        )
        .echoing(Echo {
            received: |headers| header(headers, "x-api-key").map(str::to_string),
            answer: echo,
        }),
    );
    let router = Router::new()
        .route("/v1/contacts", get(list).post(create))
        .route(
            "/v1/contacts/{id}",
            get(get_one).put(replace).delete(delete),
        )
        .route("/v1/contacts/{id}/tags/add", post(add_tags))
        .route("/v1/contacts/{id}/tags/remove", post(remove_tags))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "Not Found") })
        .method_not_allowed_fallback(|| async {
            error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
        })
        .layer(middleware::from_fn(auth))
        .layer(Extension(control.clone()))
        .with_state(store);
    (router, control)
}

pub(super) fn error(status: StatusCode, message: &str) -> Response {
    json(status, json!({ "message": message }))
}

/// whautomate.txt: header parameter `x-api-key` (required) on every operation.
async fn auth(req: Request, next: Next) -> Response {
    let expected = super::api_key(crate::contact::ProviderId::Whautomate);
    match header(req.headers(), "x-api-key") {
        Some(key) if key == expected => next.run(req).await,
        _ => error(StatusCode::UNAUTHORIZED, "Unauthorized"),
    }
}

/// Tags as a list, whether stored as an array or as a JSON-encoded string.
fn tags_of(record: &Value) -> Vec<String> {
    let decoded;
    let value = match &record["tags"] {
        Value::String(s) => {
            decoded = serde_json::from_str::<Value>(s).unwrap_or(Value::Null);
            &decoded
        }
        v => v,
    };
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str().map(str::to_string))
        .collect()
}

/// whautomate.txt search: query parameters `page`, `limit`, `searchText`, `tags`,
/// `locationId`, `channel` (all typed string). `searchText` is a case-insensitive substring
/// of the name, or (when it has digits) of the phone number's digits; `tags` is a comma list
/// the contact must hold all of.
async fn list(State(store): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let page = match uint_param(q.get("page"), "page") {
        Ok(None) => 1,
        Ok(Some(0)) => return error(StatusCode::BAD_REQUEST, "page starts at 1"),
        Ok(Some(n)) => n,
        Err(m) => return error(StatusCode::BAD_REQUEST, &m),
    };
    let limit = match uint_param(q.get("limit"), "limit") {
        Ok(None) => DEFAULT_LIMIT,
        Ok(Some(0)) => return error(StatusCode::BAD_REQUEST, "limit must be at least 1"),
        Ok(Some(n)) => n.min(MAX_LIMIT),
        Err(m) => return error(StatusCode::BAD_REQUEST, &m),
    };
    let text = q
        .get("searchText")
        .map(|s| s.trim().to_lowercase())
        .unwrap_or_default();
    let text_digits = digits(&text);
    let wanted_tags: Vec<&str> = q
        .get("tags")
        .map(|t| {
            t.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let location = q
        .get("locationId")
        .map(|l| l.trim())
        .filter(|l| !l.is_empty());
    let channel = q
        .get("channel")
        .map(|c| c.trim().to_lowercase())
        .filter(|c| !c.is_empty());

    let store = lock(&store);
    let found: Vec<Value> = store
        .contacts
        .iter()
        .filter(|e| {
            let r = &e.record;
            let text_ok = text.is_empty()
                || contains_ci(r["name"].as_str().unwrap_or(""), &text)
                || (!text_digits.is_empty()
                    && digits(r["phoneNumber"].as_str().unwrap_or("")).contains(&text_digits));
            let tags = tags_of(r);
            let tags_ok = wanted_tags.iter().all(|w| tags.iter().any(|t| t == w));
            let location_ok = location.is_none_or(|l| r["location"]["id"].as_str() == Some(l));
            let channel_ok = channel
                .as_ref()
                .is_none_or(|c| e.channel.to_lowercase() == *c);
            text_ok && tags_ok && location_ok && channel_ok
        })
        .skip((page - 1).saturating_mul(limit))
        .take(limit)
        .map(|e| e.record.clone())
        .collect();
    json(StatusCode::OK, Value::Array(found))
}

async fn get_one(State(store): State<Shared>, Path(id): Path<String>) -> Response {
    match lock(&store)
        .contacts
        .iter()
        .find(|e| e.record["id"] == id.as_str())
    {
        Some(e) => json(StatusCode::OK, e.record.clone()),
        None => not_found(&id),
    }
}

fn not_found(id: &str) -> Response {
    error(StatusCode::NOT_FOUND, &format!("Contact {id} not found"))
}

/// Builds a whole record from a create/replace body. whautomate.txt: `name` and
/// `phoneNumber` are required; `stage`, `notes`, `customFields`, `tags` optional; the example
/// body also carries `location{id,title}`. There is no email field: an `email` key is ignored.
fn record_from(
    body: &serde_json::Map<String, Value>,
    id: &str,
    created_at: &str,
) -> Result<Value, String> {
    let required = |k: &str| match body.get(k) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        Some(Value::String(_)) | None | Some(Value::Null) => Err(format!("{k} is required")),
        Some(_) => Err(format!("{k} must be a string")),
    };
    let name = required("name");
    let phone = required("phoneNumber");
    if let (Err(_), Err(_)) = (&name, &phone) {
        return Err("name and phoneNumber are required".into());
    }
    let (name, phone) = (name?, phone?);
    let optional_text = |k: &str| match body.get(k) {
        None | Some(Value::Null) => Ok(Value::Null),
        Some(Value::String(s)) => Ok(json!(s)),
        Some(_) => Err(format!("{k} must be a string")),
    };
    let location = match body.get("location") {
        None | Some(Value::Null) => Value::Null,
        Some(Value::Object(l)) => {
            let Some(lid) = l.get("id").and_then(Value::as_str) else {
                return Err("location.id is required".into());
            };
            let title = l
                .get("title")
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| {
                    seed::WHAUTOMATE_LOCATIONS
                        .iter()
                        .find(|(i, _)| *i == lid)
                        .map(|(_, t)| t.to_string())
                });
            json!({"id": lid, "title": title})
        }
        Some(_) => return Err("location must be an object {id, title}".into()),
    };
    let custom = match body.get("customFields") {
        None | Some(Value::Null) => json!({}),
        Some(v @ Value::Object(_)) => v.clone(),
        Some(_) => return Err("customFields must be an object".into()),
    };
    let tags = match body.get("tags") {
        None | Some(Value::Null) => json!([]),
        Some(Value::Array(t)) if t.iter().all(Value::is_string) => json!(t),
        Some(_) => return Err("tags must be an array of strings".into()),
    };
    Ok(json!({
        "id": id,
        "name": name,
        "phoneNumber": phone,
        "location": location,
        "stage": optional_text("stage")?,
        "notes": optional_text("notes")?,
        "customFields": custom,
        "tags": tags,
        "createdAt": created_at,
        "updatedAt": now_iso(),
    }))
}

/// whautomate.txt create: 200 with the contact. A body `id` is used when free (the schema
/// lists it as optional), else one is generated. An account that requires a location refuses
/// a body without one.
async fn create(
    State(store): State<Shared>,
    Extension(control): Extension<Arc<SimControl>>,
    body: Bytes,
) -> Response {
    let body = match body_object(&body) {
        Ok(b) => b,
        Err(m) => return error(StatusCode::BAD_REQUEST, &m),
    };
    let located = body.get("location").is_some_and(|l| !l.is_null());
    if !located && control.account_setting(super::WHAUTOMATE_LOCATION_REQUIRED) {
        return error(StatusCode::BAD_REQUEST, "location is required");
    }
    let mut store = lock(&store);
    let id = match body
        .get("id")
        .and_then(Value::as_str)
        .filter(|i| !i.is_empty())
    {
        Some(id) if store.contacts.iter().any(|e| e.record["id"] == id) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("Contact {id} already exists"),
            )
        }
        Some(id) => id.to_string(),
        None => seed::whautomate_id(store.next_id),
    };
    let record = match record_from(&body, &id, &now_iso()) {
        Ok(r) => r,
        Err(m) => return error(StatusCode::BAD_REQUEST, &m),
    };
    store.next_id += 1;
    let channel = body
        .get("channel")
        .and_then(Value::as_str)
        .unwrap_or("Whatsapp")
        .to_string();
    store.contacts.push(Entry {
        record: record.clone(),
        channel,
    });
    json(StatusCode::OK, record)
}

/// whautomate.txt update: PUT with `name` and `phoneNumber` required; the body replaces the
/// record (fields left out are cleared). The path id wins over a body `id`.
async fn replace(State(store): State<Shared>, Path(id): Path<String>, body: Bytes) -> Response {
    let body = match body_object(&body) {
        Ok(b) => b,
        Err(m) => return error(StatusCode::BAD_REQUEST, &m),
    };
    let mut store = lock(&store);
    let Some(entry) = store
        .contacts
        .iter_mut()
        .find(|e| e.record["id"] == id.as_str())
    else {
        return not_found(&id);
    };
    let created = entry.record["createdAt"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    match record_from(&body, &id, &created) {
        Ok(record) => {
            entry.record = record.clone();
            json(StatusCode::OK, record)
        }
        Err(m) => error(StatusCode::BAD_REQUEST, &m),
    }
}

/// whautomate.txt delete: 200 `{"success": true}`.
async fn delete(State(store): State<Shared>, Path(id): Path<String>) -> Response {
    let mut store = lock(&store);
    let before = store.contacts.len();
    store.contacts.retain(|e| e.record["id"] != id.as_str());
    if store.contacts.len() == before {
        return not_found(&id);
    }
    json(StatusCode::OK, json!({ "success": true }))
}

async fn add_tags(state: State<Shared>, id: Path<String>, body: Bytes) -> Response {
    change_tags(state, id, body, true)
}

async fn remove_tags(state: State<Shared>, id: Path<String>, body: Bytes) -> Response {
    change_tags(state, id, body, false)
}

/// Tag add/remove: body `{"tags": ["a","b"]}` (Decision 3; a comma string is accepted too),
/// answer `{id, tags}`. The stored tags become a JSON array.
fn change_tags(
    State(store): State<Shared>,
    Path(id): Path<String>,
    body: Bytes,
    add: bool,
) -> Response {
    let body = match body_object(&body) {
        Ok(b) => b,
        Err(m) => return error(StatusCode::BAD_REQUEST, &m),
    };
    let given: Vec<String> = match body.get("tags") {
        Some(Value::Array(t)) if t.iter().all(Value::is_string) => t
            .iter()
            .filter_map(Value::as_str)
            .map(|s| s.trim().to_string())
            .collect(),
        Some(Value::String(s)) => s.split(',').map(|t| t.trim().to_string()).collect(),
        _ => return error(StatusCode::BAD_REQUEST, "tags must be an array of strings"),
    };
    let given: Vec<String> = given.into_iter().filter(|t| !t.is_empty()).collect();
    let mut store = lock(&store);
    let Some(entry) = store
        .contacts
        .iter_mut()
        .find(|e| e.record["id"] == id.as_str())
    else {
        return not_found(&id);
    };
    let mut tags = tags_of(&entry.record);
    if add {
        for t in given {
            if !tags.contains(&t) {
                tags.push(t);
            }
        }
    } else {
        tags.retain(|t| !given.contains(t));
    }
    entry.record["tags"] = json!(tags);
    entry.record["updatedAt"] = json!(now_iso());
    json(StatusCode::OK, json!({ "id": id, "tags": tags }))
}

/// Echo mode: `message` carries the key across the 300th character; each record carries it
/// in `name` and `tags`, JSON-escaped in `notes` and percent-encoded in `customFields.echo`.
fn echo(key: &str, status: StatusCode, mut answer: Value) -> Echoed {
    if status.is_client_error() || status.is_server_error() {
        let said = answer["message"].as_str().unwrap_or("error").to_string();
        answer["message"] = json!(straddling_message(&said, key));
        return Echoed::Json(answer);
    }
    let records: Vec<&mut Value> = match &mut answer {
        Value::Array(items) => items.iter_mut().collect(),
        record => vec![record],
    };
    for record in records
        .into_iter()
        .filter(|r| r.get("phoneNumber").is_some())
    {
        record["name"] = json!(format!("Echo {key}"));
        record["notes"] = json!(format!("noted: {JSON_ESCAPED_KEY}"));
        if let Some(tags) = record["tags"].as_array_mut() {
            tags.push(json!(key));
        }
        if let Some(custom) = record["customFields"].as_object_mut() {
            custom.insert("echo".into(), json!(percent_encoded(key)));
        }
    }
    Echoed::Json(answer)
}
