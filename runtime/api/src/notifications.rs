//! Each tenant's notifications: channels (where messages go), routes
//! (which anomalies go where), a test message, and the outbox with its
//! attempts, retries and dead letters (docs/notifications.md). Secrets
//! given here are sealed before they are stored and never shown again.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ApiError, ApiState, Caller, Role};
use mcp_notify::seed::{check_name, check_route};
use mcp_notify::spec::{ChannelSpec, Owner};
use mcp_storage::jobstatus::now_ms;
use mcp_storage::notify::channels::{ApiPut, ChannelDeletion};
use mcp_storage::notify::outbox::{AdminAction, Attempt};
use mcp_storage::notify::{ChannelRecord, Managed, OutboxEntry, OutboxFilter, OutboxState, RouteRecord};

/// Channels one tenant may have.
pub const MAX_CHANNELS: usize = 50;
/// Routes one tenant may have.
pub const MAX_ROUTES: usize = 200;

/// A channel as shown: its settings with secrets hidden.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelView {
    pub name: String,
    pub kind: String,
    /// `api`, or `config` for one config/notifications.toml keeps (the API
    /// cannot change those).
    pub managed_by: String,
    pub enabled: bool,
    pub dedup_window_s: i64,
    pub rate_per_minute: i64,
    /// The settings as given, each secret shown as `{"env": NAME}` or
    /// `{"stored": true}`.
    #[schema(value_type = Object)]
    pub settings: serde_json::Value,
    pub updated_ms: i64,
}

/// The caller's tenant's channels.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelList {
    pub items: Vec<ChannelView>,
}

/// A route: anomalies matching every non-empty list and the minimum score
/// go to `channel`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteBody {
    #[schema(pattern = r"^[a-z0-9_-]{1,64}$")]
    pub channel: String,
    /// Severities (`info`, `low`, `medium`, `high`, `critical`); empty: any.
    #[serde(default)]
    #[schema(max_items = 5)]
    pub severities: Vec<super::anomalies::SeverityFilter>,
    /// Agent names; empty: any.
    #[serde(default)]
    #[schema(max_items = 50, inline)]
    pub agents: Vec<Bounded>,
    /// Log types; empty: any.
    #[serde(default)]
    #[schema(max_items = 50, inline)]
    pub log_types: Vec<Bounded>,
    /// Labels; empty: any.
    #[serde(default)]
    #[schema(max_items = 50, inline)]
    pub labels: Vec<Bounded>,
    #[serde(default)]
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub min_score: f64,
}

/// A name in a route's list.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = String, min_length = 1, max_length = 256)]
pub struct Bounded(pub String);

/// A route as shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct RouteView {
    pub name: String,
    /// `api`, or `config` for one config/notifications.toml keeps.
    pub managed_by: String,
    pub channel: String,
    pub severities: Vec<super::anomalies::SeverityFilter>,
    pub agents: Vec<String>,
    pub log_types: Vec<String>,
    pub labels: Vec<String>,
    pub min_score: f64,
}

/// The caller's tenant's routes.
#[derive(Debug, Serialize, ToSchema)]
pub struct RouteList {
    pub items: Vec<RouteView>,
}

/// What a test message met.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestResult {
    pub delivered: bool,
    /// The receiver's HTTP status or SMTP reply code.
    pub status: Option<u16>,
    /// The start of the receiver's answer.
    pub answer: Option<String>,
    pub error: Option<String>,
    pub latency_ms: i64,
}

/// One try to deliver a notification.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptView {
    pub at_ms: i64,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub latency_ms: i64,
    pub answer: Option<String>,
}

/// A notification in the outbox.
#[derive(Debug, Serialize, ToSchema)]
pub struct OutboxView {
    pub id: i64,
    pub channel: String,
    /// `anomaly`: the first of its kind in a dedup window; `digest`: those
    /// folded in after it had gone, sent when the window ends.
    pub kind: String,
    pub anomaly_id: i64,
    /// Anomalies of the same agent, source and label folded into this one.
    pub folded: i64,
    pub window_end_ms: i64,
    #[schema(value_type = String)]
    pub state: OutboxStateView,
    pub attempts: i64,
    pub next_attempt_ms: i64,
    pub last_error: Option<String>,
    pub created_ms: i64,
    pub finished_ms: Option<i64>,
    /// Every attempt, oldest first (only when one notification is asked for).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt_log: Option<Vec<AttemptView>>,
}

