//! Consuelo simulator, from consuelo.txt and NOTES §2 / Decision 2.
//!
//! - Auth `Authorization: Bearer <key>` (a static API key; Decision 2).
//! - `GET /v1/contacts?workspaceId=&limit=&offset=` → `{"data":[...],"meta":{"total","hasMore"}}`;
//!   default `limit` 10, at most 100.
//! - `POST /v1/contacts` (body carries `workspaceId`) → 201; `GET/PATCH/DELETE /v1/contacts/{id}`,
//!   single records wrapped as `{"data":{...}}`.
//! - `POST /v1/contacts/search` (JSON body); `GET /v1/contacts/search` → 405.
//! - `POST /v1/contacts/normalize`, `POST /v1/dnc`.
//! - Errors `{"error":{"code","message"}}`; every response carries `X-RateLimit-*`.

use super::control::{straddling_message, Echo, Echoed, SimControl, JSON_ESCAPED_KEY};
use super::{body_object, contains_ci, digits, header, json, lock, now_iso, seed, uint_param};
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Page size when the client sends no `limit`.
pub const DEFAULT_LIMIT: usize = 10;
pub const MAX_LIMIT: usize = 100;
/// NOTES 2.4: Enterprise plan, 1,000 requests a minute. Reported, not enforced.
const RATE_LIMIT: u64 = 1000;

struct Store {
    contacts: Vec<Value>,
    dnc: Vec<Value>,
    next_id: u64,
}

type Shared = Arc<Mutex<Store>>;

/// This simulator, as the sandbox runs it.
pub const SIMULATOR: super::Simulator = super::Simulator {
    build,
    api_key: "sbx_cns_5Hx8Pd2Qm6Yt1Ja7",
    settings: &[("workspace_id", super::CONSUELO_WORKSPACE_ID)],
    region: None,
};

fn build() -> (Router, Arc<SimControl>) {
    let store: Shared = Arc::new(Mutex::new(Store {
        contacts: seed::consuelo(),
        dnc: Vec::new(),
        next_id: 2001,
    }));
    let reader = store.clone();
    // (window start in unix minutes, requests in that window)
    let window = Mutex::new((0i64, 0u64));
    let control = Arc::new(
        SimControl::new(
            Box::new(move || lock(&reader).contacts.clone()),
            error,
            Some(Box::new(move |headers: &mut HeaderMap, limited: bool| {
                rate_limit_headers(&window, headers, limited)
            })),
        )
        .echoing(Echo {
            received: |headers| {
                header(headers, "authorization")?
                    .strip_prefix("Bearer ")
                    .map(str::to_string)
            },
            answer: echo,
        }),
    );
    let router = Router::new()
        .route("/v1/contacts", get(list).post(create))
        .route("/v1/contacts/search", post(search).get(search_get))
        .route("/v1/contacts/normalize", post(normalize))
        .route("/v1/contacts/import", post(import))
        .route(
            "/v1/contacts/{id}",
            get(get_one).patch(patch).delete(delete),
        )
        .route("/v1/dnc", post(dnc))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "Route not found") })
        .method_not_allowed_fallback(|| async {
            error(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
        })
        .layer(middleware::from_fn(auth))
        .with_state(store);
    (router, control)
}

/// consuelo.txt overview: `{"error": {"code": "UNAUTHORIZED", "message": ...}}`. Codes other
/// than UNAUTHORIZED are not documented; these follow the same style.
pub(super) fn error(status: StatusCode, message: &str) -> Response {
    let code = match status.as_u16() {
        400 => "BAD_REQUEST",
        401 => "UNAUTHORIZED",
        403 => "FORBIDDEN",
        404 => "NOT_FOUND",
        405 => "METHOD_NOT_ALLOWED",
        413 => "PAYLOAD_TOO_LARGE",
        422 => "VALIDATION_ERROR",
        429 => "RATE_LIMITED",
        501 => "NOT_IMPLEMENTED",
        500..=599 => "INTERNAL_ERROR",
        _ => "ERROR",
    };
    json(status, json!({"error": {"code": code, "message": message}}))
}

/// NOTES 2.4: "Every response carries X-RateLimit-Limit, X-RateLimit-Remaining and
/// X-RateLimit-Reset (Unix seconds)". A fixed one-minute window.
fn rate_limit_headers(window: &Mutex<(i64, u64)>, headers: &mut HeaderMap, limited: bool) {
    let now = chrono::Utc::now().timestamp();
    let minute = now / 60;
    let mut w = lock(window);
    if w.0 != minute {
        *w = (minute, 0);
    }
    w.1 += 1;
    let remaining = if limited {
        0
    } else {
        RATE_LIMIT.saturating_sub(w.1)
    };
    headers.insert("x-ratelimit-limit", HeaderValue::from(RATE_LIMIT));
    headers.insert("x-ratelimit-remaining", HeaderValue::from(remaining));
    headers.insert("x-ratelimit-reset", HeaderValue::from((minute + 1) * 60));
}

