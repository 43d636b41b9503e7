//! The one way to run an agent, for every caller (`mcp run`, the API, the
//! demo, the benchmarks), built like wasmtime's `WasiCtxBuilder`: say what
//! differs, and the service resolves the agent, checks the tenant's enable
//! flag, merges settings (the operator's, then the tenant's, then the
//! caller's), attaches logs and models, and records job status and totals.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use mcp_sandbox::registry::Registry;
use mcp_sandbox::{Budget, Fault, Grant, RunBudget, Usage};
use mcp_storage::control::ControlStore;
use mcp_storage::jobstatus::{JobStatus, SharedCache};
use mcp_storage::run_store::RunStore;
use mcp_storage::source::LogSource;

use crate::shadow::ShadowSpec;
pub use crate::shadow::{ShadowReport, ShadowWindow};

use crate::config::McpConfig;
use crate::jobs::RunJob;
use crate::models::ModelManager;
use crate::pipeline::{self, RunError, RunReport, RunSpec};

/// What a run is to be: built step by step, then [`RunBuilder::build`].
pub struct RunBuilder {
    registry: Arc<Registry>,
    source: Arc<dyn LogSource>,
    tenant: String,
    agent: String,
    settings: BTreeMap<String, String>,
    overrides: BTreeMap<String, String>,
    models: Option<Arc<ModelManager>>,
    tenant_settings: BTreeMap<String, String>,
    budget: RunBudget,
    batch_size: u32,
    replay_ms: i64,
    uploaded: bool,
    grant: Option<Grant>,
}

/// The smallest batch a tenant's `batch_size` setting may ask for: every
/// batch costs a commit and a snapshot, so tiny batches multiply the work
/// a run makes the host do.
pub const MIN_TENANT_BATCH_SIZE: u32 = 100;

impl std::fmt::Debug for RunBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunBuilder").field("tenant", &self.tenant).field("agent", &self.agent).finish_non_exhaustive()
    }
}

impl RunBuilder {
    /// A run of `agent` (from `registry`) over `tenant`'s logs in `source`,
    /// with the operator's settings, batch size and replay from `config`.
    pub fn new(
        config: &McpConfig,
        registry: Arc<Registry>,
        source: Arc<dyn LogSource>,
        tenant: &str,
        agent: &str,
    ) -> Self {
        RunBuilder {
            registry,
            source,
            tenant: tenant.to_string(),
            agent: agent.to_string(),
            settings: config.settings_for(agent),
            overrides: BTreeMap::new(),
            models: None,
            tenant_settings: BTreeMap::new(),
            budget: config.budgets.clone(),
            batch_size: config.batch_size,
            replay_ms: config.replay_ms,
            uploaded: false,
            grant: None,
        }
    }

    /// Honours the tenant's enable flag, quarantine, budget overrides,
    /// agent settings and batch size from the control store: a disabled or
    /// quarantined agent does not run.
    pub fn tenant_control(mut self, control: &ControlStore) -> Result<Self, RunError> {
        let name = self.registry.get(&self.agent)?.info.name.clone();
        if !control.agent_enabled(&self.tenant, &name)? {
            return Err(RunError::Disabled { agent: name });
        }
        if let Some(held) = crate::quarantine::in_force(control, &self.tenant, &name)? {
            return Err(RunError::Quarantined { agent: name, until_ms: held.until_ms, reason: held.reason });
        }
        self.budget = tenant_budget(&self.budget, control, &self.tenant)?;
        let prefix = format!("agents.{name}.");
        for (key, value) in control.settings(&self.tenant)? {
            if let Some(key) = key.strip_prefix(&prefix) {
                self.tenant_settings.insert(key.to_string(), value);
            } else if key == "batch_size" {
                self.batch_size = value.parse::<u32>().unwrap_or(self.batch_size).max(MIN_TENANT_BATCH_SIZE);
            }
        }
        Ok(self)
    }

    /// Serve the agent's models from `models`.
    pub fn models(mut self, models: Arc<ModelManager>) -> Self {
        self.models = Some(models);
        self
    }

    /// The grant the instance gets instead of its info's (an upload's
    /// approved manifest).
    pub fn grant(mut self, grant: Grant) -> Self {
        self.grant = Some(grant);
        self
    }

