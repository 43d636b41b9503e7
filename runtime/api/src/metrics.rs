//! Request ids, request logging and the Prometheus metrics of the API.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use super::ApiState;

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 10] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5];

#[derive(Debug, Default)]
struct Series {
    count: u64,
    sum: f64,
    buckets: [u64; BUCKETS.len()],
}

#[derive(Debug, Default)]
pub(super) struct Metrics {
    /// By (route, method, status).
    requests: Mutex<BTreeMap<(String, String, u16), Series>>,
}

/// A notification counter's name, help text and how it is read off a
/// channel's counts.
type ChannelCounter = (&'static str, &'static str, fn(&mcp_notify::worker::ChannelCounts) -> u64);

/// A counter's name, help text and how it is read off a run's totals.
type Counter = (&'static str, &'static str, fn(&super::RunTotals) -> f64);

/// Gives every request an id (the caller's `x-request-id` when it is
/// plain, else a new one), logs it with the route and status, returns it in
/// `x-request-id`, and counts the request.
pub(super) async fn observe(State(state): State<Arc<ApiState>>, request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .map(str::to_string)
        .unwrap_or_else(|| format!("{:016x}", rand::random::<u64>()));
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_string();
    // Only the methods HTTP defines: a made-up one must not grow the series.
    let method = match *request.method() {
        Method::GET | Method::POST | Method::PUT | Method::PATCH | Method::DELETE | Method::HEAD | Method::OPTIONS => {
            request.method().to_string()
        }
        _ => "other".to_string(),
    };
    let span = tracing::info_span!("request", request_id = %id, %method, route = %route);
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed().as_secs_f64();
    let status = response.status().as_u16();
    span.in_scope(|| tracing::info!(status, elapsed_ms = elapsed * 1e3, "answered"));
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    if let Ok(mut requests) = state.metrics.requests.lock() {
        let series = requests.entry((route, method, status)).or_default();
        series.count += 1;
        series.sum += elapsed;
        for (bucket, bound) in series.buckets.iter_mut().zip(BUCKETS) {
            if elapsed <= bound {
                *bucket += 1;
            }
        }
    }
    response
}

/// Prometheus metrics (text format 0.0.4). They name every tenant and
/// agent, so they need one of the deployment's tokens (tenant
/// `_deployment`; a `read_only` one is what a scraper should hold).
#[utoipa::path(
    get,
    path = "/metrics",
    responses(
        (status = OK, description = "Prometheus text format", body = String, content_type = "text/plain"),
        super::problem::Restricted
    )
)]
pub async fn render(
    State(state): State<Arc<ApiState>>,
    caller: super::Caller,
) -> Result<([(&'static str, &'static str); 1], String), super::ApiError> {
    if !caller.is_deployment() {
        return Err(super::ApiError::forbidden(
            "/metrics shows every tenant: it needs one of the deployment's tokens (`mcp tokens create --tenant _deployment --role read_only` for a scraper)",
        ));
    }
    let units = unit_counts(&state).await;
    Ok(([("content-type", "text/plain; version=0.0.4")], text(&state, units)))
}

/// The shared work table's units by status, on a deployment with
/// PostgreSQL; `None` without one. A table that cannot be read is logged
/// and left out, so that the rest of `/metrics` still answers.
async fn unit_counts(state: &Arc<ApiState>) -> Option<Vec<mcp_storage::cluster::UnitCount>> {
    state.config.database_url.as_ref()?;
    let state = state.clone();
    let counted = tokio::task::spawn_blocking(move || {
        let cluster = state.cluster().map_err(|e| e.detail)?;
        cluster.unit_counts().map_err(|e| e.to_string())
    })
    .await;
    counted
        .map_err(|joined| joined.to_string())
        .and_then(|counts| counts)
        .inspect_err(|error| tracing::warn!("/metrics leaves out the work units: {error}"))
        .ok()
}

/// `/metrics` on the `metrics_listen` address: no token, since that
/// address is one the operator keeps on an internal network.
pub(super) async fn render_open(State(state): State<Arc<ApiState>>) -> ([(&'static str, &'static str); 1], String) {
    let units = unit_counts(&state).await;
    ([("content-type", "text/plain; version=0.0.4")], text(&state, units))
}

