//! The host side of the imports: what an agent may ask of the host, scoped to
//! its tenant. Nothing here gives a guest files, sockets or the environment.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::bindings::mcp::agent::{config, log, logs, model, report, types};
use super::bindings::{Anomaly, Findings, HostError, LogBatch};
use super::findings::{self, UnpackError};
use super::limits::GuestLimiter;
use super::output::GuestOutput;

/// Serves `logs.query` for an agent's tenant.
pub trait LogReader: Send + Sync {
    /// One page of entries for `tenant`; an empty batch when there are no more.
    fn query(&self, tenant: &str, query: &logs::LogQuery) -> Result<LogBatch, HostError>;
}

/// Who an instance runs for and what it may read.
#[derive(Clone)]
pub struct InstanceContext {
    pub agent: Arc<str>,
    pub tenant: Arc<str>,
    pub config: Arc<BTreeMap<String, String>>,
    pub logs: Option<Arc<dyn LogReader>>,
}

impl std::fmt::Debug for InstanceContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstanceContext")
            .field("agent", &self.agent)
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

impl InstanceContext {
    /// An agent of `tenant` with no settings and no log access.
    pub fn new(agent: &str, tenant: &str) -> Self {
        InstanceContext { agent: agent.into(), tenant: tenant.into(), config: Arc::default(), logs: None }
    }
}

/// A model handle given to a guest. Models are served by the ModelManager
/// (docs/ROADMAP.md); until then no handle is ever created.
#[derive(Debug)]
pub struct ModelHandle {
    pub version: String,
}

/// Everything a Store holds for one agent instance.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: GuestLimiter,
    pub(crate) context: InstanceContext,
    pub(crate) reported: Vec<Anomaly>,
    pub(crate) max_reported: usize,
    pub(crate) report_overflow: usize,
    max_query_page: u32,
}

impl HostState {
    pub fn new(context: InstanceContext, memory_bytes: usize, max_reported: usize, max_query_page: u32) -> Self {
        // Deny by default: no preopened directories, no environment, no
        // arguments, no network, no inherited stdio.
        let mut builder = WasiCtxBuilder::new();
        builder
            .stdout(GuestOutput::new(&context.agent, "stdout"))
            .stderr(GuestOutput::new(&context.agent, "stderr"))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }));
        HostState {
            wasi: builder.build(),
            table: ResourceTable::new(),
            limiter: GuestLimiter::new(memory_bytes),
            context,
            reported: Vec::new(),
            max_reported,
            report_overflow: 0,
            max_query_page,
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl types::Host for HostState {}

impl logs::Host for HostState {
    fn query(&mut self, mut query: logs::LogQuery) -> Result<LogBatch, HostError> {
        let Some(reader) = self.context.logs.clone() else {
            return Err(HostError::Unavailable("no log source is attached to this run".into()));
        };
        if query.limit == 0 {
            return Err(HostError::InvalidArgument("limit must be at least 1".into()));
        }
        query.limit = query.limit.min(self.max_query_page);
        reader.query(&self.context.tenant, &query)
    }
}

impl model::Host for HostState {}

impl model::HostLoadedModel for HostState {
    fn load(&mut self, name: String, version: Option<String>) -> Result<Resource<ModelHandle>, HostError> {
        let wanted = version.map_or_else(|| "the active version".to_string(), |v| format!("version {v}"));
        Err(HostError::NotFound(format!(
            "model '{name}' ({wanted}) is not deployed for agent {}: this host has no model store yet",
            self.context.agent
        )))
    }

    fn version(&mut self, handle: Resource<ModelHandle>) -> String {
        self.table.get(&handle).map(|m| m.version.clone()).unwrap_or_default()
    }

    fn infer(&mut self, _handle: Resource<ModelHandle>, _input: types::Tensor) -> Result<types::Tensor, HostError> {
        Err(HostError::Unavailable("model inference is not available on this host yet".into()))
    }

    fn drop(&mut self, handle: Resource<ModelHandle>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        Ok(())
    }
}

impl report::Host for HostState {
    fn report(&mut self, found: Findings) -> Result<(), HostError> {
        let room = self.max_reported.saturating_sub(self.reported.len());
        match findings::unpack(&found, room) {
            Ok(anomalies) => {
                self.reported.extend(anomalies);
                Ok(())
            }
            Err(UnpackError::TooMany { count }) => {
                self.report_overflow += count;
                Err(HostError::LimitExceeded(format!("at most {} findings per call", self.max_reported)))
            }
            Err(UnpackError::Malformed(reason)) => Err(HostError::InvalidArgument(reason)),
        }
    }
}

impl log::Host for HostState {
    fn log(&mut self, level: log::Level, message: String) {
        let agent = &*self.context.agent;
        let tenant = &*self.context.tenant;
        match level {
            log::Level::Trace => tracing::trace!(agent, tenant, "{message}"),
            log::Level::Debug => tracing::debug!(agent, tenant, "{message}"),
            log::Level::Info => tracing::info!(agent, tenant, "{message}"),
            log::Level::Warn => tracing::warn!(agent, tenant, "{message}"),
            log::Level::Error => tracing::error!(agent, tenant, "{message}"),
        }
    }
}

impl config::Host for HostState {
    fn get(&mut self, key: String) -> Option<String> {
        self.context.config.get(&key).cloned()
    }

    fn keys(&mut self) -> Vec<String> {
        self.context.config.keys().cloned().collect()
    }
}
