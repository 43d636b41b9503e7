//! One agent instance: a Store, its bindings, and the rules for a call.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use wasmtime::{Engine, Store};

use super::bindings::{v1, v2};
use super::boundary::{AgentFailure, FeatureTable, feature_table};
use super::budget::{Budget, BudgetExceeded, Usage};
use super::fault::{self, Fault, FaultContext};
use super::findings::{self, UnpackError};
use super::host::{HostState, InstanceContext};
use super::info::{AgentInfo, Protocol};
use super::limits::{BudgetKind, EPOCH_TICK_MS, SandboxLimits};
use super::slots::TenantSlot;
use super::{GuestBatch, Result, SandboxError};
use mcp_columns::Anomaly;

/// A component ready to instantiate, in its protocol version's bindings.
#[derive(Clone)]
pub(crate) enum Pre {
    V1(v1::AgentPre<HostState>),
    V2(v2::AgentPre<HostState>),
}

/// A live component's exports, in its protocol version's bindings.
enum Exports {
    V1(v1::Agent),
    V2(v2::Agent),
}

/// One sample entry as the single-entry exports of 0.1.0 take it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub id: u64,
    pub timestamp_ms: i64,
    pub source: String,
    pub log_type: String,
    /// The fields, one JSON object.
    pub fields: String,
}

impl LogEntry {
    /// The entry as a source's raw row, written under the current schema.
    pub fn raw_row(&self) -> mcp_columns::RawRow<'_> {
        mcp_columns::RawRow {
            id: self.id,
            timestamp_ms: self.timestamp_ms,
            source: &self.source,
            fields: &self.fields,
            schema_version: 0,
        }
    }
}

