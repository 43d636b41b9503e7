//! The host side of the imports: what an agent may ask of the host, scoped to
//! its tenant. Nothing here gives a guest files, sockets or the environment.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use mcp_columns::Anomaly;

use super::bindings::{v1, v2};
use super::boundary::ImportError;
use super::budget::{Budget, BudgetExceeded, CallQuota, RunBudget};
use super::findings::{self, UnpackError};
use super::grant::Grant;
use super::limits::{GuestLimiter, SandboxLimits};
use super::output::GuestOutput;
use super::text;

/// Serves `logs.query` for an agent's tenant.
pub trait LogReader: Send + Sync {
    /// One page of entries for `tenant` (an empty batch when there are no
    /// more) and the rows read to make it, quarantined ones included: what
    /// the query cost, charged to the agent's `log_rows` budget.
    fn query(&self, tenant: &str, query: &mcp_columns::LogQuery) -> Result<(mcp_columns::LogBatch, u64), ImportError>;
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
    /// What the agent may reach; the registry gives a bundled agent the
    /// grant of its info when none is set. `None` (validation probes):
    /// no log type, no model, every setting.
    pub grant: Option<Arc<Grant>>,
    pub config: Arc<BTreeMap<String, String>>,
    pub logs: Option<Arc<dyn LogReader>>,
    /// Where the models its grant names are served from.
    pub models: Option<Arc<dyn ModelProvider>>,
    /// The tenant's budget for the run this instance serves.
    pub budget: RunBudget,
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
    /// An agent of `tenant` with no settings, no log access and the default
    /// budget.
    pub fn new(agent: &str, tenant: &str) -> Self {
        InstanceContext {
            agent: agent.into(),
            tenant: tenant.into(),
            grant: None,
            config: Arc::default(),
            logs: None,
            models: None,
            budget: RunBudget::default(),
        }
    }
}

/// The most rows one inference call may carry: the host allocates the
/// input and output tensors, so a guest must not choose their size freely.
pub const MAX_INFERENCE_ROWS: usize = 100_000;
/// Longest message the `log` import passes on, in bytes.
pub const MAX_LOG_MESSAGE_BYTES: usize = 1024;
/// Host-side handles (models, WASI streams) one instance may hold at once.
pub const MAX_HANDLES: usize = 1024;

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
    pub(crate) quota: CallQuota,
    max_query_page: u32,
}

