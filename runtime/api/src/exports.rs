//! Exports of a tenant's anomalies: started, watched, listed, downloaded
//! (resumably) and cancelled or deleted, and removed by the host when
//! older than the retention. The control store's record is the truth; the
//! job status cache mirrors progress for watchers. Exports wait in a queue
//! of their own, so the tenants take turns and runs are never delayed by
//! them. Files live under `data_dir/exports/<tenant>/<id>.<format>`,
//! reached through the exports folder opened as a capability directory.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::anomalies::SeverityFilter;
use super::range::{RangeAnswer, answer};
use super::{ApiError, ApiState, Caller};
use mcp_engine::export::{ExportError, ExportFormat, ExportProgress, ExportSpec, write_export};
use mcp_storage::control::Caller as Identity;
use mcp_storage::export_scan::ExportFilter;
use mcp_storage::exports::{ExportCounts, ExportRecord};
use mcp_storage::jobstatus::{JobState, JobStatus, now_ms};
use mcp_storage::reads::AnomalyReads;
use mcp_storage::store::AnomalyStore;

/// A file format of an export.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FormatName {
    /// JSON Lines: one anomaly object per line.
    Jsonl,
    /// CSV with a header row (written even when no anomaly follows).
    Csv,
    /// Parquet: typed columns (UTC millisecond timestamps, a double score,
    /// optional strings), Snappy-compressed row groups.
    Parquet,
}

/// What to export: the anomalies of the caller's tenant that pass every
/// filter given, newest log time first, as the store held them when the
/// export started. A list matches any of its values.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    pub format: FormatName,
    /// Log entries at or after this time (ms since the epoch).
    #[serde(default, deserialize_with = "super::contract::whole_i64", skip_serializing_if = "Option::is_none")]
    pub from_ms: Option<i64>,
    /// Log entries before this time.
    #[serde(default, deserialize_with = "super::contract::whole_i64", skip_serializing_if = "Option::is_none")]
    pub to_ms: Option<i64>,
    /// Anomalies detected at or after this time (ms since the epoch).
    #[serde(default, deserialize_with = "super::contract::whole_i64", skip_serializing_if = "Option::is_none")]
    pub detected_from_ms: Option<i64>,
    /// Anomalies detected before this time.
    #[serde(default, deserialize_with = "super::contract::whole_i64", skip_serializing_if = "Option::is_none")]
    pub detected_to_ms: Option<i64>,
    /// Agents that reported them (the tenant's, or ones since deleted that left anomalies).
    #[schema(value_type = Option<Vec<FilterValue>>, min_items = 1, max_items = 100)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agents: Option<Vec<String>>,
    #[schema(value_type = Option<Vec<FilterValue>>, min_items = 1, max_items = 100)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_types: Option<Vec<String>>,
    #[schema(value_type = Option<Vec<FilterValue>>, min_items = 1, max_items = 100)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    #[schema(min_items = 1, max_items = 5)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severities: Option<Vec<SeverityFilter>>,
    /// Sources (devices) of the entries.
    #[schema(value_type = Option<Vec<FilterValue>>, min_items = 1, max_items = 100)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sources: Option<Vec<String>>,
    /// Models that scored the batch, as `name@version`.
    #[schema(value_type = Option<Vec<ModelValue>>, min_items = 1, max_items = 100)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<String>>,
    /// Scores at or above this.
    #[schema(minimum = 0.0, maximum = 1.0)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_score: Option<f64>,
    /// Scores at or below this.
    #[schema(minimum = 0.0, maximum = 1.0)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_score: Option<f64>,
}

/// One value of a list filter (a name, label or source).
#[derive(ToSchema)]
#[schema(min_length = 1, max_length = 256)]
#[allow(dead_code)] // the document's shape of a value; requests hold plain strings
pub struct FilterValue(String);

/// A model of the `models` filter: `name@version`.
#[derive(ToSchema)]
#[schema(min_length = 3, max_length = 256, pattern = r"^[^@]+@[\s\S]+$")]
#[allow(dead_code)] // the document's shape of a value; requests hold plain strings
pub struct ModelValue(String);

/// How many values one list filter may hold.
const MAX_FILTER_VALUES: usize = 100;

/// The longest value of a list filter: names, labels, sources and models
/// are far shorter; a filter is kept with its export and in the audit
/// trail, so it must stay small.
const MAX_FILTER_VALUE_CHARS: usize = 256;

