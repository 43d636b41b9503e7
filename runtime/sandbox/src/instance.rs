//! One agent instance: a Store, its bindings, and the rules for a call.

use std::time::{SystemTime, UNIX_EPOCH};

use wasmtime::{Engine, Store};

use super::bindings::Findings;
use super::bindings::{Agent, AgentPre};
use super::fault::{self, Fault, FaultContext};
use super::findings::{self, UnpackError};
use super::host::{HostState, InstanceContext};
use super::limits::{BudgetKind, SandboxLimits};
use super::{AgentError, AgentInfo, Features, GuestBatch, InferenceResult, LogEntry, Result, SandboxError};
use mcp_columns::Anomaly;

/// A warm instance of one agent. It keeps its guest state between calls; a
/// failed call discards the Store, and the next call starts a fresh one.
pub struct AgentInstance {
    engine: Engine,
    pre: AgentPre<HostState>,
    limits: SandboxLimits,
    context: InstanceContext,
    live: Option<(Store<HostState>, Agent)>,
    faults: u64,
    fuel_used: u64,
}

impl std::fmt::Debug for AgentInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentInstance")
            .field("agent", &self.context.agent)
            .field("faults", &self.faults)
            .finish_non_exhaustive()
    }
}

impl AgentInstance {
    pub(crate) fn new(
        engine: Engine,
        pre: AgentPre<HostState>,
        limits: SandboxLimits,
        context: InstanceContext,
    ) -> Result<Self> {
        let mut instance = AgentInstance { engine, pre, limits, context, live: None, faults: 0, fuel_used: 0 };
        instance.ensure_live()?;
        Ok(instance)
    }

    /// The agent name this instance runs as.
    pub fn agent(&self) -> &str {
        &self.context.agent
    }

    /// Calls that ended in a fault since this instance was created.
    pub fn faults(&self) -> u64 {
        self.faults
    }

    /// The model name and version of this instance's last inference.
    pub fn model_used(&self) -> Option<(String, String)> {
        self.live.as_ref().and_then(|(store, _)| store.data().model_used.clone())
    }

    /// Fuel consumed by completed calls, with `budget = "fuel"`.
    pub fn fuel_used(&self) -> u64 {
        self.fuel_used
    }

    fn arm(&self, store: &mut Store<HostState>) -> Result<()> {
        let result = match self.limits.budget {
            BudgetKind::Epoch => {
                store.set_epoch_deadline(self.limits.deadline_ticks());
                Ok(())
            }
            BudgetKind::Fuel => store.set_fuel(self.limits.fuel_per_call),
        };
        result
            .map_err(|e| SandboxError::Instantiate { agent: self.context.agent.to_string(), detail: format!("{e:#}") })
    }

    fn ensure_live(&mut self) -> Result<()> {
        if self.live.is_some() {
            return Ok(());
        }
        let state = HostState::new(
            self.context.clone(),
            self.limits.memory_bytes,
            self.limits.max_anomalies_per_call,
            self.limits.max_query_page,
        );
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        // With epochs or fuel on, instantiation itself runs under the budget.
        self.arm(&mut store)?;
        let bindings = self.pre.instantiate(&mut store).map_err(|e| SandboxError::Instantiate {
            agent: self.context.agent.to_string(),
            detail: format!("{e:#}"),
        })?;
        self.live = Some((store, bindings));
        Ok(())
    }

    fn fault_context(&self, store: &Store<HostState>) -> FaultContext {
        FaultContext {
            timeout_ms: self.limits.call_timeout_ms,
            fuel: self.limits.fuel_per_call,
            memory_limit: self.limits.memory_bytes,
            stack_limit: self.limits.stack_bytes,
            limit_hit: store.data().limiter.hit,
        }
    }

