//! Runs: started through the API, executed on a thread of their own, their
//! status kept in the shared cache (Redis when configured).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ApiError, ApiState, Caller, Role};
use mcp_engine::jobs::{RunJob, queued_status, request_cancel};
use mcp_engine::queue::QueueError;
use mcp_engine::runs::RunBuilder;
use mcp_storage::jobstatus::{JobState, JobStatus};
use mcp_storage::run_store::ConfiguredStore;

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
    /// queued, running, completed, failed or cancelled.
    pub state: String,
    /// The agent it runs.
    pub agent: Option<String>,
    pub subject: String,
    /// entries, batches, anomalies, quarantined, retries, replayed, faults.
    pub counters: std::collections::BTreeMap<String, u64>,
    pub error: Option<String>,
    /// When the run was accepted.
    pub started_ms: i64,
    pub updated_ms: i64,
    /// Where a failed or cancelled run stopped: the log id after which its
    /// last batch begins.
    pub stopped_after_id: Option<u64>,
}

fn state_name(state: JobState) -> &'static str {
    match state {
        JobState::Queued => "queued",
        JobState::Running => "running",
        JobState::Completed => "completed",
        JobState::Failed => "failed",
        JobState::Cancelled => "cancelled",
    }
}

impl From<JobStatus> for RunView {
    fn from(job: JobStatus) -> Self {
        RunView {
            id: job.id,
            state: state_name(job.state).into(),
            agent: job.agent,
            subject: job.subject,
            counters: job.counters,
            error: job.error,
            started_ms: job.started_ms,
            updated_ms: job.updated_ms,
            stopped_after_id: job.stopped_after_id,
        }
    }
}

/// The run builder of `tenant`'s `agent` as the API runs it: the agent as
/// the tenant sees it, its settings and budget, and for an upload its
/// approved grant and the tenant's own models; with the log source.
pub(crate) fn builder_for(
    state: &ApiState,
    tenant: &str,
    agent: &str,
) -> Result<(RunBuilder, Arc<dyn mcp_storage::source::LogSource>), ApiError> {
    let resolved =
        state.resolve(tenant, agent).ok_or_else(|| ApiError::not_found(format!("no agent named '{agent}'")))?;
    let source = state.log_source()?;
    let mut builder = RunBuilder::new(&state.config, resolved.registry.clone(), source.clone(), tenant, agent)
        .tenant_control(&state.control)?
        .models(state.models.clone());
    if !resolved.bundled {
        let registered =
            resolved.registry.get(agent).map_err(|_| ApiError::not_found(format!("no agent named '{agent}'")))?;
        let (grant, approved) = super::agents::grant_of(state, tenant, registered, false)?;
        if approved.is_none() {
            return Err(ApiError::conflict(format!(
                "agent '{agent}' waits for a tenant admin to approve what it asks to reach (POST /v1/agents/{agent}/approve)"
            )));
        }
        builder = builder.uploaded().grant(grant).models(state.models_of(tenant)?);
    }
    Ok((builder, source))
}

/// Checks that `agent` may run for `tenant` now (it exists, is enabled, is
/// not quarantined, is approved when uploaded) and queues it; the run
/// starts when its turn in the queue comes.
fn queue_run(state: Arc<ApiState>, tenant: String, agent: String) -> Result<JobStatus, ApiError> {
    let (builder, source) = builder_for(&state, &tenant, &agent)?;
    let name = state
        .resolve(&tenant, &agent)
        .and_then(|r| r.registry.get(&agent).ok().map(|a| a.info.name.clone()))
        .unwrap_or(agent);
    let queued = queued_status(&tenant, &name, source.name());
    // The run waits until its queued status is written, so that status
    // never overwrites the run's own.
    let (written, wait_for_status) = std::sync::mpsc::channel::<()>();
    let worker_state = state.clone();
    let job = queued.clone();
    let work = Box::new(move || {
        let _ = wait_for_status.recv();
        execute(&worker_state, builder, job);
    });
    state.queue.submit(&tenant, &name, &queued.id, work).map_err(queue_refusal)?;
    let recorded = state.cache.put_job(&queued);
    let _ = written.send(());
    if let Err(e) = recorded {
        tracing::warn!(run = %queued.id, "queued run's status not recorded: {e}");
    }
    Ok(queued)
}

