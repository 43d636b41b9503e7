//! Settings a tenant may change while the server runs: its batch size and
//! its agents' settings. Each change is validated and audited; runs started
//! afterwards use it.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ApiError, ApiState, Caller, Role};

/// A tenant's live settings.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConfigView {
    /// Entries per agent call for this tenant's runs.
    pub batch_size: u32,
    /// Agent settings this tenant set, by agent, over the server's own.
    pub agents: BTreeMap<String, BTreeMap<String, String>>,
    /// Per-call limits of every instance (deployment-wide, read-only here).
    pub sandbox: SandboxView,
}

/// The sandbox limits in force.
#[derive(Debug, Serialize, ToSchema)]
pub struct SandboxView {
    pub budget: String,
    pub call_timeout_ms: u64,
    pub fuel_per_call: u64,
    pub memory_bytes: usize,
}

/// Changes to a tenant's settings; what is absent stays, what is null is
/// deleted (the server's own value applies again).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigChange {
    /// 100 to 10,000: every batch costs a commit and a state snapshot.
    #[schema(minimum = 100, maximum = 10000)]
    #[serde(default, deserialize_with = "whole_number")]
    pub batch_size: Option<u32>,
    /// Agent settings by agent name; values are text, numbers or booleans
    /// (agents read them as text, at most 4,096 bytes), or null to delete one.
    pub agents: Option<BTreeMap<String, BTreeMap<String, SettingValue>>>,
}

/// A setting's value: text, a number or a boolean, as in config/mcp.toml;
/// agents read it as text.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SettingValue {
    Text(String),
    Number(f64),
    Flag(bool),
    /// Deletes the setting.
    Null,
}

impl utoipa::PartialSchema for SettingValue {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
        ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::String, Type::Number, Type::Boolean, Type::Null]))
            .description(Some("text (at most 4,096 bytes), a number or a boolean; null deletes the setting"))
            .into()
    }
}

impl ToSchema for SettingValue {}

impl SettingValue {
    /// The text agents read; `None` deletes the setting.
    fn into_text(self) -> Option<String> {
        match self {
            SettingValue::Text(text) => Some(text),
            SettingValue::Number(n) if n.fract() == 0.0 && n.abs() < 9.0e15 => Some(format!("{}", n as i64)),
            SettingValue::Number(n) => Some(n.to_string()),
            SettingValue::Flag(flag) => Some(flag.to_string()),
            SettingValue::Null => None,
        }
    }
}

/// An optional [`super::contract::whole`] number that fits a u32.
fn whole_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    super::contract::whole_i64(deserializer)?
        .map(|n| {
            u32::try_from(n)
                .map_err(|_| serde::de::Error::custom(format!("{n} is not a whole number from 0 to {}", u32::MAX)))
        })
        .transpose()
}

/// Settings one change may name.
pub const MAX_SETTINGS_PER_CHANGE: usize = 100;

/// Settings one tenant may keep.
pub const MAX_SETTINGS_PER_TENANT: usize = 1_000;

/// One entry of the audit trail.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    pub at_ms: i64,
    /// The id of the token that made the change.
    pub token_id: i64,
    pub action: String,
    pub detail: String,
}

/// One page of the audit trail.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditEntry>,
    /// Pass as `cursor` for the next (older) page; absent on the last one.
    pub next_cursor: Option<String>,
}

/// Paging of `GET /v1/audit`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditPaging {
    /// `next_cursor` of the previous page.
    #[param(pattern = r"^[0-9]{1,18}$")]
    pub cursor: Option<String>,
    /// Entries per page (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

pub(super) fn batch_size(state: &ApiState, tenant: &str) -> Result<u32, ApiError> {
    let settings = state.control.settings(tenant)?;
    Ok(settings
        .iter()
        .find(|(k, _)| k == "batch_size")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(state.config.batch_size))
}

fn view(state: &ApiState, tenant: &str) -> Result<ConfigView, ApiError> {
    let mut agents: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (key, value) in state.control.settings(tenant)? {
        if let Some((agent, setting)) = key.strip_prefix("agents.").and_then(|k| k.split_once('.')) {
            agents.entry(agent.to_string()).or_default().insert(setting.to_string(), value);
        }
    }
    let limits = &state.config.sandbox;
    Ok(ConfigView {
        batch_size: batch_size(state, tenant)?,
        agents,
        sandbox: SandboxView {
            budget: format!("{:?}", limits.budget).to_lowercase(),
            call_timeout_ms: limits.call_timeout_ms,
            fuel_per_call: limits.fuel_per_call,
            memory_bytes: limits.memory_bytes,
        },
    })
}

