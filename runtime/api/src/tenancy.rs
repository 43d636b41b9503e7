//! Tenants and tokens as resources. A tenant admin lists, creates and
//! revokes its own tenant's tokens; the deployment's admin creates, lists,
//! disables, enables and deletes tenants. Every change is audited in the
//! tenant it affects.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiError, ApiState, Caller, Role};
use mcp_storage::control::Caller as Identity;

/// A token, without its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    pub id: i64,
    pub name: String,
    pub role: String,
    /// The id of the token that created it; null for the command line.
    pub created_by: Option<i64>,
    pub created_ms: i64,
    /// When it was last used (recorded at most every 30 seconds).
    pub last_used_ms: Option<i64>,
}

impl From<mcp_storage::tenancy::TokenRecord> for TokenView {
    fn from(t: mcp_storage::tenancy::TokenRecord) -> Self {
        TokenView {
            id: t.id,
            name: t.name,
            role: t.role,
            created_by: t.created_by,
            created_ms: t.created_ms,
            last_used_ms: t.last_used_ms,
        }
    }
}

/// A token to make.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// 1 to 64 printable characters, to tell tokens apart.
    #[schema(min_length = 1, max_length = 64, pattern = r"^[^\x00-\x1f\x7f-\x9f]+$")]
    pub name: String,
    /// read_only, tenant_admin or admin (an admin token needs an admin's);
    /// for the deployment's own tokens, read_only or deployment_admin.
    pub role: RoleName,
}

/// A token's role.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoleName {
    ReadOnly,
    TenantAdmin,
    Admin,
    DeploymentAdmin,
}

impl From<RoleName> for Role {
    fn from(role: RoleName) -> Self {
        match role {
            RoleName::ReadOnly => Role::ReadOnly,
            RoleName::TenantAdmin => Role::TenantAdmin,
            RoleName::Admin => Role::Admin,
            RoleName::DeploymentAdmin => Role::DeploymentAdmin,
        }
    }
}

/// A new token: the only answer that carries its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    pub id: i64,
    pub name: String,
    pub role: String,
    /// `mcp_` and 64 hex characters; shown once, only its hash is kept.
    pub token: String,
}

/// A tenant, as the deployment's admin sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantView {
    pub name: String,
    pub created_ms: i64,
    pub disabled_ms: Option<i64>,
    pub tokens: i64,
}

impl From<mcp_storage::tenancy::TenantRecord> for TenantView {
    fn from(t: mcp_storage::tenancy::TenantRecord) -> Self {
        TenantView { name: t.name, created_ms: t.created_ms, disabled_ms: t.disabled_ms, tokens: t.tokens }
    }
}

/// A new tenant and its first admin token: the only answer that carries
/// the token's secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedTenant {
    pub tenant: TenantView,
    pub admin_token: CreatedToken,
}

/// A tenant to make.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    /// 1 to 64 of a-z, 0-9, '-' and '_', not starting with '_'.
    #[schema(pattern = r"^[a-z0-9-][a-z0-9_-]{0,63}$")]
    pub name: String,
}

/// Whoever manages the caller's tenant's tokens: its tenant admins, or for
/// the deployment's own tokens, the deployment admin.
fn require_token_admin(caller: &Caller) -> Result<(), ApiError> {
    if caller.is_deployment() { caller.require_deployment_admin() } else { caller.require(Role::TenantAdmin) }
}

fn audit_in(state: &ApiState, caller: &Caller, tenant: &str, action: &str, detail: &str) -> Result<(), ApiError> {
    let affected = Identity { token_id: caller.token_id, tenant: tenant.to_string(), role: caller.role };
    Ok(state.control.audit(&affected, action, detail)?)
}

/// The caller's tenant's tokens (tenant admin).
#[utoipa::path(get, path = "/v1/tokens", responses((status = OK, body = Vec<TokenView>), super::problem::Restricted))]
pub async fn list_tokens(State(state): State<Arc<ApiState>>, caller: Caller) -> Result<Json<Vec<TokenView>>, ApiError> {
    require_token_admin(&caller)?;
    Ok(Json(state.control.tokens(&caller.tenant)?.into_iter().map(TokenView::from).collect()))
}