impl Serialize for FormatName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(format(*self).name())
    }
}

impl Serialize for SeverityFilter {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

fn format(name: FormatName) -> ExportFormat {
    match name {
        FormatName::Jsonl => ExportFormat::JsonLines,
        FormatName::Csv => ExportFormat::Csv,
        FormatName::Parquet => ExportFormat::Parquet,
    }
}

/// An export job, as recorded.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportView {
    pub id: String,
    /// queued, running, completed, failed or cancelled.
    pub state: String,
    pub format: String,
    /// The filters it was started with.
    #[schema(value_type = Object)]
    pub filters: serde_json::Value,
    /// Rows written so far (all of them once completed).
    pub rows: u64,
    pub bytes: u64,
    /// Anomalies within the export's time range looked at so far.
    pub examined: u64,
    /// Anomalies within its time range in all, counted when it started: an
    /// upper bound of `rows`.
    pub estimated_total: u64,
    /// `examined` as a share of `estimated_total`, 0 to 100.
    pub percent: f64,
    /// The file's sha256, once completed (also its download's ETag).
    pub sha256: Option<String>,
    pub error: Option<String>,
    /// The token that started it.
    pub token_id: i64,
    pub created_ms: i64,
    pub finished_ms: Option<i64>,
}

impl From<ExportRecord> for ExportView {
    fn from(r: ExportRecord) -> Self {
        let progress = ExportProgress {
            rows: r.rows,
            bytes: r.bytes,
            examined: r.examined,
            to_examine: r.to_examine,
            complete: false,
        };
        // Before the walk is counted there is nothing to be a share of.
        let percent = match r.state.as_str() {
            "completed" => 100.0,
            _ if r.to_examine == 0 => 0.0,
            _ => (progress.percent() * 10.0).round() / 10.0,
        };
        ExportView {
            filters: serde_json::from_str(&r.filters).unwrap_or(serde_json::Value::Null),
            id: r.id,
            state: r.state,
            format: r.format,
            rows: r.rows,
            bytes: r.bytes,
            examined: r.examined,
            estimated_total: r.to_examine,
            percent,
            sha256: r.sha256,
            error: r.error,
            token_id: r.token_id,
            created_ms: r.created_ms,
            finished_ms: r.finished_ms,
        }
    }
}

/// One page of the export history.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportPage {
    pub items: Vec<ExportView>,
    /// Pass as `cursor` for the next (older) page; absent on the last one.
    pub next_cursor: Option<String>,
}

/// Paging of `GET /v1/exports`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportPaging {
    /// `next_cursor` of the previous page.
    #[param(pattern = r"^export-[0-9]{1,20}-[0-9a-fA-F]{8}$")]
    pub cursor: Option<String>,
    /// Exports per page (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

/// Whether `text` has the shape of an export id: `export-<ms>-<8 hex>`.
fn is_export_id(text: &str) -> bool {
    let Some(rest) = text.strip_prefix("export-") else { return false };
    let Some((ms, tag)) = rest.split_once('-') else { return false };
    !ms.is_empty()
        && ms.len() <= 20
        && ms.bytes().all(|b| b.is_ascii_digit())
        && tag.len() == 8
        && tag.bytes().all(|b| b.is_ascii_hexdigit())
}

fn file_name(record_id: &str, format: &str) -> String {
    format!("{record_id}.{format}")
}

/// `tenant`'s folder inside the exports folder, made if missing.
fn tenant_dir(state: &ApiState, tenant: &str) -> std::io::Result<cap_std::fs::Dir> {
    let root = state.exports_dir()?;
    root.create_dir_all(tenant)?;
    root.open_dir(tenant)
}

