//! GraphQL over HTTP as the graphql-http audits check it: what a request may look like (JSON
//! POST bodies, URL-encoded GETs), which media type and status an answer gets, and a JSON
//! GraphQL error with a code for everything refused at the edge.

use async_graphql::Variables;
use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

/// The media types an answer can take.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MediaType {
    Json,
    GraphqlResponseJson,
}

impl MediaType {
    const GRAPHQL_RESPONSE_JSON: &'static str = "application/graphql-response+json";

    /// `application/json` unless the client's `Accept` asks for
    /// `application/graphql-response+json`.
    pub fn accepted(headers: &HeaderMap) -> MediaType {
        let asks = headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|item| item.parse::<mime::Mime>().ok())
            .any(|m| m.essence_str() == Self::GRAPHQL_RESPONSE_JSON && !refused(&m));
        if asks {
            MediaType::GraphqlResponseJson
        } else {
            MediaType::Json
        }
    }

    /// Its `Content-Type` header.
    pub fn header(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            MediaType::Json => "application/json; charset=utf-8",
            MediaType::GraphqlResponseJson => "application/graphql-response+json; charset=utf-8",
        })
    }
}

/// A browser asking for a page (GraphiQL), not a GraphQL answer.
pub fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

/// `q=0`: the client refuses this type.
fn refused(m: &mime::Mime) -> bool {
    m.get_param("q")
        .and_then(|q| q.as_str().parse::<f32>().ok())
        .is_some_and(|q| q == 0.0)
}

/// A request refused before anything executes: a status and one coded GraphQL error.
#[derive(Debug)]
pub struct EdgeError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl EdgeError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        EdgeError {
            status,
            code,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        EdgeError::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
    }

    /// The answer, in the media type the client accepts.
    pub fn respond(self, media: MediaType) -> Response {
        let body =
            json!({ "errors": [{ "message": self.message, "extensions": { "code": self.code } }] });
        json_response(self.status, media, &body)
    }
}

/// A JSON body with its status and media type.
pub fn json_response(status: StatusCode, media: MediaType, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, media.header());
    response
}

/// A POST body: JSON, as `application/json` (or `application/graphql-response+json`), UTF-8.
/// Anything else is refused with 415 before it is read, so no cross-site form or `text/plain`
/// POST can run anything.
/// What a POST body holds: one operation, or a batch (a JSON array, Apollo's `BatchHttpLink`).
#[derive(Debug)]
pub enum Posted {
    One(Box<async_graphql::Request>),
    Batch(Vec<async_graphql::Request>),
}

pub fn post_request(
    headers: &HeaderMap,
    body: &Bytes,
    max_batch: usize,
) -> Result<Posted, EdgeError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<mime::Mime>().ok());
    let json_type = content_type.as_ref().is_some_and(|m| {
        matches!(
            m.essence_str(),
            "application/json" | MediaType::GRAPHQL_RESPONSE_JSON
        ) && m
            .get_param(mime::CHARSET)
            .is_none_or(|c| c.as_str().eq_ignore_ascii_case("utf-8"))
    });
    if !json_type {
        return Err(EdgeError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "POST a JSON body with `Content-Type: application/json`",
        ));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(EdgeError::bad_request("the request body is empty"));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| EdgeError::bad_request(format!("the request body is not JSON: {e}")))?;
    match value {
        Value::Object(params) => request_from(params).map(|r| Posted::One(Box::new(r))),
        Value::Array(items) if items.is_empty() => {
            Err(EdgeError::bad_request("the batch is empty"))
        }
        Value::Array(items) if items.len() > max_batch => Err(EdgeError::bad_request(format!(
            "a batch holds at most {max_batch} operations (`[limits] max_batch`); this one has {}",
            items.len()
        ))),
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::Object(params) => request_from(params),
                _ => Err(EdgeError::bad_request(
                    "each operation of a batch must be a JSON object",
                )),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Posted::Batch),
        _ => Err(EdgeError::bad_request(
            "the request body must be a JSON object",
        )),
    }
}

/// A GET's URL parameters: `query`, `operationName`, and `variables` and `extensions` as
/// JSON strings.
pub fn get_request(params: Vec<(String, String)>) -> Result<async_graphql::Request, EdgeError> {
    let mut map = Map::new();
    for (name, value) in params {
        let value = match name.as_str() {
            "variables" | "extensions" if !value.is_empty() => serde_json::from_str(&value)
                .map_err(|_| EdgeError::bad_request(format!("`{name}` must be a JSON object")))?,
            _ => Value::String(value),
        };
        map.insert(name, value);
    }
    request_from(map)
}

