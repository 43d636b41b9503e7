//! Model versions: list, activate, roll back. Models serve the whole
//! deployment, so changing them needs the admin role.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use utoipa::ToSchema;

use super::{ApiError, ApiState, Caller, Role};
use crate::models::ModelError;

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
    responses((status = OK, body = Vec<ModelVersionView>), (status = UNAUTHORIZED, body = super::problem::Problem))
)]
pub async fn list_models(
    State(state): State<Arc<ApiState>>,
    _caller: Caller,
) -> Result<Json<Vec<ModelVersionView>>, ApiError> {
    let models = state.models.clone();
    let listing = tokio::task::spawn_blocking(move || models.list()).await.map_err(ApiError::internal)?;
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
        (status = NOT_FOUND, body = super::problem::Problem),
        (status = UNPROCESSABLE_ENTITY, description = "the version fails validation; the active one stays", body = super::problem::Problem),
        (status = FORBIDDEN, body = super::problem::Problem),
        (status = UNAUTHORIZED, body = super::problem::Problem)
    )
)]
pub async fn activate_model(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path((agent, version)): Path<(String, String)>,
) -> Result<Json<ActiveModel>, ApiError> {
    caller.require(Role::Admin)?;
    let models = state.models.clone();
    let (a, v) = (agent.clone(), version.clone());
    tokio::task::spawn_blocking(move || models.activate(&a, &v).map(|_| ()))
        .await
        .map_err(ApiError::internal)?
        .map_err(model_error)?;
    state.control.audit(&caller, "model.activate", &format!("{agent} {version}")).map_err(ApiError::internal)?;
    Ok(Json(ActiveModel { agent, version }))
}

/// Puts the version in force before the current one back (admin).
#[utoipa::path(
    post,
    path = "/v1/models/{agent}/rollback",
    params(("agent" = String, Path)),
    responses(
        (status = OK, body = ActiveModel),
        (status = CONFLICT, description = "nothing to roll back to", body = super::problem::Problem),
        (status = FORBIDDEN, body = super::problem::Problem),
        (status = UNAUTHORIZED, body = super::problem::Problem)
    )
)]
pub async fn rollback_model(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(agent): Path<String>,
) -> Result<Json<ActiveModel>, ApiError> {
    caller.require(Role::Admin)?;
    let models = state.models.clone();
    let a = agent.clone();
    let version = tokio::task::spawn_blocking(move || models.rollback(&a))
        .await
        .map_err(ApiError::internal)?
        .map_err(model_error)?;
    state.control.audit(&caller, "model.rollback", &format!("{agent} to {version}")).map_err(ApiError::internal)?;
    Ok(Json(ActiveModel { agent, version }))
}
