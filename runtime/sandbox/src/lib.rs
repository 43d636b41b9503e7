//! The sandbox: the only crate that names wasmtime.
//!
//! It owns the one wasmtime `Engine` per process, one `Store` per agent
//! instance, the host side of the imports (behind the [`LogReader`] and
//! [`ModelProvider`] traits, so it knows neither storage nor tract), the
//! registry of validated components and the conformance check. Generated
//! binding types are converted to `mcp-columns`' types in `boundary.rs` and
//! nowhere else; the rest of the host sees [`AgentInstance`],
//! [`GuestBatch`] and plain data.
//!
//! It must not know where logs or models come from, how anomalies are
//! stored, or HTTP.

mod bindings;
mod boundary;
mod budget;
mod cache;
pub mod conformance;
mod fault;
mod findings;
mod grant;
pub mod host;
mod info;
mod instance;
mod limits;
mod output;
pub mod registry;
mod slots;
mod text;
mod turns;
pub mod upload;
mod waits;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ProfilingStrategy};

pub use boundary::{FeatureTable, GuestBatch, ImportError, MAX_ERROR_BYTES};
pub use budget::{Budget, BudgetExceeded, RunBudget, Usage};
pub use cache::{CacheOutcome, CompileCache};
pub use fault::Fault;
pub use findings::{MAX_LABEL_BYTES, MAX_REASON_BYTES};
pub use grant::Grant;
pub use host::{InstanceContext, LogReader, ModelProvider, ServedModel};
pub use info::{AgentInfo, PROTOCOL_VERSIONS, Protocol, SchemaSupport};
pub use instance::{AgentInstance, LogEntry};
pub use limits::{BudgetKind, EPOCH_TICK_MS, SandboxLimits};
pub use slots::{TenantSlot, TenantSlots};
pub use turns::{Turn, Turns};

/// The newest protocol version this host speaks; [`PROTOCOL_VERSIONS`] lists
/// every one it serves.
pub const PROTOCOL_VERSION: &str = mcp_columns::PROTOCOL_VERSION;
/// The name compiles take turns under, beside the tenants.
const COMPILE_TURNS: &str = "(compile)";
/// The interface every agent exports, before its version.
pub const DETECTOR_EXPORT: &str = "mcp:agent/detector";

/// Errors of the sandbox.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot set up the wasm engine: {0}")]
    Engine(String),
    #[error("not a valid component: {0}")]
    Compile(String),
    #[error("component speaks protocol {found}, this host speaks {expected}")]
    ProtocolMismatch { expected: String, found: String },
    #[error("component is not an MCP agent: {0}")]
    NotAnAgent(String),
    #[error("agent {agent}: cannot instantiate: {detail}")]
    Instantiate { agent: String, detail: String },
    #[error("agent {agent} {fault}; the instance was discarded")]
    Fault { agent: String, fault: Fault },
    #[error("agent {agent} returned an error: {message}")]
    Agent { agent: String, message: String },
    #[error("refused: {0}")]
    Refused(String),
}

/// How an agent's `config` error begins once the host has named it.
pub(crate) const CONFIGURATION: &str = "configuration";

impl SandboxError {
    /// Whether the agent refused its settings (its `config` error): the
    /// operator's to fix, not a fault of the agent's.
    pub fn is_configuration(&self) -> bool {
        matches!(self, SandboxError::Agent { message, .. } if message.starts_with(CONFIGURATION))
    }

    /// The fault that stopped the agent, if a fault did.
    pub fn fault(&self) -> Option<&Fault> {
        match self {
            SandboxError::Fault { fault, .. } => Some(fault),
            _ => None,
        }
    }
}

pub type Result<T, E = SandboxError> = std::result::Result<T, E>;

/// The process-wide engine, linker and limits.
pub struct Sandbox {
    engine: Engine,
    linker: Linker<host::HostState>,
    limits: SandboxLimits,
    cache: CompileCache,
    slots: TenantSlots,
    turns: Turns,
    _ticker: Option<EpochTicker>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox").field("limits", &self.limits).finish_non_exhaustive()
    }
}