/// How often a running export records its progress (and looks for a
/// cancellation): often enough for a watcher, rarely enough that ten
/// million rows cost a few hundred writes, not ten thousand.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// Mirrors an export's record in the job status cache; a cache that does
/// not answer loses a progress report, never the export.
fn mirror(state: &ApiState, record: &ExportRecord) {
    let job_state = match record.state.as_str() {
        "queued" => JobState::Queued,
        "running" => JobState::Running,
        "completed" => JobState::Completed,
        "cancelled" => JobState::Cancelled,
        _ => JobState::Failed,
    };
    let status = JobStatus {
        id: record.id.clone(),
        tenant: record.tenant.clone(),
        kind: "export".into(),
        state: job_state,
        subject: format!("export of anomalies as {}", record.format),
        counters: BTreeMap::from([
            ("rows".to_string(), record.rows),
            ("bytes".to_string(), record.bytes),
            ("examined".to_string(), record.examined),
            ("estimated_total".to_string(), record.to_examine),
        ]),
        error: record.error.clone(),
        started_ms: record.created_ms,
        updated_ms: now_ms(),
        stopped_after_id: None,
        agent: None,
    };
    if let Err(e) = state.cache.put_job(&status) {
        tracing::warn!(export = record.id, "export status not mirrored in the cache: {e}");
    }
}

fn mirror_current(state: &ApiState, tenant: &str, id: &str) {
    match state.control.export(tenant, id) {
        Ok(Some(record)) => mirror(state, &record),
        Ok(None) => {}
        Err(e) => tracing::warn!(export = id, "cannot read an export's record: {e}"),
    }
}

fn filter_of(tenant: &str, request: &ExportRequest) -> ExportFilter {
    let list = |values: &Option<Vec<String>>| values.clone().unwrap_or_default();
    ExportFilter {
        tenant: tenant.to_string(),
        agents: list(&request.agents),
        log_types: list(&request.log_types),
        labels: list(&request.labels),
        severities: request.severities.iter().flatten().map(|s| s.name().to_string()).collect(),
        sources: list(&request.sources),
        models: list(&request.models),
        min_score: request.min_score,
        max_score: request.max_score,
        from_ms: request.from_ms,
        to_ms: request.to_ms,
        detected_from_ms: request.detected_from_ms,
        detected_to_ms: request.detected_to_ms,
        up_to_id: None,
    }
}

fn counts(progress: &ExportProgress) -> ExportCounts {
    ExportCounts {
        rows: progress.rows,
        bytes: progress.bytes,
        examined: progress.examined,
        to_examine: progress.to_examine,
    }
}

/// What an export stopped by the server's shutdown says.
pub(crate) const SHUTDOWN_REASON: &str = "interrupted by the server's shutdown; start it again";

/// Runs export `id` to its end on this thread (a worker of the export queue).
fn run_export(state: &ApiState, tenant: &str, id: &str, spec: &ExportSpec) {
    let span = tracing::info_span!("export", tenant, export = id);
    let _entered = span.enter();
    let name = file_name(id, spec.format.name());
    let mut last = ExportProgress::default();
    let result = (|| -> Result<_, ExportError> {
        match state.control.export_progress(id, &ExportCounts::default()) {
            Ok(false) => {}
            Ok(true) => return Err(ExportError::Cancelled),
            Err(e) => tracing::warn!(export = id, "export start not recorded: {e}"),
        }
        mirror_current(state, tenant, id);
        let shared = state.shared_store().map_err(|e| ExportError::Unavailable(e.detail))?;
        let embedded;
        let store = match shared.as_deref() {
            Some(shared) => AnomalyReads::Shared(shared),
            None => {
                embedded = AnomalyStore::open(&state.anomalies_db)?;
                embedded.tune_for_reads()?;
                AnomalyReads::Embedded(&embedded)
            }
        };
        let dir = tenant_dir(state, tenant)?;
        let mut recorded = Instant::now();
        let mut progress = |done: &ExportProgress| {
            last = *done;
            if state.is_stopping() {
                return ControlFlow::Break(());
            }
            if !done.complete && recorded.elapsed() < PROGRESS_EVERY {
                return ControlFlow::Continue(());
            }
            recorded = Instant::now();
            let cancelled = match state.control.export_progress(id, &counts(done)) {
                Ok(cancelled) => cancelled,
                Err(e) => {
                    tracing::warn!(export = id, "export progress not recorded: {e}");
                    false
                }
            };
            mirror_current(state, tenant, id);
            if cancelled { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
        };
        write_export(store, spec, &dir, &name, &mut progress)
    })();
    let finished = match &result {
        Ok(file) => state.control.finish_export(id, "completed", &counts(&last), Some(&file.sha256), None),
        Err(ExportError::Cancelled) if state.is_stopping() => {
            state.control.finish_export(id, "failed", &counts(&last), None, Some(SHUTDOWN_REASON))
        }
        Err(ExportError::Cancelled) => state.control.finish_export(id, "cancelled", &counts(&last), None, None),
        Err(error) => {
            tracing::warn!(tenant, export = id, "export failed: {error}");
            let shown = match error {
                ExportError::TooManyRows { .. } => error.to_string(),
                _ => "the export could not be written; the server log says why".to_string(),
            };
            state.control.finish_export(id, "failed", &counts(&last), None, Some(&shown))
        }
    };
    if let Err(e) = finished {
        tracing::error!(export = id, "the export's end not recorded: {e}");
    }
    mirror_current(state, tenant, id);
}

/// Filters the schema allows that cannot select anything: named by field.
fn invalid_filter(detail: &str) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_filter", detail)
}

