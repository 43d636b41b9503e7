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

/// Whether the stores, the log source and the cache answer, and which does
/// not. Open to anyone, so it says no more than that: why a dependency
/// does not answer is in the server log. It reuses the server's own
/// connections, so polling it costs a statement per dependency.
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
    let checks = match tokio::task::spawn_blocking(move || checks(&checked)).await {
        Ok(checks) => checks,
        Err(e) => {
            tracing::error!("the readiness check failed: {e}");
            vec![Check { name: "readiness".into(), ok: false, detail: "the check itself failed".into() }]
        }
    };
    let ready = checks.iter().all(|c| c.ok);
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(Readiness { ready, checks }))
}

/// One check's line: a fixed phrase either way, the error to the log.
fn check<E: std::fmt::Display>(name: &str, ok: &str, result: Result<(), E>) -> Check {
    match result {
        Ok(()) => Check { name: name.into(), ok: true, detail: ok.into() },
        Err(error) => {
            tracing::warn!(dependency = name, "not ready: {error}");
            Check { name: name.into(), ok: false, detail: "does not answer; the server log says why".into() }
        }
    }
}

fn checks(state: &Arc<ApiState>) -> Vec<Check> {
    // The store's own error goes to the log line of the check, not the
    // API's answer for a request.
    let anomaly_store = match state.shared_store() {
        Ok(Some(shared)) => shared.ping().map_err(|e| e.to_string()),
        Ok(None) => {
            state.with_store_blocking(|store| store.ping()).map_err(|e: mcp_storage::store::StoreError| e.to_string())
        }
        Err(e) => Err(e.detail),
    };
    let log_source =
        state.log_source().map_err(|e| e.detail).and_then(|source| source.ping().map_err(|e| e.to_string()));
    let cache = match &*state.cache {
        SharedCache::Redis(redis) => check("cache", "Redis answers", redis.ping_once()),
        SharedCache::Local(_) => check("cache", "in-process", Ok::<(), String>(())),
    };
    vec![
        check("control_store", "answers", state.control.ping()),
        check("anomaly_store", "answers", anomaly_store),
        check("log_source", "answers", log_source),
        cache,
    ]
}