impl Sandbox {
    /// Builds the engine with `limits` and a compile cache.
    pub fn new(limits: SandboxLimits, cache: CompileCache) -> Result<Self> {
        let reservation = small_memory_reservation(&limits);
        if let Some(reservation) = reservation {
            tracing::info!(
                max_instances = limits.max_instances,
                reservation_mib = reservation >> 20,
                "the instance pool is too large to reserve 4 GiB per memory: guest loads and stores get bounds checks"
            );
        }
        let engine =
            Engine::new(&engine_config(&limits, reservation)).map_err(|e| SandboxError::Engine(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(|e| SandboxError::Engine(format!("{e:#}")))?;
        waits::deny_waits(&mut linker).map_err(|e| SandboxError::Engine(format!("{e:#}")))?;
        bindings::v1::Agent::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)
            .map_err(|e| SandboxError::Engine(format!("{e:#}")))?;
        bindings::v2::Agent::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)
            .map_err(|e| SandboxError::Engine(format!("{e:#}")))?;
        let ticker = (limits.budget == BudgetKind::Epoch).then(|| EpochTicker::start(engine.clone()));
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Sandbox {
            engine,
            linker,
            limits,
            cache,
            slots: TenantSlots::default(),
            turns: Turns::new(workers),
            _ticker: ticker,
        })
    }

    pub fn limits(&self) -> &SandboxLimits {
        &self.limits
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The turns agent calls take, fairly across tenants.
    pub fn turns(&self) -> &Turns {
        &self.turns
    }

    /// `budget` within what this process allows everyone: a tenant's budget
    /// can lower the `[sandbox]` limits, never raise them.
    pub fn clamp(&self, mut budget: RunBudget) -> RunBudget {
        budget.call_timeout_ms = budget.call_timeout_ms.min(self.limits.call_timeout_ms);
        budget.fuel_per_call = budget.fuel_per_call.min(self.limits.fuel_per_call);
        budget.memory_bytes = budget.memory_bytes.min(self.limits.memory_bytes);
        budget.max_instances = budget.max_instances.min(self.limits.max_instances);
        budget
    }

    /// Compiles (or loads from the cache) a component and checks that it
    /// exports this protocol's detector interface.
    pub fn load(&self, bytes: &[u8], sha256: &str) -> Result<(Component, CacheOutcome)> {
        self.load_with(bytes, sha256, &self.cache)
    }

    /// As [`Sandbox::load`], writing nothing to the compile cache: for a
    /// component used once (a shadow run's candidate), which would otherwise
    /// leave an artifact per request on disk.
    pub fn load_transient(&self, bytes: &[u8], sha256: &str) -> Result<(Component, CacheOutcome)> {
        self.load_with(bytes, sha256, &CompileCache::new(None))
    }

    fn load_with(&self, bytes: &[u8], sha256: &str, cache: &CompileCache) -> Result<(Component, CacheOutcome)> {
        upload::check_header(bytes)?;
        // Compiling takes every core; compiles wait their turn like calls.
        let _turn = self.turns.take(COMPILE_TURNS);
        cache.load(&self.engine, bytes, sha256, |component| {
            let protocol = check_protocol(&self.engine, component)?;
            upload::check_imports(&self.engine, component, protocol)
        })
    }

    /// Instantiates `component` for `context`; fails if its imports are not
    /// ones this host offers.
    pub fn instantiate(&self, component: &Component, context: InstanceContext) -> Result<AgentInstance> {
        let slot = self.reserve(&context)?;
        self.instantiate_reserved(component, context, slot)
    }

    /// Takes one of `context`'s tenant's instance slots now, for an
    /// instantiation later (a run started by a request, instantiated on its
    /// own thread); over the tenant's `max_instances`, the budget fault.
    pub fn reserve(&self, context: &InstanceContext) -> Result<TenantSlot> {
        let max = self.clamp(context.budget.clone()).max_instances;
        self.slots.take(&context.tenant, max).map_err(|exceeded| SandboxError::Fault {
            agent: context.agent.to_string(),
            fault: Fault::Budget(exceeded),
        })
    }

    /// As [`Sandbox::instantiate`], in a slot [`Sandbox::reserve`] took.
    pub fn instantiate_reserved(
        &self,
        component: &Component,
        context: InstanceContext,
        slot: TenantSlot,
    ) -> Result<AgentInstance> {
        let prepared = self.prepare(component, &context.agent)?;
        self.instantiate_prepared(&prepared, context, slot)
    }

    /// Checks `component`'s imports against this host's once, so that each
    /// instance of it after that costs only its Store and start code: the
    /// registry keeps one per agent.
    pub fn prepare(&self, component: &Component, agent: &str) -> Result<PreparedComponent> {
        let failed =
            |e: wasmtime::Error| SandboxError::Instantiate { agent: agent.to_string(), detail: format!("{e:#}") };
        let pre = self.linker.instantiate_pre(component).map_err(failed)?;
        let protocol = exported_protocol(&self.engine, component).and_then(|v| Protocol::of_version(&v));
        let pre = match protocol {
            Some(Protocol::V0_1) => bindings::v1::AgentPre::new(pre).map(instance::Pre::V1),
            _ => bindings::v2::AgentPre::new(pre).map(instance::Pre::V2),
        }
        .map_err(failed)?;
        Ok(PreparedComponent(pre))
    }

    /// A fresh instance of a prepared component in a slot
    /// [`Sandbox::reserve`] took.
    pub fn instantiate_prepared(
        &self,
        prepared: &PreparedComponent,
        mut context: InstanceContext,
        slot: TenantSlot,
    ) -> Result<AgentInstance> {
        context.budget = self.clamp(context.budget);
        // Instantiation runs the guest's start code: it takes a turn.
        let _turn = self.turns.take(&context.tenant);
        AgentInstance::new(self.engine.clone(), prepared.0.clone(), self.limits.clone(), context, slot)
    }
}