/// Where a notification is.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OutboxStateView {
    Pending,
    Sending,
    Delivered,
    Dead,
    Dropped,
}

impl From<OutboxState> for OutboxStateView {
    fn from(state: OutboxState) -> Self {
        match state {
            OutboxState::Pending => OutboxStateView::Pending,
            OutboxState::Sending => OutboxStateView::Sending,
            OutboxState::Delivered => OutboxStateView::Delivered,
            OutboxState::Dead => OutboxStateView::Dead,
            OutboxState::Dropped => OutboxStateView::Dropped,
        }
    }
}

impl From<OutboxStateView> for OutboxState {
    fn from(state: OutboxStateView) -> Self {
        match state {
            OutboxStateView::Pending => OutboxState::Pending,
            OutboxStateView::Sending => OutboxState::Sending,
            OutboxStateView::Delivered => OutboxState::Delivered,
            OutboxStateView::Dead => OutboxState::Dead,
            OutboxStateView::Dropped => OutboxState::Dropped,
        }
    }
}

/// One page of the outbox, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct OutboxPage {
    pub items: Vec<OutboxView>,
    /// Pass as `cursor` for the next (older) page; absent on the last one.
    pub next_cursor: Option<String>,
}

/// Filters and paging of `GET /v1/notifications/outbox`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OutboxQuery {
    /// Only notifications in this state (`dead` lists the dead letters).
    #[param(inline)]
    pub state: Option<OutboxStateView>,
    /// Only this channel's.
    #[param(pattern = r"^[a-z0-9_-]{1,64}$")]
    pub channel: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(pattern = r"^[0-9]{1,18}$")]
    pub cursor: Option<String>,
    /// Notifications per page (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

fn outbox_view(entry: OutboxEntry, attempts: Option<Vec<Attempt>>) -> OutboxView {
    OutboxView {
        id: entry.id,
        channel: entry.channel,
        kind: entry.kind,
        anomaly_id: entry.anomaly_id,
        folded: entry.folded,
        window_end_ms: entry.window_end_ms,
        state: entry.state.into(),
        attempts: entry.attempts,
        next_attempt_ms: entry.next_attempt_ms,
        last_error: entry.last_error,
        created_ms: entry.created_ms,
        finished_ms: entry.finished_ms,
        attempt_log: attempts.map(|list| {
            list.into_iter()
                .map(|a| AttemptView {
                    at_ms: a.at_ms,
                    status: a.status,
                    error: a.error,
                    latency_ms: a.latency_ms,
                    answer: a.answer,
                })
                .collect()
        }),
    }
}

fn channel_view(record: &ChannelRecord) -> ChannelView {
    let settings = ChannelSpec::from_record(record).map(|spec| spec.view()).unwrap_or_default();
    ChannelView {
        name: record.name.clone(),
        kind: record.kind.clone(),
        managed_by: record.managed_by.as_str().to_string(),
        enabled: record.enabled,
        dedup_window_s: record.dedup_window_ms / 1000,
        rate_per_minute: record.rate_per_minute,
        settings,
        updated_ms: record.updated_ms,
    }
}

fn route_view(route: RouteRecord, managed: Managed) -> RouteView {
    RouteView {
        name: route.name,
        managed_by: managed.as_str().to_string(),
        channel: route.channel,
        severities: route.severities.iter().filter_map(|s| super::anomalies::SeverityFilter::parse(s)).collect(),
        agents: route.agents,
        log_types: route.log_types,
        labels: route.labels,
        min_score: route.min_score,
    }
}

fn valid_name(what: &str, name: &str) -> Result<(), ApiError> {
    check_name(name).map_err(|m| ApiError::bad_request(format!("{what} name '{name}': {m}")))
}

fn invalid_channel(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_channel", e.to_string())
}

/// Whether `name` may be put: not one the operator's file keeps, and a
/// new one only while the tenant has fewer than `max`.
fn may_put(what: &str, name: &str, existing: Option<Managed>, count: usize, max: usize) -> Result<(), ApiError> {
    match existing {
        Some(Managed::Config) => Err(managed_by_config(what, name)),
        None if count >= max => Err(over_budget(what, max)),
        _ => Ok(()),
    }
}