    /// A tenant's uploaded agent: the deployment's models and the
    /// operator's `[agents.<name>]` settings are keyed by agent name and
    /// meant for the bundled agents, so an upload named like one gets
    /// neither; give it its tenant's models with [`RunBuilder::models`]
    /// after this.
    pub fn uploaded(mut self) -> Self {
        self.uploaded = true;
        self.models = None;
        self
    }

    /// One setting for this run, over the operator's and the tenant's.
    pub fn setting(mut self, key: &str, value: &str) -> Self {
        self.overrides.insert(key.to_string(), value.to_string());
        self
    }

    /// The agent's name as asked for.
    pub fn agent(&self) -> &str {
        &self.agent
    }

    /// Resolves the agent, checks it may run, merges settings and
    /// instantiates it.
    pub fn build(self) -> Result<Run, RunError> {
        let name = self.registry.get(&self.agent)?.info.name.clone();
        let mut settings = if self.uploaded { BTreeMap::new() } else { self.settings };
        let models = self.models;
        settings.extend(self.tenant_settings);
        settings.extend(self.overrides);
        let mut context =
            pipeline::context_for(&name, &self.tenant, settings, Some(self.source.clone()), models, self.budget);
        context.grant = self.grant.map(Arc::new);
        // The slot now, so a tenant over its instances hears it at once; the
        // instance when the run starts, on its own thread, since making it
        // runs guest code and waits for a fair turn.
        let slot = self.registry.reserve(&name, &context)?;
        Ok(Run {
            registry: self.registry,
            source: self.source,
            context,
            slot,
            tenant: self.tenant,
            agent: name,
            batch_size: self.batch_size,
            replay_ms: self.replay_ms,
            up_to_id: None,
            follow: None,
        })
    }
}

/// A run ready to go: the agent resolved and an instance slot held for it.
pub struct Run {
    registry: Arc<Registry>,
    source: Arc<dyn LogSource>,
    /// What the instance is made from, and the slot it will take: the
    /// instance itself is made when the run starts.
    context: mcp_sandbox::InstanceContext,
    slot: mcp_sandbox::TenantSlot,
    tenant: String,
    agent: String,
    batch_size: u32,
    replay_ms: i64,
    up_to_id: Option<u64>,
    follow: Option<Duration>,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run").field("tenant", &self.tenant).field("agent", &self.agent).finish_non_exhaustive()
    }
}

/// How a run ended, with what the instance used.
#[derive(Debug)]
pub struct RunOutcome {
    pub result: Result<RunReport, RunError>,
    /// Faults the instance met, recovered or not.
    pub faults: u64,
    /// The faults themselves, oldest first (the newest 64), for quarantine.
    pub fault_list: Vec<Fault>,
    /// What the agent used.
    pub usage: Usage,
}

impl Run {
    /// Stops the run after log id `last` (a work unit's end) instead of at
    /// the end of the source.
    pub fn up_to(mut self, last: u64) -> Self {
        self.up_to_id = Some(last);
        self
    }

    /// Follows new rows, looking again every `poll`, instead of ending at
    /// the end of the source; the observer stops it.
    pub fn follow(mut self, poll: Duration) -> Self {
        self.follow = Some(poll);
        self
    }

    /// Runs from the checkpoint to the end of the source, showing `observer`
    /// the report after each committed batch (it may stop the run).
    pub fn execute(
        self,
        store: &mut dyn RunStore,
        observer: &mut dyn FnMut(&RunReport) -> ControlFlow<()>,
    ) -> RunOutcome {
        let mut instance = match self.registry.instantiate_reserved(&self.agent, self.context, self.slot) {
            Ok(instance) => instance,
            Err(error) => {
                // A trap in the agent's start code counts like any fault.
                let fault_list = match &error {
                    mcp_sandbox::registry::RegistryError::Invalid { source, .. } => {
                        source.fault().cloned().into_iter().collect()
                    }
                    _ => Vec::new(),
                };
                return RunOutcome {
                    result: Err(error.into()),
                    faults: fault_list.len() as u64,
                    fault_list,
                    usage: Usage::default(),
                };
            }
        };
        let spec = RunSpec {
            tenant: &self.tenant,
            agent: &self.agent,
            log_source: self.source.name(),
            batch_size: self.batch_size,
            replay_ms: self.replay_ms,
            up_to_id: self.up_to_id,
            follow: self.follow,
        };
        let result = pipeline::run_observed(&self.registry, &mut instance, &*self.source, store, &spec, observer);
        RunOutcome { result, faults: instance.faults(), fault_list: instance.take_faults(), usage: *instance.usage() }
    }