async fn auth(req: Request, next: Next) -> Response {
    let expected = format!(
        "Bearer {}",
        super::api_key(crate::contact::ProviderId::Consuelo)
    );
    match header(req.headers(), "authorization") {
        Some(value) if value == expected => next.run(req).await,
        Some(_) => error(StatusCode::UNAUTHORIZED, "Invalid or expired access token"),
        None => error(StatusCode::UNAUTHORIZED, "Missing bearer token"),
    }
}

/// `workspaceId` must be this sandbox's workspace.
fn check_workspace(value: Option<&str>) -> Result<(), Response> {
    match value {
        Some(w) if w == super::CONSUELO_WORKSPACE_ID => Ok(()),
        Some(w) => Err(error(
            StatusCode::BAD_REQUEST,
            &format!("Unknown workspaceId `{w}`"),
        )),
        None => Err(error(StatusCode::BAD_REQUEST, "workspaceId is required")),
    }
}

fn page(all: Vec<Value>, limit: usize, offset: usize) -> Response {
    let total = all.len();
    let data: Vec<Value> = all.into_iter().skip(offset).take(limit).collect();
    let has_more = offset + data.len() < total;
    json(
        StatusCode::OK,
        json!({"data": data, "meta": {"total": total, "hasMore": has_more}}),
    )
}

fn limit_offset(
    limit: Result<Option<usize>, String>,
    offset: Result<Option<usize>, String>,
) -> Result<(usize, usize), Response> {
    let limit = match limit {
        Ok(None) => DEFAULT_LIMIT,
        Ok(Some(0)) => return Err(error(StatusCode::BAD_REQUEST, "limit must be at least 1")),
        Ok(Some(n)) => n.min(MAX_LIMIT),
        Err(m) => return Err(error(StatusCode::BAD_REQUEST, &m)),
    };
    let offset = offset
        .map_err(|m| error(StatusCode::BAD_REQUEST, &m))?
        .unwrap_or(0);
    Ok((limit, offset))
}

/// consuelo.txt: `GET /v1/contacts?workspaceId=ws_abc123&limit=20&offset=0`.
async fn list(State(store): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    if let Err(r) = check_workspace(q.get("workspaceId").map(String::as_str)) {
        return r;
    }
    let (limit, offset) = match limit_offset(
        uint_param(q.get("limit"), "limit"),
        uint_param(q.get("offset"), "offset"),
    ) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let all = lock(&store).contacts.clone();
    page(all, limit, offset)
}

async fn get_one(State(store): State<Shared>, Path(id): Path<String>) -> Response {
    match lock(&store)
        .contacts
        .iter()
        .find(|c| c["id"] == id.as_str())
    {
        Some(c) => json(StatusCode::OK, json!({"data": c})),
        None => not_found(&id),
    }
}

fn not_found(id: &str) -> Response {
    error(StatusCode::NOT_FOUND, &format!("Contact {id} not found"))
}

const FIELDS: [&str; 6] = [
    "firstName",
    "lastName",
    "phone",
    "email",
    "company",
    "notes",
];

/// Validates one writable field: a string or null; phones are stored in E.164 (the API's
/// examples and its normalize endpoint), emails need an `@`.
fn field_value(key: &str, value: &Value) -> Result<Value, String> {
    match value {
        Value::Null => Ok(Value::Null),
        Value::String(s) if s.trim().is_empty() => Ok(Value::Null),
        Value::String(s) if key == "phone" => {
            crate::phone::to_e164(s, crate::phone::parse_region("US"))
                .map(Value::String)
                .ok_or_else(|| format!("phone `{s}` is not a valid phone number"))
        }
        Value::String(s) if key == "email" && !super::valid_email(s) => {
            Err(format!("email `{s}` is not a valid email address"))
        }
        Value::String(s) => Ok(Value::String(s.trim().to_string())),
        _ => Err(format!("{key} must be a string")),
    }
}

