//! Errors as RFC 9457 problem details: one JSON shape with a stable `code`,
//! a message a person can act on, and never a stack trace or a path.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::collections::BTreeMap;

use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response as DocResponse, ResponseBuilder};
use utoipa::{IntoResponses, ToSchema};

/// An RFC 9457 problem.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem type: `/problems/<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The stable code clients match on.
    pub code: String,
}

/// An error a handler returns.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    /// Seconds for a `Retry-After` header, on a 429.
    pub retry_after_s: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        ApiError { status, code, detail: detail.into(), retry_after_s: None }
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", what)
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", detail)
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", detail)
    }

    /// A failure inside the host: logged in full, answered in general terms.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!("request failed: {error}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server failed to answer; the server log has details under this request's x-request-id",
        )
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail)
    }

    /// A tenant over a budget that refills: 429, with when to try again.
    pub fn too_many_requests(detail: impl Into<String>, retry_after_s: u64) -> Self {
        let mut error = Self::new(StatusCode::TOO_MANY_REQUESTS, "over_budget", detail);
        error.retry_after_s = Some(retry_after_s);
        error
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = Problem {
            kind: format!("/problems/{}", self.code),
            title: self.status.canonical_reason().unwrap_or("Error").to_string(),
            status: self.status.as_u16(),
            detail: self.detail,
            code: self.code.to_string(),
        };
        let mut response = (self.status, axum::Json(problem)).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(seconds) = self.retry_after_s {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// Rejections of axum's extractors (bad JSON, bad query) as problems.
impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::JsonRejection) -> Self {
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", rejection.body_text())
            }
            _ => ApiError::bad_request(rejection.body_text()),
        }
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::QueryRejection) -> Self {
        ApiError::bad_request(rejection.body_text())
    }
}

impl From<axum::extract::rejection::PathRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::PathRejection) -> Self {
        ApiError::bad_request(rejection.body_text())
    }
}

/// Each domain error's status, in one place: what the caller can fix is a
/// 4xx naming it, the rest is logged and answered as `internal`.
impl From<mcp_engine::pipeline::RunError> for ApiError {
    fn from(error: mcp_engine::pipeline::RunError) -> Self {
        use mcp_engine::pipeline::RunError;
        match error {
            RunError::Registry(mcp_sandbox::registry::RegistryError::Invalid { ref source, .. })
                if source.fault().is_some_and(mcp_sandbox::Fault::is_budget) =>
            {
                ApiError::too_many_requests(format!("{source}; wait for one of the tenant's runs to end"), 5)
            }
            RunError::Disabled { .. }
            | RunError::SchemaUnsupported { .. }
            | RunError::SchemaMissing { .. }
            | RunError::Registry(_) => ApiError::conflict(error.to_string()),
            RunError::ShadowMismatch { .. } | RunError::ShadowCandidate(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_component", error.to_string())
            }
            RunError::ShadowFault { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "agent_fault", error.to_string())
            }
            RunError::Cancelled { .. } | RunError::Quarantined { .. } => ApiError::conflict(error.to_string()),
            // A control store that cannot be reached says so, whatever asked.
            RunError::Control(control) => control.into(),
            other => ApiError::internal(other),
        }
    }
}

impl From<mcp_storage::control::ControlError> for ApiError {
    fn from(error: mcp_storage::control::ControlError) -> Self {
        match error {
            mcp_storage::control::ControlError::DeletedTenant(_) => ApiError::conflict(error.to_string()),
            mcp_storage::control::ControlError::TooManySettings { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_setting", error.to_string())
            }
            error if error.unavailable() => {
                tracing::error!("control store: {error}");
                ApiError::unavailable(
                    "the control store (PostgreSQL) cannot be reached; /readyz says which dependency is down",
                )
            }
            error => ApiError::internal(error),
        }
    }
}

impl From<mcp_storage::store::StoreError> for ApiError {
    fn from(error: mcp_storage::store::StoreError) -> Self {
        if error.too_broad() {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "query_too_broad",
                "the filters match too few of the anomalies the query has to pass over; add a time range (from_ms, to_ms), a source, agent or label, or sort=score with min_score",
            );
        }
        ApiError::internal(error)
    }
}

impl From<mcp_storage::reads::ReadError> for ApiError {
    fn from(error: mcp_storage::reads::ReadError) -> Self {
        match error {
            mcp_storage::reads::ReadError::Embedded(error) => error.into(),
            mcp_storage::reads::ReadError::Shared(error) if error.too_broad() => ApiError::new(
                StatusCode::BAD_REQUEST,
                "query_too_broad",
                "the query ran past its time bound (page_query_timeout_ms) in PostgreSQL; narrow it with a time range (from_ms, to_ms), a source, agent or label, or ask for sort=score with min_score",
            ),
            mcp_storage::reads::ReadError::Shared(error) => {
                tracing::error!("{error}");
                ApiError::unavailable(
                    "the anomaly store (PostgreSQL) did not answer; /readyz says which dependency is down",
                )
            }
        }
    }
}

impl From<mcp_storage::jobstatus::CacheError> for ApiError {
    fn from(error: mcp_storage::jobstatus::CacheError) -> Self {
        ApiError::internal(error)
    }
}

impl From<mcp_storage::source::SourceError> for ApiError {
    fn from(error: mcp_storage::source::SourceError) -> Self {
        ApiError::internal(error)
    }
}

/// Failures of the host's own machinery (files, worker threads, the store
/// pool): never the caller's to fix.
macro_rules! internal_from {
    ($($error:ty),* $(,)?) => {
        $(impl From<$error> for ApiError {
            fn from(error: $error) -> Self {
                ApiError::internal(error)
            }
        })*
    };
}

internal_from!(std::io::Error, tokio::task::JoinError, tokio::sync::AcquireError);

/// The problem responses most endpoints share, documented once: each is a
/// set of statuses with an `application/problem+json` body.
fn problem_response(description: &str) -> RefOr<DocResponse> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/problem+json",
            ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build(),
        )
        .build()
        .into()
}

macro_rules! problem_set {
    ($(#[$doc:meta])* $name:ident: $(($status:literal, $description:literal)),+ $(,)?) => {
        $(#[$doc])*
        pub struct $name;

        impl IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<DocResponse>> {
                [$(($status.to_string(), problem_response($description))),+].into_iter().collect()
            }
        }
    };
}

problem_set!(
    /// Any endpoint under /v1: a missing or unknown bearer token.
    Unauthorized: ("401", "no valid bearer token")
);
problem_set!(
    /// A write: a missing token, or one whose role is too low.
    Restricted: ("401", "no valid bearer token"), ("403", "the token's role may not do this")
);
problem_set!(
    /// A resource named in the path that the caller's tenant does not have.
    NotFound: ("404", "no such resource in the caller's tenant")
);
problem_set!(
    /// A body, query or path parameter that does not parse or validate.
    BadRequest: ("400", "the request does not parse or validate; the detail says which part")
);
