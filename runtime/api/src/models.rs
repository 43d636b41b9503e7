//! Model versions: list, upload, activate, roll back. The deployment's
//! models serve the bundled agents and only the deployment admin changes
//! them (every tenant's audit trail records it); each tenant's own models
//! serve its uploaded agents and only its admins change them.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use utoipa::ToSchema;

use super::{ApiError, ApiState, Caller};
use mcp_engine::models::{ModelError, ModelManager};

/// A model version on disk.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelVersionView {
    /// `deployment` (the bundled agents') or `tenant` (the caller's tenant's own).
    pub scope: String,
    pub agent: String,
    pub version: String,
    pub active: bool,
    pub family: Option<String>,
    /// Why the version is refused, if it is.
    pub refused: Option<String>,
    /// When it was trained, as its metadata says.
    pub created: Option<String>,
    /// Its metadata's figures: precision, recall and F1 on its training
    /// and validation data.
    pub metrics: std::collections::BTreeMap<String, f64>,
}

/// The parts of a model upload.
#[derive(Debug, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // read part by part from the multipart stream, never as a whole
pub struct ModelUpload {
    /// model.onnx
    #[schema(value_type = String, format = Binary)]
    pub model: Vec<u8>,
    /// metadata.json
    #[schema(value_type = String, format = Binary)]
    pub metadata: Vec<u8>,
}

/// What an activation or rollback left in force.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActiveModel {
    pub agent: String,
    pub version: String,
}

fn model_error(error: ModelError) -> ApiError {
    match error {
        ModelError::NotFound { .. } => ApiError::not_found(error.to_string()),
        ModelError::Invalid { .. } | ModelError::Checksum { .. } => {
            ApiError::new(axum::http::StatusCode::UNPROCESSABLE_ENTITY, "model_refused", error.to_string())
        }
        ModelError::NoPrevious { .. } => ApiError::conflict(error.to_string()),
        other => ApiError::internal(other),
    }
}

/// Whose models an agent's name refers to, for the caller.
enum Scope {
    Deployment,
    Tenant,
}

impl Scope {
    fn name(&self) -> &'static str {
        match self {
            Scope::Deployment => "deployment",
            Scope::Tenant => "tenant",
        }
    }
}

/// The models `agent` uses as the caller's tenant sees it, once the
/// caller may change them: its tenant's own for its uploaded agent (tenant
/// admin), the deployment's for a bundled one (the deployment admin).
fn models_to_change(state: &ApiState, caller: &Caller, agent: &str) -> Result<(Arc<ModelManager>, Scope), ApiError> {
    if !caller.is_deployment()
        && let Some(resolved) = state.resolve(&caller.tenant, agent)
        && !resolved.bundled
    {
        caller.require(super::Role::TenantAdmin)?;
        return Ok((state.models_of(&caller.tenant)?, Scope::Tenant));
    }
    caller.require_deployment_admin()?;
    if state.registry.get(agent).is_err() {
        return Err(ApiError::not_found(format!(
            "no agent named '{agent}'; the deployment's models serve bundled agents, a tenant's its uploads"
        )));
    }
    Ok((state.models.clone(), Scope::Deployment))
}

/// Records a model change where it matters: in every tenant's trail for
/// the deployment's models, in the caller's tenant's for its own.
fn audit_model(state: &ApiState, caller: &Caller, scope: &Scope, action: &str, detail: &str) -> Result<(), ApiError> {
    match scope {
        Scope::Deployment => state.control.audit_everywhere(&caller.identity(), action, detail)?,
        Scope::Tenant => state.control.audit(&caller.identity(), action, detail)?,
    }
    Ok(())
}

fn views(listing: Vec<mcp_engine::models::VersionListing>, scope: &Scope) -> Vec<ModelVersionView> {
    listing
        .into_iter()
        .map(|v| ModelVersionView {
            scope: scope.name().into(),
            agent: v.agent,
            version: v.version,
            active: v.active,
            family: v.family,
            refused: v.refused,
            created: v.created,
            metrics: v.metrics,
        })
        .collect()
}