fn bad_field(field: &str, why: &str) -> ApiError {
    ApiError::bad_request(format!("{field}: {why}"))
}

/// What the document declares of a request, checked: bounds of lists and scores.
fn check_declared(request: &ExportRequest) -> Result<(), ApiError> {
    // The bounds the document declares: five severities, 100 of the rest.
    let lists = [
        ("agents", request.agents.as_ref().map(Vec::len), MAX_FILTER_VALUES),
        ("log_types", request.log_types.as_ref().map(Vec::len), MAX_FILTER_VALUES),
        ("labels", request.labels.as_ref().map(Vec::len), MAX_FILTER_VALUES),
        ("severities", request.severities.as_ref().map(Vec::len), 5),
        ("sources", request.sources.as_ref().map(Vec::len), MAX_FILTER_VALUES),
        ("models", request.models.as_ref().map(Vec::len), MAX_FILTER_VALUES),
    ];
    for (field, length, most) in lists {
        if length.is_some_and(|n| n == 0 || n > most) {
            return Err(bad_field(field, &format!("must hold 1 to {most} values")));
        }
    }
    for (field, score) in [("min_score", request.min_score), ("max_score", request.max_score)] {
        if score.is_some_and(|s| !(0.0..=1.0).contains(&s)) {
            return Err(bad_field(field, "must be between 0 and 1"));
        }
    }
    let texts = [
        ("agents", &request.agents),
        ("log_types", &request.log_types),
        ("labels", &request.labels),
        ("sources", &request.sources),
        ("models", &request.models),
    ];
    for (field, values) in texts {
        if values.iter().flatten().any(|v| v.is_empty() || v.chars().count() > MAX_FILTER_VALUE_CHARS) {
            return Err(bad_field(field, &format!("each value must be 1 to {MAX_FILTER_VALUE_CHARS} characters")));
        }
    }
    if request.models.iter().flatten().any(|m| !m.split_once('@').is_some_and(|(n, v)| !n.is_empty() && !v.is_empty()))
    {
        return Err(bad_field("models", "each value must be name@version"));
    }
    Ok(())
}

/// Starts an export of the caller's tenant's anomalies (any role: it reads
/// what the token may read). It waits in the export queue, then runs in
/// the background; poll its status.
#[utoipa::path(
    post,
    path = "/v1/exports",
    request_body = ExportRequest,
    responses(
        (status = ACCEPTED, description = "queued; poll /v1/exports/{id}", body = ExportView),
        (status = UNPROCESSABLE_ENTITY, description = "filters that cannot select anything: an agent the tenant has not had, a range that ends before it starts (`invalid_filter`, the detail starts with the field)", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = CONFLICT, description = "the tenant keeps as many exports, or as many bytes of them, as it may (`over_budget`): delete some first", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = TOO_MANY_REQUESTS, description = "the tenant has as many exports going as it may, or the server's export queue is full (`queue_full`, with Retry-After)", body = super::problem::Problem, content_type = "application/problem+json"),
        super::problem::BadRequest,
        super::problem::Unauthorized
    )
)]
pub async fn start_export(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    body: Result<super::contract::JsonObject<ExportRequest>, ApiError>,
) -> Result<(StatusCode, Json<ExportView>), ApiError> {
    let super::contract::JsonObject(request) = body?;
    check_declared(&request)?;
    let filter = filter_of(&caller.tenant, &request);
    filter.check().map_err(|e| invalid_filter(&e.to_string()))?;
    for agent in &filter.agents {
        if state.resolve(&caller.tenant, agent).is_some() {
            continue;
        }
        let (tenant, name) = (caller.tenant.clone(), agent.clone());
        if !state.with_anomalies(&caller.tenant, move |store| store.agent_has_anomalies(&tenant, &name)).await? {
            return Err(invalid_filter(&format!(
                "agents: the tenant has no agent named '{agent}' and no anomalies of one"
            )));
        }
    }
    let identity = caller.identity();
    let view = tokio::task::spawn_blocking(move || queue_export(&state, &identity, &request, filter)).await??;
    Ok((StatusCode::ACCEPTED, Json(view)))
}