/// A warm instance of one agent. It keeps its guest state between calls; a
/// failed call discards the Store, and the next call starts a fresh one,
/// given back the last state the agent's snapshot took (protocol 0.2.0).
pub struct AgentInstance {
    engine: Engine,
    pre: Pre,
    limits: SandboxLimits,
    context: InstanceContext,
    live: Option<(Store<HostState>, Exports)>,
    faults: u64,
    /// What every call so far used, summed; checked against the budget.
    usage: Usage,
    /// The faults not yet taken by [`AgentInstance::take_faults`], newest last.
    fault_log: Vec<Fault>,
    /// The last state taken or given, for a fresh Store after a fault.
    state: Option<Vec<u8>>,
    /// This tenant's share of the process's instances, given back on drop.
    _slot: TenantSlot,
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
        pre: Pre,
        limits: SandboxLimits,
        context: InstanceContext,
        slot: TenantSlot,
    ) -> Result<Self> {
        let mut instance = AgentInstance {
            engine,
            pre,
            limits,
            context,
            live: None,
            faults: 0,
            usage: Usage::default(),
            fault_log: Vec::new(),
            state: None,
            _slot: slot,
        };
        instance.ensure_live()?;
        Ok(instance)
    }

    /// The protocol version the component was built against.
    pub fn protocol(&self) -> Protocol {
        match self.pre {
            Pre::V1(_) => Protocol::V0_1,
            Pre::V2(_) => Protocol::V0_2,
        }
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

    /// What this instance's calls used so far.
    pub fn usage(&self) -> &Usage {
        &self.usage
    }

    /// Sets the call's deadline or fuel: the per-call amount, or what is
    /// left of the run's when that is less. Says which, for naming a fault.
    fn arm(&mut self, store: &mut Store<HostState>) -> Result<Armed> {
        let budget = &self.context.budget;
        let mut armed = Armed::default();
        let result = match self.limits.budget {
            BudgetKind::Epoch => {
                let left = budget.run_agent_ms.saturating_sub(self.usage.agent_ms);
                if left == 0 {
                    return Err(self.fault_of_budget(Budget::RunAgentMs));
                }
                let ms = if left < budget.call_timeout_ms {
                    armed.deadline_is_run_budget = Some(budget.run_agent_ms);
                    left
                } else {
                    budget.call_timeout_ms
                };
                store.set_epoch_deadline(ms.div_ceil(EPOCH_TICK_MS).max(1));
                Ok(())
            }
            BudgetKind::Fuel => {
                // Fuel bounds each call; the run's time still counts.
                if self.usage.agent_ms >= budget.run_agent_ms {
                    return Err(self.fault_of_budget(Budget::RunAgentMs));
                }
                let left = budget.fuel_per_run.saturating_sub(self.usage.fuel);
                if left == 0 {
                    return Err(self.fault_of_budget(Budget::FuelPerRun));
                }
                armed.fuel = if left < budget.fuel_per_call {
                    armed.fuel_is_run_budget = Some(budget.fuel_per_run);
                    left
                } else {
                    budget.fuel_per_call
                };
                store.set_fuel(armed.fuel)
            }
        };
        result.map_err(|e| SandboxError::Instantiate {
            agent: self.context.agent.to_string(),
            detail: format!("{e:#}"),
        })?;
        Ok(armed)
    }

    fn fault_of_budget(&mut self, budget: Budget) -> SandboxError {
        let exceeded = BudgetExceeded { budget, limit: self.context.budget.get(budget) };
        self.fault(Fault::Budget(exceeded))
    }

    /// Takes `amount` of a run budget for what the host received after a
    /// call; a hit is a fault like one inside the call.
    fn charge(&mut self, budget: Budget, amount: u64) -> Result<()> {
        let limit = self.context.budget.get(budget);
        if let Err(exceeded) = self.usage.take(budget, amount, limit, 0) {
            self.live = None;
            return Err(self.fault(Fault::Budget(exceeded)));
        }
        Ok(())
    }

    fn ensure_live(&mut self) -> Result<()> {
        if self.live.is_some() {
            return Ok(());
        }
        let state = HostState::new(self.context.clone(), &self.limits);
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        // With epochs or fuel on, instantiation itself (start functions)
        // runs under the budget and is charged like a call.
        let armed = self.arm(&mut store)?;
        let started = Instant::now();
        let instantiated = match &self.pre {
            Pre::V1(pre) => pre.instantiate(&mut store).map(Exports::V1),
            Pre::V2(pre) => pre.instantiate(&mut store).map(Exports::V2),
        };
        self.account(&mut store, started, armed);
        let exports = match instantiated {
            Ok(exports) => exports,
            // The guest's own code stopped: a fault like any call's.
            Err(error) if fault::is_guest_fault(&error, store.data().limiter.hit) => {
                let fault = fault::classify(&error, self.fault_context(&store, armed));
                return Err(self.fault(fault));
            }
            // The host could not make an instance (the pool is full): not
            // the agent's fault, and said in one bounded line.
            Err(error) => {
                return Err(SandboxError::Instantiate {
                    agent: self.context.agent.to_string(),
                    detail: fault::first_line(&error),
                });
            }
        };
        self.live = Some((store, exports));
        if let Some(state) = self.state.clone() {
            // A fresh Store after a fault: the agent resumes from its last
            // committed state instead of from nothing.
            self.restore(&state)?;
        }
        Ok(())
    }

    fn fault_context(&self, store: &Store<HostState>, armed: Armed) -> FaultContext {
        FaultContext {
            timeout_ms: self.context.budget.call_timeout_ms,
            fuel: armed.fuel,
            memory_limit: self.context.budget.memory_bytes,
            stack_limit: self.limits.stack_bytes,
            limit_hit: store.data().limiter.hit,
            deadline_is_run_budget: armed.deadline_is_run_budget,
            fuel_is_run_budget: armed.fuel_is_run_budget,
        }
    }

    /// Adds what the call just made in `store` used to the run's usage.
    fn account(&mut self, store: &mut Store<HostState>, started: Instant, armed: Armed) {
        let state = store.data();
        let mut call = state.quota.used;
        call.calls = 1;
        call.agent_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        call.memory_high_water = state.limiter.high_water as u64;
        if self.limits.budget == BudgetKind::Fuel {
            call.fuel = armed.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
        }
        self.usage.add(&call);
    }

    /// Runs one export call under the budget; a trap discards the instance.
    fn call<R>(
        &mut self,
        f: impl FnOnce(&Exports, &mut Store<HostState>) -> wasmtime::Result<R>,
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
        store.data_mut().quota.before = self.usage;
        store.data_mut().quota.used = Usage::default();
        let armed = match self.arm(&mut store) {
            Ok(armed) => armed,
            Err(error) => {
                self.live = Some((store, bindings));
                return Err(error);
            }
        };
        let started = Instant::now();
        let outcome = f(&bindings, &mut store);
        self.account(&mut store, started, armed);
        match outcome {
            Ok(value) => {
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
                let fault = fault::classify(&error, self.fault_context(&store, armed));
                // The Store is dropped here: after a trap it cannot be entered again.
                drop(store);
                Err(self.fault(fault))
            }
        }
    }

    /// The faults since the last call of this, oldest first (at most the
    /// newest 64: a record of a loop, not the loop).
    pub fn take_faults(&mut self) -> Vec<Fault> {
        std::mem::take(&mut self.fault_log)
    }

    fn fault(&mut self, fault: Fault) -> SandboxError {
        self.faults += 1;
        if self.fault_log.len() >= 64 {
            self.fault_log.remove(0);
        }
        self.fault_log.push(fault.clone());
        // A trap already dropped the Store; a bad result leaves it alive but
        // untrusted, so it goes too.
        if matches!(fault, Fault::TooManyAnomalies { .. } | Fault::BadFindings(_) | Fault::StateTooLarge { .. }) {
            self.live = None;
        }
        tracing::warn!(agent = %self.context.agent, tenant = %self.context.tenant, fault = fault.kind(), "agent call stopped: {fault}");
        SandboxError::Fault { agent: self.context.agent.to_string(), fault }
    }

    fn agent_error(&mut self, error: impl Into<AgentFailure>) -> SandboxError {
        let message = error.into().0;
        if let Err(spent) = self.charge(Budget::ReturnedBytes, message.len() as u64) {
            return spent;
        }
        SandboxError::Agent { agent: self.context.agent.to_string(), message }
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
        let (info, _) = self.call(|exports, store| match exports {
            Exports::V1(agent) => agent.mcp_agent_detector().call_info(store).map(AgentInfo::try_from),
            Exports::V2(agent) => agent.mcp_agent_detector().call_info(store).map(AgentInfo::try_from),
        })?;
        info.map_err(|detail| self.fault(Fault::BadFindings(format!("info: {detail}"))))
    }

    /// Runs the agent over a batch; returns what it found, stamped.
    pub fn detect_batch(&mut self, batch: &GuestBatch) -> Result<Vec<Anomaly>> {
        let (result, reported) = self.call(|exports, store| match exports {
            Exports::V1(agent) => agent
                .mcp_agent_detector()
                .call_detect_batch(&mut *store, &v1::LogBatch::from(&batch.0))
                .map(|r| r.map(v2::Findings::from).map_err(|e| AgentFailure::from(&e))),
            Exports::V2(agent) => agent
                .mcp_agent_detector()
                .call_detect_batch(store, &batch.0)
                .map(|r| r.map_err(|e| AgentFailure::from(&e))),
        })?;
        let findings = result.map_err(|e| self.agent_error(e))?;
        let returned = findings.log_ids.len() as u64;
        let mut found = self.unpack(&findings, reported)?;
        // Reported findings were charged by the import as they came.
        self.charge(Budget::Findings, returned)?;
        let returned_bytes = crate::findings::bytes_of(&found[..returned as usize]);
        self.charge(Budget::ReturnedBytes, returned_bytes)?;
        fill_from_batch(&batch.0, &mut found);
        Ok(self.stamp(found))
    }

    /// Checks returned findings and adds the reported ones; a malformed or
    /// oversized result is a fault like a trap, and discards the instance.
    fn unpack(&mut self, findings: &v2::Findings, reported: Vec<Anomaly>) -> Result<Vec<Anomaly>> {
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

    /// The agent's features for every entry of `batch`. A 0.1.0 agent has
    /// only the single-entry export, so it is called once per entry of
    /// `entries`, which must be the batch's entries.
    pub fn extract_features(&mut self, batch: &GuestBatch, entries: &[LogEntry]) -> Result<FeatureTable> {
        if self.protocol() == Protocol::V0_1 {
            return self.extract_features_by_entry(entries);
        }
        let (result, _) = self.call(|exports, store| match exports {
            Exports::V2(agent) => agent
                .mcp_agent_detector()
                .call_extract_features(store, &batch.0)
                .map(|r| r.map_err(|e| AgentFailure::from(&e))),
            Exports::V1(_) => Ok(Err(AgentFailure("protocol 0.1.0 has no batch features".into()))),
        })?;
        let table = result.map_err(|e| self.agent_error(e))?;
        feature_table(table).map_err(|detail| self.fault(Fault::BadFindings(format!("features: {detail}"))))
    }

    fn extract_features_by_entry(&mut self, entries: &[LogEntry]) -> Result<FeatureTable> {
        let mut table = FeatureTable::default();
        for entry in entries {
            let guest = v1::LogEntry {
                id: entry.id,
                timestamp_ms: entry.timestamp_ms,
                source: entry.source.clone(),
                log_type: entry.log_type.clone(),
                fields: entry.fields.clone(),
            };
            let (result, _) = self.call(|exports, store| match exports {
                Exports::V1(agent) => agent
                    .mcp_agent_detector()
                    .call_extract_features(store, &guest)
                    .map(|r| r.map_err(|e| AgentFailure::from(&e))),
                Exports::V2(_) => Ok(Err(AgentFailure("protocol 0.2.0 has no single-entry features".into()))),
            })?;
            let features = result.map_err(|e| self.agent_error(e))?;
            let one = feature_table(v2::FeatureTable {
                names: v2::TextColumn { data: features.names.data, ends: features.names.ends },
                rows: 1,
                values: features.values,
            })
            .map_err(|detail| self.fault(Fault::BadFindings(format!("features: {detail}"))))?;
            if table.rows == 0 {
                table.names = one.names;
            } else if one.names != table.names {
                return Err(self.fault(Fault::BadFindings(format!("entry {} has other feature names", entry.id))));
            }
            table.values.extend(one.values);
            table.rows += 1;
        }
        Ok(table)
    }

    /// The agent's state after its last call, checked against the size cap;
    /// `None` for a 0.1.0 agent, which has none to give. The instance keeps
    /// it (for a fresh Store after a fault) and lends it to the caller.
    pub fn snapshot(&mut self) -> Result<Option<&[u8]>> {
        if !self.protocol().has_state() {
            return Ok(None);
        }
        let (result, _) = self.call(|exports, store| match exports {
            Exports::V2(agent) => {
                agent.mcp_agent_detector().call_snapshot(store).map(|r| r.map_err(|e| AgentFailure::from(&e)))
            }
            Exports::V1(_) => Ok(Ok(Vec::new())),
        })?;
        let state = result.map_err(|e| self.agent_error(e))?;
        if state.len() > self.limits.max_state_bytes {
            return Err(self.fault(Fault::StateTooLarge { bytes: state.len(), limit: self.limits.max_state_bytes }));
        }
        Ok(Some(self.state.insert(state).as_slice()))
    }

    /// The state the last successful [`snapshot`](Self::snapshot) took,
    /// without calling the agent again.
    pub fn last_snapshot(&self) -> Option<&[u8]> {
        if !self.protocol().has_state() {
            return None;
        }
        self.state.as_deref()
    }

    /// Gives the agent back a state its snapshot took. A 0.1.0 agent takes
    /// none; its windows come back through replay.
    pub fn restore(&mut self, state: &[u8]) -> Result<()> {
        if !self.protocol().has_state() {
            return Ok(());
        }
        let (result, _) = self.call(|exports, store| match exports {
            Exports::V2(agent) => {
                agent.mcp_agent_detector().call_restore(store, state).map(|r| r.map_err(|e| AgentFailure::from(&e)))
            }
            Exports::V1(_) => Ok(Ok(())),
        })?;
        result.map_err(|e| self.agent_error(e))?;
        // Only a state the agent took back is given to a fresh Store later.
        self.state = Some(state.to_vec());
        Ok(())
    }
}

/// Sets each anomaly's log type, source and timestamp from the batch entry
/// its log id names; the host's records win over what the guest said.
/// Anomalies naming entries outside the batch keep an empty source for the
/// caller to resolve.
fn fill_from_batch(batch: &v2::LogBatch, anomalies: &mut [Anomaly]) {
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

/// How a call was armed, for naming the fault that ends it.
#[derive(Debug, Clone, Copy, Default)]
struct Armed {
    fuel: u64,
    deadline_is_run_budget: Option<u64>,
    fuel_is_run_budget: Option<u64>,
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
