//! `POST /v1/agents/{name}/shadow`: a candidate build of one of the
//! tenant's agents run beside it over the tenant's history, storing
//! nothing, answered with the difference.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ApiError, ApiState, Caller, Role};

/// Which history to compare over.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ShadowParams {
    /// From this log time (ms since the epoch, inclusive).
    pub since: Option<i64>,
    /// Before this log time (ms since the epoch).
    pub until: Option<i64>,
    /// Rows read at most (default 100000).
    #[param(minimum = 1, maximum = 1000000)]
    pub max_rows: Option<u64>,
    /// Examples kept of each difference (default 5).
    #[param(minimum = 0, maximum = 100)]
    pub examples: Option<u32>,
}

/// One side of the comparison.
#[derive(Debug, Serialize, ToSchema)]
pub struct ShadowSide {
    /// Entries it flagged.
    pub flagged: u64,
    /// Findings per label.
    pub labels: std::collections::BTreeMap<String, u64>,
    /// Milliseconds inside its calls.
    pub agent_ms: f64,
}

/// An entry one side flagged and the other did not.
#[derive(Debug, Serialize, ToSchema)]
pub struct ShadowExample {
    pub log_id: u64,
    pub source: String,
    pub log_ts_ms: i64,
    pub label: String,
    pub score: f32,
    pub reason: String,
}

/// The difference between the candidate and the active agent.
#[derive(Debug, Serialize, ToSchema)]
pub struct ShadowView {
    pub entries: u64,
    pub quarantined: u64,
    pub batches: u64,
    /// Whether it stopped before the end of the range.
    pub truncated: bool,
    /// Why: `max_rows`, `time_limit` (120 s) or `cancelled`.
    pub stopped_by: Option<String>,
    pub active: ShadowSide,
    pub candidate: ShadowSide,
    pub both: u64,
    pub only_candidate: u64,
    pub only_active: u64,
    pub only_candidate_examples: Vec<ShadowExample>,
    pub only_active_examples: Vec<ShadowExample>,
}

impl From<mcp_engine::shadow::SideReport> for ShadowSide {
    fn from(side: mcp_engine::shadow::SideReport) -> Self {
        ShadowSide { flagged: side.flagged, labels: side.labels, agent_ms: side.agent_ms }
    }
}

impl From<mcp_engine::shadow::Example> for ShadowExample {
    fn from(e: mcp_engine::shadow::Example) -> Self {
        ShadowExample {
            log_id: e.log_id,
            source: e.source,
            log_ts_ms: e.log_ts_ms,
            label: e.label,
            score: e.score,
            reason: e.reason,
        }
    }
}

impl From<mcp_engine::shadow::ShadowReport> for ShadowView {
    fn from(r: mcp_engine::shadow::ShadowReport) -> Self {
        ShadowView {
            entries: r.entries,
            quarantined: r.quarantined,
            batches: r.batches,
            truncated: r.truncated,
            stopped_by: r.stopped_by,
            active: r.active.into(),
            candidate: r.candidate.into(),
            both: r.both,
            only_candidate: r.only_candidate,
            only_active: r.only_active,
            only_candidate_examples: r.only_candidate_examples.into_iter().map(Into::into).collect(),
            only_active_examples: r.only_active_examples.into_iter().map(Into::into).collect(),
        }
    }
}

