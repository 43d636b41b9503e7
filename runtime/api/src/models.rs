//! Model versions: list, activate, roll back. Models serve the whole
//! deployment, so changing them needs the admin role.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use utoipa::ToSchema;

use super::{ApiError, ApiState, Caller};
use mcp_engine::models::ModelError;

/// A model version on disk.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelVersionView {
    pub agent: String,
    pub version: String,
    pub active: bool,
    pub family: Option<String>,
    /// Why the version is refused, if it is.
    pub refused: Option<String>,
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

/// Every agent's model versions.
#[utoipa::path(
    get,
    path = "/v1/models",
    responses((status = OK, body = Vec<ModelVersionView>), super::problem::Unauthorized)
)]
pub async fn list_models(
    State(state): State<Arc<ApiState>>,
    _caller: Caller,
) -> Result<Json<Vec<ModelVersionView>>, ApiError> {
    let models = state.models.clone();
    let listing = tokio::task::spawn_blocking(move || models.list()).await?;
    let views = listing
        .map_err(model_error)?
        .into_iter()
        .map(|v| ModelVersionView {
            agent: v.agent,
            version: v.version,
            active: v.active,
            family: v.family,
            refused: v.refused,
        })
        .collect();
    Ok(Json(views))
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
    caller.require_deployment_admin(&state.config.tenant)?;
    let models = state.models.clone();
    let (a, v) = (agent.clone(), version.clone());
    tokio::task::spawn_blocking(move || models.activate(&a, &v).map(|_| ())).await?.map_err(model_error)?;
    state.control.audit(&caller.identity(), "model.activate", &format!("{agent} {version}"))?;
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
        super::problem::Restricted
    )
)]
pub async fn rollback_model(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(agent): Path<String>,
) -> Result<Json<ActiveModel>, ApiError> {
    caller.require_deployment_admin(&state.config.tenant)?;
    let models = state.models.clone();
    let a = agent.clone();
    let version = tokio::task::spawn_blocking(move || models.rollback(&a)).await?.map_err(model_error)?;
    state.control.audit(&caller.identity(), "model.rollback", &format!("{agent} to {version}"))?;
    Ok(Json(ActiveModel { agent, version }))
}

/// Uploads a model version as multipart parts `model` (model.onnx) and
/// `metadata` (metadata.json) (admin). It is validated like `mcp models add`
/// and kept only if it passes; activating it is a separate step.
#[utoipa::path(
    post,
    path = "/v1/models/{agent}/{version}",
    params(("agent" = String, Path), ("version" = String, Path)),
    request_body(content_type = "multipart/form-data", description = "parts `model` and `metadata`"),
    responses(
        (status = CREATED, body = ModelVersionView),
        (status = UNPROCESSABLE_ENTITY, description = "the version fails validation", body = super::problem::Problem, content_type = "application/problem+json"),
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
    caller.require_deployment_admin(&state.config.tenant)?;
    // Deployment models serve the bundled agents, by name; a version name
    // starting with a dot would be hidden from listings.
    if state.registry.get(&agent).is_err() {
        return Err(ApiError::not_found(format!("no bundled agent named '{agent}'; models serve bundled agents")));
    }
    if version.starts_with('.') {
        return Err(ApiError::bad_request(format!("version '{version}' must not start with '.'")));
    }
    let mut multipart = multipart.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let (mut model, mut metadata) = (None, None);
    while let Some(field) = multipart.next_field().await.map_err(|e| ApiError::bad_request(e.body_text()))? {
        let name = field.name().unwrap_or_default().to_string();
        let bytes = field.bytes().await.map_err(|e| ApiError::bad_request(e.body_text()))?;
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
        shared.models.add(staging.path(), &a, &v).map_err(|e| match e {
            ModelError::Io { .. } => ApiError::bad_request(e.to_string()),
            other => model_error(other),
        })
    })
    .await??;
    state.control.audit(&caller.identity(), "model.upload", &format!("{agent} {version}"))?;
    let view = ModelVersionView {
        active: state.models.active_version(&agent).ok().flatten().as_deref() == Some(version.as_str()),
        agent,
        version,
        family: Some(loaded.metadata.family.clone()),
        refused: None,
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
    caller.require_deployment_admin(&state.config.tenant)?;
    let models = state.models.clone();
    let activated = tokio::task::spawn_blocking(move || models.scan()).await?;
    state.control.audit(&caller.identity(), "model.reload", &format!("{} activated", activated.len()))?;
    Ok(Json(activated.into_iter().map(|(agent, version)| ActiveModel { agent, version }).collect()))
}
