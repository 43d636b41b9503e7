//! The host side of the imports: what an agent may ask of the host, scoped to
//! its tenant. Nothing here gives a guest files, sockets or the environment.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use mcp_columns::Anomaly;

use super::bindings::{v1, v2};
use super::boundary::ImportError;
use super::findings::{self, UnpackError};
use super::limits::GuestLimiter;
use super::output::GuestOutput;

/// Serves `logs.query` for an agent's tenant.
pub trait LogReader: Send + Sync {
    /// One page of entries for `tenant`; an empty batch when there are no more.
    fn query(&self, tenant: &str, query: &mcp_columns::LogQuery) -> Result<mcp_columns::LogBatch, ImportError>;
}

/// Serves the `model` import: the versions of an agent's models.
pub trait ModelProvider: Send + Sync {
    /// `agent`'s model at `version`, or its active version when `None`.
    fn model(&self, agent: &str, version: Option<&str>) -> Result<Arc<dyn ServedModel>, ImportError>;
}

/// One loaded model version that the host runs for a guest.
pub trait ServedModel: Send + Sync {
    /// The version's name.
    fn version(&self) -> &str;
    /// The input's features, in order.
    fn feature_names(&self) -> &[String];
    /// Runs `rows` rows of `data` (row-major); the output's shape and data.
    fn infer(&self, rows: usize, data: &[f32]) -> Result<(Vec<u32>, Vec<f32>), ImportError>;
}

/// Who an instance runs for and what it may read.
#[derive(Clone)]
pub struct InstanceContext {
    pub agent: Arc<str>,
    pub tenant: Arc<str>,
    pub config: Arc<BTreeMap<String, String>>,
    pub logs: Option<Arc<dyn LogReader>>,
    /// The models this instance may use (its own agent's only).
    pub models: Option<Arc<dyn ModelProvider>>,
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
        InstanceContext { agent: agent.into(), tenant: tenant.into(), config: Arc::default(), logs: None, models: None }
    }
}

/// The most rows one inference call may carry: the host allocates the
/// input and output tensors, so a guest must not choose their size freely.
pub const MAX_INFERENCE_ROWS: usize = 100_000;

/// A model handle given to a guest. A handle without a pinned version
/// follows the active one, so an activation or rollback reaches running
/// agents at their next call.
#[derive(Debug)]
pub struct ModelHandle {
    pub name: String,
    pub pinned: Option<String>,
    /// The version that served the last call.
    pub version: String,
}

/// Everything a Store holds for one agent instance.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: GuestLimiter,
    pub(crate) context: InstanceContext,
    pub(crate) reported: Vec<Anomaly>,
    /// Model name and version of the last inference, for provenance.
    pub(crate) model_used: Option<(String, String)>,
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
            model_used: None,
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

/// The imports' logic, in the host's types; each protocol version's
/// bindings below only convert to and from it.
impl HostState {
    fn query_logs(&mut self, mut query: mcp_columns::LogQuery) -> Result<mcp_columns::LogBatch, ImportError> {
        let Some(reader) = self.context.logs.clone() else {
            return Err(ImportError::Unavailable("no log source is attached to this run".into()));
        };
        if query.limit == 0 {
            return Err(ImportError::InvalidArgument("limit must be at least 1".into()));
        }
        query.limit = query.limit.min(self.max_query_page);
        reader.query(&self.context.tenant, &query)
    }

    fn load_model(&mut self, name: String, version: Option<String>) -> Result<Resource<ModelHandle>, ImportError> {
        let Some(models) = self.context.models.clone() else {
            return Err(ImportError::NotFound("no model store is attached to this host".into()));
        };
        if name != *self.context.agent {
            return Err(ImportError::NotFound(format!(
                "agent {} may load only its own models (named '{}'), not '{name}'",
                self.context.agent, self.context.agent
            )));
        }
        let model = models.model(&name, version.as_deref())?;
        let handle = ModelHandle { name, pinned: version, version: model.version().to_string() };
        self.table.push(handle).map_err(|e| ImportError::LimitExceeded(e.to_string()))
    }

    fn model_version(&mut self, handle: &Resource<ModelHandle>) -> String {
        self.table.get(handle).map(|m| m.version.clone()).unwrap_or_default()
    }

