//! `GET /v1/nodes`: the nodes sharing the deployment's work through
//! PostgreSQL, their heartbeats and leases, and the units of work (the
//! deployment admin's: nodes and units span every tenant).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::ApiState;
use crate::auth::Caller;
use crate::problem::ApiError;

/// A node, by its last heartbeat (PostgreSQL's clock).
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeView {
    pub name: String,
    pub host: String,
    pub pid: i64,
    pub heartbeat_age_ms: i64,
    pub lease_ttl_ms: i64,
    /// Whether it beat within its lease time.
    pub alive: bool,
    /// The units it holds under a lease in force.
    pub leases: Vec<i64>,
}

/// A unit of work: one agent of one tenant over a range of one log type's
/// ids, or following new rows.
#[derive(Debug, Serialize, ToSchema)]
pub struct UnitView {
    pub id: i64,
    pub tenant: String,
    pub agent: String,
    pub log_type: String,
    pub start_after: i64,
    /// The last id it covers; absent for a unit that follows new rows.
    pub up_to: Option<i64>,
    pub checkpoint: i64,
    /// done, failed, held or open.
    pub status: String,
    pub holder: Option<String>,
    /// The fencing token of its latest claim.
    pub token: i64,
    pub claims: i32,
    pub failures: i32,
    pub last_error: Option<String>,
    pub anomalies: i64,
}

/// The nodes and the units of work.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodesView {
    pub nodes: Vec<NodeView>,
    pub units: Vec<UnitView>,
}

impl From<mcp_storage::cluster::NodeView> for NodeView {
    fn from(n: mcp_storage::cluster::NodeView) -> Self {
        NodeView {
            name: n.name,
            host: n.host,
            pid: n.pid,
            heartbeat_age_ms: n.heartbeat_age_ms,
            lease_ttl_ms: n.lease_ttl_ms,
            alive: n.alive,
            leases: n.leases,
        }
    }
}

impl From<mcp_storage::cluster::UnitView> for UnitView {
    fn from(u: mcp_storage::cluster::UnitView) -> Self {
        UnitView {
            up_to: (!u.follows()).then_some(u.up_to),
            id: u.id,
            tenant: u.tenant,
            agent: u.agent,
            log_type: u.log_type,
            start_after: u.start_after,
            checkpoint: u.checkpoint,
            status: u.status,
            holder: u.holder,
            token: u.token,
            claims: u.claims,
            failures: u.failures,
            last_error: u.last_error,
            anomalies: u.anomalies,
        }
    }
}

/// The nodes sharing the deployment's work, with their leases, and every
/// unit of work (the deployment's admin). 404 on a deployment without
/// PostgreSQL: it has one node and no shared work.
#[utoipa::path(
    get,
    path = "/v1/nodes",
    responses(
        (status = OK, body = NodesView),
        (status = NOT_FOUND, description = "no database_url: a single node", body = crate::problem::Problem, content_type = "application/problem+json"),
        crate::problem::Restricted
    )
)]
pub async fn list_nodes(State(state): State<Arc<ApiState>>, caller: Caller) -> Result<Json<NodesView>, ApiError> {
    caller.require_deployment_admin()?;
    let view = tokio::task::spawn_blocking(move || -> Result<NodesView, ApiError> {
        let cluster = state.cluster()?;
        let unavailable = |error: mcp_storage::cluster::ClusterError| {
            tracing::error!("reading the shared work table failed: {error}");
            ApiError::unavailable("PostgreSQL cannot be reached; /readyz says which dependency is down")
        };
        Ok(NodesView {
            nodes: cluster.nodes().map_err(unavailable)?.into_iter().map(NodeView::from).collect(),
            units: cluster.units().map_err(unavailable)?.into_iter().map(UnitView::from).collect(),
        })
    })
    .await??;
    Ok(Json(view))
}