/// consuelo.txt "Create Contact": `{workspaceId, firstName, lastName, phone, email, company}`.
async fn create(State(store): State<Shared>, body: Bytes) -> Response {
    let body = match body_object(&body) {
        Ok(b) => b,
        Err(m) => return error(StatusCode::BAD_REQUEST, &m),
    };
    if let Err(r) = check_workspace(body.get("workspaceId").and_then(Value::as_str)) {
        return r;
    }
    let now = now_iso();
    let mut store = lock(&store);
    let mut record = Map::new();
    record.insert("id".into(), json!(format!("contact_{}", store.next_id)));
    for key in FIELDS {
        match field_value(key, body.get(key).unwrap_or(&Value::Null)) {
            Ok(v) => record.insert(key.into(), v),
            Err(m) => return error(StatusCode::BAD_REQUEST, &m),
        };
    }
    if ["firstName", "lastName", "phone", "email"]
        .iter()
        .all(|k| record[*k].is_null())
    {
        return error(
            StatusCode::BAD_REQUEST,
            "A contact needs a name, a phone or an email",
        );
    }
    record.insert("createdAt".into(), json!(now));
    record.insert("updatedAt".into(), json!(now));
    store.next_id += 1;
    let record = Value::Object(record);
    store.contacts.push(record.clone());
    json(StatusCode::CREATED, json!({"data": record}))
}

/// consuelo.txt "Update Contact": PATCH merges the given fields (`firstName`, `notes`, …);
/// an explicit null clears one.
async fn patch(State(store): State<Shared>, Path(id): Path<String>, body: Bytes) -> Response {
    let body = match body_object(&body) {
        Ok(b) => b,
        Err(m) => return error(StatusCode::BAD_REQUEST, &m),
    };
    let mut changes = Vec::new();
    for key in FIELDS {
        if let Some(v) = body.get(key) {
            match field_value(key, v) {
                Ok(v) => changes.push((key, v)),
                Err(m) => return error(StatusCode::BAD_REQUEST, &m),
            }
        }
    }
    let mut store = lock(&store);
    let Some(record) = store.contacts.iter_mut().find(|c| c["id"] == id.as_str()) else {
        return not_found(&id);
    };
    for (key, value) in changes {
        record[key] = value;
    }
    record["updatedAt"] = json!(now_iso());
    json(StatusCode::OK, json!({"data": record}))
}

/// The document gives no response for DELETE; this answers 200 `{"data":{"id","deleted":true}}`.
async fn delete(State(store): State<Shared>, Path(id): Path<String>) -> Response {
    let mut store = lock(&store);
    let before = store.contacts.len();
    store.contacts.retain(|c| c["id"] != id.as_str());
    if store.contacts.len() == before {
        return not_found(&id);
    }
    json(StatusCode::OK, json!({"data": {"id": id, "deleted": true}}))
}

/// consuelo.txt worked example: `POST /v1/contacts/search` with
/// `{workspaceId, query, filters: {company}, limit}` (plus `offset` here). `query` is a
/// case-insensitive substring of the full name, the email, the phone's digits or the company;
/// `filters.company` is a case-insensitive equality. Answers the list envelope.
async fn search(State(store): State<Shared>, body: Bytes) -> Response {
    let body = match body_object(&body) {
        Ok(b) => b,
        Err(m) => return error(StatusCode::BAD_REQUEST, &m),
    };
    if let Err(r) = check_workspace(body.get("workspaceId").and_then(Value::as_str)) {
        return r;
    }
    let number = |key: &str| match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(|n| Some(n as usize))
            .ok_or_else(|| format!("{key} must be a non-negative integer")),
    };
    let (limit, offset) = match limit_offset(number("limit"), number("offset")) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let query = match body.get("query") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.trim().to_lowercase(),
        Some(_) => return error(StatusCode::BAD_REQUEST, "query must be a string"),
    };
    let company = match body.get("filters").and_then(|f| f.get("company")) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.trim().to_lowercase()),
        Some(_) => return error(StatusCode::BAD_REQUEST, "filters.company must be a string"),
    };
    let query_digits = digits(&query);
    let matches = |c: &Value| {
        let text = |k: &str| c[k].as_str().unwrap_or("").to_string();
        let full = format!("{} {}", text("firstName"), text("lastName"));
        let query_ok = query.is_empty()
            || contains_ci(&full, &query)
            || contains_ci(&text("email"), &query)
            || contains_ci(&text("company"), &query)
            || (!query_digits.is_empty() && digits(&text("phone")).contains(&query_digits));
        let company_ok = company
            .as_ref()
            .is_none_or(|co| text("company").to_lowercase() == *co);
        query_ok && company_ok
    };
    let found: Vec<Value> = lock(&store)
        .contacts
        .iter()
        .filter(|c| matches(c))
        .cloned()
        .collect();
    page(found, limit, offset)
}

