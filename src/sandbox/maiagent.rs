//! MaiAgent simulator, from maiagent.txt and NOTES §4 / Decision 4. A Django REST Framework
//! service, so it behaves like one where the document is silent.
//!
//! - Auth `Authorization: Api-Key <key>`; missing or invalid key → 401
//!   `{"detail": "Authentication credentials were not provided."}`, another scheme (Bearer…)
//!   → 401 `{"detail": "Invalid API key format."}`.
//! - Every path ends in `/`; the same path without it → 404.
//! - `GET /api/contacts/?page=&pageSize=&query=&search=&inboxes=&inbox=` →
//!   `{"count","next","previous","results":[[...]]}`: results nested one level and links on
//!   `http://api.example.org`, both as in the document's example. Default `pageSize` 10, at
//!   most 100; a page past the end → 404 `{"detail": "Invalid page."}`.
//! - `POST /api/contacts/` → 201; `GET/PUT/PATCH/DELETE /api/contacts/{id}/`; DELETE → 204,
//!   or 400 while the contact still has conversations.
//! - `phoneNumber` is served as a JSON integer of national digits; `createdAt`/`updatedAt`
//!   as epoch-millisecond strings.

use super::control::{
    percent_encoded, straddling_message, Echo, Echoed, SimControl, JSON_ESCAPED_KEY,
};
use super::{body_object, contains_ci, digits, header, json, lock, now_millis, seed};
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Page size when the client sends no `pageSize`.
pub const DEFAULT_PAGE_SIZE: usize = 10;
pub const MAX_PAGE_SIZE: usize = 100;
/// maiagent.txt's example links: "next": "http://api.example.org/accounts/?page=4".
const LINK_ORIGIN: &str = "http://api.example.org";

struct Entry {
    record: Value,
    /// Conversations held by the contact: internal, not served. DELETE refuses while > 0.
    conversations: u32,
}

struct Store {
    contacts: Vec<Entry>,
    next_id: u64,
}

type Shared = Arc<Mutex<Store>>;

/// This simulator, as the sandbox runs it.
/// MaiAgent's seeded phones are Taiwanese national digits.
pub const SIMULATOR: super::Simulator = super::Simulator {
    build,
    api_key: "sbx_mai_8Ry2Dv5Xh3Lq7Wm1",
    settings: &[],
    region: Some("TW"),
};

fn build() -> (Router, Arc<SimControl>) {
    let contacts: Vec<Entry> = seed::maiagent()
        .into_iter()
        .map(|(record, conversations)| Entry {
            record,
            conversations,
        })
        .collect();
    let store: Shared = Arc::new(Mutex::new(Store {
        contacts,
        next_id: 1001,
    }));
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
            received: |headers| {
                header(headers, "authorization")?
                    .strip_prefix("Api-Key ")
                    .map(|k| k.trim().to_string())
            },
            answer: echo,
        }),
    );
    let router = Router::new()
        .route("/api/contacts/", get(list).post(create))
        .route(
            "/api/contacts/{id}/",
            get(get_one).put(update).patch(update).delete(delete),
        )
        // Decision 4: every path ends in `/`; `/api/contacts` and `/api/contacts/{id}` land here.
        .fallback(|| async { error(StatusCode::NOT_FOUND, "Not found.") })
        .method_not_allowed_fallback(|req: Request| async move {
            error(
                StatusCode::METHOD_NOT_ALLOWED,
                &format!("Method \"{}\" not allowed.", req.method()),
            )
        })
        .layer(middleware::from_fn(auth))
        .with_state(store);
    (router, control)
}

/// DRF style: `{"detail": "..."}`.
pub(super) fn error(status: StatusCode, message: &str) -> Response {
    json(status, json!({ "detail": message }))
}

/// A DRF validation error: `{"field": ["message"]}`.
fn field_error(field: &str, message: &str) -> Response {
    json(StatusCode::BAD_REQUEST, json!({ field: [message] }))
}