/// Makes a token for the caller's tenant (tenant admin); its secret is in
/// this answer only.
#[utoipa::path(
    post,
    path = "/v1/tokens",
    request_body = NewToken,
    responses(
        (status = CREATED, body = CreatedToken),
        super::problem::BadRequest,
        super::problem::Restricted
    )
)]
pub async fn create_token(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    body: Result<super::contract::JsonObject<NewToken>, ApiError>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let super::contract::JsonObject(body) = body?;
    let role = Role::from(body.role);
    // A tenant's admins make its tokens (an admin one needs an admin); the
    // deployment admin makes the deployment's own.
    if caller.is_deployment() {
        caller.require_deployment_admin()?;
        if !matches!(role, Role::DeploymentAdmin | Role::ReadOnly) {
            return Err(ApiError::bad_request("the deployment's tokens are deployment_admin or read_only"));
        }
    } else {
        caller.require(if role == Role::Admin { Role::Admin } else { Role::TenantAdmin })?;
        if role == Role::DeploymentAdmin {
            return Err(ApiError::forbidden("only the deployment admin makes deployment_admin tokens"));
        }
    }
    if body.name.is_empty() || body.name.chars().count() > 64 || body.name.chars().any(char::is_control) {
        return Err(ApiError::bad_request("name must be 1 to 64 printable characters"));
    }
    let (id, token) = state.control.create_named_token(&caller.tenant, role, &body.name, Some(caller.token_id))?;
    audit_in(&state, &caller, &caller.tenant, "token.create", &format!("{id} {} {}", body.name, role.name()))?;
    Ok((StatusCode::CREATED, Json(CreatedToken { id, name: body.name, role: role.name().to_string(), token })))
}

/// Revokes one of the caller's tenant's tokens (tenant admin); it stops
/// working at once on this server, within 30 seconds on others. A token
/// does not revoke itself (409), so an admin cannot lock a tenant out by
/// mistake.
#[utoipa::path(
    delete,
    path = "/v1/tokens/{id}",
    params(("id" = i64, Path, minimum = 1, maximum = 9223372036854775807_i64)),
    responses(
        (status = NO_CONTENT, description = "revoked"),
        (status = CONFLICT, description = "the token making the call", body = super::problem::Problem, content_type = "application/problem+json"),
        super::problem::BadRequest,
        super::problem::NotFound,
        super::problem::Restricted
    )
)]
pub async fn revoke_token(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    id: Result<Path<i64>, axum::extract::rejection::PathRejection>,
) -> Result<StatusCode, ApiError> {
    require_token_admin(&caller)?;
    let Path(id) = id?;
    // A token is revoked by a role at least its own: a tenant_admin does
    // not lock out its tenant's admins.
    match state.control.token_role(&caller.tenant, id)? {
        None => return Err(ApiError::not_found(format!("no token {id}"))),
        Some(role) if role > caller.role => {
            return Err(ApiError::forbidden(format!("revoking an {} token needs that role", role.name())));
        }
        Some(_) => {}
    }
    if id == caller.token_id {
        return Err(ApiError::conflict(
            "a token does not revoke itself; revoke it with another of the tenant's tokens",
        ));
    }
    if !state.control.revoke_token(&caller.tenant, id)? {
        return Err(ApiError::not_found(format!("no token {id}")));
    }
    state.console_sessions.close_token(id);
    audit_in(&state, &caller, &caller.tenant, "token.revoke", &id.to_string())?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every tenant (the deployment's admin).
#[utoipa::path(get, path = "/v1/tenants", responses((status = OK, body = Vec<TenantView>), super::problem::Restricted))]
pub async fn list_tenants(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
) -> Result<Json<Vec<TenantView>>, ApiError> {
    caller.require_deployment_admin()?;
    Ok(Json(state.control.tenant_records()?.into_iter().map(TenantView::from).collect()))
}

/// Makes a tenant (the deployment's admin); `POST /v1/tokens` by its
/// admin, or `mcp tokens create`, gives it tokens.
#[utoipa::path(
    post,
    path = "/v1/tenants",
    request_body = NewTenant,
    responses(
        (status = CREATED, body = CreatedTenant),
        (status = CONFLICT, description = "it exists, or a deleted tenant had the name", body = super::problem::Problem, content_type = "application/problem+json"),
        super::problem::BadRequest,
        super::problem::Restricted
    )
)]
pub async fn create_tenant(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    body: Result<super::contract::JsonObject<NewTenant>, ApiError>,
) -> Result<(StatusCode, Json<CreatedTenant>), ApiError> {
    caller.require_deployment_admin()?;
    let super::contract::JsonObject(body) = body?;
    if !mcp_storage::control::valid_new_tenant(&body.name) {
        return Err(ApiError::bad_request(mcp_storage::control::ControlError::BadTenant(body.name).to_string()));
    }
    if !state.control.create_tenant(&body.name)? {
        return Err(ApiError::conflict(format!("tenant '{}' exists", body.name)));
    }
    let (id, token) =
        state.control.create_named_token(&body.name, Role::Admin, "first admin", Some(caller.token_id))?;
    audit_in(&state, &caller, &body.name, "tenant.create", &format!("{} with admin token {id}", body.name))?;
    let created = state.control.tenant_record(&body.name)?.ok_or_else(|| ApiError::internal("tenant vanished"))?;
    let admin_token = CreatedToken { id, name: "first admin".into(), role: Role::Admin.name().to_string(), token };
    Ok((StatusCode::CREATED, Json(CreatedTenant { tenant: created.into(), admin_token })))
}