/// The deployment's model versions (the bundled agents') and the caller's
/// tenant's own (its uploaded agents').
#[utoipa::path(
    get,
    path = "/v1/models",
    responses((status = OK, body = Vec<ModelVersionView>), super::problem::Unauthorized)
)]
pub async fn list_models(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
) -> Result<Json<Vec<ModelVersionView>>, ApiError> {
    let shared = state.clone();
    let listed = tokio::task::spawn_blocking(move || -> Result<_, ApiError> {
        let mut listed = views(shared.models.list().map_err(model_error)?, &Scope::Deployment);
        if !caller.is_deployment() {
            let own = shared.models_of(&caller.tenant)?.list().map_err(model_error)?;
            listed.extend(views(own, &Scope::Tenant));
        }
        Ok(listed)
    })
    .await??;
    Ok(Json(listed))
}

/// Validates a version and puts it in force (admin).
#[utoipa::path(
    post,
    path = "/v1/models/{agent}/{version}/activate",
    params(("agent" = String, Path), ("version" = String, Path)),
    responses(
        (status = OK, body = ActiveModel),
        (status = UNPROCESSABLE_ENTITY, description = "the version fails validation; the active one stays", body = super::problem::Problem, content_type = "application/problem+json"),
        super::problem::NotFound,
        super::problem::Restricted
    )
)]
pub async fn activate_model(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path((agent, version)): Path<(String, String)>,
) -> Result<Json<ActiveModel>, ApiError> {
    let (models, scope) = models_to_change(&state, &caller, &agent)?;
    let (a, v) = (agent.clone(), version.clone());
    tokio::task::spawn_blocking(move || models.activate(&a, &v).map(|_| ())).await?.map_err(model_error)?;
    audit_model(&state, &caller, &scope, "model.activate", &format!("{agent} {version}"))?;
    Ok(Json(ActiveModel { agent, version }))
}

/// Puts the version in force before the current one back (admin).
#[utoipa::path(
    post,
    path = "/v1/models/{agent}/rollback",
    params(("agent" = String, Path)),
    responses(
        (status = OK, body = ActiveModel),
        (status = CONFLICT, description = "nothing to roll back to", body = super::problem::Problem, content_type = "application/problem+json"),
        super::problem::NotFound,
        super::problem::Restricted
    )
)]
pub async fn rollback_model(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(agent): Path<String>,
) -> Result<Json<ActiveModel>, ApiError> {
    let (models, scope) = models_to_change(&state, &caller, &agent)?;
    let a = agent.clone();
    let version = tokio::task::spawn_blocking(move || models.rollback(&a)).await?.map_err(model_error)?;
    audit_model(&state, &caller, &scope, "model.rollback", &format!("{agent} to {version}"))?;
    Ok(Json(ActiveModel { agent, version }))
}

