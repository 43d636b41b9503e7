//! The agents a tenant can run.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use utoipa::ToSchema;

use super::{ApiError, ApiState, Caller};
use crate::registry::RegisteredAgent;

/// An agent, as the registry knows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentView {
    pub name: String,
    pub log_type: String,
    pub agent_version: String,
    pub protocol_version: String,
    pub description: String,
    pub sha256: String,
    pub enabled: bool,
    /// Schema versions of its log type the agent reads.
    pub schema_versions: [u32; 2],
    /// The model version in force for it, if one is deployed.
    pub active_model: Option<String>,
}

fn view(state: &ApiState, agent: &RegisteredAgent) -> AgentView {
    AgentView {
        name: agent.info.name.clone(),
        log_type: agent.info.log_type.clone(),
        agent_version: agent.info.agent_version.clone(),
        protocol_version: agent.info.protocol_version.clone(),
        description: agent.info.description.clone(),
        sha256: agent.sha256.clone(),
        enabled: agent.enabled,
        schema_versions: [agent.info.schema.min_version, agent.info.schema.max_version],
        active_model: state.models.active_version(&agent.info.name).ok().flatten(),
    }
}

/// Every agent this deployment runs for the caller's tenant.
#[utoipa::path(
    get,
    path = "/v1/agents",
    responses(
        (status = OK, body = Vec<AgentView>),
        (status = UNAUTHORIZED, body = super::problem::Problem)
    )
)]
pub async fn list_agents(State(state): State<Arc<ApiState>>, _caller: Caller) -> Json<Vec<AgentView>> {
    Json(state.registry.list().map(|a| view(&state, a)).collect())
}

/// One agent.
#[utoipa::path(
    get,
    path = "/v1/agents/{name}",
    params(("name" = String, Path, description = "agent name")),
    responses(
        (status = OK, body = AgentView),
        (status = NOT_FOUND, body = super::problem::Problem),
        (status = UNAUTHORIZED, body = super::problem::Problem)
    )
)]
pub async fn get_agent(
    State(state): State<Arc<ApiState>>,
    _caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<AgentView>, ApiError> {
    let agent = state.registry.get(&name).map_err(|_| ApiError::not_found(format!("no agent named '{name}'")))?;
    Ok(Json(view(&state, agent)))
}