    fn infer(
        &mut self,
        handle: &Resource<ModelHandle>,
        shape: &[u32],
        data: &[f32],
    ) -> Result<(Vec<u32>, Vec<f32>), ImportError> {
        let Some(models) = self.context.models.clone() else {
            return Err(ImportError::NotFound("no model store is attached to this host".into()));
        };
        let (name, pinned) = {
            let handle = self.table.get(handle).map_err(|e| ImportError::InvalidArgument(e.to_string()))?;
            (handle.name.clone(), handle.pinned.clone())
        };
        let model = models.model(&name, pinned.as_deref())?;
        let (rows, columns) = match shape {
            [rows, columns] => (*rows as usize, *columns as usize),
            _ => return Err(ImportError::InvalidArgument(format!("input shape {shape:?} is not [rows, features]"))),
        };
        if columns != model.feature_names().len() {
            return Err(ImportError::InvalidArgument(format!(
                "model {name} {} takes {} features per row ({}); the input has {columns}",
                model.version(),
                model.feature_names().len(),
                model.feature_names().join(", ")
            )));
        }
        if rows > MAX_INFERENCE_ROWS {
            return Err(ImportError::LimitExceeded(format!("at most {MAX_INFERENCE_ROWS} rows per inference call")));
        }
        let output = model.infer(rows, data)?;
        let version = model.version().to_string();
        if let Ok(handle) = self.table.get_mut(handle) {
            handle.version.clone_from(&version);
        }
        self.model_used = Some((name, version));
        Ok(output)
    }

    fn report(&mut self, found: &v2::Findings) -> Result<(), ImportError> {
        let room = self.max_reported.saturating_sub(self.reported.len());
        match findings::unpack(found, room) {
            Ok(anomalies) => {
                self.reported.extend(anomalies);
                Ok(())
            }
            Err(UnpackError::TooMany { count }) => {
                self.report_overflow += count;
                Err(ImportError::LimitExceeded(format!("at most {} findings per call", self.max_reported)))
            }
            Err(UnpackError::Malformed(reason)) => Err(ImportError::InvalidArgument(reason)),
        }
    }

    fn log(&self, level: tracing::Level, message: &str) {
        let agent = &*self.context.agent;
        let tenant = &*self.context.tenant;
        match level {
            tracing::Level::TRACE => tracing::trace!(agent, tenant, "{message}"),
            tracing::Level::DEBUG => tracing::debug!(agent, tenant, "{message}"),
            tracing::Level::INFO => tracing::info!(agent, tenant, "{message}"),
            tracing::Level::WARN => tracing::warn!(agent, tenant, "{message}"),
            tracing::Level::ERROR => tracing::error!(agent, tenant, "{message}"),
        }
    }
}

/// The imports of one protocol version's bindings, as shims over the logic
/// above: the same checks serve every version.
macro_rules! imports_for {
    ($module:ident) => {
        impl $module::mcp::agent::types::Host for HostState {}

        impl $module::mcp::agent::logs::Host for HostState {
            fn query(
                &mut self,
                query: $module::mcp::agent::logs::LogQuery,
            ) -> Result<$module::LogBatch, $module::HostError> {
                Ok(self.query_logs(query.into())?.into())
            }
        }

        impl $module::mcp::agent::model::Host for HostState {}

        impl $module::mcp::agent::model::HostLoadedModel for HostState {
            fn load(
                &mut self,
                name: String,
                version: Option<String>,
            ) -> Result<Resource<ModelHandle>, $module::HostError> {
                Ok(self.load_model(name, version)?)
            }

            fn version(&mut self, handle: Resource<ModelHandle>) -> String {
                self.model_version(&handle)
            }

            fn infer(
                &mut self,
                handle: Resource<ModelHandle>,
                input: $module::mcp::agent::types::Tensor,
            ) -> Result<$module::mcp::agent::types::Tensor, $module::HostError> {
                let (shape, data) = HostState::infer(self, &handle, &input.shape, &input.data)?;
                Ok($module::mcp::agent::types::Tensor { shape, data })
            }

            fn drop(&mut self, handle: Resource<ModelHandle>) -> wasmtime::Result<()> {
                self.table.delete(handle)?;
                Ok(())
            }
        }

        impl $module::mcp::agent::report::Host for HostState {
            fn report(&mut self, found: $module::Findings) -> Result<(), $module::HostError> {
                Ok(HostState::report(self, &found.into())?)
            }
        }

        impl $module::mcp::agent::log::Host for HostState {
            fn log(&mut self, level: $module::mcp::agent::log::Level, message: String) {
                use $module::mcp::agent::log::Level;
                let level = match level {
                    Level::Trace => tracing::Level::TRACE,
                    Level::Debug => tracing::Level::DEBUG,
                    Level::Info => tracing::Level::INFO,
                    Level::Warn => tracing::Level::WARN,
                    Level::Error => tracing::Level::ERROR,
                };
                HostState::log(self, level, &message);
            }
        }

        impl $module::mcp::agent::config::Host for HostState {
            fn get(&mut self, key: String) -> Option<String> {
                self.context.config.get(&key).cloned()
            }

            fn keys(&mut self) -> Vec<String> {
                self.context.config.keys().cloned().collect()
            }
        }
    };
}

imports_for!(v1);
imports_for!(v2);
