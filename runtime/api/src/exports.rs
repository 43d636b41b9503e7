//! Exports of a tenant's anomalies: started, watched, listed, downloaded
//! and cancelled or deleted. The control store's record is the truth; the
//! job status cache mirrors progress for watchers. Files live under
//! `data_dir/exports/<tenant>/<id>.<format>`, reached through the exports
//! folder opened as a capability directory.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::anomalies::SeverityFilter;
use super::{ApiError, ApiState, Caller};
use mcp_engine::export::{ExportError, ExportFormat, ExportSpec, write_export};
use mcp_storage::exports::ExportRecord;
use mcp_storage::jobstatus::{JOB_TTL, JobState, JobStatus, now_ms};
use mcp_storage::store::{AnomalyQuery, AnomalySort, AnomalyStore};

/// A file format of an export.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FormatName {
    /// JSON Lines: one anomaly object per line.
    Jsonl,
    /// CSV with a header row.
    Csv,
}

/// What to export: the anomalies of the caller's tenant that pass every
/// filter given, newest first.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    pub format: FormatName,
    /// Entries at or after this time (ms since the epoch).
    #[serde(default, deserialize_with = "super::contract::whole_i64")]
    pub from_ms: Option<i64>,
    /// Entries before this time.
    #[serde(default, deserialize_with = "super::contract::whole_i64")]
    pub to_ms: Option<i64>,
    pub agent: Option<String>,
    pub log_type: Option<String>,
    pub label: Option<String>,
    pub severity: Option<SeverityFilter>,
    pub source: Option<String>,
    /// Scores at or above this.
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub min_score: Option<f64>,
}

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
        ExportView {
            filters: serde_json::from_str(&r.filters).unwrap_or(serde_json::Value::Null),
            id: r.id,
            state: r.state,
            format: r.format,
            rows: r.rows,
            bytes: r.bytes,
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
    pub cursor: Option<String>,
    /// Exports per page (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
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

fn cancel_key(tenant: &str, id: &str) -> String {
    format!("cancel:{tenant}:{id}")
}

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
        counters: BTreeMap::from([("rows".to_string(), record.rows), ("bytes".to_string(), record.bytes)]),
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

fn query_of(tenant: &str, request: &ExportRequest) -> AnomalyQuery {
    AnomalyQuery {
        tenant: tenant.to_string(),
        agent: request.agent.clone(),
        log_type: request.log_type.clone(),
        label: request.label.clone(),
        severity: request.severity.map(|s| s.name().to_string()),
        source: request.source.clone(),
        min_score: request.min_score,
        from_ms: request.from_ms,
        to_ms: request.to_ms,
        sort: AnomalySort::Time,
        after: None,
        limit: 1,
    }
}

/// Runs export `id` to its end on this thread.
fn run_export(state: &ApiState, tenant: &str, id: &str, spec: &ExportSpec) {
    let name = file_name(id, spec.format.name());
    let record = |state: &ApiState| state.control.export(tenant, id).ok().flatten();
    let result = (|| -> Result<_, ExportError> {
        let mut store = AnomalyStore::open(&state.anomalies_db)?;
        // An export reads everything that passes its filters: the page
        // bound that keeps interactive pages cheap does not apply.
        store.set_page_query_steps(u64::MAX);
        let dir = tenant_dir(state, tenant)?;
        let mut progress = |rows: u64, bytes: u64| {
            if let Err(e) = state.control.export_progress(id, rows, bytes) {
                tracing::warn!(export = id, "export progress not recorded: {e}");
            }
            if let Some(current) = record(state) {
                mirror(state, &current);
            }
            match state.cache.get(&cancel_key(tenant, id)) {
                Ok(Some(_)) => ControlFlow::Break(()),
                _ => ControlFlow::Continue(()),
            }
        };
        write_export(&store, spec, &dir, &name, &mut progress)
    })();
    let finished = match &result {
        Ok(file) => state.control.finish_export(id, "completed", file.rows, file.bytes, Some(&file.sha256), None),
        Err(ExportError::Cancelled) => state.control.finish_export(id, "cancelled", 0, 0, None, None),
        Err(error) => {
            tracing::warn!(tenant, export = id, "export failed: {error}");
            let shown = match error {
                ExportError::TooManyRows { .. } => error.to_string(),
                _ => "the export could not be written; the server log says why".to_string(),
            };
            state.control.finish_export(id, "failed", 0, 0, None, Some(&shown))
        }
    };
    if let Err(e) = finished {
        tracing::error!(export = id, "the export's end not recorded: {e}");
    }
    if let Some(current) = record(state) {
        mirror(state, &current);
    }
}

/// Filters the schema allows that cannot select anything: named by field.
fn invalid_filter(detail: &str) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_filter", detail)
}

fn bad_field(field: &str, why: &str) -> ApiError {
    ApiError::bad_request(format!("{field}: {why}"))
}