    /// A shadow run: the candidate component in `bytes` beside this run's
    /// agent over `window` of history, both fresh, storing nothing. The
    /// candidate must read the same log type. It runs in `candidate`'s
    /// context (settings, models, budget and instance slot; built for the
    /// same agent, as an upload when its author is not trusted with the
    /// operator's settings and models) under this run's grant, so it can
    /// reach nothing the active agent cannot. Its compile is not cached.
    pub fn shadow(
        self,
        candidate: Run,
        bytes: &[u8],
        origin: &str,
        window: ShadowWindow,
    ) -> Result<ShadowReport, RunError> {
        let active_info = self.registry.get(&self.agent)?.info.clone();
        let mut candidates = Registry::new(self.registry.sandbox().clone());
        let checked = mcp_sandbox::registry::validate_transient(self.registry.sandbox(), bytes, origin)
            .map_err(RunError::ShadowCandidate)?;
        let candidate_info = candidates.insert(checked).map_err(RunError::ShadowCandidate)?.info.clone();
        if candidate_info.log_type != active_info.log_type {
            return Err(RunError::ShadowMismatch {
                agent: self.agent.clone(),
                log_type: active_info.log_type,
                candidate: candidate_info.name,
                candidate_log_type: candidate_info.log_type,
            });
        }
        let mut candidate_context = candidate.context;
        candidate_context.agent = candidate_info.name.as_str().into();
        // The active agent's grant, whatever the candidate's info asks for.
        candidate_context.grant =
            Some(self.context.grant.clone().unwrap_or_else(|| Arc::new(Grant::of_info(&active_info))));
        let fault = |side: &'static str, agent: &str| {
            let agent = agent.to_string();
            move |source: mcp_sandbox::registry::RegistryError| RunError::ShadowFault {
                side,
                agent,
                message: source.to_string(),
            }
        };
        let mut candidate_instance = candidates
            .instantiate_reserved(&candidate_info.name, candidate_context, candidate.slot)
            .map_err(fault("candidate", &candidate_info.name))?;
        let mut active = self
            .registry
            .instantiate_reserved(&self.agent, self.context, self.slot)
            .map_err(fault("active agent", &self.agent))?;
        let spec = ShadowSpec {
            tenant: &self.tenant,
            log_type: &active_info.log_type,
            batch_size: self.batch_size,
            window: &window,
        };
        crate::shadow::compare(self.registry.sandbox(), &*self.source, &mut active, &mut candidate_instance, &spec)
    }

    /// As [`Run::execute`], recording job status in `cache` every
    /// `interval` and honouring cancel requests; `progress` sees the
    /// report after each committed batch.
    pub fn execute_as_job(
        self,
        store: &mut dyn RunStore,
        cache: &SharedCache,
        interval: Duration,
        progress: &mut dyn FnMut(&RunReport),
    ) -> (RunOutcome, JobStatus) {
        let mut job = RunJob::start(cache, &self.tenant, &self.agent, self.source.name(), interval);
        // Every line logged while the run goes (the agent's own included)
        // carries its tenant, agent and run id.
        let span = tracing::info_span!("run", tenant = %self.tenant, agent = %self.agent, run = %job.id());
        let _entered = span.enter();
        let outcome = self.execute(store, &mut |report| {
            progress(report);
            job.observe(report)
        });
        job.record_faults(outcome.faults);
        job.finish(&outcome.result, &outcome.usage);
        (outcome, job.status().clone())
    }
}

/// `defaults` with `tenant`'s overrides from the control store; an
/// override of an unknown key (from an older version) is ignored.
pub fn tenant_budget(defaults: &RunBudget, control: &ControlStore, tenant: &str) -> Result<RunBudget, RunError> {
    let mut budget = defaults.clone();
    for (key, value) in control.budget_overrides(tenant)? {
        if let Some(which) = Budget::parse(&key) {
            let _ = budget.set(which, value);
        }
    }
    Ok(budget)
}
