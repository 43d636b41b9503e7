//! The agents a tenant can run: the bundled ones and its own uploads.
//! Uploads are validated against the world and the protocol before they are
//! kept, stored by sha256, and visible to their tenant only.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::{ApiError, ApiState, Caller, Role};
use mcp_sandbox::Grant;
use mcp_sandbox::registry::{self, RegisteredAgent};

/// An agent, as its tenant sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentView {
    pub name: String,
    pub log_type: String,
    pub agent_version: String,
    pub protocol_version: String,
    pub description: String,
    pub sha256: String,
    /// Shipped inside the `mcp` binary (wifi, firewall, dns as released);
    /// false for a component the operator put in the agents folder and for
    /// this tenant's uploads. `origin` says which.
    pub bundled: bool,
    /// Where the component comes from.
    pub origin: AgentOrigin,
    pub enabled: bool,
    /// Schema versions of its log type the agent reads.
    pub schema_versions: [u32; 2],
    /// The model version in force for it, if one is deployed.
    pub active_model: Option<String>,
    /// Totals of this tenant's runs of it since the server started.
    pub runs: super::RunTotals,
    /// What the host lets it reach.
    pub grants: Grants,
    /// Set while the agent is held out of runs after repeated faults.
    pub quarantine: Option<QuarantineView>,
    /// Its newest faults for this tenant, newest first.
    pub recent_faults: Vec<FaultView>,
}

/// Where an agent's component comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgentOrigin {
    /// Shipped inside the `mcp` binary.
    Bundled,
    /// Put in the deployment's agents folder by its operator; shared by
    /// every tenant, trusted as the bundled ones are.
    Deployment,
    /// Uploaded by this tenant.
    Upload,
}

/// A component sent as a request body, within the deployment's
/// `max_upload_bytes` and the tenant's `upload_bytes` budget.
pub(crate) fn component_body(
    state: &ApiState,
    tenant: &str,
    body: Result<Bytes, BytesRejection>,
) -> Result<Bytes, ApiError> {
    let bytes = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("components are limited to {} bytes (max_upload_bytes)", state.config.max_upload_bytes),
            )
        } else {
            ApiError::bad_request(rejection.body_text())
        }
    })?;
    if bytes.is_empty() {
        return Err(ApiError::bad_request("the body must be the component's bytes"));
    }
    let allowed = state.tenant_budget(tenant)?.upload_bytes;
    if bytes.len() as u64 > allowed {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("component of {} bytes; this tenant's upload_bytes budget is {allowed}", bytes.len()),
        ));
    }
    Ok(bytes)
}

/// The sha256 of each component the binary ships.
fn shipped() -> &'static std::collections::HashSet<String> {
    static SHIPPED: std::sync::OnceLock<std::collections::HashSet<String>> = std::sync::OnceLock::new();
    SHIPPED.get_or_init(|| {
        mcp_agent_artifacts::AGENTS.iter().map(|(_, bytes)| mcp_sandbox::registry::sha256_hex(bytes)).collect()
    })
}

/// What an agent may reach through the host: every host call is checked
/// against these and the tenant. A bundled agent is granted what its info
/// declares; an upload what its manifest asks, once a tenant admin approved it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Grants {
    /// The log types `logs.query` serves it.
    pub log_types: Vec<String>,
    /// The models `model.load` serves it: a bundled agent's own, by its
    /// name; none for an upload until per-tenant models exist.
    pub models: Vec<String>,
    /// The setting keys its config import shows; absent: every key.
    pub settings: Option<Vec<String>>,
    /// The setting keys set for it now (the operator's and this tenant's).
    pub settings_set: Vec<String>,
    /// Whether it may run: always for a bundled agent; for an upload, once
    /// a tenant admin approved this manifest (`POST .../approve`).
    pub approved: bool,
    /// When it was approved, for an upload.
    pub approved_ms: Option<i64>,
}

/// `tenant`'s uploaded agent `name`; a bundled one is a conflict, for the
/// reason `bundled` gives.
fn upload_named(state: &ApiState, tenant: &str, name: &str, bundled: &str) -> Result<RegisteredAgent, ApiError> {
    let resolved = state.resolve(tenant, name).ok_or_else(|| not_found(name))?;
    if resolved.bundled {
        return Err(ApiError::conflict(format!("'{name}' is bundled; {bundled}")));
    }
    resolved.registry.get(name).cloned().map_err(|_| not_found(name))
}