fn over_budget(what: &str, max: usize) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "over_budget", format!("a tenant has at most {max} {what}s; delete one first"))
}

fn unknown_channel(channel: &str) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unknown_channel", format!("channel: no channel named '{channel}'"))
}

/// Whether the store's put of `name` created it (true) or replaced it, or
/// the problem that says why it refused; `channel` is the route's.
fn put_outcome(what: &str, name: &str, channel: &str, max: usize, outcome: ApiPut) -> Result<bool, ApiError> {
    match outcome {
        ApiPut::Created => Ok(true),
        ApiPut::Replaced => Ok(false),
        ApiPut::ManagedByConfig => Err(managed_by_config(what, name)),
        ApiPut::OverLimit => Err(over_budget(what, max)),
        ApiPut::NoChannel => Err(unknown_channel(channel)),
    }
}

fn managed_by_config(what: &str, name: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "managed_by_config",
        format!(
            "{what} '{name}' is kept in the operator's notifications file (config/notifications.toml unless the deployment names another); change it there"
        ),
    )
}

/// The caller's tenant's channels, secrets hidden.
#[utoipa::path(
    get,
    path = "/v1/notifications/channels",
    responses((status = OK, body = ChannelList), super::problem::Unauthorized)
)]
pub async fn list_channels(State(state): State<Arc<ApiState>>, caller: Caller) -> Result<Json<ChannelList>, ApiError> {
    let items = state.control.notify_channels(&caller.tenant)?.iter().map(channel_view).collect();
    Ok(Json(ChannelList { items }))
}

/// One channel, secrets hidden.
#[utoipa::path(
    get,
    path = "/v1/notifications/channels/{name}",
    params(("name" = String, Path, pattern = r"^[a-z0-9_-]{1,64}$")),
    responses((status = OK, body = ChannelView), super::problem::BadRequest, super::problem::NotFound, super::problem::Unauthorized)
)]
pub async fn get_channel(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<ChannelView>, ApiError> {
    valid_name("channel", &name)?;
    let record = state
        .control
        .notify_channel(&caller.tenant, &name)?
        .ok_or_else(|| ApiError::not_found(format!("no channel named '{name}'")))?;
    Ok(Json(channel_view(&record)))
}

/// Creates or replaces a channel (tenant admins). Secrets are given as
/// `{"env": "MCP_SECRET_<TENANT>_…"}` (a variable of the server's
/// environment) or `{"value": "…"}` (sealed with the deployment's key).
#[utoipa::path(
    put,
    path = "/v1/notifications/channels/{name}",
    params(("name" = String, Path, pattern = r"^[a-z0-9_-]{1,64}$")),
    request_body = ChannelSpec,
    responses(
        (status = CREATED, body = ChannelView),
        (status = OK, description = "replaced", body = ChannelView),
        (status = UNPROCESSABLE_ENTITY, description = "settings that do not fit the kind (`invalid_channel`; the detail starts with the field)", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = CONFLICT, description = "kept by config/notifications.toml (`managed_by_config`), or the tenant has as many channels as it may (`over_budget`)", body = super::problem::Problem, content_type = "application/problem+json"),
        super::problem::BadRequest,
        super::problem::Restricted
    )
)]
pub async fn put_channel(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(name): Path<String>,
    body: Result<super::contract::JsonObject<ChannelSpec>, ApiError>,
) -> Result<(StatusCode, Json<ChannelView>), ApiError> {
    caller.require(Role::TenantAdmin)?;
    valid_name("channel", &name)?;
    let super::contract::JsonObject(spec) = body?;
    spec.check_bounds().map_err(|e| ApiError::bad_request(format!("the body: {e}")))?;
    spec.validate(&Owner::Tenant(caller.tenant.clone())).map_err(invalid_channel)?;
    let existing = state.control.notify_channels(&caller.tenant)?;
    let current = existing.iter().find(|c| c.name == name).map(|c| c.managed_by);
    may_put("channel", &name, current, existing.len(), MAX_CHANNELS)?;
    let record = spec
        .to_record(&caller.tenant, &name, state.deliverer.secret_key(), &state.config.notifications, Managed::Api)
        .map_err(invalid_channel)?;
    // Checked above before its secrets are sealed, and again where it is
    // written: another node may have written meanwhile.
    let outcome = state.control.put_api_channel(&record, MAX_CHANNELS)?;
    let created = put_outcome("channel", &name, &name, MAX_CHANNELS, outcome)?;
    state.control.audit(&caller.identity(), "notify.channel.put", &format!("{name} ({})", record.kind))?;
    let stored = state.control.notify_channel(&caller.tenant, &name)?.ok_or_else(|| {
        ApiError::conflict(format!("channel '{name}' was deleted (through another server) as it was stored"))
    })?;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(channel_view(&stored))))
}

