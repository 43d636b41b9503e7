//! Runs: started through the API, executed on a thread of their own, their
//! status kept in the shared cache (Redis when configured).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiError, ApiState, Caller, Role};
use mcp_engine::jobs::request_cancel;
use mcp_engine::runs::RunBuilder;
use mcp_storage::jobstatus::{JobState, JobStatus};

/// What to run.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRun {
    /// The agent; it runs over its log type from its checkpoint to the end.
    pub agent: String,
}

/// A run's status and counters.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunView {
    pub id: String,
    /// running, completed, failed or cancelled.
    pub state: String,
    pub subject: String,
    /// entries, batches, anomalies, quarantined, retries, replayed, faults.
    pub counters: std::collections::BTreeMap<String, u64>,
    pub error: Option<String>,
    pub started_ms: i64,
    pub updated_ms: i64,
}

impl From<JobStatus> for RunView {
    fn from(job: JobStatus) -> Self {
        let state = match job.state {
            JobState::Running => "running",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        };
        RunView {
            id: job.id,
            state: state.into(),
            subject: job.subject,
            counters: job.counters,
            error: job.error,
            started_ms: job.started_ms,
            updated_ms: job.updated_ms,
        }
    }
}

fn run_job(state: Arc<ApiState>, tenant: String, agent: String) -> Result<JobStatus, ApiError> {
    let resolved =
        state.resolve(&tenant, &agent).ok_or_else(|| ApiError::not_found(format!("no agent named '{agent}'")))?;
    let source = state.config.log_source()?;
    let mut builder = RunBuilder::new(&state.config, resolved.registry.clone(), source, &tenant, &agent)
        .tenant_control(&state.control)?
        .models(state.models.clone());
    if !resolved.bundled {
        let registered =
            resolved.registry.get(&agent).map_err(|_| ApiError::not_found(format!("no agent named '{agent}'")))?;
        let (grant, approved) = super::agents::grant_of(&state, &tenant, registered, false)?;
        if approved.is_none() {
            return Err(ApiError::conflict(format!(
                "agent '{agent}' waits for a tenant admin to approve what it asks to reach (POST /v1/agents/{agent}/approve)"
            )));
        }
        builder = builder.uploaded().grant(grant);
    }
    let run = builder.build()?;
    let mut store = mcp_storage::store::AnomalyStore::open(&state.anomalies_db)?;
    let (started, status) = std::sync::mpsc::channel();
    // The run outlives the request: it goes on in a thread of its own.
    std::thread::Builder::new().name(format!("run-{agent}")).spawn(move || {
        let interval = std::time::Duration::from_millis(state.config.status_interval_ms);
        let (outcome, _) = run.execute_as_job(&mut store, &state.cache, interval, |status| {
            let _ = started.send(status.clone());
        });
        state.add_run_totals(&tenant, &agent, &super::RunTotals::of(&outcome));
        let settled =
            mcp_engine::quarantine::settle(&state.control, &state.config.quarantine, &tenant, &agent, &outcome);
        if let Err(e) = settled {
            tracing::error!(tenant, agent, "cannot record the run's faults: {e}");
        }
    })?;
    status.recv().map_err(|_| ApiError::internal("the run thread ended before it started"))
}

/// Starts a run of one agent (tenant admin).
#[utoipa::path(
    post,
    path = "/v1/runs",
    request_body = StartRun,
    responses(
        (status = ACCEPTED, description = "started; poll /v1/runs/{id}", body = RunView),
        (status = NOT_FOUND, description = "no such agent", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = CONFLICT, description = "the agent is disabled", body = super::problem::Problem, content_type = "application/problem+json"),
        super::problem::BadRequest,
        super::problem::Restricted
    )
)]
pub async fn start_run(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    body: Result<Json<StartRun>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<RunView>), ApiError> {
    caller.require(Role::TenantAdmin)?;
    let Json(body) = body?;
    let (shared, tenant, agent) = (state.clone(), caller.tenant.clone(), body.agent.clone());
    let status = tokio::task::spawn_blocking(move || run_job(shared, tenant, agent)).await??;
    state.control.audit(&caller.identity(), "run.start", &format!("{} as {}", body.agent, status.id))?;
    Ok((StatusCode::ACCEPTED, Json(status.into())))
}

/// The caller's runs still kept, newest first.
#[utoipa::path(
    get,
    path = "/v1/runs",
    responses((status = OK, body = Vec<RunView>), super::problem::Unauthorized)
)]
pub async fn list_runs(State(state): State<Arc<ApiState>>, caller: Caller) -> Result<Json<Vec<RunView>>, ApiError> {
    let tenant = caller.tenant;
    let shared = state.clone();
    let jobs = tokio::task::spawn_blocking(move || shared.cache.jobs(&tenant))
        .await?
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    Ok(Json(jobs.into_iter().filter(|j| j.kind == "run").map(RunView::from).collect()))
}

fn find(state: &ApiState, tenant: &str, id: &str) -> Result<JobStatus, ApiError> {
    state
        .cache
        .job(tenant, id)
        .map_err(|e| ApiError::unavailable(e.to_string()))?
        .filter(|j| j.kind == "run")
        .ok_or_else(|| ApiError::not_found(format!("no run {id}")))
}

/// One run's status and counters.
#[utoipa::path(
    get,
    path = "/v1/runs/{id}",
    params(("id" = String, Path)),
    responses(
        (status = OK, body = RunView),
        super::problem::NotFound,
        super::problem::Unauthorized
    )
)]
pub async fn get_run(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<RunView>, ApiError> {
    let shared = state.clone();
    let job = tokio::task::spawn_blocking(move || find(&shared, &caller.tenant, &id)).await??;
    Ok(Json(job.into()))
}

/// Asks a running run to stop after its current batch (tenant admin).
#[utoipa::path(
    post,
    path = "/v1/runs/{id}/cancel",
    params(("id" = String, Path)),
    responses(
        (status = ACCEPTED, body = RunView),
        (status = CONFLICT, description = "the run has ended", body = super::problem::Problem, content_type = "application/problem+json"),
        super::problem::NotFound,
        super::problem::Restricted
    )
)]
pub async fn cancel_run(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<RunView>), ApiError> {
    caller.require(Role::TenantAdmin)?;
    let shared = state.clone();
    let tenant = caller.tenant.clone();
    let job = tokio::task::spawn_blocking(move || {
        let job = find(&shared, &tenant, &id)?;
        if job.state != JobState::Running {
            return Err(ApiError::conflict(format!("run {id} has ended ({:?})", job.state)));
        }
        request_cancel(&shared.cache, &tenant, &id).map_err(|e| ApiError::unavailable(e.to_string()))?;
        Ok(job)
    })
    .await??;
    state.control.audit(&caller.identity(), "run.cancel", &job.id)?;
    Ok((StatusCode::ACCEPTED, Json(job.into())))
}