/// The metrics in Prometheus text format.
fn text(state: &ApiState, units: Option<Vec<mcp_storage::cluster::UnitCount>>) -> String {
    let mut out = String::new();
    if let Some(units) = units {
        let _ = writeln!(
            out,
            "# HELP mcp_work_units Units of work in the shared table by status (open, held, done, failed: a failed unit waits for `mcp backfill retry`)."
        );
        let _ = writeln!(out, "# TYPE mcp_work_units gauge");
        for unit in units {
            let _ = writeln!(
                out,
                "mcp_work_units{{tenant=\"{}\",agent=\"{}\",status=\"{}\"}} {}",
                unit.tenant, unit.agent, unit.status, unit.units
            );
        }
    }
    let _ = writeln!(out, "# HELP mcp_api_requests_total API requests answered.");
    let _ = writeln!(out, "# TYPE mcp_api_requests_total counter");
    let _ = writeln!(out, "# HELP mcp_api_request_seconds API latency.");
    let _ = writeln!(out, "# TYPE mcp_api_request_seconds histogram");
    if let Ok(requests) = state.metrics.requests.lock() {
        for ((route, method, status), s) in requests.iter() {
            let labels = format!("route=\"{route}\",method=\"{method}\",status=\"{status}\"");
            let _ = writeln!(out, "mcp_api_requests_total{{{labels}}} {}", s.count);
            for (bucket, bound) in s.buckets.iter().zip(BUCKETS) {
                let _ = writeln!(out, "mcp_api_request_seconds_bucket{{{labels},le=\"{bound}\"}} {bucket}");
            }
            let _ = writeln!(out, "mcp_api_request_seconds_bucket{{{labels},le=\"+Inf\"}} {}", s.count);
            let _ = writeln!(out, "mcp_api_request_seconds_sum{{{labels}}} {}", s.sum);
            let _ = writeln!(out, "mcp_api_request_seconds_count{{{labels}}} {}", s.count);
        }
    }
    if let Ok(totals) = state.run_totals.lock() {
        let series: [Counter; 13] = [
            ("mcp_runs_total", "Runs finished.", |t| t.runs as f64),
            ("mcp_entries_total", "Log entries processed by runs.", |t| t.entries as f64),
            ("mcp_anomalies_total", "New anomalies stored by runs.", |t| t.anomalies as f64),
            ("mcp_quarantined_total", "Rows quarantined during runs.", |t| t.quarantined as f64),
            ("mcp_sandbox_faults_total", "Agent calls stopped by the sandbox.", |t| t.faults as f64),
            ("mcp_fuel_used_total", "Fuel used by agents (budget = fuel).", |t| t.fuel as f64),
            ("mcp_run_seconds_total", "Time spent in runs; entries per second is the ratio of the rates.", |t| {
                t.seconds
            }),
            ("mcp_agent_call_seconds_total", "Time inside agent calls.", |t| t.agent_ms as f64 / 1000.0),
            ("mcp_agent_log_rows_total", "Rows agents read through logs.query.", |t| t.log_rows as f64),
            ("mcp_agent_inferences_total", "Model inferences agents asked for.", |t| t.inferences as f64),
            ("mcp_agent_findings_total", "Findings agents returned or reported.", |t| t.findings as f64),
            ("mcp_agent_log_lines_total", "Lines agents wrote through the log import.", |t| t.log_lines as f64),
            ("mcp_agent_memory_high_water_bytes", "The most memory one instance held.", |t| t.memory_high_water as f64),
        ];
        for (name, help, value) in series {
            let kind = if name.ends_with("_bytes") { "gauge" } else { "counter" };
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for ((tenant, agent), t) in totals.iter() {
                let _ = writeln!(out, "{name}{{tenant=\"{tenant}\",agent=\"{agent}\"}} {}", value(t));
            }
        }
    }
    let load = state.queue.load();
    let _ = writeln!(out, "# HELP mcp_runs_running Runs going now.");
    let _ = writeln!(out, "# TYPE mcp_runs_running gauge");
    let _ = writeln!(out, "mcp_runs_running {}", load.running);
    let _ = writeln!(out, "# HELP mcp_runs_waiting Runs waiting in the queue.");
    let _ = writeln!(out, "# TYPE mcp_runs_waiting gauge");
    let _ = writeln!(out, "mcp_runs_waiting {}", load.waiting);
    let channels = state.deliverer.metrics().snapshot(None);
    let series: [ChannelCounter; 5] = [
        ("mcp_notifications_delivered_total", "Notifications a receiver took.", |c| c.delivered),
        ("mcp_notifications_retried_total", "Failed attempts that will be tried again.", |c| c.retried),
        ("mcp_notifications_dead_lettered_total", "Notifications given up after their last attempt.", |c| {
            c.dead_lettered
        }),
        ("mcp_notifications_folded_total", "Anomalies folded into delivered notifications.", |c| c.folded),
        ("mcp_notifications_rate_limited_total", "Sends held back by a channel's rate limit.", |c| c.rate_limited),
    ];
    for (name, help, value) in series {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} counter");
        for ((tenant, channel), counts) in &channels {
            let _ = writeln!(out, "{name}{{tenant=\"{tenant}\",channel=\"{channel}\"}} {}", value(counts));
        }
    }
    out
}