/// Deletes a channel no route sends to (tenant admins). Its notifications
/// still waiting are dead-lettered when their turn comes.
#[utoipa::path(
    delete,
    path = "/v1/notifications/channels/{name}",
    params(("name" = String, Path, pattern = r"^[a-z0-9_-]{1,64}$")),
    responses(
        (status = NO_CONTENT, description = "deleted"),
        (status = CONFLICT, description = "routes still send to it (`in_use`, naming them), or config/notifications.toml keeps it (`managed_by_config`)", body = super::problem::Problem, content_type = "application/problem+json"),
        super::problem::BadRequest,
        super::problem::NotFound,
        super::problem::Restricted
    )
)]
pub async fn delete_channel(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::TenantAdmin)?;
    valid_name("channel", &name)?;
    if state.control.notify_channel(&caller.tenant, &name)?.is_some_and(|c| c.managed_by == Managed::Config) {
        return Err(managed_by_config("channel", &name));
    }
    match state.control.delete_notify_channel(&caller.tenant, &name)? {
        ChannelDeletion::Deleted => {
            state.control.audit(&caller.identity(), "notify.channel.delete", &name)?;
            let (tenant, channel) = (caller.tenant.clone(), name.clone());
            let reason = format!("channel '{name}' was deleted");
            state.with_outbox(&caller.tenant, move |s| s.give_up_channel(&tenant, &channel, &reason, now_ms())).await?;
            Ok(StatusCode::NO_CONTENT)
        }
        ChannelDeletion::NotFound => Err(ApiError::not_found(format!("no channel named '{name}'"))),
        ChannelDeletion::InUse(routes) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "in_use",
            format!("routes {} send to channel '{name}'; delete or change them first", routes.join(", ")),
        )),
    }
}

/// Sends a test message on a channel now (past the outbox, within the
/// channel's rate limit) and gives the receiver's answer (tenant admins).
#[utoipa::path(
    post,
    path = "/v1/notifications/channels/{name}/test",
    params(("name" = String, Path, pattern = r"^[a-z0-9_-]{1,64}$")),
    responses(
        (status = OK, description = "sent or not: `delivered` says, with the receiver's answer or the error", body = TestResult),
        (status = TOO_MANY_REQUESTS, description = "the channel is at its rate limit (with Retry-After)", body = super::problem::Problem, content_type = "application/problem+json"),
        super::problem::BadRequest,
        super::problem::NotFound,
        super::problem::Restricted
    )
)]
pub async fn test_channel(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<TestResult>, ApiError> {
    caller.require(Role::TenantAdmin)?;
    valid_name("channel", &name)?;
    let result = state.deliverer.test(&caller.tenant, &name).await.map_err(|e| match e {
        mcp_notify::worker::NotifyError::NoChannel(_) => ApiError::not_found(format!("no channel named '{name}'")),
        mcp_notify::worker::NotifyError::RateLimited { wait_ms, .. } => {
            ApiError::too_many_requests(e.to_string(), u64::try_from(wait_ms / 1000 + 1).unwrap_or(1))
        }
        mcp_notify::worker::NotifyError::Control(control) => control.into(),
        other => ApiError::internal(other),
    })?;
    state.control.audit(&caller.identity(), "notify.channel.test", &name)?;
    Ok(Json(match result {
        Ok(d) => {
            TestResult { delivered: true, status: d.status, answer: d.answer, error: None, latency_ms: d.latency_ms }
        }
        Err(f) => TestResult {
            delivered: false,
            status: f.status,
            answer: f.answer,
            error: Some(f.error),
            latency_ms: f.latency_ms,
        },
    }))
}

/// The caller's tenant's routes.
#[utoipa::path(
    get,
    path = "/v1/notifications/routes",
    responses((status = OK, body = RouteList), super::problem::Unauthorized)
)]
pub async fn list_routes(State(state): State<Arc<ApiState>>, caller: Caller) -> Result<Json<RouteList>, ApiError> {
    let items = state.control.notify_routes(&caller.tenant)?.into_iter().map(|(r, m)| route_view(r, m)).collect();
    Ok(Json(RouteList { items }))
}

