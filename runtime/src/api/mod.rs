//! The REST control plane (`mcp serve`): axum, with the OpenAPI document
//! generated from the handlers by utoipa. Every endpoint but the health
//! checks and the document itself needs a bearer token, and every query is
//! scoped to the token's tenant: another tenant's ids answer 404.

mod agents;
mod anomalies;
mod auth;
pub mod control;
mod health;
mod metrics;
mod models;
pub mod problem;
mod runs;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::get;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_redoc::{Redoc, Servable};

use crate::cache::SharedCache;
use crate::config::McpConfig;
use crate::models::ModelManager;
use crate::registry::Registry;
use crate::store::{AnomalyStore, StoreError};
pub use control::{Caller, ControlStore, Role};
pub use problem::ApiError;

/// Everything the handlers share.
#[derive(Debug)]
pub struct ApiState {
    pub config: McpConfig,
    pub control: ControlStore,
    pub registry: Arc<Registry>,
    pub models: Arc<ModelManager>,
    pub cache: Arc<SharedCache>,
    pub anomalies_db: PathBuf,
    /// Open anomaly store connections, reused across requests.
    stores: Mutex<Vec<AnomalyStore>>,
    metrics: metrics::Metrics,
}

impl ApiState {
    pub fn new(
        config: McpConfig,
        control: ControlStore,
        registry: Arc<Registry>,
        models: Arc<ModelManager>,
        cache: Arc<SharedCache>,
    ) -> Self {
        let anomalies_db = config.anomalies_db();
        ApiState {
            config,
            control,
            registry,
            models,
            cache,
            anomalies_db,
            stores: Mutex::default(),
            metrics: metrics::Metrics::default(),
        }
    }

    /// Runs `f` with an anomaly store connection on a blocking thread.
    pub(crate) async fn with_store<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut AnomalyStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let state = self.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = state.stores.lock().ok().and_then(|mut stores| stores.pop());
            let mut store = match pooled {
                Some(store) => store,
                None => AnomalyStore::open(&state.anomalies_db).map_err(ApiError::internal)?,
            };
            let result = f(&mut store).map_err(ApiError::internal);
            if let Ok(mut stores) = state.stores.lock() {
                stores.push(store);
            }
            result
        })
        .await
        .map_err(ApiError::internal)?
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "MCP control plane",
        description = "Agents, runs, anomalies and models of a tenant. Every endpoint under /v1 needs `Authorization: Bearer <token>` (`mcp tokens create`); another tenant's ids answer 404. Errors are RFC 9457 problem details with a stable `code`.",
        version = "1"
    ),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("mcp_<64 hex>").build(),
            ),
        );
    }
}

/// The router and the OpenAPI document it serves.
pub fn router(state: Arc<ApiState>) -> Router {
    let (api, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(agents::list_agents))
        .routes(routes!(agents::get_agent))
        .routes(routes!(anomalies::list_anomalies))
        .routes(routes!(anomalies::get_anomaly))
        .routes(routes!(models::list_models))
        .routes(routes!(models::activate_model))
        .routes(routes!(models::rollback_model))
        .routes(routes!(runs::list_runs, runs::start_run))
        .routes(routes!(runs::get_run))
        .routes(routes!(runs::cancel_run))
        .with_state(state.clone())
        .split_for_parts();
    let document = openapi.clone();
    api.route("/openapi.json", get(move || std::future::ready(axum::Json(document.clone()))))
        .route("/metrics", get(metrics::render).with_state(state.clone()))
        .merge(Redoc::with_url("/docs", openapi))
        .fallback(|| async { ApiError::not_found("no such endpoint; /openapi.json lists them") })
        .layer(axum::middleware::from_fn_with_state(state, metrics::observe))
}

/// Serves `router` on `address` until the process ends.
pub async fn serve(address: std::net::SocketAddr, state: Arc<ApiState>) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    tracing::info!(%address, "control plane listening");
    axum::serve(listener, router(state)).await
}