/// Takes a deleted tenant's waiting runs out of the queue and asks its
/// running ones to stop after their batch.
fn stop_runs_of(state: &ApiState, tenant: &str) {
    let jobs = match state.cache.jobs(tenant) {
        Ok(jobs) => jobs,
        Err(e) => return tracing::warn!(tenant, "cannot list a deleted tenant's runs to stop them: {e}"),
    };
    for job in jobs {
        let withdrawn = job.state == mcp_storage::jobstatus::JobState::Queued && state.queue.withdraw(tenant, &job.id);
        if withdrawn {
            mcp_engine::jobs::RunJob::never_started(
                &state.cache,
                job,
                mcp_storage::jobstatus::JobState::Cancelled,
                Some("its tenant was deleted".into()),
            );
        } else if job.state == mcp_storage::jobstatus::JobState::Running
            && let Err(e) = mcp_engine::jobs::request_cancel(&state.cache, tenant, &job.id)
        {
            tracing::warn!(tenant, run = job.id, "cannot stop a deleted tenant's run: {e}");
        }
    }
}

/// The deployment's own tenant and the command-line tools' default one.
fn protected(state: &ApiState, name: &str) -> bool {
    name == mcp_storage::control::DEPLOYMENT_TENANT || name == state.config.tenant
}

async fn set_disabled(
    state: Arc<ApiState>,
    caller: Caller,
    name: String,
    disabled: bool,
) -> Result<Json<TenantView>, ApiError> {
    caller.require_deployment_admin()?;
    if disabled && protected(&state, &name) {
        return Err(ApiError::conflict(format!("tenant '{name}' is the deployment's own and cannot be disabled")));
    }
    if !state.control.set_tenant_disabled(&name, disabled)? {
        return Err(ApiError::not_found(format!("no tenant named '{name}'")));
    }
    if disabled {
        state.console_sessions.close_tenant(&name);
    }
    audit_in(&state, &caller, &name, if disabled { "tenant.disable" } else { "tenant.enable" }, &name)?;
    let view =
        state.control.tenant_record(&name)?.ok_or_else(|| ApiError::not_found(format!("no tenant named '{name}'")))?;
    Ok(Json(view.into()))
}

/// Disables a tenant (the deployment's admin): its tokens stop working at
/// once on this server, its data stays.
#[utoipa::path(
    post,
    path = "/v1/tenants/{name}/disable",
    params(("name" = String, Path)),
    responses((status = OK, body = TenantView), (status = CONFLICT, body = super::problem::Problem, content_type = "application/problem+json"), super::problem::NotFound, super::problem::Restricted)
)]
pub async fn disable_tenant(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<TenantView>, ApiError> {
    set_disabled(state, caller, name, true).await
}

/// Enables a disabled tenant again (the deployment's admin).
#[utoipa::path(
    post,
    path = "/v1/tenants/{name}/enable",
    params(("name" = String, Path)),
    responses((status = OK, body = TenantView), super::problem::NotFound, super::problem::Restricted)
)]
pub async fn enable_tenant(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<TenantView>, ApiError> {
    set_disabled(state, caller, name, false).await
}

/// Deletes a tenant (the deployment's admin): its tokens, uploaded agents
/// and their files, settings, grants, budgets and quarantine records go;
/// its audit trail, logs and anomalies stay.
#[utoipa::path(
    delete,
    path = "/v1/tenants/{name}",
    params(("name" = String, Path)),
    responses((status = NO_CONTENT, description = "deleted"), (status = CONFLICT, body = super::problem::Problem, content_type = "application/problem+json"), super::problem::NotFound, super::problem::Restricted)
)]
pub async fn delete_tenant(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_deployment_admin()?;
    if protected(&state, &name) {
        return Err(ApiError::conflict(format!("tenant '{name}' is the deployment's own and cannot be deleted")));
    }
    let uploads: Vec<String> = state
        .control
        .uploads()?
        .into_iter()
        .filter(|(tenant, _, _)| *tenant == name)
        .map(|(_, _, sha256)| sha256)
        .collect();
    if !state.control.delete_tenant(&name)? {
        return Err(ApiError::not_found(format!("no tenant named '{name}'")));
    }
    // The cache is reached synchronously: not on the request's own thread.
    let (stopping, deleted) = (state.clone(), name.clone());
    tokio::task::spawn_blocking(move || {
        stop_runs_of(&stopping, &deleted);
        super::exports::stop_exports_of(&stopping, &deleted);
    })
    .await?;
    state.forget_tenant_uploads(&name, &uploads);
    state.forget_tenant_models(&name);
    state.console_sessions.close_tenant(&name);
    audit_in(&state, &caller, &name, "tenant.delete", &name)?;
    Ok(StatusCode::NO_CONTENT)
}
