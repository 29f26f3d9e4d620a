//! Mainbrainer simulator, from mainbrainer.txt and NOTES §5 / Decision 5.
//!
//! - Auth `Authorization: Bearer <key>` ("Access Token or API Key") and a required
//!   `User-Agent` header (400 without).
//! - `POST /contacts/insertupdate`: the upsert with the document's matching rules (NOTES 5.5);
//!   201 `{"status":"Success","message":"Contact added/updated successfully","data":
//!   {"ContactId":"1329318","InvalidProperties":[],"InvalidContactIds":[]}}` (the document's
//!   sample minus its trailing comma).
//! - `POST /contacts/batch` (≤1000 items) and `GET /contacts/{batchId}/Status`: the batch is
//!   applied at once here, and its status reports it completed.
//! - No read endpoint: the store is visible only through the control surface (`records()`).
//! - Errors `{"status":"Error","message":...,"data":null}`.
//!
//! Keys are read case-insensitively, so the document's lowercase `propertyfields` /
//! `propertyid` and the OpenAPI camelCase `propertyFields` / `propertyId` both work.

use super::control::{
    percent_encoded, straddling_message, Echo, Echoed, SimControl, JSON_ESCAPED_KEY,
};
use super::{body_object, header, json, lock, seed};
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Map, Value};
use std::sync::{Arc, Mutex};

/// Batch size limit (found at the batch page, NOTES 5.3).
const MAX_BATCH: usize = 1000;

struct Store {
    contacts: Vec<Value>,
    batches: Vec<Value>,
    next_id: i64,
}

type Shared = Arc<Mutex<Store>>;

/// This simulator, as the sandbox runs it.
pub const SIMULATOR: super::Simulator = super::Simulator {
    build,
    api_key: "sbx_mnb_6Ew9Ju4Tz2Ck8Fs5",
    settings: &[("list_id", super::MAINBRAINER_LIST_ID)],
    region: None,
};

fn build() -> (Router, Arc<SimControl>) {
    let contacts = seed::mainbrainer();
    let next_id = seed::MAINBRAINER_FIRST_ID + contacts.len() as i64;
    let store: Shared = Arc::new(Mutex::new(Store {
        contacts,
        batches: Vec::new(),
        next_id,
    }));
    let reader = store.clone();
    let control = Arc::new(
        SimControl::new(
            Box::new(move || lock(&reader).contacts.clone()),
            error,
            None,
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
        .route("/contacts/insertupdate", post(insert_update))
        .route("/contacts/batch", post(batch))
        .route("/contacts/{batch_id}/Status", get(batch_status))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "Resource not found") })
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
        json!({"status": "Error", "message": message, "data": null}),
    )
}

/// mainbrainer.txt: "Authorization: Bearer {token}" and the `User-Agent` header.
async fn auth(req: Request, next: Next) -> Response {
    let expected = format!(
        "Bearer {}",
        super::api_key(crate::contact::ProviderId::Mainbrainer)
    );
    if header(req.headers(), "authorization") != Some(expected.as_str()) {
        return error(
            StatusCode::UNAUTHORIZED,
            "Authorization has been denied for this request.",
        );
    }
    if header(req.headers(), "user-agent").is_none_or(|ua| ua.trim().is_empty()) {
        return error(
            StatusCode::BAD_REQUEST,
            "The User-Agent header is required.",
        );
    }
    next.run(req).await
}

/// Lower-cases every object key, recursively (the API reads keys case-insensitively).
fn lower_keys(value: &Value) -> Value {
    match value {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.to_lowercase(), lower_keys(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(lower_keys).collect()),
        v => v.clone(),
    }
}

/// An integer given as a JSON number or a string of digits.
fn integer(item: &Map<String, Value>, key: &str, name: &str) -> Result<Option<i64>, String> {
    match item.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| format!("{name} must be an integer")),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| format!("{name} must be an integer")),
        Some(_) => Err(format!("{name} must be an integer")),
    }
}

fn boolean(item: &Map<String, Value>, key: &str, name: &str) -> Result<Option<bool>, String> {
    match item.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        // "In case no Opt-in Status send Blank"
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(_) => Err(format!("{name} must be a boolean")),
    }
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