fn queue_refusal(error: QueueError) -> ApiError {
    match error {
        QueueError::AgentBusy { .. } => ApiError::conflict(error.to_string()),
        QueueError::TenantFull { .. } | QueueError::Full { .. } => {
            let mut refused = ApiError::too_many_requests(error.to_string(), 10);
            refused.code = "queue_full";
            refused
        }
        QueueError::Closed => ApiError::unavailable(error.to_string()),
    }
}

/// A queued run's turn: makes its instance and runs it to the end, then
/// adds its totals and settles the agent's quarantine.
fn execute(state: &Arc<ApiState>, builder: RunBuilder, queued: JobStatus) {
    let tenant = queued.tenant.clone();
    let agent = queued.agent.clone().unwrap_or_else(|| builder.agent().to_string());
    let run = match builder.build() {
        Ok(run) => run,
        Err(error) => return RunJob::never_started(&state.cache, queued, JobState::Failed, Some(error.to_string())),
    };
    let shared = match state.shared_store() {
        Ok(shared) => shared,
        Err(error) => return RunJob::never_started(&state.cache, queued, JobState::Failed, Some(error.detail)),
    };
    let mut store = match shared.as_deref() {
        Some(shared) => ConfiguredStore::Shared(shared),
        None => match mcp_storage::store::AnomalyStore::open(&state.anomalies_db) {
            Ok(mut store) => {
                store.route_with(state.routes.clone());
                ConfiguredStore::Embedded(store)
            }
            Err(error) => {
                tracing::error!(tenant, agent, "cannot open the anomaly store for a run: {error}");
                let reason = "the anomaly store could not be opened; the server log says why".to_string();
                return RunJob::never_started(&state.cache, queued, JobState::Failed, Some(reason));
            }
        },
    };
    let interval = std::time::Duration::from_millis(state.config.status_interval_ms);
    let id = queued.id.clone();
    // Every line logged while the run goes (the agent's own included)
    // carries its tenant, agent and run id.
    let span = tracing::info_span!("run", tenant = %tenant, agent = %agent, run = %id);
    let _entered = span.enter();
    let mut job = RunJob::begin(&state.cache, queued, interval).stop_when(state.stopping.clone());
    let outcome = run.execute(&mut store, &mut |report| job.observe(report));
    state.add_run_totals(&tenant, &agent, &super::RunTotals::of(&outcome));
    let settled = mcp_engine::quarantine::settle(&state.control, &state.config.quarantine, &tenant, &agent, &outcome);
    if let Err(e) = settled {
        tracing::error!(tenant, agent, "cannot record the run's faults: {e}");
    }
    // Everything the next run must see (quarantine, totals) is recorded:
    // the agent may be queued again before the status says the run ended.
    state.queue.release_agent(&tenant, &agent, &id);
    job.record_faults(outcome.faults);
    job.finish(&outcome.result, &outcome.usage);
}

/// Starts a run of one agent (tenant admin).
#[utoipa::path(
    post,
    path = "/v1/runs",
    request_body = StartRun,
    responses(
        (status = ACCEPTED, description = "queued (or started); poll /v1/runs/{id}", body = RunView),
        (status = NOT_FOUND, description = "no such agent", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = CONFLICT, description = "the agent is disabled, quarantined, unapproved, or has a run queued or going", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = TOO_MANY_REQUESTS, description = "the tenant's or the server's run queue is full (`queue_full`, with Retry-After)", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = SERVICE_UNAVAILABLE, description = "the log source cannot be reached", body = super::problem::Problem, content_type = "application/problem+json"),
        super::problem::BadRequest,
        super::problem::Restricted
    )
)]
pub async fn start_run(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    body: Result<super::contract::JsonObject<StartRun>, ApiError>,
) -> Result<(StatusCode, Json<RunView>), ApiError> {
    caller.require(Role::TenantAdmin)?;
    let super::contract::JsonObject(body) = body?;
    let (shared, tenant, agent) = (state.clone(), caller.tenant.clone(), body.agent.clone());
    let status = tokio::task::spawn_blocking(move || queue_run(shared, tenant, agent)).await??;
    state.control.audit(&caller.identity(), "run.start", &format!("{} as {}", body.agent, status.id))?;
    Ok((StatusCode::ACCEPTED, Json(status.into())))
}