/// Runs a candidate component (the body) beside the agent over the
/// tenant's history and answers with the difference; stores nothing
/// (tenant admin). The candidate reads the agent's log type and runs with
/// the agent's settings, grant and budget.
#[utoipa::path(
    post,
    path = "/v1/agents/{name}/shadow",
    params(("name" = String, Path, description = "the active agent"), ShadowParams),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "the candidate component's bytes (application/wasm is accepted too)"),
    responses(
        (status = OK, body = ShadowView),
        (status = NOT_FOUND, description = "no such agent", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = CONFLICT, description = "the agent is disabled, quarantined or unapproved", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = PAYLOAD_TOO_LARGE, description = "over max_upload_bytes or the tenant's upload_bytes budget", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = UNPROCESSABLE_ENTITY, description = "the body is not an agent component or reads another log type (`invalid_component`), one side faulted (`agent_fault`, naming which), or since is not before until (`invalid_filter`)", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = TOO_MANY_REQUESTS, description = "the tenant has a shadow run going, or no instance slot free", body = super::problem::Problem, content_type = "application/problem+json"),
        super::problem::BadRequest,
        super::problem::Restricted
    )
)]
pub async fn shadow_agent(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    name: Result<Path<String>, axum::extract::rejection::PathRejection>,
    params: Result<Query<ShadowParams>, axum::extract::rejection::QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ShadowView>, ApiError> {
    caller.require(Role::TenantAdmin)?;
    let (Path(name), Query(params)) = (name?, params?);
    let max_rows = params.max_rows.unwrap_or(100_000);
    if !(1..=1_000_000).contains(&max_rows) {
        return Err(ApiError::bad_request("max_rows must be between 1 and 1000000"));
    }
    let examples = params.examples.unwrap_or(5);
    if examples > 100 {
        return Err(ApiError::bad_request("examples must be between 0 and 100"));
    }
    if let (Some(since), Some(until)) = (params.since, params.until)
        && since >= until
    {
        return Err(ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_filter",
            format!("since {since} must be before until {until}: the range selects nothing"),
        ));
    }
    let bytes = super::agents::component_body(&state, &caller.tenant, body)?;
    let _going = ShadowGoing::take(&state, &caller.tenant)?;
    let sha256 = mcp_sandbox::registry::sha256_hex(&bytes);
    state.control.audit(&caller.identity(), "agent.shadow", &format!("{name} candidate {sha256}"))?;
    // Set when this request is dropped (the client went away): the runs
    // stop after the batch going instead of working for no one.
    let cancelled = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let _cancel_on_drop = CancelOnDrop(cancelled.clone());
    let window = mcp_engine::runs::ShadowWindow {
        from_ms: params.since,
        to_ms: params.until,
        max_rows,
        examples: examples as usize,
        deadline: Some(std::time::Instant::now() + SHADOW_TIME_LIMIT),
        cancelled: Some(cancelled),
    };
    let (shared, tenant) = (state.clone(), caller.tenant.clone());
    let report = tokio::task::spawn_blocking(move || -> Result<ShadowView, ApiError> {
        // The agent resolved and both instance slots held before the
        // candidate is compiled: a request that cannot run costs no compile.
        let (active, _) = super::runs::builder_for(&shared, &tenant, &name)?;
        let active = active.build()?;
        // The candidate is the tenant's code, whatever agent it shadows: it
        // gets the tenant's settings and models, never the operator's
        // settings or the deployment's models.
        let (candidate, _) = super::runs::builder_for(&shared, &tenant, &name)?;
        let candidate = candidate.uploaded().models(shared.models_of(&tenant)?).build()?;
        Ok(active.shadow(candidate, &bytes, &format!("candidate {sha256}"), window)?.into())
    })
    .await??;
    Ok(Json(report))
}

/// How long one shadow request may compare for; it answers with what it
/// compared so far (`stopped_by: time_limit`).
const SHADOW_TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

/// The tenant's one shadow run going, released when the request ends.
struct ShadowGoing<'a> {
    state: &'a ApiState,
    tenant: String,
}

impl<'a> ShadowGoing<'a> {
    fn take(state: &'a ApiState, tenant: &str) -> Result<Self, ApiError> {
        let mut going = state.shadows.lock().map_err(|_| ApiError::internal("shadow registry poisoned"))?;
        if !going.insert(tenant.to_string()) {
            return Err(ApiError::too_many_requests(
                "this tenant has a shadow run going; one at a time, retry when it ends",
                10,
            ));
        }
        Ok(ShadowGoing { state, tenant: tenant.to_string() })
    }
}

impl Drop for ShadowGoing<'_> {
    fn drop(&mut self) {
        if let Ok(mut going) = self.state.shadows.lock() {
            going.remove(&self.tenant);
        }
    }
}

struct CancelOnDrop(Arc<std::sync::atomic::AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