/// One upsert item, validated.
struct Upsert {
    contact_id: Option<i64>,
    email: Option<String>,
    mobile: Option<(i64, i64)>,
    mobile_opt_in: Option<bool>,
    email_opt_in: Option<bool>,
    list_id: Option<String>,
    properties: Vec<Value>,
    invalid_properties: Vec<Value>,
}

/// Validates an item (keys already lower-cased). Errors are 422 "client errors" except the
/// missing identity, which is a 400.
fn parse_item(item: &Map<String, Value>) -> Result<Upsert, (StatusCode, String)> {
    let unprocessable = |m: String| (StatusCode::UNPROCESSABLE_ENTITY, m);
    let contact_id = integer(item, "contactid", "contactId").map_err(unprocessable)?;
    let email = match item.get("email") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) if super::valid_email(s) => Some(s.trim().to_string()),
        Some(v) => {
            return Err(unprocessable(format!(
                "email {v} is not a valid email address"
            )))
        }
    };
    let code = integer(item, "mobilecountrycode", "mobileCountryCode").map_err(unprocessable)?;
    let number = integer(item, "mobilenumber", "mobileNumber").map_err(unprocessable)?;
    let mobile = match (code, number) {
        (Some(c), Some(n)) if (1..=999).contains(&c) && n > 0 => Some((c, n)),
        (Some(_), Some(_)) => {
            return Err(unprocessable(
                "mobileCountryCode or mobileNumber is out of range".into(),
            ))
        }
        (None, Some(_)) => {
            return Err(unprocessable(
                "mobileCountryCode is required with mobileNumber".into(),
            ))
        }
        (_, None) => None,
    };
    let list_id = match item.get("listid") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if is_uuid(s) => Some(s.to_lowercase()),
        Some(v) => return Err(unprocessable(format!("listId {v} is not a uuid"))),
    };
    // mainbrainer.txt: "The request body must include either an email address, a mobile
    // number, or a contactID."
    if contact_id.is_none() && email.is_none() && mobile.is_none() {
        return Err((
            StatusCode::BAD_REQUEST,
            "The request body must include either an email address, a mobile number, or a contactId.".into(),
        ));
    }
    let (properties, invalid_properties) =
        properties(item.get("propertyfields")).map_err(unprocessable)?;
    Ok(Upsert {
        contact_id,
        email,
        mobile,
        mobile_opt_in: boolean(item, "mobileoptin", "mobileOptIn").map_err(unprocessable)?,
        email_opt_in: boolean(item, "emailoptin", "emailOptIn").map_err(unprocessable)?,
        list_id,
        properties,
        invalid_properties,
    })
}

/// mainbrainer.txt: "It is mandatory to include either a property name or the property ID …
/// In case the property ID is mentioned, the property value will be inserted/updated on the
/// basis of the propertyID." An unknown property id, or an item with neither, is reported in
/// `InvalidProperties`; an unknown name is a new custom property.
fn properties(value: Option<&Value>) -> Result<(Vec<Value>, Vec<Value>), String> {
    let items = match value {
        None | Some(Value::Null) => return Ok((Vec::new(), Vec::new())),
        Some(Value::Array(items)) => items,
        Some(_) => return Err("propertyFields must be an array".into()),
    };
    let (mut valid, mut invalid) = (Vec::new(), Vec::new());
    for item in items {
        let text = |k: &str| item.get(k).and_then(Value::as_str).map(str::to_string);
        let (id, name, value) = (
            text("propertyid"),
            text("propertyname"),
            item.get("propertyvalue"),
        );
        let value = match value {
            None | Some(Value::Null) => Value::Null,
            Some(Value::String(s)) => json!(s),
            Some(v @ (Value::Number(_) | Value::Bool(_))) => json!(v.to_string()),
            Some(_) => return Err("propertyValue must be a string".into()),
        };
        let known = match (&id, &name) {
            (Some(id), _) => seed::MAINBRAINER_PROPERTIES
                .iter()
                .find(|(i, _)| i.eq_ignore_ascii_case(id))
                .map(|(i, n)| (Some(*i), n.to_string())),
            (None, Some(name)) if !name.trim().is_empty() => Some(
                seed::MAINBRAINER_PROPERTIES
                    .iter()
                    .find(|(_, n)| n.eq_ignore_ascii_case(name))
                    .map_or((None, name.trim().to_string()), |(i, n)| {
                        (Some(*i), n.to_string())
                    }),
            ),
            _ => None,
        };
        match known {
            Some((id, name)) => {
                valid.push(json!({"propertyId": id, "propertyName": name, "propertyValue": value}))
            }
            None => invalid
                .push(json!({"propertyId": id, "propertyName": name, "propertyValue": value})),
        }
    }
    Ok((valid, invalid))
}

