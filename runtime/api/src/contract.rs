//! What the OpenAPI document promises at the edge of every endpoint, kept
//! in one place rather than by each handler: a query parameter the
//! document does not name is refused, a request body is a JSON object, and
//! every error is a problem+json — including the ones axum and hyper make
//! before a handler runs (405, 413, 414, a path that is not UTF-8).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use axum::extract::{FromRequest, MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use super::ApiError;

/// The longest request target served; a longer one answers 414.
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// The query parameters each operation of the document declares.
#[derive(Debug, Default)]
pub struct DeclaredQueries {
    by_operation: HashMap<(String, Method), BTreeSet<String>>,
    paths: BTreeSet<String>,
}

impl DeclaredQueries {
    pub fn of(document: &utoipa::openapi::OpenApi) -> Self {
        use utoipa::openapi::path::ParameterIn;
        let mut by_operation = HashMap::new();
        for (path, item) in &document.paths.paths {
            let operations = [
                (Method::GET, &item.get),
                (Method::POST, &item.post),
                (Method::PUT, &item.put),
                (Method::PATCH, &item.patch),
                (Method::DELETE, &item.delete),
            ];
            for (method, operation) in operations {
                let Some(operation) = operation else { continue };
                let names = operation
                    .parameters
                    .iter()
                    .flatten()
                    .filter_map(|p| match p {
                        utoipa::openapi::RefOr::T(p) if matches!(p.parameter_in, ParameterIn::Query) => {
                            Some(p.name.clone())
                        }
                        _ => None,
                    })
                    .collect();
                by_operation.insert((path.clone(), method), names);
            }
        }
        DeclaredQueries { by_operation, paths: document.paths.paths.keys().cloned().collect() }
    }
}

/// Refuses a query parameter the operation does not declare, so a typo
/// (`limt=5`) is an error everywhere rather than silently ignored.
pub async fn refuse_undeclared_queries(
    State(declared): State<Arc<DeclaredQueries>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string());
    let method = if request.method() == Method::HEAD { Method::GET } else { request.method().clone() };
    // A route outside the document (`/openapi.json`, `/docs`) takes none; a
    // method the document does not give a path is left to answer 405.
    let none = BTreeSet::new();
    if let (Some(route), Some(query)) = (route, request.uri().query()) {
        let names = match declared.by_operation.get(&(route.clone(), method)) {
            Some(names) => names,
            None if declared.paths.contains(&route) => return next.run(request).await,
            None => &none,
        };
        for (key, _) in form_urlencoded::parse(query.as_bytes()) {
            if !names.contains(key.as_ref()) {
                let takes = if names.is_empty() {
                    "no query parameters".to_string()
                } else {
                    names.iter().cloned().collect::<Vec<_>>().join(", ")
                };
                let key = one_line(&key, 64);
                return ApiError::bad_request(format!("unknown query parameter '{key}'; {route} takes {takes}"))
                    .into_response();
            }
        }
    }
    next.run(request).await
}

/// Answers an over-long target with a problem, and turns any error
/// response that is not JSON (axum's and hyper's plain-text ones) into a
/// problem, keeping its status and
/// headers (`Allow`, `Retry-After`) and its text as the detail.
pub async fn errors_as_problems(request: Request, next: Next) -> Response {
    if request.uri().to_string().len() > MAX_URI_BYTES {
        return ApiError::new(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!("the request target is over {MAX_URI_BYTES} bytes"),
        )
        .into_response();
    }
    let response = next.run(request).await;
    let status = response.status();
    // A problem already, or a JSON answer the document declares for the
    // status (the readiness report's 503).
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/problem+json") || v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let detail = one_line(&String::from_utf8_lossy(&text), 1024);
    let detail = if detail.trim().is_empty() {
        status.canonical_reason().unwrap_or("the request failed").to_string()
    } else {
        detail
    };
    let code = match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::URI_TOO_LONG => "uri_too_long",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable",
        status if status.is_server_error() => "internal",
        _ => "error",
    };
    let mut problem = ApiError::new(status, code, detail).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            problem.headers_mut().insert(name.clone(), value.clone());
        }
    }
    problem
}

/// `text` on one line, at most `max` bytes, for a problem's detail.
fn one_line(text: &str, max: usize) -> String {
    let mut line: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if line.len() > max {
        let mut end = max;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
    }
    line
}

/// A JSON request body that must be an object: serde would otherwise take
/// a struct from an array (`[null, null]`) as well.
#[derive(Debug)]
pub struct JsonObject<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonObject<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(UniqueKeys(value)) = axum::Json::<UniqueKeys>::from_request(request, state).await?;
        if !value.is_object() {
            return Err(ApiError::bad_request("the body must be a JSON object"));
        }
        // The path names the field at fault (`format: unknown variant …`).
        serde_path_to_error::deserialize(value).map(JsonObject).map_err(|e| {
            let path = e.path().to_string();
            let detail = if path == "." { e.inner().to_string() } else { format!("{path}: {}", e.inner()) };
            ApiError::bad_request(format!("the body: {detail}"))
        })
    }
}

/// A JSON value in which no object names a key twice: `{"agent":"dns",
/// "agent":"wifi"}` would otherwise mean whichever came last.
struct UniqueKeys(serde_json::Value);

impl<'de> serde::Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueKeysVisitor).map(UniqueKeys)
    }
}

struct UniqueKeysVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueKeysVisitor {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JSON")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, serde_json::Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(UniqueKeys(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(serde_json::Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom(format!("the key '{key}' appears twice")));
            }
            let UniqueKeys(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(serde_json::Value::Object(object))
    }
}

/// The position a paged listing continues before: the `next_cursor` (an
/// id) the previous page gave out.
pub fn id_cursor(cursor: Option<&str>) -> Result<Option<i64>, ApiError> {
    cursor
        .map(|c| {
            c.parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("cursor '{c}' is not one this endpoint gave out")))
        })
        .transpose()
}

/// The value of a JSON number with no fraction (`5` or `5.0`, as JSON
/// Schema's `integer` allows), when it is one within i64.
pub fn whole(number: &serde_json::Number) -> Option<i64> {
    number.as_i64().or_else(|| number.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e18).map(|f| f as i64))
}

/// Deserializes an optional [`whole`] number.
pub fn whole_i64<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    let number: Option<serde_json::Number> = serde::Deserialize::deserialize(deserializer)?;
    number.map(|n| whole(&n).ok_or_else(|| serde::de::Error::custom(format!("{n} is not a whole number")))).transpose()
}
