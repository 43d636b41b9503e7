//! Liveness and readiness.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiState;
use mcp_storage::jobstatus::SharedCache;

/// One dependency's state.
#[derive(Debug, Serialize, ToSchema)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// What `/readyz` found.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    pub ready: bool,
    pub checks: Vec<Check>,
}

/// The process is alive.
#[utoipa::path(get, path = "/healthz", security(()), responses((status = OK, description = "alive", body = String)))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Whether the stores, the log source and the cache answer, and which does not.
#[utoipa::path(
    get,
    path = "/readyz",
    security(()),
    responses(
        (status = OK, description = "every dependency answers", body = Readiness),
        (status = SERVICE_UNAVAILABLE, description = "at least one does not; `checks` says which", body = Readiness)
    )
)]
pub async fn readyz(State(state): State<Arc<ApiState>>) -> (StatusCode, Json<Readiness>) {
    let checked = state.clone();
    let checks = tokio::task::spawn_blocking(move || checks(&checked)).await.unwrap_or_else(|e| {
        vec![Check { name: "readiness".into(), ok: false, detail: format!("the check itself failed: {e}") }]
    });
    let ready = checks.iter().all(|c| c.ok);
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(Readiness { ready, checks }))
}

fn check(name: &str, result: Result<String, String>) -> Check {
    match result {
        Ok(detail) => Check { name: name.into(), ok: true, detail },
        Err(detail) => Check { name: name.into(), ok: false, detail },
    }
}

fn checks(state: &ApiState) -> Vec<Check> {
    let mut checks = vec![
        check(
            "control_store",
            state.control.tenants().map(|t| format!("{} tenants", t.len())).map_err(|e| e.to_string()),
        ),
        check(
            "anomaly_store",
            mcp_storage::store::AnomalyStore::open(&state.anomalies_db)
                .map(|_| "open".to_string())
                .map_err(|e| e.to_string()),
        ),
        check("models", Ok(format!("{} agents with models", state.models.agents().len()))),
        check(
            "log_source",
            state.config.log_source().map(|s| format!("{} source reachable", s.name())).map_err(|e| e.to_string()),
        ),
    ];
    checks.push(match &*state.cache {
        SharedCache::Redis(redis) => {
            check("cache", redis.ping().map(|()| "Redis answers".to_string()).map_err(|e| e.to_string()))
        }
        SharedCache::Local(_) => check("cache", Ok("in-process (no redis_url)".into())),
    });
    checks
}