impl HostState {
    pub fn new(context: InstanceContext, limits: &SandboxLimits) -> Self {
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
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_HANDLES);
        HostState {
            wasi: builder.build(),
            table,
            limiter: GuestLimiter::new(context.budget.memory_bytes),
            quota: CallQuota::new(context.budget.clone()),
            context,
            reported: Vec::new(),
            model_used: None,
            max_reported: limits.max_anomalies_per_call,
            report_overflow: 0,
            max_query_page: limits.max_query_page,
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// What an import answers: a trap for a spent budget (the guest cannot go
/// on asking), else the guest's own result.
type Answer<T> = wasmtime::Result<Result<T, ImportError>>;

fn budget_trap<T>(exceeded: BudgetExceeded) -> Answer<T> {
    Err(wasmtime::Error::new(exceeded))
}

/// The imports' logic, in the host's types; each protocol version's
/// bindings below only convert to and from it.
impl HostState {
    fn query_logs(&mut self, mut query: mcp_columns::LogQuery) -> Answer<mcp_columns::LogBatch> {
        let Some(reader) = self.context.logs.clone() else {
            return Ok(Err(ImportError::Unavailable("no log source is attached to this run".into())));
        };
        let grant = self.context.grant.clone();
        if !grant.as_ref().is_some_and(|g| g.reads(&query.log_type)) {
            let granted = grant.map(|g| g.log_types.join(", ")).unwrap_or_default();
            return Ok(Err(ImportError::Denied(format!(
                "agent {} may read only the log types it was granted ({granted}), not '{}'",
                self.context.agent,
                text::one_line(&text::bounded(query.log_type, 64))
            ))));
        }
        if query.limit == 0 {
            return Ok(Err(ImportError::InvalidArgument("limit must be at least 1".into())));
        }
        let left = self.quota.left(Budget::LogRows);
        if left == 0 {
            return budget_trap(BudgetExceeded { budget: Budget::LogRows, limit: self.quota.budget.log_rows });
        }
        query.limit = query.limit.min(self.max_query_page).min(u32::try_from(left).unwrap_or(u32::MAX));
        let (batch, read) = match reader.query(&self.context.tenant, &query) {
            Ok(page) => page,
            Err(error) => return Ok(Err(error)),
        };
        // Every query costs at least a row, so an empty page is not free.
        if let Err(exceeded) = self.quota.take(Budget::LogRows, read.max(1)) {
            return budget_trap(exceeded);
        }
        Ok(Ok(batch))
    }

    fn load_model(&mut self, name: String, version: Option<String>) -> Answer<Resource<ModelHandle>> {
        let Some(models) = self.context.models.clone() else {
            return Ok(Err(ImportError::NotFound("no model store is attached to this host".into())));
        };
        let grant = self.context.grant.clone();
        if !grant.as_ref().is_some_and(|g| g.loads(&name)) {
            let granted = grant.map(|g| g.models.join(", ")).unwrap_or_default();
            return Ok(Err(ImportError::NotFound(format!(
                "agent {} may load only the models it was granted ({granted}), not '{}'",
                self.context.agent,
                text::one_line(&text::bounded(name, 64))
            ))));
        }
        let model = match models.model(&name, version.as_deref()) {
            Ok(model) => model,
            Err(error) => return Ok(Err(error)),
        };
        let handle = ModelHandle { name, pinned: version, version: model.version().to_string() };
        Ok(self.table.push(handle).map_err(|e| ImportError::LimitExceeded(e.to_string())))
    }

    fn model_version(&mut self, handle: &Resource<ModelHandle>) -> String {
        self.table.get(handle).map(|m| m.version.clone()).unwrap_or_default()
    }

    fn infer(&mut self, handle: &Resource<ModelHandle>, shape: &[u32], data: &[f32]) -> Answer<(Vec<u32>, Vec<f32>)> {
        if let Err(exceeded) = self.quota.take(Budget::Inferences, 1) {
            return budget_trap(exceeded);
        }
        Ok(self.infer_once(handle, shape, data))
    }

    fn infer_once(
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

    fn report(&mut self, found: &v2::Findings) -> Answer<()> {
        let room = self.max_reported.saturating_sub(self.reported.len());
        match findings::unpack(found, room) {
            Ok(anomalies) => {
                if let Err(exceeded) = self
                    .quota
                    .take(Budget::Findings, anomalies.len() as u64)
                    .and_then(|()| self.quota.take(Budget::ReturnedBytes, findings::bytes_of(&anomalies)))
                {
                    return budget_trap(exceeded);
                }
                self.reported.extend(anomalies);
                Ok(Ok(()))
            }
            Err(UnpackError::TooMany { count }) => {
                self.report_overflow += count;
                Ok(Err(ImportError::LimitExceeded(format!("at most {} findings per call", self.max_reported))))
            }
            Err(UnpackError::Malformed(reason)) => Ok(Err(ImportError::InvalidArgument(reason))),
        }
    }

    /// A setting, if the grant shows it.
    fn setting(&self, key: &str) -> Option<&String> {
        let shown = self.context.grant.as_ref().is_none_or(|g| g.shows(key));
        self.context.config.get(key).filter(|_| shown)
    }

    fn log(&mut self, level: tracing::Level, message: String) -> wasmtime::Result<()> {
        let message = text::one_line(&text::bounded(message, MAX_LOG_MESSAGE_BYTES));
        self.quota.take(Budget::LogLines, 1)?;
        self.quota.take(Budget::LogBytes, message.len() as u64)?;
        let agent = &*self.context.agent;
        let tenant = &*self.context.tenant;
        match level {
            tracing::Level::TRACE => tracing::trace!(agent, tenant, guest = %message),
            tracing::Level::DEBUG => tracing::debug!(agent, tenant, guest = %message),
            tracing::Level::INFO => tracing::info!(agent, tenant, guest = %message),
            tracing::Level::WARN => tracing::warn!(agent, tenant, guest = %message),
            tracing::Level::ERROR => tracing::error!(agent, tenant, guest = %message),
        }
        Ok(())
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
            ) -> wasmtime::Result<Result<$module::LogBatch, $module::HostError>> {
                Ok(self.query_logs(query.into())?.map(Into::into).map_err(Into::into))
            }
        }

        impl $module::mcp::agent::model::Host for HostState {}

        impl $module::mcp::agent::model::HostLoadedModel for HostState {
            fn load(
                &mut self,
                name: String,
                version: Option<String>,
            ) -> wasmtime::Result<Result<Resource<ModelHandle>, $module::HostError>> {
                Ok(self.load_model(name, version)?.map_err(Into::into))
            }

            fn version(&mut self, handle: Resource<ModelHandle>) -> wasmtime::Result<String> {
                Ok(self.model_version(&handle))
            }

            fn infer(
                &mut self,
                handle: Resource<ModelHandle>,
                input: $module::mcp::agent::types::Tensor,
            ) -> wasmtime::Result<Result<$module::mcp::agent::types::Tensor, $module::HostError>> {
                Ok(HostState::infer(self, &handle, &input.shape, &input.data)?
                    .map(|(shape, data)| $module::mcp::agent::types::Tensor { shape, data })
                    .map_err(Into::into))
            }

            fn drop(&mut self, handle: Resource<ModelHandle>) -> wasmtime::Result<()> {
                self.table.delete(handle)?;
                Ok(())
            }
        }

        impl $module::mcp::agent::report::Host for HostState {
            fn report(&mut self, found: $module::Findings) -> wasmtime::Result<Result<(), $module::HostError>> {
                Ok(HostState::report(self, &found.into())?.map_err(Into::into))
            }
        }

        impl $module::mcp::agent::log::Host for HostState {
            fn log(&mut self, level: $module::mcp::agent::log::Level, message: String) -> wasmtime::Result<()> {
                use $module::mcp::agent::log::Level;
                let level = match level {
                    Level::Trace => tracing::Level::TRACE,
                    Level::Debug => tracing::Level::DEBUG,
                    Level::Info => tracing::Level::INFO,
                    Level::Warn => tracing::Level::WARN,
                    Level::Error => tracing::Level::ERROR,
                };
                HostState::log(self, level, message)
            }
        }

        impl $module::mcp::agent::config::Host for HostState {
            fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
                Ok(self.setting(&key).cloned())
            }

            fn keys(&mut self) -> wasmtime::Result<Vec<String>> {
                Ok(self.context.config.keys().filter(|k| self.setting(k).is_some()).cloned().collect())
            }
        }
    };
}

imports_for!(v1);
imports_for!(v2);