fn plain(text: &str) -> bool {
    !text.is_empty() && text.len() <= 64 && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A change the document's schema allows but the tenant's agents do not
/// (an agent it does not have, a setting name or value out of bounds).
fn invalid_setting(detail: String) -> ApiError {
    ApiError::new(axum::http::StatusCode::UNPROCESSABLE_ENTITY, "invalid_setting", detail)
}

/// Checks the settings every bundled agent reads; others are the agent's own.
fn check_setting(key: &str, value: &str) -> Result<(), ApiError> {
    let bad = |why: &str| Err(invalid_setting(format!("setting '{key}' = '{value}': {why}")));
    match key {
        "detection" if !["rules", "model", "both"].contains(&value) => bad("must be rules, model or both"),
        "model_threshold" if !value.parse::<f32>().is_ok_and(|t| (0.0..=1.0).contains(&t)) => {
            bad("must be a number from 0 to 1")
        }
        _ if value.len() > 4096 => bad("values are limited to 4096 bytes"),
        // PostgreSQL's text cannot hold it, and no agent needs it.
        _ if value.contains('\0') => bad("values may not hold the NUL character"),
        _ => Ok(()),
    }
}

/// The caller's tenant's live settings.
#[utoipa::path(
    get,
    path = "/v1/config",
    responses((status = OK, body = ConfigView), super::problem::Unauthorized)
)]
pub async fn get_config(State(state): State<Arc<ApiState>>, caller: Caller) -> Result<Json<ConfigView>, ApiError> {
    view(&state, &caller.tenant).map(Json)
}

/// Changes the caller's tenant's settings (tenant admin); audited.
#[utoipa::path(
    patch,
    path = "/v1/config",
    request_body = ConfigChange,
    responses(
        (status = OK, body = ConfigView),
        (status = BAD_REQUEST, description = "the body does not match the schema", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = UNPROCESSABLE_ENTITY, description = "an agent the tenant does not have, a setting name or value out of bounds, or more settings than a change or a tenant may hold (`invalid_setting`)", body = super::problem::Problem, content_type = "application/problem+json"),
        super::problem::Restricted
    )
)]
pub async fn patch_config(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    body: Result<super::contract::JsonObject<ConfigChange>, ApiError>,
) -> Result<Json<ConfigView>, ApiError> {
    caller.require(Role::TenantAdmin)?;
    let super::contract::JsonObject(change) = body?;
    let mut writes: Vec<(String, Option<String>)> = Vec::new();
    if let Some(size) = change.batch_size {
        let least = mcp_engine::runs::MIN_TENANT_BATCH_SIZE;
        if !(least..=10_000).contains(&size) {
            return Err(ApiError::bad_request(format!("batch_size {size} must be from {least} to 10000")));
        }
        writes.push(("batch_size".to_string(), Some(size.to_string())));
    }
    for (agent, settings) in change.agents.unwrap_or_default() {
        if state.resolve(&caller.tenant, &agent).is_none() {
            return Err(invalid_setting(format!("no agent named '{agent}'")));
        }
        for (key, value) in settings {
            let value = value.into_text();
            if !plain(&key) {
                return Err(invalid_setting(format!("setting name '{key}' must be 1 to 64 of a-z, 0-9, '_', '-'")));
            }
            if let Some(value) = &value {
                check_setting(&key, value)?;
            }
            writes.push((format!("agents.{agent}.{key}"), value));
        }
    }
    if writes.len() > MAX_SETTINGS_PER_CHANGE {
        return Err(invalid_setting(format!(
            "{} settings in one change; at most {MAX_SETTINGS_PER_CHANGE}",
            writes.len()
        )));
    }
    if !writes.is_empty() {
        state.control.change_settings(&caller.identity(), &writes, MAX_SETTINGS_PER_TENANT)?;
    }
    view(&state, &caller.tenant).map(Json)
}

/// The caller's tenant's audit trail, newest first, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/audit",
    params(AuditPaging),
    responses(
        (status = OK, body = AuditPage),
        super::problem::BadRequest,
        super::problem::Restricted
    )
)]
pub async fn get_audit(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    paging: Result<Query<AuditPaging>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<AuditPage>, ApiError> {
    caller.require(Role::TenantAdmin)?;
    let Query(paging) = paging?;
    let limit = paging.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 1000"));
    }
    let before = super::contract::id_cursor(paging.cursor.as_deref())?;
    let mut trail = state.control.audit_trail(&caller.tenant, before, limit + 1)?;
    let more = trail.len() > limit as usize;
    trail.truncate(limit as usize);
    let next_cursor = if more { trail.last().map(|last| last.id.to_string()) } else { None };
    let items = trail
        .into_iter()
        .map(|r| AuditEntry { id: r.id, at_ms: r.at_ms, token_id: r.token_id, action: r.action, detail: r.detail })
        .collect();
    Ok(Json(AuditPage { items, next_cursor }))
}