/// Records export of `filter` and queues it. Blocking: the cache is
/// reached synchronously.
fn queue_export(
    state: &Arc<ApiState>,
    caller: &Identity,
    request: &ExportRequest,
    filter: ExportFilter,
) -> Result<ExportView, ApiError> {
    let limits = state.config.exports;
    let queue_full = |detail: String| {
        let mut refused = ApiError::too_many_requests(detail, 10);
        refused.code = "queue_full";
        refused
    };
    if state.control.active_exports(&caller.tenant)? >= limits.active_per_tenant {
        return Err(queue_full(format!(
            "the tenant has {} exports going, its limit; wait for one to end",
            limits.active_per_tenant
        )));
    }
    let (kept, kept_bytes) = state.control.kept_exports(&caller.tenant)?;
    if kept >= limits.kept_per_tenant || kept_bytes >= limits.kept_bytes_per_tenant {
        let mut refused = ApiError::conflict(format!(
            "the tenant keeps {kept} exports of {kept_bytes} bytes; its limit is {} exports and {} bytes: \
             delete some (DELETE /v1/exports/{{id}}) first",
            limits.kept_per_tenant, limits.kept_bytes_per_tenant
        ));
        refused.code = "over_budget";
        return Err(refused);
    }
    let id = mcp_engine::jobs::new_job_id("export");
    let filters = serde_json::to_string(request).map_err(ApiError::internal)?;
    let export_format = format(request.format);
    state.control.create_export(&id, &caller.tenant, caller.token_id, export_format.name(), &filters)?;
    let record = state.control.export(&caller.tenant, &id)?.ok_or_else(|| ApiError::internal("export vanished"))?;
    // The queued status is in the cache before the export can start, so
    // it never overwrites the export's own.
    mirror(state, &record);
    let spec = ExportSpec {
        filter,
        format: export_format,
        page_rows: limits.page_rows,
        max_rows: limits.max_rows,
        row_group_rows: limits.row_group_rows,
    };
    let (shared, tenant, job) = (state.clone(), caller.tenant.clone(), id.clone());
    let work = Box::new(move || run_export(&shared, &tenant, &job, &spec));
    if let Err(refused) = state.export_queue.submit(&caller.tenant, &id, &id, work) {
        state.control.forget_export(&caller.tenant, &id)?;
        return Err(queue_full(refused.to_string()));
    }
    state.control.audit(caller, "export.start", &format!("{id} {filters}"))?;
    Ok(record.into())
}

fn find(state: &ApiState, tenant: &str, id: &str) -> Result<ExportRecord, ApiError> {
    state.control.export(tenant, id)?.ok_or_else(|| {
        ApiError::not_found(format!(
            "no export {id} on this node (an export is kept by the node that took its request)"
        ))
    })
}

/// One export's status and progress.
#[utoipa::path(
    get,
    path = "/v1/exports/{id}",
    params(("id" = String, Path)),
    responses((status = OK, body = ExportView), super::problem::NotFound, super::problem::Unauthorized)
)]
pub async fn get_export(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ExportView>, ApiError> {
    Ok(Json(find(&state, &caller.tenant, &id)?.into()))
}

/// The caller's tenant's exports, newest first, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/exports",
    params(ExportPaging),
    responses((status = OK, body = ExportPage), super::problem::BadRequest, super::problem::Unauthorized)
)]
pub async fn list_exports(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    paging: Result<Query<ExportPaging>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ExportPage>, ApiError> {
    let Query(paging) = paging?;
    let limit = paging.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(bad_field("limit", "must be between 1 and 500"));
    }
    if paging.cursor.as_deref().is_some_and(|cursor| !is_export_id(cursor)) {
        return Err(bad_field("cursor", "is not a next_cursor this server gave"));
    }
    let mut records = state.control.exports(&caller.tenant, paging.cursor.as_deref(), limit + 1)?;
    let more = records.len() > limit as usize;
    records.truncate(limit as usize);
    let next_cursor = if more { records.last().map(|r| r.id.clone()) } else { None };
    Ok(Json(ExportPage { items: records.into_iter().map(ExportView::from).collect(), next_cursor }))
}