/// Creates or replaces a route to one of the tenant's channels (tenant
/// admins); it applies from the next batch every run commits.
#[utoipa::path(
    put,
    path = "/v1/notifications/routes/{name}",
    params(("name" = String, Path, pattern = r"^[a-z0-9_-]{1,64}$")),
    request_body = RouteBody,
    responses(
        (status = CREATED, body = RouteView),
        (status = OK, description = "replaced", body = RouteView),
        (status = UNPROCESSABLE_ENTITY, description = "the channel does not exist (`unknown_channel`)", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = CONFLICT, description = "kept by config/notifications.toml (`managed_by_config`), or the tenant has as many routes as it may (`over_budget`)", body = super::problem::Problem, content_type = "application/problem+json"),
        super::problem::BadRequest,
        super::problem::Restricted
    )
)]
pub async fn put_route(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(name): Path<String>,
    body: Result<super::contract::JsonObject<RouteBody>, ApiError>,
) -> Result<(StatusCode, Json<RouteView>), ApiError> {
    caller.require(Role::TenantAdmin)?;
    valid_name("route", &name)?;
    let super::contract::JsonObject(body) = body?;
    let route = RouteRecord {
        name: name.clone(),
        channel: body.channel,
        severities: body.severities.iter().map(|s| s.name().to_string()).collect(),
        agents: body.agents.into_iter().map(|b| b.0).collect(),
        log_types: body.log_types.into_iter().map(|b| b.0).collect(),
        labels: body.labels.into_iter().map(|b| b.0).collect(),
        min_score: body.min_score,
    };
    check_route(&route).map_err(|m| ApiError::bad_request(format!("the body: {m}")))?;
    // The channel, the file's claim and the tenant's count are checked where
    // the route is written, under locks, in that order.
    let outcome = state.control.put_api_route(&caller.tenant, &route, MAX_ROUTES)?;
    let created = put_outcome("route", &name, &route.channel, MAX_ROUTES, outcome)?;
    state.control.audit(&caller.identity(), "notify.route.put", &format!("{name} -> {}", route.channel))?;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(route_view(route, Managed::Api))))
}

/// Deletes a route (tenant admins).
#[utoipa::path(
    delete,
    path = "/v1/notifications/routes/{name}",
    params(("name" = String, Path, pattern = r"^[a-z0-9_-]{1,64}$")),
    responses(
        (status = NO_CONTENT, description = "deleted"),
        (status = CONFLICT, description = "kept by config/notifications.toml (`managed_by_config`)", body = super::problem::Problem, content_type = "application/problem+json"),
        super::problem::BadRequest,
        super::problem::NotFound,
        super::problem::Restricted
    )
)]
pub async fn delete_route(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::TenantAdmin)?;
    valid_name("route", &name)?;
    if state.control.notify_routes(&caller.tenant)?.iter().any(|(r, m)| r.name == name && *m == Managed::Config) {
        return Err(managed_by_config("route", &name));
    }
    if !state.control.delete_notify_route(&caller.tenant, &name)? {
        return Err(ApiError::not_found(format!("no route named '{name}'")));
    }
    state.control.audit(&caller.identity(), "notify.route.delete", &name)?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's tenant's notifications, newest first; `state=dead` lists
/// the dead letters.
#[utoipa::path(
    get,
    path = "/v1/notifications/outbox",
    params(OutboxQuery),
    responses((status = OK, body = OutboxPage), super::problem::BadRequest, super::problem::Unauthorized)
)]
pub async fn list_outbox(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    query: Result<Query<OutboxQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<OutboxPage>, ApiError> {
    let Query(query) = query?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 1000"));
    }
    if let Some(channel) = &query.channel {
        valid_name("channel", channel)?;
    }
    let before = super::contract::id_cursor(query.cursor.as_deref())?;
    let filter = OutboxFilter { state: query.state.map(Into::into), channel: query.channel, before, limit: limit + 1 };
    let tenant = caller.tenant.clone();
    let mut entries = state.with_outbox(&caller.tenant, move |store| store.outbox(&tenant, &filter)).await?;
    let more = entries.len() > limit as usize;
    entries.truncate(limit as usize);
    let next_cursor = if more { entries.last().map(|e| e.id.to_string()) } else { None };
    Ok(Json(OutboxPage { items: entries.into_iter().map(|e| outbox_view(e, None)).collect(), next_cursor }))
}