/// Uploads a model version as multipart parts `model` (model.onnx) and
/// `metadata` (metadata.json): for a bundled agent the deployment admin,
/// for the tenant's uploaded agent a tenant admin. It is validated like
/// `mcp models add` and kept only if it passes; activating it is a
/// separate step.
#[utoipa::path(
    post,
    path = "/v1/models/{agent}/{version}",
    params(("agent" = String, Path), ("version" = String, Path, pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$")),
    request_body(content = ModelUpload, content_type = "multipart/form-data", description = "parts `model` and `metadata`"),
    responses(
        (status = CREATED, body = ModelVersionView),
        (status = UNPROCESSABLE_ENTITY, description = "the version fails validation", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = PAYLOAD_TOO_LARGE, description = "the upload is over `max_upload_bytes` (32 MiB by default)", body = super::problem::Problem, content_type = "application/problem+json"),
        super::problem::BadRequest,
        super::problem::NotFound,
        super::problem::Restricted
    )
)]
pub async fn upload_model(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path((agent, version)): Path<(String, String)>,
    multipart: Result<axum::extract::Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<(axum::http::StatusCode, Json<ModelVersionView>), ApiError> {
    let (models, scope) = models_to_change(&state, &caller, &agent)?;
    if !mcp_engine::models::valid_component(&version) {
        return Err(ApiError::bad_request(format!(
            "version '{version}' must be 1 to 64 of A-Z, a-z, 0-9, '.', '-' and '_'"
        )));
    }
    // A version name starting with a dot would be hidden from listings.
    if version.starts_with('.') {
        return Err(ApiError::bad_request(format!("version '{version}' must not start with '.'")));
    }
    let mut multipart = multipart.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = state.config.max_upload_bytes;
    let part_error = |e: axum::extract::multipart::MultipartError| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(e.status(), "payload_too_large", format!("a model upload is at most {limit} bytes"))
        } else {
            ApiError::bad_request(e.body_text())
        }
    };
    let (mut model, mut metadata) = (None, None);
    while let Some(field) = multipart.next_field().await.map_err(part_error)? {
        let name = field.name().unwrap_or_default().to_string();
        let bytes = field.bytes().await.map_err(part_error)?;
        match name.as_str() {
            "model" => model = Some(bytes),
            "metadata" => metadata = Some(bytes),
            other => {
                return Err(ApiError::bad_request(format!("unexpected part '{other}'; send `model` and `metadata`")));
            }
        }
    }
    let (Some(model), Some(metadata)) = (model, metadata) else {
        return Err(ApiError::bad_request("send both parts, `model` (model.onnx) and `metadata` (metadata.json)"));
    };
    let shared = state.clone();
    let (a, v) = (agent.clone(), version.clone());
    let loaded = tokio::task::spawn_blocking(move || -> Result<_, ApiError> {
        let staging = tempfile::tempdir_in(&shared.config.data_dir)?;
        std::fs::write(staging.path().join("model.onnx"), &model)?;
        std::fs::write(staging.path().join("metadata.json"), &metadata)?;
        models.add(staging.path(), &a, &v).map_err(|e| match e {
            // Content that is not text where text is due: the upload's
            // fault, named by file and never by the server's path.
            ModelError::Io { path, source } if source.kind() == std::io::ErrorKind::InvalidData => {
                let file = std::path::Path::new(&path).file_name().map(|f| f.to_string_lossy().to_string());
                let detail = format!("{}: {source}", file.unwrap_or_default());
                ApiError::new(axum::http::StatusCode::UNPROCESSABLE_ENTITY, "model_refused", detail)
            }
            other => model_error(other),
        })
    })
    .await??;
    audit_model(&state, &caller, &scope, "model.upload", &format!("{agent} {version}"))?;
    let view = ModelVersionView {
        scope: scope.name().into(),
        active: false,
        agent,
        version,
        family: Some(loaded.metadata.family.clone()),
        refused: None,
        created: Some(loaded.metadata.created.clone()),
        metrics: loaded.metadata.metrics.clone(),
    };
    Ok((axum::http::StatusCode::CREATED, Json(view)))
}

/// Looks for new or changed version folders now, as the watcher does (admin).
#[utoipa::path(
    post,
    path = "/v1/models/reload",
    responses(
        (status = OK, description = "the versions activated", body = Vec<ActiveModel>),
        super::problem::Restricted
    )
)]
pub async fn reload_models(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
) -> Result<Json<Vec<ActiveModel>>, ApiError> {
    caller.require_deployment_admin()?;
    let models = state.models.clone();
    let activated = tokio::task::spawn_blocking(move || models.scan()).await?;
    let names: Vec<String> = activated.iter().map(|(agent, version)| format!("{agent} {version}")).collect();
    audit_model(&state, &caller, &Scope::Deployment, "model.reload", &format!("activated: {}", names.join(", ")))?;
    Ok(Json(activated.into_iter().map(|(agent, version)| ActiveModel { agent, version }).collect()))
}