/// Filters and paging of `GET /v1/runs`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RunFilter {
    /// Only runs in this state.
    pub state: Option<RunState>,
    /// Only runs of this agent.
    pub agent: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Runs per page (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

/// A run's state, as a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl RunState {
    fn matches(self, state: JobState) -> bool {
        matches!(
            (self, state),
            (RunState::Queued, JobState::Queued)
                | (RunState::Running, JobState::Running)
                | (RunState::Completed, JobState::Completed)
                | (RunState::Failed, JobState::Failed)
                | (RunState::Cancelled, JobState::Cancelled)
        )
    }
}

/// One page of runs.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunPage {
    pub items: Vec<RunView>,
    /// Pass as `cursor` for the next page; absent on the last one.
    pub next_cursor: Option<String>,
}

/// Statuses read from the cache at once while a page is filled.
const READ_CHUNK: usize = 100;

/// The page of `tenant`'s runs after `filter.cursor` that pass `filter`.
fn run_page(state: &ApiState, tenant: &str, filter: &RunFilter) -> Result<RunPage, ApiError> {
    let limit = filter.limit.unwrap_or(50) as usize;
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 500"));
    }
    let ids = state.cache.job_ids(tenant).map_err(unavailable)?;
    // Ids are `run-<ms>-<hex>`, newest first: a page goes on after the
    // cursor's place in that order, whether or not that run is still kept.
    let start = match &filter.cursor {
        Some(cursor) => ids.iter().position(|id| id.as_str() < cursor.as_str()).unwrap_or(ids.len()),
        None => 0,
    };
    let mut items = Vec::new();
    let mut next_cursor = None;
    'chunks: for chunk in ids[start..].chunks(READ_CHUNK) {
        for job in state.cache.jobs_by_id(tenant, chunk).map_err(unavailable)? {
            let kept = job.kind == "run"
                && filter.state.is_none_or(|wanted| wanted.matches(job.state))
                && filter.agent.as_ref().is_none_or(|agent| job.agent.as_ref() == Some(agent));
            if !kept {
                continue;
            }
            if items.len() == limit {
                next_cursor = items.last().map(|last: &RunView| last.id.clone());
                break 'chunks;
            }
            items.push(RunView::from(job));
        }
    }
    Ok(RunPage { items, next_cursor })
}

/// The cache's failure as the caller sees it: no URL, no password.
fn unavailable(error: mcp_storage::jobstatus::CacheError) -> ApiError {
    tracing::warn!("job status unavailable: {error}");
    ApiError::unavailable("run status is unavailable (the job status cache does not answer); try again shortly")
}

/// The caller's runs still kept (the newest 1,000), newest first, filtered and paged.
#[utoipa::path(
    get,
    path = "/v1/runs",
    params(RunFilter),
    responses(
        (status = OK, body = RunPage),
        super::problem::BadRequest,
        super::problem::Unauthorized,
        (status = SERVICE_UNAVAILABLE, description = "the job status cache does not answer", body = super::problem::Problem, content_type = "application/problem+json")
    )
)]
pub async fn list_runs(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    filter: Result<Query<RunFilter>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<RunPage>, ApiError> {
    let Query(filter) = filter?;
    let shared = state.clone();
    let page = tokio::task::spawn_blocking(move || run_page(&shared, &caller.tenant, &filter)).await??;
    Ok(Json(page))
}

fn find(state: &ApiState, tenant: &str, id: &str) -> Result<JobStatus, ApiError> {
    state
        .cache
        .job(tenant, id)
        .map_err(unavailable)?
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

/// Takes a queued run out of the queue, or asks a running one to stop
/// after its current batch (tenant admin).
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
        if shared.queue.withdraw(&tenant, &id) {
            RunJob::never_started(&shared.cache, job.clone(), JobState::Cancelled, None);
            return Ok(JobStatus { state: JobState::Cancelled, ..job });
        }
        if job.state != JobState::Running && job.state != JobState::Queued {
            return Err(ApiError::conflict(format!("run {id} has ended ({})", state_name(job.state))));
        }
        request_cancel(&shared.cache, &tenant, &id).map_err(unavailable)?;
        Ok(job)
    })
    .await??;
    state.control.audit(&caller.identity(), "run.cancel", &job.id)?;
    Ok((StatusCode::ACCEPTED, Json(job.into())))
}