/// What an upsert did.
struct Outcome {
    contact_id: i64,
    created: bool,
    invalid_properties: Vec<Value>,
    invalid_contact_ids: Vec<String>,
}

fn email_of(c: &Value) -> Option<String> {
    c["email"].as_str().map(str::to_lowercase)
}

fn mobile_of(c: &Value) -> Option<(i64, i64)> {
    Some((
        c["mobileCountryCode"].as_i64()?,
        c["mobileNumber"].as_i64()?,
    ))
}

/// The matching rules of mainbrainer.txt (NOTES 5.5):
/// - contactId → update that record; when none has it, create a new one;
/// - email + mobile → the record with both; else create;
/// - mobile only → the record with that mobile and a null email; else create;
/// - email only → the record with that email and a null mobile; else create
///   (so an email-only upsert for a contact that has a mobile creates a duplicate).
fn upsert(store: &mut Store, u: Upsert, default_list: Option<&str>) -> Outcome {
    let email_lower = u.email.as_ref().map(|e| e.to_lowercase());
    let mut invalid_contact_ids = Vec::new();
    let target = match (u.contact_id, &email_lower, u.mobile) {
        (Some(id), _, _) => {
            let found = store
                .contacts
                .iter()
                .position(|c| c["contactId"].as_i64() == Some(id));
            if found.is_none() {
                invalid_contact_ids.push(id.to_string());
            }
            found
        }
        (None, Some(e), Some(m)) => store
            .contacts
            .iter()
            .position(|c| email_of(c).as_ref() == Some(e) && mobile_of(c) == Some(m)),
        (None, None, Some(m)) => store
            .contacts
            .iter()
            .position(|c| mobile_of(c) == Some(m) && email_of(c).is_none()),
        (None, Some(e), None) => store
            .contacts
            .iter()
            .position(|c| email_of(c).as_ref() == Some(e) && mobile_of(c).is_none()),
        (None, None, None) => None,
    };
    let created = target.is_none();
    let index = match target {
        Some(i) => i,
        None => {
            let id = store.next_id;
            store.next_id += 1;
            // A missing opt-in is stored as no consent.
            store.contacts.push(json!({
                "contactId": id,
                "listIds": [],
                "email": null,
                "mobileCountryCode": null,
                "mobileNumber": null,
                "mobileOptIn": false,
                "emailOptIn": false,
                "propertyFields": [],
            }));
            store.contacts.len() - 1
        }
    };
    // Omitted fields keep their stored values.
    let record = &mut store.contacts[index];
    if let Some(e) = u.email {
        record["email"] = json!(e);
    }
    if let Some((code, number)) = u.mobile {
        record["mobileCountryCode"] = json!(code);
        record["mobileNumber"] = json!(number);
    }
    if let Some(b) = u.mobile_opt_in {
        record["mobileOptIn"] = json!(b);
    }
    if let Some(b) = u.email_opt_in {
        record["emailOptIn"] = json!(b);
    }
    if let Some(list) = u.list_id.as_deref().or(default_list) {
        if let Some(lists) = record["listIds"].as_array_mut() {
            if !lists.iter().any(|l| l == list) {
                lists.push(json!(list));
            }
        }
    }
    if let Some(stored) = record["propertyFields"].as_array_mut() {
        for p in u.properties {
            match stored
                .iter_mut()
                .find(|s| s["propertyName"] == p["propertyName"])
            {
                Some(s) => *s = p,
                None => stored.push(p),
            }
        }
    }
    Outcome {
        contact_id: record["contactId"].as_i64().unwrap_or_default(),
        created,
        invalid_properties: u.invalid_properties,
        invalid_contact_ids,
    }
}

