//! A clean stop on SIGTERM or SIGINT: no new requests, runs and exports
//! that wait are recorded as never started, those going stop at their next
//! committed batch (a run) or window (an export) within a bound, and the
//! process exits with nothing half-written. A stop that passes the bound
//! is no worse than a crash: checkpoints make runs exactly-once, and an
//! export left going is failed at the next start.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use mcp_engine::jobs::RunJob;
use mcp_storage::exports::ExportCounts;
use mcp_storage::jobstatus::JobState;

use crate::ApiState;

/// What a shutdown found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Drained {
    /// Runs that waited for their turn, recorded as cancelled.
    pub runs_withdrawn: usize,
    /// Exports that waited for their turn, recorded as failed.
    pub exports_withdrawn: usize,
    /// Whether every run and export going stopped within the bound.
    pub settled: bool,
}

impl ApiState {
    /// Whether the server is shutting down.
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// Stops the work of the server: see the module's comment. Blocking
    /// (the job status store may be Redis): call it off the async threads.
    pub fn shut_down(&self, timeout: Duration) -> Drained {
        self.stopping.store(true, Ordering::Relaxed);
        let waiting_runs = self.queue.close_and_drain();
        for (tenant, id) in &waiting_runs {
            match self.cache.job(tenant, id) {
                Ok(Some(queued)) => RunJob::never_started(
                    &self.cache,
                    queued,
                    JobState::Cancelled,
                    Some("the server shut down before the run's turn; start it again".into()),
                ),
                Ok(None) => {}
                Err(e) => tracing::warn!(tenant, run = id, "cannot record a withdrawn run: {e}"),
            }
        }
        let waiting_exports = self.export_queue.close_and_drain();
        for (tenant, id) in &waiting_exports {
            let failed = self.control.finish_export(
                id,
                "failed",
                &ExportCounts::default(),
                None,
                Some(crate::exports::SHUTDOWN_REASON),
            );
            if let Err(e) = failed {
                tracing::warn!(tenant, export = id, "cannot record a withdrawn export: {e}");
            }
        }
        let deadline = std::time::Instant::now() + timeout;
        let runs_settled = self.queue.wait_idle(timeout);
        let exports_settled =
            self.export_queue.wait_idle(deadline.saturating_duration_since(std::time::Instant::now()));
        Drained {
            runs_withdrawn: waiting_runs.len(),
            exports_withdrawn: waiting_exports.len(),
            settled: runs_settled && exports_settled,
        }
    }
}

/// Serves until `shutdown` resolves, then lets requests in flight finish
/// and drains the runs and exports within `timeout`.
pub async fn serve_until(
    address: std::net::SocketAddr,
    state: Arc<ApiState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    timeout: Duration,
) -> std::io::Result<Drained> {
    crate::serve_with_shutdown(address, state.clone(), shutdown).await?;
    tracing::info!("no longer taking requests; stopping runs and exports");
    let draining = state.clone();
    let drained = tokio::task::spawn_blocking(move || draining.shut_down(timeout))
        .await
        .map_err(|e| std::io::Error::other(format!("the shutdown stopped: {e}")))?;
    if drained.settled {
        tracing::info!(?drained, "runs and exports stopped");
    } else {
        tracing::warn!(?drained, "runs or exports still going after the shutdown bound; they end with the process");
    }
    Ok(drained)
}

/// Resolves at SIGTERM or SIGINT (Ctrl-C).
pub async fn terminate_signal() {
    let interrupt = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!("cannot listen for SIGINT: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("SIGINT: shutting down"),
        () = terminate => tracing::info!("SIGTERM: shutting down"),
    }
}