/// maiagent.txt / NOTES 4.1: `Authorization: Api-Key <key>`.
async fn auth(req: Request, next: Next) -> Response {
    let expected = super::api_key(crate::contact::ProviderId::Maiagent);
    match header(req.headers(), "authorization") {
        None => error(
            StatusCode::UNAUTHORIZED,
            "Authentication credentials were not provided.",
        ),
        Some(value) => match value.strip_prefix("Api-Key ") {
            Some(key) if key.trim() == expected => next.run(req).await,
            Some(_) => error(
                StatusCode::UNAUTHORIZED,
                "Authentication credentials were not provided.",
            ),
            None => error(StatusCode::UNAUTHORIZED, "Invalid API key format."),
        },
    }
}

/// A DRF page link on the document's foreign host, keeping the other query parameters.
fn link(params: &HashMap<String, String>, page: usize) -> String {
    let mut keys: Vec<&String> = params.keys().filter(|k| k.as_str() != "page").collect();
    keys.sort();
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for k in keys {
        query.append_pair(k, &params[k]);
    }
    // DRF drops `page` from the link to the first page.
    if page > 1 {
        query.append_pair("page", &page.to_string());
    }
    let query = query.finish();
    if query.is_empty() {
        format!("{LINK_ORIGIN}/api/contacts/")
    } else {
        format!("{LINK_ORIGIN}/api/contacts/?{query}")
    }
}

/// maiagent.txt list: `query` searches name or sourceId, `search` is full text (name, email,
/// phone digits, sourceId), `inboxes` (or the deprecated `inbox`) filters by inbox id.
async fn list(State(store): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    // DRF: an invalid or out-of-range pageSize falls back to the default / the maximum.
    let page_size = q
        .get("pageSize")
        .and_then(|s| s.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
        .map_or(DEFAULT_PAGE_SIZE, |n| n.min(MAX_PAGE_SIZE));
    // DRF: a page that is not a positive integer is "Invalid page." (404).
    let page = match q.get("page").map(|p| p.trim()) {
        None | Some("") => 1,
        Some(p) => match p.parse::<usize>() {
            Ok(n) if n >= 1 => n,
            _ => return error(StatusCode::NOT_FOUND, "Invalid page."),
        },
    };
    let name_query = q
        .get("query")
        .map(|s| s.trim().to_lowercase())
        .filter(|s| !s.is_empty());
    let search = q
        .get("search")
        .map(|s| s.trim().to_lowercase())
        .filter(|s| !s.is_empty());
    let inbox = q
        .get("inboxes")
        .or_else(|| q.get("inbox"))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());

    let store = lock(&store);
    let found: Vec<&Value> = store
        .contacts
        .iter()
        .map(|e| &e.record)
        .filter(|r| {
            let text = |k: &str| r[k].as_str().unwrap_or("").to_string();
            let query_ok = name_query
                .as_ref()
                .is_none_or(|t| contains_ci(&text("name"), t) || contains_ci(&text("sourceId"), t));
            let search_ok = search.as_ref().is_none_or(|t| {
                let t_digits = digits(t);
                contains_ci(&text("name"), t)
                    || contains_ci(&text("email"), t)
                    || contains_ci(&text("sourceId"), t)
                    || (!t_digits.is_empty() && r["phoneNumber"].to_string().contains(&t_digits))
            });
            let inbox_ok = inbox.as_ref().is_none_or(|id| {
                r["inboxes"]
                    .as_array()
                    .is_some_and(|list| list.iter().any(|i| i["id"].as_str() == Some(id.as_str())))
            });
            query_ok && search_ok && inbox_ok
        })
        .collect();
    let count = found.len();
    let pages = count.div_ceil(page_size).max(1);
    if page > pages {
        return error(StatusCode::NOT_FOUND, "Invalid page.");
    }
    let results: Vec<Value> = found
        .into_iter()
        .skip((page - 1) * page_size)
        .take(page_size)
        .cloned()
        .collect();
    json(
        StatusCode::OK,
        json!({
            "count": count,
            "next": (page < pages).then(|| link(&q, page + 1)),
            "previous": (page > 1).then(|| link(&q, page - 1)),
            // maiagent.txt example: "results": [[ {...}, {...} ]] (nested one level).
            "results": [results],
        }),
    )
}