/// What an uploaded agent asks to reach.
#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The log types it reads; its own must be among them.
    pub log_types: Vec<String>,
    /// Models it loads, from its tenant's own (`POST /v1/models/{agent}/{version}`).
    #[serde(default)]
    pub models: Vec<String>,
    /// The setting keys it sees; absent: every key.
    #[serde(default)]
    pub settings: Option<Vec<String>>,
}

impl From<Manifest> for Grant {
    fn from(manifest: Manifest) -> Self {
        Grant { log_types: manifest.log_types, models: manifest.models, settings: manifest.settings }
    }
}

/// The grant `tenant`'s agent runs with and whether it may run: a bundled
/// agent's is its info's; an upload's is its recorded manifest.
pub(crate) fn grant_of(
    state: &ApiState,
    tenant: &str,
    agent: &RegisteredAgent,
    bundled: bool,
) -> Result<(Grant, Option<i64>), ApiError> {
    if bundled {
        return Ok((Grant::of_info(&agent.info), None));
    }
    let record = state.control.grant(tenant, &agent.info.name)?;
    match record {
        Some(record) if record.sha256 == agent.sha256 => {
            let grant: Grant = serde_json::from_str(&record.manifest).map_err(ApiError::internal)?;
            Ok((grant, record.approved.map(|(at, _)| at)))
        }
        _ => Ok((Grant::requested_by_default(&agent.info), None)),
    }
}

/// An agent held out of runs.
#[derive(Debug, Serialize, ToSchema)]
pub struct QuarantineView {
    pub since_ms: i64,
    /// When it runs again by itself; a tenant admin can release it sooner.
    pub until_ms: i64,
    /// The how-many-th quarantine in a row; each doubles the backoff.
    pub level: u32,
    pub reason: String,
}

/// One recorded fault.
#[derive(Debug, Serialize, ToSchema)]
pub struct FaultView {
    pub at_ms: i64,
    /// deadline, memory, panic, budget, ... (docs/security.md).
    pub kind: String,
    pub message: String,
}

fn view(state: &ApiState, tenant: &str, agent: &RegisteredAgent, bundled: bool) -> AgentView {
    let name = agent.info.name.clone();
    // Operator settings and deployment models serve bundled agents only.
    let mut settings: Vec<String> =
        if bundled { state.config.settings_for(&name).into_keys().collect() } else { Vec::new() };
    let prefix = format!("agents.{name}.");
    if let Ok(tenant_settings) = state.control.settings(tenant) {
        settings.extend(tenant_settings.into_iter().filter_map(|(k, _)| k.strip_prefix(&prefix).map(str::to_string)));
    }
    settings.sort();
    settings.dedup();
    let (grant, approved_ms) =
        grant_of(state, tenant, agent, bundled).unwrap_or_else(|_| (Grant::requested_by_default(&agent.info), None));
    let quarantine = mcp_engine::quarantine::in_force(&state.control, tenant, &name)
        .ok()
        .flatten()
        .map(|q| QuarantineView { since_ms: q.since_ms, until_ms: q.until_ms, level: q.level, reason: q.reason });
    let recent_faults = state
        .control
        .recent_faults(tenant, &name, 5)
        .unwrap_or_default()
        .into_iter()
        .map(|f| FaultView { at_ms: f.at_ms, kind: f.kind, message: f.message })
        .collect();
    AgentView {
        grants: Grants {
            log_types: grant.log_types,
            models: grant.models,
            settings: grant.settings,
            settings_set: settings,
            approved: bundled || approved_ms.is_some(),
            approved_ms,
        },
        quarantine,
        recent_faults,
        enabled: state.control.agent_enabled(tenant, &name).unwrap_or(false),
        active_model: if bundled { state.models.active_version(&name).ok().flatten() } else { None },
        runs: state.run_totals(tenant, &name),
        log_type: agent.info.log_type.clone(),
        agent_version: agent.info.agent_version.clone(),
        protocol_version: agent.info.protocol_version.clone(),
        description: agent.info.description.clone(),
        origin: match (bundled, shipped().contains(&agent.sha256)) {
            (false, _) => AgentOrigin::Upload,
            (true, true) => AgentOrigin::Bundled,
            (true, false) => AgentOrigin::Deployment,
        },
        bundled: bundled && shipped().contains(&agent.sha256),
        sha256: agent.sha256.clone(),
        schema_versions: [agent.info.schema.min_version, agent.info.schema.max_version],
        name,
    }
}

fn not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("no agent named '{name}'"))
}