/// A component whose imports were checked against the host's and resolved
/// ([`Sandbox::prepare`]); cheap to clone.
#[derive(Clone)]
pub struct PreparedComponent(instance::Pre);

impl std::fmt::Debug for PreparedComponent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedComponent").finish_non_exhaustive()
    }
}

fn engine_config(limits: &SandboxLimits, memory_reservation: Option<u64>) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    // No WASI 0.3 async here; the feature costs every call (docs/performance.md).
    config.concurrency_support(false);
    config.max_wasm_stack(limits.stack_bytes);
    // For `perf`: guest functions by name in its reports (docs/performance.md).
    // Outside the MCP_ names, which are all configuration keys.
    if std::env::var_os("GUEST_PERF_MAP").is_some_and(|v| v == "1") {
        tracing::warn!(
            "GUEST_PERF_MAP=1: writing guest code addresses and function names to /tmp/perf-{}.map; for profiling only, never in production",
            std::process::id()
        );
        config.profiler(ProfilingStrategy::PerfMap);
    }
    match limits.budget {
        BudgetKind::Epoch => config.epoch_interruption(true),
        BudgetKind::Fuel => config.consume_fuel(true),
    };
    // Slots for every instance at its per-component maxima: a tenant's
    // share of instances is then a share of the pool too, whatever its
    // components are made of.
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(limits.max_instances)
        .total_core_instances(limits.max_instances * limits::MAX_CORE_INSTANCES_PER_COMPONENT)
        .total_memories(limits.max_instances * limits::MAX_MEMORIES_PER_COMPONENT)
        .total_tables(limits.max_instances * limits::MAX_TABLES_PER_COMPONENT)
        .max_core_instances_per_component(limits::MAX_CORE_INSTANCES_PER_COMPONENT)
        .max_memories_per_component(limits::MAX_MEMORIES_PER_COMPONENT)
        .max_tables_per_component(limits::MAX_TABLES_PER_COMPONENT)
        .max_memory_size(limits.memory_bytes)
        // A slot given back keeps up to this much of the pages its memory
        // and tables dirtied, reset to their initial contents, instead of
        // handing them to the kernel and faulting them in again at the next
        // instance (docs/performance.md, instantiation).
        .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
        .table_keep_resident(KEEP_RESIDENT_BYTES);
    if let Some(reservation) = memory_reservation {
        config.memory_reservation(reservation);
    }
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    config
}