/// A completed export's file, streamed, with its length and its sha256 as
/// the ETag. `Range: bytes=N-` resumes an interrupted download; with
/// `If-Range: "<etag>"` the range applies only to that same file.
#[utoipa::path(
    get,
    path = "/v1/exports/{id}/download",
    params(("id" = String, Path)),
    responses(
        (status = OK, description = "the file", content((String = "application/jsonl"), (String = "text/csv"), (String = "application/vnd.apache.parquet"))),
        (status = PARTIAL_CONTENT, description = "the bytes of the file the `Range` header asked for, with `Content-Range`", content((String = "application/jsonl"), (String = "text/csv"), (String = "application/vnd.apache.parquet"))),
        (status = CONFLICT, description = "the export has not completed", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = RANGE_NOT_SATISFIABLE, description = "the range starts past the end of the file (`Content-Range: bytes */<length>`)", body = super::problem::Problem, content_type = "application/problem+json"),
        super::problem::NotFound,
        super::problem::Unauthorized
    )
)]
pub async fn download_export(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};

    let record = find(&state, &caller.tenant, &id)?;
    if record.state != "completed" {
        return Err(ApiError::conflict(format!("export {id} is {}; only a completed one downloads", record.state)));
    }
    let export_format =
        ExportFormat::parse(&record.format).ok_or_else(|| ApiError::internal("unknown export format"))?;
    let file = tenant_dir(&state, &caller.tenant)?.open(file_name(&record.id, &record.format))?;
    let length = file.metadata()?.len();
    let etag = format!("\"{}\"", record.sha256.unwrap_or_default());
    let header_text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    // A range meant for another file (If-Range names another ETag) gets the whole file.
    let same_file = header_text(header::IF_RANGE).is_none_or(|tag| tag.trim() == etag);
    let wanted = if same_file { answer(header_text(header::RANGE), length) } else { RangeAnswer::Whole };
    let disposition = format!("attachment; filename=\"{}\"", file_name(&record.id, &record.format));
    let mut file = tokio::fs::File::from_std(file.into_std());
    let (status, start, end) = match wanted {
        RangeAnswer::Whole => (StatusCode::OK, 0, length.saturating_sub(1)),
        RangeAnswer::Part { start, end } => (StatusCode::PARTIAL_CONTENT, start, end),
        RangeAnswer::Unsatisfiable => {
            let mut refused = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                format!("the file has {length} bytes; the range starts past its end"),
            )
            .into_response();
            if let Ok(value) = format!("bytes */{length}").parse() {
                refused.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            return Ok(refused);
        }
    };
    let sent = if length == 0 { 0 } else { end - start + 1 };
    file.seek(std::io::SeekFrom::Start(start)).await?;
    let stream = tokio_util::io::ReaderStream::new(file.take(sent));
    let mut response = (
        status,
        [
            (header::CONTENT_TYPE, export_format.content_type().to_string()),
            (header::CONTENT_LENGTH, sent.to_string()),
            (header::ETAG, etag),
            (header::ACCEPT_RANGES, "bytes".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        Body::from_stream(stream),
    )
        .into_response();
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(value) = format!("bytes {start}-{end}/{length}").parse()
    {
        response.headers_mut().insert(header::CONTENT_RANGE, value);
    }
    Ok(response)
}

/// Cancels a queued or running export, or deletes a finished one with its file.
#[utoipa::path(
    delete,
    path = "/v1/exports/{id}",
    params(("id" = String, Path)),
    responses(
        (status = ACCEPTED, description = "cancelling (or cancelled, if it had not started): it stops within a second and leaves no file", body = ExportView),
        (status = NO_CONTENT, description = "deleted, with its file"),
        super::problem::NotFound,
        super::problem::Restricted
    )
)]
pub async fn delete_export(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let identity = caller.identity();
    tokio::task::spawn_blocking(move || cancel_or_delete(&state, &identity, &id)).await?
}