fn lookup(state: &ApiState, tenant: &str, name: &str) -> Result<AgentView, ApiError> {
    let resolved = state.resolve(tenant, name).ok_or_else(|| not_found(name))?;
    let agent = resolved.registry.get(name).map_err(|_| not_found(name))?;
    Ok(view(state, tenant, agent, resolved.bundled))
}

/// Every agent the caller's tenant can run.
#[utoipa::path(
    get,
    path = "/v1/agents",
    responses((status = OK, body = Vec<AgentView>), super::problem::Unauthorized)
)]
pub async fn list_agents(State(state): State<Arc<ApiState>>, caller: Caller) -> Json<Vec<AgentView>> {
    let mut views: Vec<AgentView> = state.registry.list().map(|a| view(&state, &caller.tenant, a, true)).collect();
    if let Some(uploads) = state.uploads_of(&caller.tenant) {
        views.extend(uploads.list().map(|a| view(&state, &caller.tenant, a, false)));
    }
    Json(views)
}

/// One agent.
#[utoipa::path(
    get,
    path = "/v1/agents/{name}",
    params(("name" = String, Path, description = "agent name")),
    responses(
        (status = OK, body = AgentView),
        super::problem::NotFound,
        super::problem::Unauthorized
    )
)]
pub async fn get_agent(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<AgentView>, ApiError> {
    lookup(&state, &caller.tenant, &name).map(Json)
}

/// Uploads a component (the raw bytes of a `.wasm` file) for the caller's
/// tenant (tenant admin). It is compiled, checked against the world and
/// the protocol version, and kept under its sha256; an upload with the name
/// of one of the tenant's agents replaces it.
#[utoipa::path(
    post,
    path = "/v1/agents",
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "the component's bytes (application/wasm is accepted too)"),
    responses(
        (status = CREATED, body = AgentView),
        (status = BAD_REQUEST, description = "an empty body", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = CONFLICT, description = "the name is a bundled agent's", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = PAYLOAD_TOO_LARGE, body = super::problem::Problem, content_type = "application/problem+json"),
        (status = UNPROCESSABLE_ENTITY, description = "not a valid agent component", body = super::problem::Problem, content_type = "application/problem+json"),
        super::problem::Restricted
    )
)]
pub async fn upload_agent(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<AgentView>), ApiError> {
    caller.require(Role::TenantAdmin)?;
    let bytes = component_body(&state, &caller.tenant, body)?;
    let most_agents = state.tenant_budget(&caller.tenant)?.agents;
    let shared = state.clone();
    let tenant = caller.tenant.clone();
    let view = tokio::task::spawn_blocking(move || -> Result<AgentView, ApiError> {
        let sha256 = registry::sha256_hex(&bytes);
        let agent = registry::validate(shared.registry.sandbox(), &bytes, &format!("upload {sha256}"))
            .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_component", e.to_string()))?;
        let name = agent.info.name.clone();
        let info = agent.info.clone();
        // Log types are what a schema file describes: an agent of another
        // would run over nothing and report success.
        let described = shared.config.schema_files().shape(&info.log_type).map_err(|e| {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_component", format!("log type: {e}"))
        })?;
        if described.is_none() {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown_log_type",
                format!(
                    "agent '{name}' reads log type '{}', which no schema file of this deployment describes; the operator adds one (docs/log_schemas.md) before such an agent can run",
                    info.log_type
                ),
            ));
        }
        if shared.registry.get(&name).is_ok() {
            return Err(ApiError::conflict(format!("'{name}' is a bundled agent's name; rename yours")));
        }
        let uploads = shared.uploads_of(&tenant);
        let replaced = uploads.as_ref().and_then(|r| r.get(&name).ok().map(|a| a.sha256.clone()));
        if replaced.is_some() {
            refuse_while_running(&shared, &tenant, &name)?;
        }
        let held = uploads.map_or(0, |r| r.list().count()) as u64;
        if replaced.is_none() && held >= most_agents {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "over_budget",
                format!("the tenant has {held} uploaded agents, its agents budget; delete one first"),
            ));
        }
        shared.write_upload(&tenant, &sha256, &bytes)?;
        shared.replace_upload(&tenant, |registry| {
            let _ = registry.unregister(&name);
            // The agent validated above, registered as checked: its info is
            // not asked a second time.
            registry.insert(agent).map(|_| ()).map_err(ApiError::internal)
        })?;
        shared.control.record_upload(&tenant, &name, &sha256)?;
        // A new component waits for a tenant admin's approval again, asking
        // for what the one before it asked; the same bytes keep theirs.
        let previous = shared.control.grant(&tenant, &name)?;
        if previous.as_ref().is_none_or(|p| p.sha256 != sha256) {
            let manifest = match previous {
                Some(p) => p.manifest,
                None => serde_json::to_string(&Grant::requested_by_default(&info)).map_err(ApiError::internal)?,
            };
            shared.control.request_grant(&tenant, &name, &sha256, &manifest)?;
        }
        if let Some(old) = replaced.filter(|old| *old != sha256) {
            shared.remove_upload_if_unused(&tenant, &old);
        }
        lookup(&shared, &tenant, &name)
    })
    .await??;
    state.control.audit(&caller.identity(), "agent.upload", &format!("{} {}", view.name, view.sha256))?;
    Ok((StatusCode::CREATED, Json(view)))
}