async fn outbox_entry(state: &Arc<ApiState>, tenant: &str, id: i64) -> Result<OutboxView, ApiError> {
    let owner = tenant.to_string();
    let found = state.with_outbox(tenant, move |store| store.outbox_entry(&owner, id)).await?;
    let (entry, attempts) = found.ok_or_else(|| ApiError::not_found(format!("no notification {id}")))?;
    Ok(outbox_view(entry, Some(attempts)))
}

/// One notification with every attempt: status, error, latency, answer.
#[utoipa::path(
    get,
    path = "/v1/notifications/outbox/{id}",
    params(("id" = i64, Path)),
    responses((status = OK, body = OutboxView), super::problem::BadRequest, super::problem::NotFound, super::problem::Unauthorized)
)]
pub async fn get_outbox(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<OutboxView>, ApiError> {
    outbox_entry(&state, &caller.tenant, id).await.map(Json)
}

async fn admin_action(
    state: &Arc<ApiState>,
    caller: &Caller,
    id: i64,
    action: &'static str,
) -> Result<Json<OutboxView>, ApiError> {
    caller.require(Role::TenantAdmin)?;
    if action == "retry" {
        // A notification of a deleted channel would wait for the next
        // channel given that name, and go wherever it points.
        let entry = outbox_entry(state, &caller.tenant, id).await?;
        if state.control.notify_channel(&caller.tenant, &entry.channel)?.is_none() {
            return Err(ApiError::conflict(format!(
                "notification {id} was for channel '{}', which no longer exists; it cannot be sent again",
                entry.channel
            )));
        }
    }
    let tenant = caller.tenant.clone();
    let done = state
        .with_outbox(&caller.tenant, move |store| match action {
            "retry" => store.retry_notification(&tenant, id, now_ms()),
            _ => store.drop_notification(&tenant, id, now_ms()),
        })
        .await?;
    match done {
        AdminAction::Done => {
            state.control.audit(&caller.identity(), &format!("notify.outbox.{action}"), &id.to_string())?;
            outbox_entry(state, &caller.tenant, id).await.map(Json)
        }
        AdminAction::NotFound => Err(ApiError::not_found(format!("no notification {id}"))),
        AdminAction::Refused(current) => Err(ApiError::conflict(format!(
            "notification {id} is {}; {action} applies to {}",
            current.name(),
            if action == "retry" { "pending, dead or dropped ones" } else { "pending or dead ones" }
        ))),
    }
}

/// Makes a dead (or dropped, or waiting) notification due now, its
/// attempts counted from zero again (tenant admins).
#[utoipa::path(
    post,
    path = "/v1/notifications/outbox/{id}/retry",
    params(("id" = i64, Path)),
    responses(
        (status = OK, body = OutboxView),
        (status = CONFLICT, description = "delivered, being sent now, or its channel no longer exists", body = super::problem::Problem, content_type = "application/problem+json"),
        super::problem::BadRequest,
        super::problem::NotFound,
        super::problem::Restricted
    )
)]
pub async fn retry_outbox(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<OutboxView>, ApiError> {
    admin_action(&state, &caller, id, "retry").await
}

/// Gives up a waiting or dead notification; it stays listed as `dropped`
/// (tenant admins).
#[utoipa::path(
    post,
    path = "/v1/notifications/outbox/{id}/drop",
    params(("id" = i64, Path)),
    responses(
        (status = OK, body = OutboxView),
        (status = CONFLICT, description = "delivered, dropped, or being sent now", body = super::problem::Problem, content_type = "application/problem+json"),
        super::problem::BadRequest,
        super::problem::NotFound,
        super::problem::Restricted
    )
)]
pub async fn drop_outbox(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<OutboxView>, ApiError> {
    admin_action(&state, &caller, id, "drop").await
}
