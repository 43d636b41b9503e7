//! Shadow runs: a candidate build of an agent over history beside the
//! active one, on the same batches, storing nothing and moving no
//! checkpoint, so that an operator promotes a version on evidence: which
//! entries only the candidate flags, which only the active one, which both.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use mcp_columns::{Anomaly, LogQuery};
use mcp_sandbox::{AgentInstance, GuestBatch};
use mcp_storage::source::{LogSource, SourceBatch};

use crate::pipeline::RunError;

/// What history a shadow run compares over, and when it stops early.
#[derive(Debug, Clone, Default)]
pub struct ShadowWindow {
    /// Log time from (inclusive) and to (exclusive), in ms since the epoch.
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    /// Rows read at most.
    pub max_rows: u64,
    /// Examples kept of each difference.
    pub examples: usize,
    /// Stop after the batch going when this passes.
    pub deadline: Option<Instant>,
    /// Stop after the batch going once this is set (the client left).
    pub cancelled: Option<std::sync::Arc<AtomicBool>>,
}

/// Whose entries, of which log type, in pages of what size, over `window`.
#[derive(Debug, Clone)]
pub struct ShadowSpec<'a> {
    pub tenant: &'a str,
    pub log_type: &'a str,
    pub batch_size: u32,
    pub window: &'a ShadowWindow,
}

/// One side of the comparison.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct SideReport {
    /// Entries it flagged (an entry flagged twice counts once).
    pub flagged: u64,
    /// Entries flagged per label.
    pub labels: BTreeMap<String, u64>,
    /// Milliseconds inside its calls.
    pub agent_ms: f64,
}

/// An entry one side flagged and the other did not.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Example {
    pub log_id: u64,
    pub source: String,
    pub log_ts_ms: i64,
    pub label: String,
    pub score: f32,
    pub reason: String,
}

/// The difference between the two over the same entries.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ShadowReport {
    pub entries: u64,
    pub quarantined: u64,
    pub batches: u64,
    /// Whether it stopped before the end of the range, and why:
    /// `max_rows`, `time_limit` or `cancelled`.
    pub truncated: bool,
    pub stopped_by: Option<String>,
    pub candidate: SideReport,
    pub active: SideReport,
    pub only_candidate: u64,
    pub only_active: u64,
    pub both: u64,
    pub only_candidate_examples: Vec<Example>,
    pub only_active_examples: Vec<Example>,
}

/// Runs both instances batch after batch over `spec`'s range of `source`.
/// Neither is given stored state: both start fresh, so the comparison is
/// between the builds, not their histories.
pub fn compare(
    sandbox: &mcp_sandbox::Sandbox,
    source: &dyn LogSource,
    active: &mut AgentInstance,
    candidate: &mut AgentInstance,
    spec: &ShadowSpec<'_>,
) -> Result<ShadowReport, RunError> {
    let window = spec.window;
    let mut report = ShadowReport::default();
    let mut after_id = 0;
    let mut rows_read = 0u64;
    loop {
        let stop = if rows_read >= window.max_rows {
            Some("max_rows")
        } else if window.deadline.is_some_and(|d| Instant::now() >= d) {
            Some("time_limit")
        } else if window.cancelled.as_ref().is_some_and(|c| c.load(Ordering::Relaxed)) {
            Some("cancelled")
        } else {
            None
        };
        // The last page no longer than what is left of `max_rows`; one
        // row past it only asks whether the range went on.
        let limit = match stop {
            Some(_) => 1,
            None => u32::try_from(window.max_rows - rows_read).unwrap_or(u32::MAX).min(spec.batch_size),
        };
        let query = LogQuery {
            log_type: spec.log_type.to_string(),
            after_id,
            from_ms: window.from_ms,
            to_ms: window.to_ms,
            source: None,
            limit,
        };
        let SourceBatch { batch, last_id, quarantined, .. } = source.read_batch(spec.tenant, &query)?;
        if last_id == after_id {
            break;
        }
        if let Some(reason) = stop {
            report.truncated = true;
            report.stopped_by = Some(reason.to_string());
            break;
        }
        rows_read += (batch.ids.len() + quarantined) as u64;
        report.quarantined += quarantined as u64;
        report.entries += batch.ids.len() as u64;
        report.batches += 1;
        after_id = last_id;
        let batch = GuestBatch::from(batch);
        let in_batch: HashSet<u64> = batch.ids().iter().copied().collect();
        // One turn for both calls, shared fairly with other tenants' runs.
        let _turn = sandbox.turns().take(spec.tenant);
        let active_found = timed("active agent", active, &batch, &in_batch, &mut report.active)?;
        let candidate_found = timed("candidate", candidate, &batch, &in_batch, &mut report.candidate)?;
        tally(&mut report, window.examples, active_found, candidate_found);
    }
    Ok(report)
}

/// One side's findings on `batch`, kept to entries of the batch (as a run
/// stores them), one per entry and label.
fn timed(
    side: &'static str,
    instance: &mut AgentInstance,
    batch: &GuestBatch,
    in_batch: &HashSet<u64>,
    report: &mut SideReport,
) -> Result<Vec<Anomaly>, RunError> {
    let started = Instant::now();
    let found = instance.detect_batch(batch).map_err(|source| RunError::ShadowFault {
        side,
        agent: instance.agent().to_string(),
        message: source.to_string(),
    })?;
    report.agent_ms += started.elapsed().as_secs_f64() * 1e3;
    let mut seen = BTreeSet::new();
    let kept: Vec<Anomaly> = found
        .into_iter()
        .filter(|a| in_batch.contains(&a.log_id) && seen.insert((a.log_id, a.label.clone())))
        .collect();
    for anomaly in &kept {
        *report.labels.entry(anomaly.label.clone()).or_default() += 1;
    }
    Ok(kept)
}

/// The first finding of each entry, by log id.
fn by_entry(found: Vec<Anomaly>) -> HashMap<u64, Anomaly> {
    let mut entries = HashMap::with_capacity(found.len());
    for anomaly in found {
        entries.entry(anomaly.log_id).or_insert(anomaly);
    }
    entries
}

fn example(anomaly: &Anomaly) -> Example {
    Example {
        log_id: anomaly.log_id,
        source: anomaly.source.clone(),
        log_ts_ms: anomaly.log_timestamp_ms,
        label: anomaly.label.clone(),
        score: anomaly.score,
        reason: anomaly.reason.clone(),
    }
}

/// Findings name entries of the batch they came with, so each batch's
/// entries are compared on their own.
fn tally(report: &mut ShadowReport, examples: usize, active: Vec<Anomaly>, candidate: Vec<Anomaly>) {
    let (active, candidate) = (by_entry(active), by_entry(candidate));
    report.active.flagged += active.len() as u64;
    report.candidate.flagged += candidate.len() as u64;
    let mut only_candidate: Vec<&Anomaly> = candidate.values().filter(|a| !active.contains_key(&a.log_id)).collect();
    let mut only_active: Vec<&Anomaly> = active.values().filter(|a| !candidate.contains_key(&a.log_id)).collect();
    report.both += candidate.keys().filter(|id| active.contains_key(id)).count() as u64;
    report.only_candidate += only_candidate.len() as u64;
    report.only_active += only_active.len() as u64;
    for (found, kept) in [
        (&mut only_candidate, &mut report.only_candidate_examples),
        (&mut only_active, &mut report.only_active_examples),
    ] {
        found.sort_by_key(|a| a.log_id);
        let room = examples.saturating_sub(kept.len());
        kept.extend(found.iter().take(room).map(|a| example(a)));
    }
}
