//! A run's status in the shared cache, for anyone watching: written when it
//! starts, at most once per interval while it goes, and when it ends. A
//! cache that cannot be written never stops a run; the failures are logged
//! and counted.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::pipeline::{RunError, RunReport};
use mcp_storage::jobstatus::{CacheError, JOB_TTL, JobState, JobStatus, SharedCache, now_ms};

/// The status of one run, kept up to date in the cache.
#[derive(Debug)]
pub struct RunJob<'a> {
    cache: &'a SharedCache,
    status: JobStatus,
    interval: Duration,
    last_write: Option<Instant>,
    write_failures: u64,
    /// Set when the process shuts down: the run stops after its batch.
    stopping: Option<Arc<AtomicBool>>,
    stopped_for_shutdown: bool,
}

/// What a run stopped by a shutdown says: it is not an operator's cancel,
/// and nothing is lost.
pub const SHUTDOWN_REASON: &str =
    "the server shut down; the run stopped after a committed batch and its next run resumes from the checkpoint";

/// A new job id: time-ordered, unguessable enough not to collide.
pub fn new_job_id(kind: &str) -> String {
    format!("{kind}-{}-{:08x}", now_ms(), rand::random::<u32>())
}

fn cancel_key(tenant: &str, id: &str) -> String {
    format!("cancel:{tenant}:{id}")
}

/// Asks the run `id` of `tenant` to stop after its current batch.
pub fn request_cancel(cache: &SharedCache, tenant: &str, id: &str) -> Result<(), CacheError> {
    cache.put(&cancel_key(tenant, id), "1", JOB_TTL)
}

/// The status of a run of `agent` accepted but not started.
pub fn queued_status(tenant: &str, agent: &str, source: &str) -> JobStatus {
    let now = now_ms();
    JobStatus {
        id: new_job_id("run"),
        tenant: tenant.to_string(),
        kind: "run".into(),
        state: JobState::Queued,
        subject: format!("agent {agent} over the {source} source"),
        counters: BTreeMap::new(),
        error: None,
        started_ms: now,
        updated_ms: now,
        stopped_after_id: None,
        agent: Some(agent.to_string()),
    }
}

impl<'a> RunJob<'a> {
    /// Records a new run of `agent` as running.
    pub fn start(cache: &'a SharedCache, tenant: &str, agent: &str, source: &str, interval: Duration) -> Self {
        Self::begin(cache, queued_status(tenant, agent, source), interval)
    }

    /// Records the queued run `queued` as running from now.
    pub fn begin(cache: &'a SharedCache, queued: JobStatus, interval: Duration) -> Self {
        let status = JobStatus { state: JobState::Running, ..queued };
        let mut job = RunJob {
            cache,
            status,
            interval,
            last_write: None,
            write_failures: 0,
            stopping: None,
            stopped_for_shutdown: false,
        };
        // Every counter from the start, so a run that fails before its first
        // batch still says it read nothing.
        job.set_counters(&RunReport::default());
        job.status.counters.remove("checkpoint");
        job.write();
        job
    }

    /// Counts the faults the run's instance met (recovered or not), which a
    /// run that failed before committing a batch has no report of.
    pub fn record_faults(&mut self, faults: u64) {
        let counted = self.status.counters.entry("faults".to_string()).or_default();
        *counted = (*counted).max(faults);
    }

    /// Records that the run ended before it started (it could not be
    /// made, or it was withdrawn from the queue).
    pub fn never_started(cache: &SharedCache, queued: JobStatus, state: JobState, error: Option<String>) {
        let status = JobStatus { state, error, updated_ms: now_ms(), ..queued };
        if let Err(e) = cache.put_job(&status) {
            tracing::warn!(job = %status.id, "job status not recorded: {e}");
        }
    }

    /// Stops the run after its current batch once `stopping` is set (a
    /// server shutting down), recorded as cancelled with [`SHUTDOWN_REASON`].
    pub fn stop_when(mut self, stopping: Arc<AtomicBool>) -> Self {
        self.stopping = Some(stopping);
        self
    }