async fn set_enabled(
    state: Arc<ApiState>,
    caller: Caller,
    name: String,
    enabled: bool,
) -> Result<Json<AgentView>, ApiError> {
    caller.require(Role::TenantAdmin)?;
    lookup(&state, &caller.tenant, &name)?;
    state.control.set_agent_enabled(&caller.tenant, &name, enabled)?;
    let action = if enabled { "agent.enable" } else { "agent.disable" };
    state.control.audit(&caller.identity(), action, &name)?;
    lookup(&state, &caller.tenant, &name).map(Json)
}

/// Lets the agent run again for the caller's tenant (tenant admin).
#[utoipa::path(
    post,
    path = "/v1/agents/{name}/enable",
    params(("name" = String, Path)),
    responses(
        (status = OK, body = AgentView),
        super::problem::NotFound,
        super::problem::Restricted
    )
)]
pub async fn enable_agent(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<AgentView>, ApiError> {
    set_enabled(state, caller, name, true).await
}

/// Stops the agent from being run for the caller's tenant (tenant admin).
#[utoipa::path(
    post,
    path = "/v1/agents/{name}/disable",
    params(("name" = String, Path)),
    responses(
        (status = OK, body = AgentView),
        super::problem::NotFound,
        super::problem::Restricted
    )
)]
pub async fn disable_agent(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<AgentView>, ApiError> {
    set_enabled(state, caller, name, false).await
}

/// Compiles and checks an uploaded agent again from its stored bytes
/// (tenant admin); bundled agents reload with the server.
#[utoipa::path(
    post,
    path = "/v1/agents/{name}/reload",
    params(("name" = String, Path)),
    responses(
        (status = OK, body = AgentView),
        (status = CONFLICT, description = "a bundled agent", body = super::problem::Problem, content_type = "application/problem+json"),
        super::problem::NotFound,
        super::problem::Restricted
    )
)]
pub async fn reload_agent(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<AgentView>, ApiError> {
    caller.require(Role::TenantAdmin)?;
    let current = lookup(&state, &caller.tenant, &name)?;
    if current.bundled {
        return Err(ApiError::conflict(format!("'{name}' is bundled; bundled agents reload when the server restarts")));
    }
    let shared = state.clone();
    let tenant = caller.tenant.clone();
    let view = tokio::task::spawn_blocking(move || -> Result<AgentView, ApiError> {
        let bytes = shared.read_upload(&tenant, &current.sha256)?;
        shared.replace_upload(&tenant, |registry| {
            let _ = registry.unregister(&name);
            registry
                .register_bytes(&bytes, &format!("upload {name}"))
                .map(|_| ())
                .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_component", e.to_string()))
        })?;
        lookup(&shared, &tenant, &name)
    })
    .await??;
    state.control.audit(&caller.identity(), "agent.reload", &view.name)?;
    Ok(Json(view))
}

/// Removes one of the tenant's uploaded agents (tenant admin); its
/// anomalies stay.
#[utoipa::path(
    delete,
    path = "/v1/agents/{name}",
    params(("name" = String, Path)),
    responses(
        (status = NO_CONTENT, description = "removed"),
        (status = CONFLICT, description = "a bundled agent: disable it instead", body = super::problem::Problem, content_type = "application/problem+json"),
        super::problem::NotFound,
        super::problem::Restricted
    )
)]
pub async fn delete_agent(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::TenantAdmin)?;
    let current = lookup(&state, &caller.tenant, &name)?;
    if current.bundled {
        return Err(ApiError::conflict(format!("'{name}' is bundled and shared; disable it for your tenant instead")));
    }
    refuse_while_running(&state, &caller.tenant, &name)?;
    state
        .replace_upload(&caller.tenant, |registry| registry.unregister(&name).map(|_| ()))
        .map_err(|_| not_found(&name))?;
    state.control.forget_upload(&caller.tenant, &name)?;
    state.remove_upload_if_unused(&caller.tenant, &current.sha256);
    state.control.audit(&caller.identity(), "agent.delete", &name)?;
    Ok(StatusCode::NO_CONTENT)
}

