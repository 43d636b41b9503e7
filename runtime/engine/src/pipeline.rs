//! A run: one agent over one log type of one tenant, from its checkpoint to
//! the end of the source, batch by batch. Each batch's anomalies and the new
//! checkpoint commit together.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use mcp_columns::{Anomaly, LogQuery};
use mcp_sandbox::registry::{Registry, RegistryError};
use mcp_sandbox::{AgentInstance, GuestBatch, SandboxError};
use mcp_storage::control::ControlError;
use mcp_storage::run_store::{RunStore, RunStoreError};
use mcp_storage::source::{LogSource, SourceBatch, SourceError};
use mcp_storage::store::{AnomalyWithEntry, CheckpointKey, Provenance, StoreError};

use crate::pages::Pages;

/// Errors that end a run. The checkpoint stays at the last committed batch,
/// so running again resumes without loss.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    RunStore(#[from] RunStoreError),
    #[error("agent {agent} reads '{log_type}' schema versions {min} to {max}; the schema file is at version {version}")]
    SchemaUnsupported { agent: String, log_type: String, version: u32, min: u32, max: u32 },
    #[error(
        "agent {agent} reads '{log_type}' schema versions {min} to {max}, but no {log_type}.yaml is on the schema \
         search path (schema_dir, then the bundled schemas); add one (docs/log_schemas.md)"
    )]
    SchemaMissing { agent: String, log_type: String, min: u32, max: u32 },
    #[error("candidate {candidate} reads '{candidate_log_type}' logs; agent {agent} reads '{log_type}'")]
    ShadowMismatch { agent: String, log_type: String, candidate: String, candidate_log_type: String },
    #[error("the candidate is not an agent component: {0}")]
    ShadowCandidate(RegistryError),
    #[error("the {side} ({agent}) failed: {message}")]
    ShadowFault { side: &'static str, agent: String, message: String },
    #[error("agent {agent} failed twice on the batch after log id {after_id}: {source}")]
    Agent { agent: String, after_id: u64, source: SandboxError },
    #[error(
        "agent {agent} refused its settings and did not run: {source}. Fix [agents.{agent}] in the config file \
         (or the tenant's settings); this is not counted as a fault"
    )]
    Configuration { agent: String, source: SandboxError },
    #[error("agent {agent} could not give its state after the batch after log id {after_id}: {source}")]
    Snapshot { agent: String, after_id: u64, source: SandboxError },
    #[error("agent {agent} failed on entries it was replayed before log id {after_id}: {source}")]
    Replay { agent: String, after_id: u64, source: SandboxError },
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error("agent '{agent}' is disabled for this tenant; enable it first")]
    Disabled { agent: String },
    #[error("run of {agent} cancelled after log id {after_id}; running again resumes there")]
    Cancelled { agent: String, after_id: u64 },
    #[error("agent {agent} stopped on the batch after log id {after_id}: {source}")]
    Budget { agent: String, after_id: u64, source: SandboxError },
    #[error(
        "agent '{agent}' is quarantined until {until_ms} (ms since the epoch): {reason}; a tenant admin can release it"
    )]
    Quarantined { agent: String, until_ms: i64, reason: String },
}

impl RunError {
    /// The log id after which the batch the run stopped on begins, when
    /// the run got as far as a batch.
    pub fn after_id(&self) -> Option<u64> {
        match self {
            RunError::Agent { after_id, .. }
            | RunError::Snapshot { after_id, .. }
            | RunError::Replay { after_id, .. }
            | RunError::Cancelled { after_id, .. }
            | RunError::Budget { after_id, .. } => Some(*after_id),
            _ => None,
        }
    }