    pub fn id(&self) -> &str {
        &self.status.id
    }

    /// The status as last written (or as it would have been, if the write failed).
    pub fn status(&self) -> &JobStatus {
        &self.status
    }

    /// Status writes that failed even after retries.
    pub fn write_failures(&self) -> u64 {
        self.write_failures
    }

    /// For [`crate::pipeline::run_observed`]: records progress when the
    /// interval has passed, and stops the run when a cancel was asked for.
    pub fn observe(&mut self, report: &RunReport) -> ControlFlow<()> {
        // Counted at every batch, written once per interval: a run that
        // fails between writes still reports how far it got.
        self.set_counters(report);
        if self.stopping.as_ref().is_some_and(|stopping| stopping.load(Ordering::Relaxed)) {
            self.stopped_for_shutdown = true;
            return ControlFlow::Break(());
        }
        if self.last_write.is_some_and(|at| at.elapsed() < self.interval) {
            return ControlFlow::Continue(());
        }
        self.write();
        match self.cache.get(&cancel_key(&self.status.tenant, &self.status.id)) {
            Ok(Some(_)) => ControlFlow::Break(()),
            Ok(None) => ControlFlow::Continue(()),
            Err(e) => {
                tracing::warn!(job = %self.status.id, "cannot read the cancel flag: {e}");
                ControlFlow::Continue(())
            }
        }
    }

    /// Records how the run ended and what its agent used; a failed run
    /// keeps the counters of its last recorded progress.
    pub fn finish(&mut self, outcome: &Result<RunReport, RunError>, usage: &mcp_sandbox::Usage) {
        match outcome {
            Ok(report) => {
                self.set_counters(report);
                self.status.state = JobState::Completed;
            }
            Err(error) => {
                self.status.state =
                    if matches!(error, RunError::Cancelled { .. }) { JobState::Cancelled } else { JobState::Failed };
                if self.status.state == JobState::Failed {
                    self.status.error = Some(error.to_string());
                } else if self.stopped_for_shutdown {
                    self.status.error = Some(SHUTDOWN_REASON.to_string());
                }
                self.status.stopped_after_id =
                    error.after_id().or_else(|| self.status.counters.get("checkpoint").copied());
                if let Some(after_id) = error.after_id() {
                    self.status.counters.entry("checkpoint".to_string()).or_insert(after_id);
                }
            }
        }
        self.set_usage(usage);
        self.write();
    }

    /// The agent's usage, as `usage.*` counters beside the run's own.
    fn set_usage(&mut self, usage: &mcp_sandbox::Usage) {
        let counters = [
            ("usage.calls", usage.calls),
            ("usage.agent_ms", usage.agent_ms),
            ("usage.fuel", usage.fuel),
            ("usage.memory_high_water", usage.memory_high_water),
            ("usage.log_rows", usage.log_rows),
            ("usage.inferences", usage.inferences),
            ("usage.findings", usage.findings),
            ("usage.log_lines", usage.log_lines),
            ("usage.log_bytes", usage.log_bytes),
            ("usage.returned_bytes", usage.returned_bytes),
        ];
        self.status.counters.extend(counters.into_iter().map(|(k, v)| (k.to_string(), v)));
    }

    fn set_counters(&mut self, report: &RunReport) {
        let counters = [
            ("entries", report.entries),
            ("batches", report.batches),
            ("anomalies", report.anomalies),
            ("quarantined", report.quarantined),
            ("retries", report.retries),
            ("replayed", report.replayed),
            ("faults", report.faults.len() as u64),
            ("checkpoint", report.checkpoint),
        ];
        self.status.counters = counters.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        self.set_usage(&report.usage);
    }

    fn write(&mut self) {
        self.status.updated_ms = now_ms();
        self.last_write = Some(Instant::now());
        if let Err(e) = self.cache.put_job(&self.status) {
            self.write_failures += 1;
            tracing::warn!(job = %self.status.id, "job status not recorded (the run goes on): {e}");
        }
    }
}
