//! Runs: started through the API, executed on a thread of their own, their
//! status kept in the shared cache (Redis when configured).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiError, ApiState, Caller, Role};
use crate::cache::{JobState, JobStatus};
use crate::jobs::{RunJob, request_cancel};
use crate::pipeline::{self, RunSpec};

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
    if !state.control.agent_enabled(&tenant, &agent).map_err(ApiError::internal)? {
        return Err(ApiError::conflict(format!("agent '{agent}' is disabled for this tenant; enable it first")));
    }
    let source = state.config.log_source().map_err(ApiError::internal)?;
    let reader: Arc<dyn crate::sandbox::LogReader> = source.clone();
    let mut settings = state.config.settings_for(&agent);
    let prefix = format!("agents.{agent}.");
    for (key, value) in state.control.settings(&tenant).map_err(ApiError::internal)? {
        if let Some(key) = key.strip_prefix(&prefix) {
            settings.insert(key.to_string(), value);
        }
    }
    let batch_size = super::config::batch_size(&state, &tenant)?;
    let mut instance = pipeline::instance_with_models(
        &resolved.registry,
        &agent,
        &tenant,
        settings,
        Some(reader),
        Some(state.models.clone()),
    )
    .map_err(|e| ApiError::conflict(e.to_string()))?;
    let mut store = crate::store::AnomalyStore::open(&state.anomalies_db).map_err(ApiError::internal)?;
    let (started, status) = std::sync::mpsc::channel();
    // The run outlives the request: it goes on in a thread of its own.
    std::thread::Builder::new()
        .name(format!("run-{agent}"))
        .spawn(move || {
            let interval = std::time::Duration::from_millis(state.config.status_interval_ms);
            let mut job = RunJob::start(&state.cache, &tenant, &agent, source.name(), interval);
            let _ = started.send(job.status().clone());
            let spec = RunSpec {
                tenant: &tenant,
                agent: &agent,
                log_source: source.name(),
                batch_size,
                replay_ms: state.config.replay_ms,
            };
            let outcome =
                pipeline::run_observed(&resolved.registry, &mut instance, &*source, &mut store, &spec, &mut |r| {
                    job.observe(r)
                });
            job.finish(&outcome);
            let mut totals = super::RunTotals { runs: 1, fuel: instance.fuel_used(), ..Default::default() };
            match &outcome {
                Ok(r) => {
                    totals.entries = r.entries;
                    totals.anomalies = r.anomalies;
                    totals.quarantined = r.quarantined;
                    totals.faults = r.faults.len() as u64;
                    totals.seconds = r.elapsed.as_secs_f64();
                }
                Err(_) => totals.faults = instance.faults(),
            }
            state.add_run_totals(&tenant, &agent, &totals);
        })
        .map_err(ApiError::internal)?;
    status.recv().map_err(|_| ApiError::internal("the run thread ended before it started"))
}

/// Starts a run of one agent (tenant admin).
#[utoipa::path(
    post,
    path = "/v1/runs",
    request_body = StartRun,
    responses(
        (status = ACCEPTED, description = "started; poll /v1/runs/{id}", body = RunView),
        (status = BAD_REQUEST, body = super::problem::Problem, content_type = "application/problem+json"),
        (status = NOT_FOUND, description = "no such agent", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = CONFLICT, description = "the agent is disabled", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = FORBIDDEN, body = super::problem::Problem, content_type = "application/problem+json"),
        (status = UNAUTHORIZED, body = super::problem::Problem, content_type = "application/problem+json")
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
    let status =
        tokio::task::spawn_blocking(move || run_job(shared, tenant, agent)).await.map_err(ApiError::internal)??;
    state
        .control
        .audit(&caller, "run.start", &format!("{} as {}", body.agent, status.id))
        .map_err(ApiError::internal)?;
    Ok((StatusCode::ACCEPTED, Json(status.into())))
}

/// The caller's runs still kept, newest first.
#[utoipa::path(
    get,
    path = "/v1/runs",
    responses((status = OK, body = Vec<RunView>), (status = UNAUTHORIZED, body = super::problem::Problem, content_type = "application/problem+json"))
)]
pub async fn list_runs(State(state): State<Arc<ApiState>>, caller: Caller) -> Result<Json<Vec<RunView>>, ApiError> {
    let tenant = caller.tenant;
    let shared = state.clone();
    let jobs = tokio::task::spawn_blocking(move || shared.cache.jobs(&tenant))
        .await
        .map_err(ApiError::internal)?
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
        (status = NOT_FOUND, body = super::problem::Problem, content_type = "application/problem+json"),
        (status = UNAUTHORIZED, body = super::problem::Problem, content_type = "application/problem+json")
    )
)]
pub async fn get_run(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<RunView>, ApiError> {
    let shared = state.clone();
    let job =
        tokio::task::spawn_blocking(move || find(&shared, &caller.tenant, &id)).await.map_err(ApiError::internal)??;
    Ok(Json(job.into()))
}

/// Asks a running run to stop after its current batch (tenant admin).
#[utoipa::path(
    post,
    path = "/v1/runs/{id}/cancel",
    params(("id" = String, Path)),
    responses(
        (status = ACCEPTED, body = RunView),
        (status = NOT_FOUND, body = super::problem::Problem, content_type = "application/problem+json"),
        (status = CONFLICT, description = "the run has ended", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = FORBIDDEN, body = super::problem::Problem, content_type = "application/problem+json"),
        (status = UNAUTHORIZED, body = super::problem::Problem, content_type = "application/problem+json")
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
    .await
    .map_err(ApiError::internal)??;
    state.control.audit(&caller, "run.cancel", &job.id).map_err(ApiError::internal)?;
    Ok((StatusCode::ACCEPTED, Json(job.into())))
}