    /// The agent's own error message, when the agent's error ended the run.
    pub fn agent_error(&self) -> Option<&str> {
        match self {
            RunError::Agent { source, .. } | RunError::Snapshot { source, .. } | RunError::Replay { source, .. } => {
                match source {
                    // Refused settings are the operator's to fix, not a fault.
                    SandboxError::Agent { .. } if source.is_configuration() => None,
                    SandboxError::Agent { message, .. } => Some(message),
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

/// What a run is over.
#[derive(Debug, Clone)]
pub struct RunSpec<'a> {
    pub tenant: &'a str,
    pub agent: &'a str,
    pub log_source: &'a str,
    pub batch_size: u32,
    /// On resuming from a checkpoint, the entries of this many milliseconds
    /// before it are fed to the fresh agent again (their findings are
    /// discarded: they were stored before), so that its windows hold what
    /// they held when the previous run stopped. 0 turns replay off.
    pub replay_ms: i64,
    /// The last id the run reads (a work unit's end); the end of the source
    /// when `None`.
    pub up_to_id: Option<u64>,
    /// Follow new rows instead of ending at the end of the source: look
    /// again after this long, asking the observer each time whether to go
    /// on (continuous detection).
    pub follow: Option<Duration>,
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    pub agent: String,
    pub log_type: String,
    pub entries: u64,
    pub batches: u64,
    pub anomalies: u64,
    pub quarantined: u64,
    /// Anomalies naming a log id this tenant does not have; dropped and logged.
    pub rejected_anomalies: u64,
    /// Faults the run recovered from by retrying a batch on a fresh instance.
    pub faults: Vec<String>,
    pub elapsed: Duration,
    /// Time spent inside agent calls.
    pub agent_time: Duration,
    /// Entries fed again to rebuild the agent's windows after a restart.
    pub replayed: u64,
    /// Transient source failures retried during the run.
    pub retries: u64,
    /// Bytes of agent state restored from the checkpoint on resuming.
    pub restored_state_bytes: u64,
    /// Why a stored state was dropped (its restore failed), if one was.
    pub state_discarded: Option<String>,
    /// The model and version of the last inference, when the agent used one.
    pub model: Option<(String, String)>,
    /// What the agent used so far: calls, time, fuel, memory, host calls.
    pub usage: mcp_sandbox::Usage,
    /// The log id of the last committed batch: where a run resumes.
    pub checkpoint: u64,
}

impl RunReport {
    pub fn entries_per_second(&self) -> f64 {
        self.entries as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Runs `spec.agent` over its log type from the checkpoint to the end.
pub fn run(
    registry: &Registry,
    instance: &mut AgentInstance,
    source: &dyn LogSource,
    store: &mut dyn RunStore,
    spec: &RunSpec<'_>,
) -> Result<RunReport, RunError> {
    run_observed(registry, instance, source, store, spec, &mut |_| ControlFlow::Continue(()))
}

/// As [`run`], showing `observer` the report after each committed batch;
/// the run stops (with [`RunError::Cancelled`]) when it answers `Break`.
pub fn run_observed(
    registry: &Registry,
    instance: &mut AgentInstance,
    source: &dyn LogSource,
    store: &mut dyn RunStore,
    spec: &RunSpec<'_>,
    observer: &mut dyn FnMut(&RunReport) -> ControlFlow<()>,
) -> Result<RunReport, RunError> {
    let agent = registry.get(spec.agent)?;
    let log_type = agent.info.log_type.clone();
    let key =
        CheckpointKey { tenant: spec.tenant, agent: spec.agent, log_source: spec.log_source, log_type: &log_type };
    let mut report = RunReport { agent: spec.agent.to_string(), log_type: log_type.clone(), ..RunReport::default() };
    let started = Instant::now();
    let retries_before = source.retries();
    let mut after_id = store.checkpoint(&key)?;
    report.checkpoint = after_id;
    let mut restored = false;
    if after_id > 0
        && let Some(state) = store.agent_state(&key, &agent.sha256)?
    {
        // The agent's whole state as of the checkpoint: nothing to replay.
        let restored_state = {
            let _turn = registry.sandbox().turns().take(spec.tenant);
            instance.restore(&state)
        };
        match restored_state {
            Ok(()) => {
                restored = true;
                report.restored_state_bytes = state.len() as u64;
            }
            Err(error) => {
                // A state the agent cannot take back would stop every later
                // run; drop it and rebuild by replay instead.
                tracing::warn!(
                    agent = spec.agent,
                    tenant = spec.tenant,
                    "restoring the agent's state failed, replaying instead: {error}"
                );
                store.forget_agent_state(&key)?;
                report.state_discarded = Some(error.to_string());
            }
        }
    }
    // Whether a stored state may exist: only then does an empty snapshot
    // cost a statement (to remove it), so a stateless agent costs none.
    let mut state_stored = true;
    if after_id > 0 && spec.replay_ms > 0 && !restored {
        report.replayed = replay(instance, registry.sandbox().turns(), source, spec, &log_type, after_id)?;
    }
    // A run that ends at the end of the source reads its next page while
    // the agent works on this one; a follower reads when it is ready.
    std::thread::scope(|scope| {
        let mut pages = match spec.follow {
            None => Pages::ahead(
                scope,
                source,
                spec.tenant,
                page_query(&log_type, after_id, spec.batch_size),
                spec.up_to_id,
            ),
            Some(_) => Pages::OnDemand,
        };
        loop {
            let query = page_query(&log_type, after_id, spec.batch_size);
            let up_to = match spec.follow {
                // New rows may commit out of id order: a follower reads only
                // as far as every row is settled, or it would pass one for good.
                Some(_) => store
                    .settled_up_to()?
                    .map_or(spec.up_to_id, |settled| Some(spec.up_to_id.map_or(settled, |end| end.min(settled)))),
                None => spec.up_to_id,
            };
            // Only a panicked reader ends the pages this way; the scope
            // carries its panic on.
            let Some(page) = pages.next(source, spec.tenant, &query, up_to) else { break };
            let SourceBatch { batch, raw_fields, last_id, quarantined } = page?;
            report.quarantined += quarantined as u64;
            if last_id == after_id {
                let Some(wait) = spec.follow else { break };
                report.elapsed = started.elapsed();
                if observer(&report).is_break() {
                    return Err(RunError::Cancelled { agent: spec.agent.into(), after_id });
                }
                std::thread::sleep(wait);
                continue;
            }
            // Moved, not copied, into the form the guest receives.
            let batch = GuestBatch::from(batch);
            let version = batch.schema_version();
            reads_schema_version(spec.agent, &agent.info.schema, version)?;
            // One turn per batch, shared fairly with every other tenant's runs.
            let turn = registry.sandbox().turns().take(spec.tenant);
            let call_started = Instant::now();
            let found = match instance.detect_batch(&batch) {
                Ok(found) => found,
                // The same settings would be refused again.
                Err(first) if first.is_configuration() => {
                    return Err(RunError::Configuration { agent: spec.agent.into(), source: first });
                }
                Err(first) if first.fault().is_some_and(mcp_sandbox::Fault::is_budget) => {
                    return Err(RunError::Budget { agent: spec.agent.into(), after_id, source: first });
                }
                Err(first) => {
                    report.faults.push(first.to_string());
                    instance.detect_batch(&batch).map_err(|source| RunError::Agent {
                        agent: spec.agent.into(),
                        after_id,
                        source,
                    })?
                }
            };
            let found = match instance.snapshot() {
                Ok(_) => found,
                // A fault while giving the state (an engine's heap is fullest
                // after a batch) discards the instance as a fault in detection
                // does: the batch is run again, once, on a fresh instance that
                // resumes from the state before it.
                Err(first) if first.fault().is_some_and(|fault| !fault.is_budget()) => {
                    report.faults.push(first.to_string());
                    let found = instance.detect_batch(&batch).map_err(|source| RunError::Agent {
                        agent: spec.agent.into(),
                        after_id,
                        source,
                    })?;
                    instance.snapshot().map_err(|source| RunError::Snapshot {
                        agent: spec.agent.into(),
                        after_id,
                        source,
                    })?;
                    found
                }
                Err(source) => return Err(RunError::Snapshot { agent: spec.agent.into(), after_id, source }),
            };
            report.model = instance.model_used();
            let state = instance.last_snapshot();
            drop(turn);
            let state = match state {
                Some([]) if !state_stored => None,
                other => other,
            };
            if let Some(bytes) = state {
                state_stored = !bytes.is_empty();
            }
            report.agent_time += call_started.elapsed();
            let model = report.model.as_ref().map(|(name, version)| format!("{name}@{version}"));
            let provenance =
                Provenance { agent_sha256: &agent.sha256, schema_version: version, model: model.as_deref() };
            let (with_fields, rejected) = attach_fields(source, spec.tenant, &batch, &raw_fields, found)?;
            report.rejected_anomalies += rejected;
            report.anomalies += store.commit_with_state(&key, &provenance, &with_fields, last_id, state)? as u64;
            report.entries += batch.len() as u64;
            report.batches += 1;
            report.usage = *instance.usage();
            after_id = last_id;
            report.checkpoint = after_id;
            report.elapsed = started.elapsed();
            report.retries = source.retries().saturating_sub(retries_before);
            if observer(&report).is_break() {
                tracing::info!(agent = spec.agent, tenant = spec.tenant, after_id, "run cancelled");
                return Err(RunError::Cancelled { agent: spec.agent.into(), after_id });
            }
        }
        report.elapsed = started.elapsed();
        report.retries = source.retries().saturating_sub(retries_before);
        store.after_run()?;
        tracing::info!(
            agent = spec.agent,
            tenant = spec.tenant,
            entries = report.entries,
            anomalies = report.anomalies,
            quarantined = report.quarantined,
            "run finished"
        );
        Ok(report)
    })
}

/// The page of `batch_size` entries of `log_type` after `after_id`.
fn page_query(log_type: &str, after_id: u64, batch_size: u32) -> LogQuery {
    LogQuery { log_type: log_type.to_string(), after_id, from_ms: None, to_ms: None, source: None, limit: batch_size }
}

/// Feeds the agent the entries of `spec.replay_ms` before the checkpoint,
/// up to and including it, and drops what it finds: those findings were
/// committed with the checkpoint. Agents whose state spans longer than the
/// replay (or that learn from the first entries they see) can still differ
/// from an uninterrupted run; docs/ARCHITECTURE.md says which.
fn replay(
    instance: &mut AgentInstance,
    turns: &mcp_sandbox::Turns,
    source: &dyn LogSource,
    spec: &RunSpec<'_>,
    log_type: &str,
    checkpoint: u64,
) -> Result<u64, RunError> {
    let Some(last) = source.entry(spec.tenant, checkpoint)? else { return Ok(0) };
    let from_ms = last.timestamp_ms.saturating_sub(spec.replay_ms);
    let mut after_id = 0;
    let mut replayed = 0;
    loop {
        let query = LogQuery {
            log_type: log_type.to_string(),
            after_id,
            from_ms: Some(from_ms),
            to_ms: None,
            source: None,
            limit: spec.batch_size,
        };
        let read = source.read_range(spec.tenant, &query, Some(checkpoint))?;
        if read.last_id == after_id {
            break;
        }
        let batch = GuestBatch::from(read.batch);
        let _turn = turns.take(spec.tenant);
        instance.detect_batch(&batch).map_err(|source| RunError::Replay {
            agent: spec.agent.into(),
            after_id,
            source,
        })?;
        replayed += batch.len() as u64;
        after_id = read.last_id;
    }
    tracing::info!(agent = spec.agent, replayed, from_ms, checkpoint, "replayed entries before the checkpoint");
    Ok(replayed)
}

/// Labels one entry may carry from one batch of one agent.
pub const MAX_LABELS_PER_ENTRY: usize = 8;

/// Earlier entries one batch's findings may name (a burst that began in an
/// earlier batch); each costs the host a lookup, so more are dropped.
pub const MAX_EARLIER_ENTRIES_PER_BATCH: usize = 1000;

/// Which findings of one batch a run keeps, as a run and `mcp agents test`
/// both judge them: a finding on an entry of the batch, or on an earlier
/// entry (at most [`MAX_EARLIER_ENTRIES_PER_BATCH`], each looked up), once
/// per (entry, label) and at most [`MAX_LABELS_PER_ENTRY`] labels an entry.
#[derive(Debug)]
pub struct Admission {
    first_id: u64,
    labels_of: HashMap<u64, Vec<String>>,
    lookups: usize,
}

/// What [`Admission::judge`] says of one finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Kept: its entry is in the batch.
    InBatch,
    /// Kept if the earlier entry it names is the tenant's, of this log type.
    Earlier,
    /// Dropped: a duplicate, one label too many, or an entry the agent was
    /// not given (after the batch, or past the lookups allowed).
    Rejected,
}

impl Admission {
    /// For a batch whose first entry is `first_id`.
    pub fn new(first_id: u64) -> Self {
        Admission { first_id, labels_of: HashMap::new(), lookups: 0 }
    }

    pub fn judge(&mut self, log_id: u64, label: &str, in_batch: bool) -> Verdict {
        let labels = self.labels_of.entry(log_id).or_default();
        if labels.iter().any(|l| l == label) || labels.len() >= MAX_LABELS_PER_ENTRY {
            return Verdict::Rejected;
        }
        labels.push(label.to_string());
        if in_batch {
            return Verdict::InBatch;
        }
        if log_id >= self.first_id || self.lookups >= MAX_EARLIER_ENTRIES_PER_BATCH {
            return Verdict::Rejected;
        }
        self.lookups += 1;
        Verdict::Earlier
    }
}

/// Pairs each anomaly with the fields of the entry it names, from the batch
/// or, for an earlier entry of a burst, from the source. An anomaly naming an
/// entry the agent was never given (after the batch), one the tenant does
/// not have, or one past [`MAX_EARLIER_ENTRIES_PER_BATCH`] is dropped and
/// counted, with one log line per batch.
fn attach_fields(
    source: &dyn LogSource,
    tenant: &str,
    batch: &GuestBatch,
    raw_fields: &[String],
    found: Vec<Anomaly>,
) -> Result<(Vec<AnomalyWithEntry>, u64), SourceError> {
    if found.is_empty() {
        return Ok((Vec::new(), 0));
    }
    let lines: HashMap<u64, &str> = batch.ids().iter().copied().zip(raw_fields.iter().map(String::as_str)).collect();
    let first_id = batch.ids().first().copied().unwrap_or(0);
    let mut kept = Vec::with_capacity(found.len());
    let mut rejected = 0;
    // Each anomaly carries a copy of its entry's fields: one per (entry,
    // label), and a few labels per entry, or one entry named a hundred
    // thousand times would be copied as often.
    let mut admission = Admission::new(first_id);
    for mut anomaly in found {
        let line = lines.get(&anomaly.log_id);
        match admission.judge(anomaly.log_id, &anomaly.label, line.is_some()) {
            Verdict::Rejected => rejected += 1,
            Verdict::InBatch => {
                let line = line.map(|l| (*l).to_string());
                kept.push((anomaly, line));
            }
            Verdict::Earlier => match source.entry(tenant, anomaly.log_id)? {
                Some(entry) if entry.log_type == batch.log_type() => {
                    anomaly.log_type = entry.log_type;
                    anomaly.source = entry.source;
                    anomaly.log_timestamp_ms = entry.timestamp_ms;
                    kept.push((anomaly, Some(entry.fields)));
                }
                _ => rejected += 1,
            },
        }
    }
    if rejected > 0 {
        tracing::warn!(
            tenant,
            rejected,
            first_id,
            "findings dropped: duplicates, over the labels an entry may carry, or naming entries this agent was not given or this tenant does not have"
        );
    }
    Ok((kept, rejected))
}

/// Whether an agent that declared `schema` may be fed a batch of `log_type`
/// at schema `version` (0: no schema file typed it).
pub fn reads_schema_version(agent: &str, schema: &mcp_sandbox::SchemaSupport, version: u32) -> Result<(), RunError> {
    let (min, max, log_type) = (schema.min_version, schema.max_version, schema.log_type.clone());
    // Version 0: no schema file typed the batch. An agent that declared
    // versions from 1 expects the types a file guarantees.
    if version == 0 && min > 0 {
        return Err(RunError::SchemaMissing { agent: agent.into(), log_type, min, max });
    }
    if version != 0 && !(min..=max).contains(&version) {
        return Err(RunError::SchemaUnsupported { agent: agent.into(), log_type, version, min, max });
    }
    Ok(())
}

/// A warm instance for `agent` with the operator's settings and, when
/// given, log access through `logs`.
pub fn instance_for(
    registry: &Registry,
    agent: &str,
    tenant: &str,
    settings: std::collections::BTreeMap<String, String>,
    logs: Option<std::sync::Arc<dyn LogSource>>,
) -> Result<AgentInstance, RegistryError> {
    instance_with_models(registry, agent, tenant, settings, logs, None)
}

/// As [`instance_for`], with the agent's models served from `models`. The
/// one place an instance's imports get their backends.
pub fn instance_with_models(
    registry: &Registry,
    agent: &str,
    tenant: &str,
    settings: std::collections::BTreeMap<String, String>,
    logs: Option<std::sync::Arc<dyn LogSource>>,
    models: Option<std::sync::Arc<crate::models::ModelManager>>,
) -> Result<AgentInstance, RegistryError> {
    instance_with_budget(registry, agent, tenant, settings, logs, models, mcp_sandbox::RunBudget::default())
}

/// As [`instance_with_models`], under the tenant's `budget`.
pub fn instance_with_budget(
    registry: &Registry,
    agent: &str,
    tenant: &str,
    settings: std::collections::BTreeMap<String, String>,
    logs: Option<std::sync::Arc<dyn LogSource>>,
    models: Option<std::sync::Arc<crate::models::ModelManager>>,
    budget: mcp_sandbox::RunBudget,
) -> Result<AgentInstance, RegistryError> {
    registry.instantiate(agent, context_for(agent, tenant, settings, logs, models, budget))
}

/// What an instance of `agent` for `tenant` is given: settings, logs,
/// models and budget. Its grant is the registry's default unless set.
pub fn context_for(
    agent: &str,
    tenant: &str,
    settings: std::collections::BTreeMap<String, String>,
    logs: Option<std::sync::Arc<dyn LogSource>>,
    models: Option<std::sync::Arc<crate::models::ModelManager>>,
    budget: mcp_sandbox::RunBudget,
) -> mcp_sandbox::InstanceContext {
    use std::sync::Arc;
    let mut context = mcp_sandbox::InstanceContext::new(agent, tenant);
    context.config = Arc::new(settings);
    context.logs = logs.map(|source| Arc::new(crate::imports::SourceReader(source)) as Arc<dyn mcp_sandbox::LogReader>);
    context.models = models.map(|m| Arc::new(crate::imports::ManagedModels(m)) as Arc<dyn mcp_sandbox::ModelProvider>);
    context.budget = budget;
    context
}