    /// Runs one export call under the budget; a trap discards the instance.
    fn call<R>(
        &mut self,
        f: impl FnOnce(&Agent, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<(R, Vec<Anomaly>)> {
        self.ensure_live()?;
        let Some((mut store, bindings)) = self.live.take() else {
            return Err(SandboxError::Instantiate {
                agent: self.context.agent.to_string(),
                detail: "no live instance".into(),
            });
        };
        store.data_mut().limiter.hit = None;
        store.data_mut().reported.clear();
        store.data_mut().report_overflow = 0;
        self.arm(&mut store)?;
        match f(&bindings, &mut store) {
            Ok(value) => {
                if self.limits.budget == BudgetKind::Fuel {
                    let left = store.get_fuel().unwrap_or(0);
                    self.fuel_used += self.limits.fuel_per_call.saturating_sub(left);
                }
                let reported = std::mem::take(&mut store.data_mut().reported);
                let overflow = store.data().report_overflow;
                self.live = Some((store, bindings));
                if overflow > 0 {
                    return Err(self.fault(Fault::TooManyAnomalies {
                        count: reported.len() + overflow,
                        limit: self.limits.max_anomalies_per_call,
                    }));
                }
                Ok((value, reported))
            }
            Err(error) => {
                let fault = fault::classify(&error, self.fault_context(&store));
                // The Store is dropped here: after a trap it cannot be entered again.
                drop(store);
                Err(self.fault(fault))
            }
        }
    }

    fn fault(&mut self, fault: Fault) -> SandboxError {
        self.faults += 1;
        // A trap already dropped the Store; a bad result leaves it alive but
        // untrusted, so it goes too.
        if matches!(fault, Fault::TooManyAnomalies { .. } | Fault::BadFindings(_)) {
            self.live = None;
        }
        tracing::warn!(agent = %self.context.agent, tenant = %self.context.tenant, fault = fault.kind(), "agent call stopped: {fault}");
        SandboxError::Fault { agent: self.context.agent.to_string(), fault }
    }

    fn agent_error(&self, error: AgentError) -> SandboxError {
        SandboxError::Agent { agent: self.context.agent.to_string(), message: describe_agent_error(&error) }
    }

    fn stamp(&self, mut anomalies: Vec<Anomaly>) -> Vec<Anomaly> {
        let now = now_ms();
        for anomaly in &mut anomalies {
            // The host, not the guest, says who found it and when.
            anomaly.agent = self.context.agent.to_string();
            anomaly.detected_at_ms = now;
        }
        anomalies
    }

    /// The agent's own description.
    pub fn info(&mut self) -> Result<AgentInfo> {
        Ok(self.call(|b, s| b.mcp_agent_detector().call_info(s))?.0)
    }

    /// Runs the agent over a batch; returns what it found, stamped.
    pub fn detect_batch(&mut self, batch: &GuestBatch) -> Result<Vec<Anomaly>> {
        let (result, reported) = self.call(|b, s| b.mcp_agent_detector().call_detect_batch(s, &batch.0))?;
        let findings = result.map_err(|e| self.agent_error(e))?;
        let mut found = self.unpack(&findings, reported)?;
        fill_from_batch(&batch.0, &mut found);
        Ok(self.stamp(found))
    }

    /// Runs the agent over one entry.
    pub fn detect(&mut self, entry: &LogEntry) -> Result<Vec<Anomaly>> {
        let (result, reported) = self.call(|b, s| b.mcp_agent_detector().call_detect(s, entry))?;
        let findings = result.map_err(|e| self.agent_error(e))?;
        let mut found = self.unpack(&findings, reported)?;
        for anomaly in found.iter_mut() {
            if anomaly.log_id == entry.id {
                anomaly.log_type.clone_from(&entry.log_type);
                anomaly.source.clone_from(&entry.source);
                anomaly.log_timestamp_ms = entry.timestamp_ms;
            } else {
                anomaly.source.clear();
            }
        }
        Ok(self.stamp(found))
    }

    /// Checks returned findings and adds the reported ones; a malformed or
    /// oversized result is a fault like a trap, and discards the instance.
    fn unpack(&mut self, findings: &Findings, reported: Vec<Anomaly>) -> Result<Vec<Anomaly>> {
        let limit = self.limits.max_anomalies_per_call;
        let room = limit.saturating_sub(reported.len());
        match findings::unpack(findings, room) {
            Ok(mut found) => {
                found.extend(reported);
                Ok(found)
            }
            Err(UnpackError::TooMany { count }) => {
                Err(self.fault(Fault::TooManyAnomalies { count: count + reported.len(), limit }))
            }
            Err(UnpackError::Malformed(detail)) => Err(self.fault(Fault::BadFindings(detail))),
        }
    }

    /// The agent's features for one entry.
    pub fn extract_features(&mut self, entry: &LogEntry) -> Result<Features> {
        let (result, _) = self.call(|b, s| b.mcp_agent_detector().call_extract_features(s, entry))?;
        result.map_err(|e| self.agent_error(e))
    }

    /// The agent's score for features.
    pub fn infer(&mut self, features: &Features) -> Result<InferenceResult> {
        let (result, _) = self.call(|b, s| b.mcp_agent_detector().call_infer(s, features))?;
        result.map_err(|e| self.agent_error(e))
    }

    /// Asks the agent to load a model through the host.
    pub fn load_model(&mut self, name: &str, version: Option<&str>) -> Result<String> {
        let (result, _) = self.call(|b, s| b.mcp_agent_detector().call_load_model(s, name, version))?;
        result.map_err(|e| self.agent_error(e))
    }
}

/// Sets each anomaly's log type, source and timestamp from the batch entry
/// its log id names; the host's records win over what the guest said.
/// Anomalies naming entries outside the batch keep an empty source for the
/// caller to resolve.
fn fill_from_batch(batch: &crate::bindings::LogBatch, anomalies: &mut [Anomaly]) {
    if anomalies.is_empty() {
        return;
    }
    for anomaly in anomalies {
        // Batches come in id order, so a binary search finds the entry.
        match batch.ids.binary_search(&anomaly.log_id) {
            Ok(index) => {
                anomaly.log_type.clone_from(&batch.log_type);
                anomaly.source = mcp_columns::text_in(&batch.sources.data, &batch.sources.ends, index)
                    .unwrap_or_default()
                    .to_string();
                anomaly.log_timestamp_ms = batch.timestamps_ms.get(index).copied().unwrap_or_default();
            }
            Err(_) => anomaly.source.clear(),
        }
    }
}

/// One line naming an agent error and its detail.
pub fn describe_agent_error(error: &AgentError) -> String {
    match error {
        AgentError::UnsupportedLogType(m) => format!("unsupported log type: {m}"),
        AgentError::InvalidEntry(e) => format!("invalid entry {}: {}", e.log_id, e.reason),
        AgentError::ModelUnavailable(m) => format!("model unavailable: {m}"),
        AgentError::Config(m) => format!("configuration: {m}"),
        AgentError::Internal(m) => format!("internal: {m}"),
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