/// `POST /contacts/insertupdate`.
async fn insert_update(State(store): State<Shared>, body: Bytes) -> Response {
    let body = match body_object(&body) {
        Ok(b) => b,
        Err(m) => return error(StatusCode::BAD_REQUEST, &m),
    };
    let Value::Object(item) = lower_keys(&Value::Object(body)) else {
        unreachable!("an object stays an object")
    };
    let parsed = match parse_item(&item) {
        Ok(p) => p,
        Err((status, m)) => return error(status, &m),
    };
    let outcome = upsert(&mut lock(&store), parsed, None);
    // mainbrainer.txt: "Returns a 201 Accepted response with content on success."
    json(
        StatusCode::CREATED,
        json!({
            "status": "Success",
            "message": "Contact added/updated successfully",
            "data": {
                "ContactId": outcome.contact_id.to_string(),
                "InvalidProperties": outcome.invalid_properties,
                "InvalidContactIds": outcome.invalid_contact_ids,
            }
        }),
    )
}

/// `POST /contacts/batch`: `{listId, createUpdateContacts: [item…], webHookUrl}`. Applied
/// at once (no webhook is called); items that fail validation are counted as skipped.
async fn batch(State(store): State<Shared>, body: Bytes) -> Response {
    let body = match body_object(&body) {
        Ok(b) => b,
        Err(m) => return error(StatusCode::BAD_REQUEST, &m),
    };
    let Value::Object(body) = lower_keys(&Value::Object(body)) else {
        unreachable!("an object stays an object")
    };
    let Some(items) = body.get("createupdatecontacts").and_then(Value::as_array) else {
        return error(StatusCode::BAD_REQUEST, "createUpdateContacts is required");
    };
    if items.is_empty() {
        return error(StatusCode::BAD_REQUEST, "createUpdateContacts is empty");
    }
    if items.len() > MAX_BATCH {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "At most 1000 contacts per batch",
        );
    }
    let list = match body.get("listid") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if is_uuid(s) => Some(s.to_lowercase()),
        Some(v) => {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("listId {v} is not a uuid"),
            )
        }
    };
    let mut store = lock(&store);
    let (mut inserted, mut updated, mut skipped) = (Vec::new(), Vec::new(), 0);
    for item in items {
        match item.as_object().map(parse_item) {
            Some(Ok(u)) => {
                let o = upsert(&mut store, u, list.as_deref());
                if o.created {
                    &mut inserted
                } else {
                    &mut updated
                }
                .push(o.contact_id);
            }
            _ => skipped += 1,
        }
    }
    let batch_id = format!("b7a1c0de-0000-4000-8000-{:012}", store.batches.len() + 1);
    store.batches.push(json!({
        "id": batch_id,
        "status": 2,
        "statusText": "Completed",
        "statusFailedReason": null,
        "processedObj": {
            "inserted": {"count": inserted.len(), "contactIds": inserted},
            "updated": {"count": updated.len(), "contactIds": updated},
            "skipped": {"count": skipped, "contactIds": []},
        }
    }));
    json(
        StatusCode::CREATED,
        json!({
            "status": "Success",
            "message": "Batch accepted for processing",
            "data": {"batchId": batch_id, "processed": false},
        }),
    )
}

/// `GET /contacts/{batchId}/Status`.
async fn batch_status(State(store): State<Shared>, Path(batch_id): Path<String>) -> Response {
    match lock(&store)
        .batches
        .iter()
        .find(|b| b["id"] == batch_id.as_str())
    {
        Some(b) => json(StatusCode::OK, b.clone()),
        None => error(
            StatusCode::NOT_FOUND,
            &format!("Batch {batch_id} not found"),
        ),
    }
}

/// Echo mode: every answer is `{"status":"Error","message":…}` with its own status (a 2xx
/// stays a 2xx, as NOTES 5.6 allows), the message carrying the key across the 300th
/// character, then JSON-escaped, then percent-encoded.
fn echo(key: &str, _status: StatusCode, answer: Value) -> Echoed {
    let said = answer["message"].as_str().unwrap_or("error");
    let message = format!(
        "{}; again {JSON_ESCAPED_KEY}; and {}",
        straddling_message(said, key),
        percent_encoded(key)
    );
    Echoed::Json(json!({"status": "Error", "message": message, "data": null}))
}