/// The GraphQL request in `params`, every parameter of the type the spec gives it.
fn request_from(mut params: Map<String, Value>) -> Result<async_graphql::Request, EdgeError> {
    // A persisted query names its query by hash and may leave `query` out.
    let persisted = params
        .get("extensions")
        .is_some_and(|e| e.get("persistedQuery").is_some());
    let query = match params.remove("query") {
        Some(Value::String(query)) => query,
        None | Some(Value::Null) if persisted => String::new(),
        None | Some(Value::Null) => {
            return Err(EdgeError::bad_request("the request has no `query`"));
        }
        Some(_) => return Err(EdgeError::bad_request("`query` must be a string")),
    };
    let mut request = async_graphql::Request::new(query);
    match params.remove("operationName") {
        None | Some(Value::Null) => {}
        Some(Value::String(name)) => request = request.operation_name(name),
        Some(_) => return Err(EdgeError::bad_request("`operationName` must be a string")),
    }
    match params.remove("variables") {
        None | Some(Value::Null) => {}
        Some(variables @ Value::Object(_)) => {
            request = request.variables(Variables::from_json(variables));
        }
        Some(_) => return Err(EdgeError::bad_request("`variables` must be a JSON object")),
    }
    match params.remove("extensions") {
        None | Some(Value::Null) => {}
        Some(Value::Object(extensions)) => {
            for (name, value) in extensions {
                let value = async_graphql::Value::from_json(value).map_err(|_| {
                    EdgeError::bad_request(format!("extension `{name}` is not JSON"))
                })?;
                request.extensions.insert(name, value);
            }
        }
        Some(_) => return Err(EdgeError::bad_request("`extensions` must be a JSON object")),
    }
    Ok(request)
}

/// A response as JSON: without `data` when the request never executed.
pub fn response_body(response: &async_graphql::Response, executed: bool) -> Value {
    let mut body = serde_json::to_value(response).unwrap_or_else(|_| json!({}));
    if !executed {
        if let Value::Object(map) = &mut body {
            map.remove("data");
        }
    }
    body
}

/// The answer to an executed (or refused) GraphQL request. A request that never executed
/// (parse, validation or variable errors) has no `data`, and under
/// `application/graphql-response+json` gets 400; field errors keep 200.
pub fn graphql_response(
    response: async_graphql::Response,
    executed: bool,
    media: MediaType,
) -> Response {
    graphql_answer(response, executed, media).into_response()
}

/// An answer as bytes, before it is sent (the response cache keeps it so).
pub struct Answer {
    pub status: StatusCode,
    pub media: MediaType,
    /// Headers the schema set (`http_headers`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
}

/// `graphql_response`'s answer, as bytes.
pub fn graphql_answer(
    response: async_graphql::Response,
    executed: bool,
    media: MediaType,
) -> Answer {
    let status = if !executed && media == MediaType::GraphqlResponseJson {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Answer {
        status,
        media,
        headers: response
            .http_headers
            .iter()
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect(),
        body: Bytes::from(response_bytes(&response, executed)),
    }
}

/// `response_body`, as bytes. An executed response is written straight from its value tree
/// (keys in the query's order), with no JSON copy of it in between: for a large answer (an
/// import's 10,000 results) that copy was the largest allocation of the request.
fn response_bytes(response: &async_graphql::Response, executed: bool) -> Vec<u8> {
    if executed {
        if let Ok(bytes) = serde_json::to_vec(response) {
            return bytes;
        }
    }
    response_body(response, executed).to_string().into_bytes()
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let mut response = Response::new(Body::from(self.body));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, self.media.header());
        for (name, value) in self.headers {
            headers.append(name, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn the_response_type_follows_accept() {
        let accepted = |accept| MediaType::accepted(&headers(&[("accept", accept)]));
        assert_eq!(accepted("application/json"), MediaType::Json);
        assert_eq!(accepted("*/*"), MediaType::Json);
        assert_eq!(
            accepted("application/graphql-response+json, application/json;q=0.9"),
            MediaType::GraphqlResponseJson
        );
        assert_eq!(
            accepted("application/graphql-response+json;q=0"),
            MediaType::Json
        );
        assert_eq!(MediaType::accepted(&HeaderMap::new()), MediaType::Json);
    }

    #[test]
    fn only_json_posts_are_read() {
        let body = Bytes::from_static(br#"{"query":"{ __typename }"}"#);
        for content_type in [
            "text/plain",
            "multipart/form-data; boundary=x",
            "application/x-www-form-urlencoded",
            "application/json; charset=latin1",
        ] {
            let err =
                post_request(&headers(&[("content-type", content_type)]), &body, 10).unwrap_err();
            assert_eq!(
                err.status,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{content_type}"
            );
        }
        assert!(post_request(&HeaderMap::new(), &body, 10).is_err());
        let ok = headers(&[("content-type", "application/json; charset=UTF-8")]);
        assert!(post_request(&ok, &body, 10).is_ok());
    }

    #[test]
    fn parameters_of_the_wrong_type_are_bad_requests() {
        let ok = headers(&[("content-type", "application/json")]);
        for body in [
            r#"{"query": 1}"#,
            r#"{"variables": {}}"#,
            r#"{"query": "{a}", "variables": "[]"}"#,
            r#"{"query": "{a}", "operationName": 3}"#,
            r#"{"query": "{a}", "extensions": "x"}"#,
            r#"[]"#,
            r#"[1]"#,
            r#"{"query": "{a}""#,
            "",
        ] {
            let err = post_request(&ok, &Bytes::from(body), 10).unwrap_err();
            assert_eq!(err.status, StatusCode::BAD_REQUEST, "{body}");
        }
    }
}
