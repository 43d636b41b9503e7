//! Anomalies: filtered, keyset-paged queries and single records.

use std::sync::Arc;

use axum::Json;
use axum::extract::Query;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ApiError, ApiState, Caller};
use mcp_storage::store::{AnomalyQuery, AnomalyRecord as StoredAnomaly, AnomalySort};

/// How a page is ordered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Sort {
    /// Newest entry first.
    #[default]
    Time,
    /// Highest score first.
    Score,
}

impl Sort {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Sort::Time => "time",
            Sort::Score => "score",
        }
    }
}

/// Filters of `GET /v1/anomalies`; all optional, combined with AND.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AnomalyFilter {
    /// Entries at or after this time (ms since the epoch).
    pub from_ms: Option<i64>,
    /// Entries before this time.
    pub to_ms: Option<i64>,
    pub agent: Option<String>,
    pub log_type: Option<String>,
    pub label: Option<String>,
    pub severity: Option<SeverityFilter>,
    /// The entry's source (device).
    pub source: Option<String>,
    /// Scores at or above this, from 0 to 1.
    #[param(minimum = 0.0, maximum = 1.0)]
    pub min_score: Option<f64>,
    #[serde(default)]
    pub sort: Sort,
    /// `next_cursor` of the previous page.
    #[param(pattern = r"^-?[0-9]{1,15}(\.[0-9]{1,17})?_[0-9]{1,18}$")]
    pub cursor: Option<String>,
    /// Anomalies per page (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// A severity, as a filter.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SeverityFilter {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl SeverityFilter {
    pub(crate) fn name(self) -> &'static str {
        match self {
            SeverityFilter::Info => "info",
            SeverityFilter::Low => "low",
            SeverityFilter::Medium => "medium",
            SeverityFilter::High => "high",
            SeverityFilter::Critical => "critical",
        }
    }

    pub(crate) fn parse(name: &str) -> Option<SeverityFilter> {
        [
            SeverityFilter::Info,
            SeverityFilter::Low,
            SeverityFilter::Medium,
            SeverityFilter::High,
            SeverityFilter::Critical,
        ]
        .into_iter()
        .find(|s| s.name() == name)
    }
}

/// An anomaly as served: the store's record, with its provenance.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AnomalyRecord {
    pub id: i64,
    pub agent: String,
    pub agent_sha256: String,
    pub log_type: String,
    pub log_id: u64,
    pub source: String,
    pub log_ts_ms: i64,
    pub score: f64,
    pub label: String,
    pub severity: String,
    pub reason: String,
    pub detected_at_ms: i64,
    pub schema_version: u32,
    /// `name@version` of the model that scored the batch, if one did.
    pub model: Option<String>,
    /// The entry's fields as stored with the anomaly (JSON text).
    pub entry_fields: Option<String>,
}

impl From<StoredAnomaly> for AnomalyRecord {
    fn from(r: StoredAnomaly) -> Self {
        AnomalyRecord {
            id: r.id,
            agent: r.agent,
            agent_sha256: r.agent_sha256,
            log_type: r.log_type,
            log_id: r.log_id,
            source: r.source,
            log_ts_ms: r.log_ts_ms,
            score: r.score,
            label: r.label,
            severity: r.severity,
            reason: r.reason,
            detected_at_ms: r.detected_at_ms,
            schema_version: r.schema_version,
            model: r.model,
            entry_fields: r.entry_fields,
        }
    }
}

/// One page of anomalies.
#[derive(Debug, Serialize, ToSchema)]
pub struct AnomalyPage {
    pub items: Vec<AnomalyRecord>,
    /// Pass as `cursor` for the next page; absent on the last one.
    pub next_cursor: Option<String>,
}