/// What a freed slot keeps resident per memory and per table for the next
/// instance: an agent has one memory and a table or two, so about 70 KiB a
/// slot once used.
const KEEP_RESIDENT_BYTES: usize = 64 << 10;

/// Address space the pool's memory slots may reserve: half of what x86-64
/// and AArch64 give a process (128 TiB), leaving the rest to the host.
const POOL_ADDRESS_SPACE: u64 = 64 << 40;
/// What wasmtime reserves per memory by default on 64-bit hosts (4 GiB, so
/// that a 32-bit address needs no bounds check) and its guard after it.
const DEFAULT_MEMORY_RESERVATION: u64 = 4 << 30;
const DEFAULT_MEMORY_GUARD: u64 = 32 << 20;

/// The memory reservation for pools too large to reserve 4 GiB per memory
/// within [`POOL_ADDRESS_SPACE`]: each memory's own ceiling, at the price
/// of an explicit bounds check on guest loads and stores (measured in
/// docs/performance.md); `None` keeps wasmtime's default.
fn small_memory_reservation(limits: &SandboxLimits) -> Option<u64> {
    let memories = u64::from(limits.max_instances) * u64::from(limits::MAX_MEMORIES_PER_COMPONENT);
    let default_pool = memories.saturating_mul(DEFAULT_MEMORY_RESERVATION + DEFAULT_MEMORY_GUARD);
    (default_pool > POOL_ADDRESS_SPACE).then(|| {
        let page = 64 << 10;
        (limits.memory_bytes as u64).div_ceil(page) * page
    })
}

/// The version of the `mcp:agent` package a component was built against,
/// read from its exports.
pub fn exported_protocol(engine: &Engine, component: &Component) -> Option<String> {
    component
        .component_type()
        .exports(engine)
        .find_map(|(name, _)| name.strip_prefix("mcp:agent/detector@").map(str::to_string))
}

fn check_protocol(engine: &Engine, component: &Component) -> Result<Protocol> {
    match exported_protocol(engine, component) {
        Some(found) if let Some(protocol) = Protocol::of_version(&found) => Ok(protocol),
        Some(found) => Err(SandboxError::ProtocolMismatch { expected: PROTOCOL_VERSIONS.join(" or "), found }),
        None => {
            let exports: Vec<String> = component.component_type().exports(engine).map(|(n, _)| n.to_string()).collect();
            Err(SandboxError::NotAnAgent(format!(
                "it does not export {DETECTOR_EXPORT}@{PROTOCOL_VERSION} (exports: {})",
                if exports.is_empty() { "none".to_string() } else { exports.join(", ") }
            )))
        }
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK_MS`], so deadlines fire.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("mcp-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(EPOCH_TICK_MS));
                    engine.increment_epoch();
                }
            })
            .ok();
        EpochTicker { stop, thread }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_keep_the_4_gib_reservation_until_it_no_longer_fits() {
        let limits = |max_instances| SandboxLimits { max_instances, ..SandboxLimits::default() };
        assert_eq!(small_memory_reservation(&limits(64)), None);
        assert_eq!(small_memory_reservation(&limits(4_000)), None);
        assert_eq!(small_memory_reservation(&limits(4_100)), Some(64 << 20));
        let odd = SandboxLimits { max_instances: 10_000, memory_bytes: (64 << 20) + 1, ..SandboxLimits::default() };
        assert_eq!(small_memory_reservation(&odd), Some((64 << 20) + (64 << 10)), "not rounded up to a wasm page");
    }
}