async fn get_one(State(store): State<Shared>, Path(id): Path<String>) -> Response {
    match lock(&store)
        .contacts
        .iter()
        .find(|e| e.record["id"] == id.as_str())
    {
        Some(e) => json(StatusCode::OK, e.record.clone()),
        None => error(StatusCode::NOT_FOUND, "Not found."),
    }
}

/// The phone as served: an integer of national digits. maiagent.txt examples send and serve
/// `"phoneNumber": 912345678`; the schema says string, so a string is accepted too. An
/// international string ("+886912345678") keeps its national number; other strings keep
/// their digits (a trunk 0 disappears, as it does in an integer).
fn phone_value(value: &Value) -> Result<Value, &'static str> {
    match value {
        Value::Null => Ok(Value::Null),
        Value::Number(n) => n
            .as_u64()
            .map(Value::from)
            .ok_or("A valid integer is required."),
        Value::String(s) if s.trim().is_empty() => Ok(Value::Null),
        Value::String(s) if s.trim().starts_with('+') => crate::phone::normalize(s, None)
            .map(|n| Value::from(n.national_number))
            .ok_or("Enter a valid phone number."),
        Value::String(s) => {
            let d = digits(s);
            if d.is_empty() || s.chars().any(|c| c.is_alphabetic()) {
                return Err("A valid integer is required.");
            }
            d.parse::<u64>()
                .map(Value::from)
                .map_err(|_| "A valid integer is required.")
        }
        _ => Err("A valid integer is required."),
    }
}

/// Applies the writable fields of a body to `record` (only the keys present).
/// maiagent.txt: `name`, `inboxes[{id}]`, `inbox{id}`, `avatar`, `sourceId`, `queryMetadata`;
/// the request examples also send `phoneNumber` and `email`, which are stored.
fn apply(record: &mut Map<String, Value>, body: &Map<String, Value>) -> Result<(), Response> {
    for key in ["name", "avatar", "sourceId"] {
        match body.get(key) {
            None => {}
            Some(Value::String(s)) => {
                if key == "name" && s.trim().is_empty() {
                    return Err(field_error(key, "This field may not be blank."));
                }
                record.insert(key.into(), json!(s));
            }
            Some(Value::Null) if key != "name" => {
                record.insert(key.into(), Value::Null);
            }
            Some(_) => return Err(field_error(key, "Not a valid string.")),
        }
    }
    if let Some(v) = body.get("queryMetadata") {
        // Schema: string on writes, "object" on reads; examples: a string or null. Kept as sent.
        record.insert("queryMetadata".into(), v.clone());
    }
    match body.get("email") {
        None => {}
        Some(Value::Null) => {
            record.insert("email".into(), Value::Null);
        }
        Some(Value::String(s)) if s.trim().is_empty() => {
            record.insert("email".into(), Value::Null);
        }
        Some(Value::String(s)) if super::valid_email(s) => {
            record.insert("email".into(), json!(s.trim()));
        }
        Some(_) => return Err(field_error("email", "Enter a valid email address.")),
    }
    if let Some(v) = body.get("phoneNumber") {
        let phone = phone_value(v).map_err(|m| field_error("phoneNumber", m))?;
        record.insert("phoneNumber".into(), phone);
    }
    // `inbox` is the old single form, "ignored if inboxes is also provided".
    let inboxes = match (body.get("inboxes"), body.get("inbox")) {
        (Some(v), _) => Some(
            v.as_array()
                .cloned()
                .ok_or_else(|| field_error("inboxes", "Expected a list of items."))?,
        ),
        (None, Some(Value::Null)) => None,
        (None, Some(v)) => Some(vec![v.clone()]),
        (None, None) => None,
    };
    if let Some(items) = inboxes {
        let mut resolved = Vec::new();
        for item in items {
            let id = item["id"].as_str().unwrap_or("");
            let Some((id, name)) = seed::MAIAGENT_INBOXES.iter().find(|(i, _)| *i == id) else {
                return Err(field_error(
                    "inboxes",
                    &format!("Invalid pk \"{id}\" - object does not exist."),
                ));
            };
            resolved.push(json!({"id": id, "name": name}));
        }
        record.insert("inboxes".into(), Value::Array(resolved));
    }
    Ok(())
}