/// Blocking: the cache is reached synchronously.
fn cancel_or_delete(state: &ApiState, caller: &Identity, id: &str) -> Result<Response, ApiError> {
    let record = find(state, &caller.tenant, id)?;
    // Reading is every role's; undoing another token's work is not.
    if caller.role == mcp_storage::control::Role::ReadOnly && record.token_id != caller.token_id {
        return Err(ApiError::forbidden(
            "a read_only token may cancel or delete only the exports it started; ask an admin of the tenant",
        ));
    }
    if record.state == "queued" || record.state == "running" {
        if state.export_queue.withdraw(&caller.tenant, id) {
            state.control.finish_export(id, "cancelled", &ExportCounts::default(), None, None)?;
        } else {
            state.control.request_export_cancel(&caller.tenant, id)?;
        }
        state.control.audit(caller, "export.cancel", id)?;
        let current = find(state, &caller.tenant, id)?;
        mirror(state, &current);
        return Ok((StatusCode::ACCEPTED, Json(ExportView::from(current))).into_response());
    }
    remove_file_of(state, &record);
    state.control.forget_export(&caller.tenant, id)?;
    state.control.audit(caller, "export.delete", id)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Removes the partial files of exports a stopped process left (none is
/// being written when the server starts); how many.
pub(crate) fn remove_partial_files(exports: &cap_std::fs::Dir) -> std::io::Result<usize> {
    let mut removed = 0;
    for tenant in exports.entries()? {
        let tenant = tenant?;
        if !tenant.file_type()?.is_dir() {
            continue;
        }
        let dir = tenant.open_dir()?;
        for file in dir.entries()? {
            let name = file?.file_name();
            if name.to_str().is_some_and(|n| n.ends_with(".part")) {
                dir.remove_file(&name)?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// Withdraws a deleted tenant's waiting exports and asks its running ones
/// to stop; their files never become complete.
pub(crate) fn stop_exports_of(state: &ApiState, tenant: &str) {
    let records = match state.control.exports(tenant, None, 1000) {
        Ok(records) => records,
        Err(e) => return tracing::warn!(tenant, "cannot list a deleted tenant's exports to stop them: {e}"),
    };
    for record in records.iter().filter(|r| r.state == "queued" || r.state == "running") {
        let stopped = if state.export_queue.withdraw(tenant, &record.id) {
            state.control.finish_export(&record.id, "cancelled", &ExportCounts::default(), None, None)
        } else {
            state.control.request_export_cancel(tenant, &record.id).map(drop)
        };
        if let Err(e) = stopped {
            tracing::warn!(tenant, export = record.id, "cannot stop a deleted tenant's export: {e}");
        }
    }
}

fn remove_file_of(state: &ApiState, record: &ExportRecord) {
    // A failed export's partial file is normally gone already; one a
    // crash left is removed with its record.
    let name = match record.state.as_str() {
        "completed" => file_name(&record.id, &record.format),
        _ => format!("{}.part", file_name(&record.id, &record.format)),
    };
    let removed = tenant_dir(state, &record.tenant).and_then(|dir| dir.remove_file(&name));
    if let Err(e) = removed.or_else(|e| if e.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(e) }) {
        tracing::warn!(export = record.id, "cannot remove an export's file: {e}");
    }
}

/// Removes the files and records of exports that ended more than the
/// configured retention before `now_ms`, each noted in its tenant's audit
/// trail; how many. Nothing when the retention is 0 (keep for ever).
pub fn expire_exports(state: &ApiState, now_ms: i64) -> Result<u64, mcp_storage::control::ControlError> {
    let days = state.config.exports.retention_days;
    if days == 0 {
        return Ok(0);
    }
    let cutoff = now_ms.saturating_sub(i64::from(days) * 24 * 3600 * 1000);
    let mut removed = 0;
    loop {
        let expired = state.control.finished_exports_before(cutoff, 500)?;
        if expired.is_empty() {
            return Ok(removed);
        }
        for record in expired {
            remove_file_of(state, &record);
            state.control.forget_export(&record.tenant, &record.id)?;
            // The host did it: token 0 is no token.
            let host = Identity { token_id: 0, tenant: record.tenant.clone(), role: mcp_storage::control::Role::Admin };
            let detail = format!(
                "{} ({}, ended {} ms after the epoch) older than the {days}-day retention",
                record.id,
                record.state,
                record.finished_ms.unwrap_or_default()
            );
            state.control.audit(&host, "export.expire", &detail)?;
            removed += 1;
        }
    }
}