fn parse_cursor(cursor: &str, sort: Sort) -> Result<(f64, i64), ApiError> {
    let bad = || {
        ApiError::bad_request(format!("cursor '{cursor}' is not one this endpoint gave out with sort={}", sort.name()))
    };
    let (key, id) = cursor.split_once('_').ok_or_else(bad)?;
    let id: i64 = id.parse().map_err(|_| bad())?;
    // Any number the pattern lets through is a position in either order.
    let key: f64 = match sort {
        Sort::Time => key.parse::<f64>().map_err(|_| bad())?.floor(),
        Sort::Score => key.parse().map_err(|_| bad())?,
    };
    if !key.is_finite() {
        return Err(bad());
    }
    Ok((key, id))
}

/// The store's query for `filter` within `tenant`, from the first page.
pub(crate) fn store_query(filter: AnomalyFilter, tenant: String) -> AnomalyQuery {
    AnomalyQuery {
        tenant,
        agent: filter.agent,
        log_type: filter.log_type,
        label: filter.label,
        severity: filter.severity.map(|s| s.name().to_string()),
        source: filter.source,
        min_score: filter.min_score,
        from_ms: filter.from_ms,
        to_ms: filter.to_ms,
        sort: match filter.sort {
            Sort::Time => AnomalySort::Time,
            Sort::Score => AnomalySort::Score,
        },
        after: None,
        limit: filter.limit.unwrap_or(100),
    }
}

/// The caller's anomalies, filtered, newest (or highest scored) first.
#[utoipa::path(
    get,
    path = "/v1/anomalies",
    params(AnomalyFilter),
    responses(
        (status = OK, body = AnomalyPage),
        (status = BAD_REQUEST, description = "a filter or the cursor is malformed (`bad_request`), or the filters are too broad to serve from an index within the query's work bound (`query_too_broad`)", body = super::problem::Problem, content_type = "application/problem+json"),
        super::problem::Unauthorized
    )
)]
pub async fn list_anomalies(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    filter: Result<Query<AnomalyFilter>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<AnomalyPage>, ApiError> {
    let Query(filter) = filter?;
    let limit = filter.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request(format!("limit {limit} must be between 1 and 1000")));
    }
    if filter.min_score.is_some_and(|s| !(0.0..=1.0).contains(&s)) {
        return Err(ApiError::bad_request("min_score must be between 0 and 1"));
    }
    let after = filter.cursor.as_deref().map(|c| parse_cursor(c, filter.sort)).transpose()?;
    let sort = filter.sort;
    let query = AnomalyQuery { after, limit: limit + 1, ..store_query(filter, caller.tenant) };
    let tenant = query.tenant.clone();
    let mut records = state.with_anomalies(&tenant, move |store| store.query(&query)).await?;
    let more = records.len() > limit as usize;
    records.truncate(limit as usize);
    let next_cursor = match (more, records.last()) {
        (true, Some(last)) => Some(match sort {
            Sort::Time => format!("{}_{}", last.log_ts_ms, last.id),
            Sort::Score => format!("{}_{}", last.score, last.id),
        }),
        _ => None,
    };
    Ok(Json(AnomalyPage { items: records.into_iter().map(AnomalyRecord::from).collect(), next_cursor }))
}

/// One anomaly of the caller's tenant.
#[utoipa::path(
    get,
    path = "/v1/anomalies/{id}",
    params(("id" = i64, Path, description = "anomaly id")),
    responses(
        (status = OK, body = AnomalyRecord),
        (status = BAD_REQUEST, description = "the id is not a 64-bit integer", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = NOT_FOUND, description = "no such anomaly in the caller's tenant", body = super::problem::Problem, content_type = "application/problem+json"),
        super::problem::Unauthorized
    )
)]
pub async fn get_anomaly(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    id: Result<Path<i64>, axum::extract::rejection::PathRejection>,
) -> Result<Json<AnomalyRecord>, ApiError> {
    let Path(id) = id?;
    let tenant = caller.tenant;
    let found = state.with_anomalies(&tenant.clone(), move |store| store.get(&tenant, id)).await?;
    found.map(|r| Json(AnomalyRecord::from(r))).ok_or_else(|| ApiError::not_found(format!("no anomaly {id}")))
}