/// An agent with a run waiting or going is neither deleted nor replaced:
/// the run would go on with a component that is gone.
fn refuse_while_running(state: &ApiState, tenant: &str, name: &str) -> Result<(), ApiError> {
    match state.queue.busy_run(tenant, name) {
        Some(run) => Err(ApiError::conflict(format!(
            "agent '{name}' has run {run} queued or going; cancel it or wait for it to end first"
        ))),
        None => Ok(()),
    }
}

/// Ends the agent's quarantine for the caller's tenant now (tenant admin);
/// its recorded faults are cleared, its backoff level kept, so a relapse
/// is held out longer.
#[utoipa::path(
    post,
    path = "/v1/agents/{name}/release",
    params(("name" = String, Path)),
    responses(
        (status = OK, body = AgentView),
        super::problem::NotFound,
        super::problem::Restricted
    )
)]
pub async fn release_agent(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<AgentView>, ApiError> {
    caller.require(Role::TenantAdmin)?;
    lookup(&state, &caller.tenant, &name)?;
    let now = mcp_storage::jobstatus::now_ms();
    state.control.release_quarantine(&caller.tenant, &name, now, false)?;
    state.control.audit(&caller.identity(), "agent.release", &name)?;
    lookup(&state, &caller.tenant, &name).map(Json)
}

/// Declares what one of the tenant's uploaded agents asks to reach (tenant
/// admin): the log types it reads (its own among them), the setting keys it
/// sees (absent: all). Uploads get no models yet. The agent waits for
/// approval again.
#[utoipa::path(
    put,
    path = "/v1/agents/{name}/manifest",
    params(("name" = String, Path)),
    request_body = Manifest,
    responses(
        (status = OK, body = AgentView),
        (status = BAD_REQUEST, body = super::problem::Problem, content_type = "application/problem+json"),
        (status = CONFLICT, description = "a bundled agent", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = UNPROCESSABLE_ENTITY, description = "a manifest the host cannot grant", body = super::problem::Problem, content_type = "application/problem+json"),
        super::problem::NotFound,
        super::problem::Restricted
    )
)]
pub async fn put_manifest(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(name): Path<String>,
    body: Result<super::contract::JsonObject<Manifest>, ApiError>,
) -> Result<Json<AgentView>, ApiError> {
    caller.require(Role::TenantAdmin)?;
    let super::contract::JsonObject(manifest) = body?;
    let manifest = Grant::from(manifest);
    let agent = upload_named(&state, &caller.tenant, &name, "its grant is its own info")?;
    let unprocessable = |detail: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "manifest_refused", detail);
    manifest.check(&agent.info).map_err(unprocessable)?;
    let json = serde_json::to_string(&manifest).map_err(ApiError::internal)?;
    state.control.request_grant(&caller.tenant, &name, &agent.sha256, &json)?;
    state.control.audit(&caller.identity(), "agent.manifest", &format!("{name} {json}"))?;
    lookup(&state, &caller.tenant, &name).map(Json)
}

/// Approves what one of the tenant's uploaded agents asks to reach (tenant
/// admin); until then its runs are refused.
#[utoipa::path(
    post,
    path = "/v1/agents/{name}/approve",
    params(("name" = String, Path)),
    responses(
        (status = OK, body = AgentView),
        (status = CONFLICT, description = "a bundled agent", body = super::problem::Problem, content_type = "application/problem+json"),
        super::problem::NotFound,
        super::problem::Restricted
    )
)]
pub async fn approve_agent(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<AgentView>, ApiError> {
    caller.require(Role::TenantAdmin)?;
    let agent = upload_named(&state, &caller.tenant, &name, "it needs no approval")?;
    let (grant, _) = grant_of(&state, &caller.tenant, &agent, false)?;
    let json = serde_json::to_string(&grant).map_err(ApiError::internal)?;
    if !state.control.approve_grant(&caller.tenant, &name, &agent.sha256, caller.token_id)? {
        state.control.request_grant(&caller.tenant, &name, &agent.sha256, &json)?;
        state.control.approve_grant(&caller.tenant, &name, &agent.sha256, caller.token_id)?;
    }
    state.control.audit(&caller.identity(), "agent.approve", &format!("{name} {} {json}", agent.sha256))?;
    lookup(&state, &caller.tenant, &name).map(Json)
}