/// Starts an export of the caller's tenant's anomalies (any role: it reads
/// what the token may read). It runs in the background; poll its status.
#[utoipa::path(
    post,
    path = "/v1/exports",
    request_body = ExportRequest,
    responses(
        (status = ACCEPTED, description = "queued; poll /v1/exports/{id}", body = ExportView),
        (status = UNPROCESSABLE_ENTITY, description = "filters that cannot select anything: an agent the tenant does not have, `from_ms` after `to_ms` (`invalid_filter`, the detail starts with the field)", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = TOO_MANY_REQUESTS, description = "the tenant has as many exports going as it may (`queue_full`)", body = super::problem::Problem, content_type = "application/problem+json"),
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
    if let (Some(from), Some(to)) = (request.from_ms, request.to_ms)
        && from > to
    {
        return Err(invalid_filter("from_ms: is after to_ms"));
    }
    if request.min_score.is_some_and(|s| !(0.0..=1.0).contains(&s)) {
        return Err(bad_field("min_score", "must be between 0 and 1"));
    }
    if let Some(agent) = &request.agent
        && state.resolve(&caller.tenant, agent).is_none()
    {
        return Err(invalid_filter(&format!("agent: the tenant has no agent named '{agent}'")));
    }
    let limits = state.config.exports;
    if state.control.active_exports(&caller.tenant)? >= limits.active_per_tenant {
        let mut refused = ApiError::too_many_requests(
            format!("the tenant has {} exports going, its limit; wait for one to end", limits.active_per_tenant),
            10,
        );
        refused.code = "queue_full";
        return Err(refused);
    }
    let id = mcp_engine::jobs::new_job_id("export");
    let filters = serde_json::to_string(&request).map_err(ApiError::internal)?;
    let export_format = format(request.format);
    state.control.create_export(&id, &caller.tenant, caller.token_id, export_format.name(), &filters)?;
    state.control.audit(&caller.identity(), "export.start", &format!("{id} {filters}"))?;
    let record = state.control.export(&caller.tenant, &id)?.ok_or_else(|| ApiError::internal("export vanished"))?;
    mirror(&state, &record);
    let spec = ExportSpec {
        query: query_of(&caller.tenant, &request),
        format: export_format,
        page_rows: limits.page_rows,
        max_rows: limits.max_rows,
    };
    let (shared, tenant, job) = (state.clone(), caller.tenant.clone(), id.clone());
    std::thread::Builder::new()
        .name(format!("export-{id}"))
        .spawn(move || run_export(&shared, &tenant, &job, &spec))?;
    Ok((StatusCode::ACCEPTED, Json(record.into())))
}

fn find(state: &ApiState, tenant: &str, id: &str) -> Result<ExportRecord, ApiError> {
    state.control.export(tenant, id)?.ok_or_else(|| ApiError::not_found(format!("no export {id}")))
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
    let mut records = state.control.exports(&caller.tenant, paging.cursor.as_deref(), limit + 1)?;
    let more = records.len() > limit as usize;
    records.truncate(limit as usize);
    let next_cursor = if more { records.last().map(|r| r.id.clone()) } else { None };
    Ok(Json(ExportPage { items: records.into_iter().map(ExportView::from).collect(), next_cursor }))
}

/// A completed export's file, streamed, with its length and its sha256 as
/// the ETag.
#[utoipa::path(
    get,
    path = "/v1/exports/{id}/download",
    params(("id" = String, Path)),
    responses(
        (status = OK, description = "the file", content((String = "application/jsonl"), (String = "text/csv"))),
        (status = CONFLICT, description = "the export has not completed", body = super::problem::Problem, content_type = "application/problem+json"),
        super::problem::NotFound,
        super::problem::Unauthorized
    )
)]
pub async fn download_export(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let record = find(&state, &caller.tenant, &id)?;
    if record.state != "completed" {
        return Err(ApiError::conflict(format!("export {id} is {}; only a completed one downloads", record.state)));
    }
    let export_format =
        ExportFormat::parse(&record.format).ok_or_else(|| ApiError::internal("unknown export format"))?;
    let file = tenant_dir(&state, &caller.tenant)?.open(file_name(&record.id, &record.format))?;
    let length = file.metadata()?.len();
    let stream = tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(file.into_std()));
    let disposition = format!("attachment; filename=\"{}\"", file_name(&record.id, &record.format));
    let headers = [
        (header::CONTENT_TYPE, export_format.content_type().to_string()),
        (header::CONTENT_LENGTH, length.to_string()),
        (header::ETAG, format!("\"{}\"", record.sha256.unwrap_or_default())),
        (header::CONTENT_DISPOSITION, disposition),
    ];
    Ok((headers, Body::from_stream(stream)).into_response())
}

/// Cancels a queued or running export, or deletes a finished one with its file.
#[utoipa::path(
    delete,
    path = "/v1/exports/{id}",
    params(("id" = String, Path)),
    responses(
        (status = ACCEPTED, description = "cancelling: it stops after its current page and leaves no file", body = ExportView),
        (status = NO_CONTENT, description = "deleted, with its file"),
        super::problem::NotFound,
        super::problem::Unauthorized
    )
)]
pub async fn delete_export(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let record = find(&state, &caller.tenant, &id)?;
    if record.state == "queued" || record.state == "running" {
        state.cache.put(&cancel_key(&caller.tenant, &id), "1", JOB_TTL)?;
        state.control.audit(&caller.identity(), "export.cancel", &id)?;
        return Ok((StatusCode::ACCEPTED, Json(ExportView::from(record))).into_response());
    }
    if record.state == "completed" {
        let dir = tenant_dir(&state, &caller.tenant)?;
        if let Err(e) = dir.remove_file(file_name(&record.id, &record.format)) {
            tracing::warn!(export = id, "cannot remove an export's file: {e}");
        }
    }
    state.control.forget_export(&caller.tenant, &id)?;
    state.control.audit(&caller.identity(), "export.delete", &id)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