/// maiagent.txt create: 201 with the contact.
async fn create(State(store): State<Shared>, body: Bytes) -> Response {
    let body = match body_object(&body) {
        Ok(b) => b,
        Err(m) => return error(StatusCode::BAD_REQUEST, &m),
    };
    if !body.get("name").is_some_and(Value::is_string) {
        return field_error("name", "This field is required.");
    }
    let now = now_millis().to_string();
    let mut store = lock(&store);
    let mut record = Map::new();
    record.insert("id".into(), json!(seed::maiagent_id(store.next_id)));
    record.insert("inboxes".into(), json!([]));
    for key in [
        "name",
        "avatar",
        "phoneNumber",
        "email",
        "sourceId",
        "queryMetadata",
    ] {
        record.insert(
            key.into(),
            if key == "avatar" {
                json!("")
            } else {
                Value::Null
            },
        );
    }
    if let Err(r) = apply(&mut record, &body) {
        return r;
    }
    record.insert("createdAt".into(), json!(now));
    record.insert("updatedAt".into(), json!(now));
    store.next_id += 1;
    let record = Value::Object(record);
    store.contacts.push(Entry {
        record: record.clone(),
        conversations: 0,
    });
    (StatusCode::CREATED, axum::Json(record)).into_response()
}

/// maiagent.txt PUT and PATCH have the same table, every field optional; both update only
/// the fields given (NOTES 4.5.6).
async fn update(State(store): State<Shared>, Path(id): Path<String>, body: Bytes) -> Response {
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
        return error(StatusCode::NOT_FOUND, "Not found.");
    };
    let mut record = entry.record.as_object().cloned().unwrap_or_default();
    if let Err(r) = apply(&mut record, &body) {
        return r;
    }
    record.insert("updatedAt".into(), json!(now_millis().to_string()));
    entry.record = Value::Object(record);
    json(StatusCode::OK, entry.record.clone())
}

/// maiagent.txt delete: 204 no body; 400 "The contact still has associated conversations and
/// cannot be deleted".
async fn delete(State(store): State<Shared>, Path(id): Path<String>) -> Response {
    let mut store = lock(&store);
    let Some(index) = store
        .contacts
        .iter()
        .position(|e| e.record["id"] == id.as_str())
    else {
        return error(StatusCode::NOT_FOUND, "Not found.");
    };
    if store.contacts[index].conversations > 0 {
        return error(
            StatusCode::BAD_REQUEST,
            "The contact still has associated conversations and cannot be deleted.",
        );
    }
    store.contacts.remove(index);
    StatusCode::NO_CONTENT.into_response()
}

/// Echo mode: `detail` (and field messages) carry the key across the 300th character; each
/// record carries it in `name`, JSON-escaped in `queryMetadata` and percent-encoded in
/// `sourceId`.
fn echo(key: &str, status: StatusCode, mut answer: Value) -> Echoed {
    if status.is_client_error() || status.is_server_error() {
        if let Some(fields) = answer.as_object_mut() {
            for said in fields.values_mut() {
                let text = match &*said {
                    Value::Array(items) => items.first().and_then(Value::as_str),
                    other => other.as_str(),
                }
                .unwrap_or("error")
                .to_string();
                *said = json!(straddling_message(&text, key));
            }
        }
        return Echoed::Json(answer);
    }
    let records: Vec<&mut Value> = match answer.get_mut("results") {
        Some(Value::Array(pages)) => pages
            .iter_mut()
            .filter_map(Value::as_array_mut)
            .flatten()
            .collect(),
        _ => vec![&mut answer],
    };
    for record in records.into_iter().filter(|r| r.get("id").is_some()) {
        record["name"] = json!(format!("Echo {key}"));
        record["queryMetadata"] = json!(format!("noted: {JSON_ESCAPED_KEY}"));
        record["sourceId"] = json!(percent_encoded(key));
    }
    Echoed::Json(answer)
}