/// The endpoint table says `GET /v1/contacts/search`, the worked example POSTs; this
/// simulator serves the worked example only (Decision 2: clients fall back on 404/405).
async fn search_get() -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "Use POST /v1/contacts/search with a JSON body",
    )
}

/// consuelo.txt "Normalize Phone Number": `{phone}` →
/// `{data: {original, normalized, isValid, countryCode (ISO region), areaCode}}`.
async fn normalize(body: Bytes) -> Response {
    let body = match body_object(&body) {
        Ok(b) => b,
        Err(m) => return error(StatusCode::BAD_REQUEST, &m),
    };
    let Some(original) = body.get("phone").and_then(Value::as_str) else {
        return error(StatusCode::BAD_REQUEST, "phone is required");
    };
    let parsed = phonenumber::parse(crate::phone::parse_region("US"), original.trim()).ok();
    let data = match parsed {
        Some(p) => {
            let valid = phonenumber::is_valid(&p);
            let national = p.national().value().to_string();
            json!({
                "original": original,
                "normalized": p.format().mode(phonenumber::Mode::E164).to_string(),
                "isValid": valid,
                "countryCode": p.country().id().map(|id| id.as_ref().to_string()),
                // NANP area codes are the first three national digits; others are not given.
                "areaCode": (p.code().value() == 1 && national.len() == 10).then(|| national[..3].to_string()),
            })
        }
        None => json!({
            "original": original,
            "normalized": null,
            "isValid": false,
            "countryCode": null,
            "areaCode": null,
        }),
    };
    json(StatusCode::OK, json!({ "data": data }))
}

/// Import is listed in consuelo.txt's table but its body is not documented (Decision 2: the
/// gateway imports row by row instead).
async fn import() -> Response {
    error(
        StatusCode::NOT_IMPLEMENTED,
        "CSV import is not available in the sandbox",
    )
}

/// consuelo.txt "Do Not Call": `{workspaceId, phone, reason}`. The response is not
/// documented; this answers 201 `{"data":{"phone","reason"}}` and keeps the entry.
async fn dnc(State(store): State<Shared>, body: Bytes) -> Response {
    let body = match body_object(&body) {
        Ok(b) => b,
        Err(m) => return error(StatusCode::BAD_REQUEST, &m),
    };
    if let Err(r) = check_workspace(body.get("workspaceId").and_then(Value::as_str)) {
        return r;
    }
    let phone = match body.get("phone") {
        Some(v @ Value::String(_)) => match field_value("phone", v) {
            Ok(Value::String(p)) => p,
            Ok(_) => return error(StatusCode::BAD_REQUEST, "phone is required"),
            Err(m) => return error(StatusCode::BAD_REQUEST, &m),
        },
        _ => return error(StatusCode::BAD_REQUEST, "phone is required"),
    };
    let reason = match body.get("reason") {
        None | Some(Value::Null) => Value::Null,
        Some(Value::String(s)) => json!(s),
        Some(_) => return error(StatusCode::BAD_REQUEST, "reason must be a string"),
    };
    let entry = json!({"phone": phone, "reason": reason});
    lock(&store).dnc.push(entry.clone());
    json(StatusCode::CREATED, json!({ "data": entry }))
}

/// Echo mode: `error.message` carries the key across the 300th character; each record
/// carries it only JSON-escaped (`\u0073…`), in `notes` and `customFields.echo`, so an answer
/// holds no plain fragment of it.
fn echo(key: &str, _status: StatusCode, mut answer: Value) -> Echoed {
    if let Some(message) = answer.pointer_mut("/error/message") {
        let said = message.as_str().unwrap_or("error").to_string();
        *message = json!(straddling_message(&said, key));
        return Echoed::Json(answer);
    }
    let records: Vec<&mut Value> = match answer.get_mut("data") {
        Some(Value::Array(items)) => items.iter_mut().collect(),
        Some(record) => vec![record],
        None => Vec::new(),
    };
    for record in records.into_iter().filter(|r| r.get("firstName").is_some()) {
        record["notes"] = json!(format!("noted: {JSON_ESCAPED_KEY}"));
        let custom = record
            .as_object_mut()
            .map(|r| r.entry("customFields").or_insert_with(|| json!({})));
        if let Some(Value::Object(custom)) = custom {
            custom.insert("echo".into(), json!(JSON_ESCAPED_KEY));
        }
    }
    Echoed::Json(answer)
}
