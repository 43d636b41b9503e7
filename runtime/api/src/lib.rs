//! The REST control plane (`mcp serve`): axum, with the OpenAPI document
//! generated from the handlers by utoipa. Every endpoint but the health
//! checks and the document itself needs a bearer token, and every query is
//! scoped to the token's tenant: another tenant's ids answer 404.

mod agents;
mod anomalies;
mod auth;
mod budgets;
mod config;
mod console;
mod contract;
mod docs;
mod exports;

mod health;
mod metrics;
mod models;
mod nodes;
mod notifications;
pub mod problem;
mod range;
mod runs;
mod shadow;
mod shutdown;
mod tenancy;

pub use shutdown::{Drained, serve_until, terminate_signal};

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use axum::Router;
use axum::routing::get;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use auth::Caller;
pub use exports::expire_exports;
use mcp_engine::config::McpConfig;
use mcp_engine::models::ModelManager;
use mcp_sandbox::registry::Registry;
pub use mcp_storage::control::{ControlStore, Role};
use mcp_storage::jobstatus::SharedCache;
use mcp_storage::notify::OutboxStore;
use mcp_storage::reads::{AnomalyReads, ReadError};
use mcp_storage::store::{AnomalyStore, StoreError};
pub use problem::ApiError;

/// Everything the handlers share.
#[derive(Debug)]
pub struct ApiState {
    pub config: McpConfig,
    pub control: ControlStore,
    pub registry: Arc<Registry>,
    pub models: Arc<ModelManager>,
    pub cache: Arc<SharedCache>,
    pub anomalies_db: PathBuf,
    /// Open anomaly store connections, reused across requests.
    stores: Mutex<Vec<AnomalyStore>>,
    /// Store queries at once: more than the cores only adds thread switches
    /// and cold page caches.
    store_slots: tokio::sync::Semaphore,
    store_slot_count: usize,
    /// Each tenant's share of `store_slots`.
    tenant_store_slots: Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>,
    metrics: metrics::Metrics,
    /// Agents uploaded by each tenant, beside the bundled ones; replaced
    /// whole on each change so a running run keeps the one it started with.
    uploads: RwLock<HashMap<String, Arc<Registry>>>,
    /// Totals of finished runs per (tenant, agent).
    run_totals: Mutex<BTreeMap<(String, String), RunTotals>>,
    /// Each tenant's budget as last read, and when.
    budgets: Mutex<HashMap<String, (mcp_sandbox::RunBudget, std::time::Instant)>>,
    /// Each tenant's requests in the current minute.
    request_windows: Mutex<HashMap<String, (std::time::Instant, u64)>>,
    /// The folder of uploaded components, opened once as a capability.
    uploads_dir: Option<cap_std::fs::Dir>,
    /// The folder of export files, opened once as a capability.
    exports_dir: Option<cap_std::fs::Dir>,
    /// Each tenant's own models, for its uploaded agents; opened on first use.
    tenant_models: Mutex<HashMap<String, Arc<ModelManager>>>,
    /// Runs waiting and going.
    pub(crate) queue: Arc<mcp_engine::queue::RunQueue>,
    /// Exports waiting and going: a queue of their own, so the tenants
    /// take turns and exports never hold a run's worker.
    pub(crate) export_queue: Arc<mcp_engine::queue::RunQueue>,
    /// The log source every run and readiness check shares (one
    /// PostgreSQL pool for the server), opened on first use.
    source: Mutex<Option<Arc<dyn mcp_storage::source::LogSource>>>,
    /// The anomaly store on PostgreSQL (`anomaly_store = "postgres"`),
    /// opened on first use.
    shared_store: Mutex<Option<Arc<mcp_storage::shared_store::SharedStore>>>,
    /// The shared work table of the nodes (`GET /v1/nodes`), opened on
    /// first use when PostgreSQL is configured.
    cluster: Mutex<Option<Arc<mcp_storage::cluster::Cluster>>>,
    /// Set when the server shuts down: runs and exports stop at their next
    /// committed batch or window (shutdown.rs).
    pub(crate) stopping: Arc<std::sync::atomic::AtomicBool>,
    /// Where runs' commits find each tenant's notification routes.
    pub(crate) routes: Arc<mcp_storage::notify::RouteBook>,
    /// Tenants with a shadow run going: one at a time each, since a
    /// candidate's compile takes every core while it lasts.
    pub(crate) shadows: Mutex<std::collections::HashSet<String>>,
    /// Sends notifications: the worker `serve` starts, and channel tests;
    /// its key seals the secrets given to the API.
    pub deliverer: Arc<mcp_notify::Deliverer>,
    /// The web console's signed-in sessions.
    pub(crate) console_sessions: console::Sessions,
}

impl Drop for ApiState {
    fn drop(&mut self) {
        self.queue.close();
        self.export_queue.close();
    }
}

/// What runs of one agent for one tenant added up to since the server started.
#[derive(Debug, Clone, Default, serde::Serialize, utoipa::ToSchema)]
pub struct RunTotals {
    pub runs: u64,
    pub entries: u64,
    pub anomalies: u64,
    pub quarantined: u64,
    pub faults: u64,
    pub fuel: u64,
    pub seconds: f64,
    /// Milliseconds inside agent calls.
    pub agent_ms: u64,
    /// Rows the agent read through `logs.query`.
    pub log_rows: u64,
    pub inferences: u64,
    /// Findings returned and reported (before the host's checks dropped any).
    pub findings: u64,
    /// Lines through the `log` import.
    pub log_lines: u64,
    /// The most memory one instance of it held, in bytes.
    pub memory_high_water: u64,
}

impl RunTotals {
    /// What one run adds.
    pub fn of(outcome: &mcp_engine::runs::RunOutcome) -> Self {
        let usage = &outcome.usage;
        let mut totals = RunTotals {
            runs: 1,
            fuel: usage.fuel,
            agent_ms: usage.agent_ms,
            log_rows: usage.log_rows,
            inferences: usage.inferences,
            findings: usage.findings,
            log_lines: usage.log_lines,
            memory_high_water: usage.memory_high_water,
            ..Default::default()
        };
        match &outcome.result {
            Ok(r) => {
                totals.entries = r.entries;
                totals.anomalies = r.anomalies;
                totals.quarantined = r.quarantined;
                totals.faults = r.faults.len() as u64;
                totals.seconds = r.elapsed.as_secs_f64();
            }
            Err(_) => totals.faults = outcome.faults,
        }
        totals
    }
}

/// An upload's file inside the uploads folder. Both parts are the host's
/// own: a validated tenant name and a hex digest.
fn upload_file(tenant: &str, sha256: &str) -> String {
    format!("{tenant}/{sha256}.wasm")
}

fn open_data_folder(path: &std::path::Path) -> Option<cap_std::fs::Dir> {
    let opened = std::fs::create_dir_all(path)
        .and_then(|()| cap_std::fs::Dir::open_ambient_dir(path, cap_std::ambient_authority()));
    opened.inspect_err(|e| tracing::error!(path = %path.display(), "cannot open a data folder: {e}")).ok()
}

/// Where an agent a tenant can run comes from.
#[derive(Debug, Clone)]
pub(crate) struct ResolvedAgent {
    pub registry: Arc<Registry>,
    pub bundled: bool,
}

impl ApiState {
    pub fn new(
        config: McpConfig,
        control: ControlStore,
        registry: Arc<Registry>,
        models: Arc<ModelManager>,
        cache: Arc<SharedCache>,
    ) -> std::io::Result<Self> {
        let anomalies_db = config.anomalies_db();
        // The operator's channels and routes, as the file says now.
        let (channels, routes) = mcp_notify::seed::apply(&control, &config.notifications)
            .map_err(|e| std::io::Error::other(format!("notifications: {e}")))?;
        tracing::info!(channels, routes, "notification channels and routes from the file applied");
        let route_book = control.route_book().map_err(|e| std::io::Error::other(format!("notifications: {e}")))?;
        let deliverer =
            mcp_notify::Deliverer::open(&config).map_err(|e| std::io::Error::other(format!("notifications: {e}")))?;
        let queue = mcp_engine::queue::RunQueue::start(config.runs)?;
        let export_queue = mcp_engine::queue::RunQueue::start(config.exports.queue_limits())?;
        let mut store_slot_count = std::thread::available_parallelism().map_or(2, |n| n.get()).saturating_mul(2);
        if config.anomaly_store == mcp_engine::config::StoreKind::Postgres {
            // Every read holds one of the pool's connections; exports
            // hold theirs outside the slots. A tenant's half of what is
            // left leaves the other half to the rest.
            let connections = usize::try_from(config.database_connections).unwrap_or(usize::MAX);
            store_slot_count = store_slot_count.min(connections.saturating_sub(config.exports.running)).max(2);
        }
        let state = ApiState {
            config,
            control,
            registry,
            models,
            cache,
            anomalies_db,
            stores: Mutex::default(),
            store_slots: tokio::sync::Semaphore::new(store_slot_count),
            store_slot_count,
            tenant_store_slots: Mutex::default(),
            metrics: metrics::Metrics::default(),
            uploads: RwLock::default(),
            run_totals: Mutex::default(),
            budgets: Mutex::default(),
            request_windows: Mutex::default(),
            uploads_dir: None,
            exports_dir: None,
            queue,
            export_queue,
            source: Mutex::default(),
            cluster: Mutex::default(),
            shared_store: Mutex::default(),
            tenant_models: Mutex::default(),
            stopping: Arc::default(),
            routes: Arc::new(route_book),
            shadows: Mutex::new(std::collections::HashSet::new()),
            deliverer,
            console_sessions: console::Sessions::default(),
        };
        let mut state = state;
        state.uploads_dir = open_data_folder(&state.config.data_dir.join("agents"));
        state.exports_dir = open_data_folder(&state.config.data_dir.join("exports"));
        // An export the last process left unfinished never renamed its
        // partial file into place: it failed, and says so.
        match state.control.fail_interrupted_exports() {
            Ok(0) => {}
            Ok(failed) => tracing::warn!(failed, "exports interrupted by the last stop are marked failed"),
            Err(e) => tracing::error!("cannot mark interrupted exports: {e}"),
        }
        if let Some(exports) = &state.exports_dir {
            match exports::remove_partial_files(exports) {
                Ok(0) => {}
                Ok(removed) => tracing::warn!(removed, "partial export files of the last stop removed"),
                Err(e) => tracing::error!("cannot remove partial export files: {e}"),
            }
        }
        state.load_uploads();
        Ok(state)
    }

    /// The shared log source, opened now if it is not yet (or could not be
    /// before).
    /// The nodes' shared work table; 404 on a deployment without
    /// PostgreSQL, which has one node and no table. Blocking.
    pub(crate) fn cluster(&self) -> Result<Arc<mcp_storage::cluster::Cluster>, ApiError> {
        let mut cluster = self.cluster.lock().map_err(|_| ApiError::internal("the cluster lock is poisoned"))?;
        if let Some(cluster) = &*cluster {
            return Ok(cluster.clone());
        }
        let opened = match self.config.cluster("api-observer", std::time::Duration::from_secs(15)) {
            Ok(opened) => Arc::new(opened),
            Err(mcp_storage::cluster::ClusterError::NoDatabase) => {
                return Err(ApiError::not_found(
                    "this deployment has no database_url: one node, no shared work table (docs/scaling.md)",
                ));
            }
            Err(error) => {
                tracing::error!("cannot reach the shared work table: {error}");
                return Err(ApiError::unavailable(
                    "PostgreSQL cannot be reached; /readyz says which dependency is down",
                ));
            }
        };
        *cluster = Some(opened.clone());
        Ok(opened)
    }

    pub(crate) fn log_source(&self) -> Result<Arc<dyn mcp_storage::source::LogSource>, ApiError> {
        let mut source = self.source.lock().map_err(|_| ApiError::internal("the log source lock is poisoned"))?;
        if let Some(source) = &*source {
            return Ok(source.clone());
        }
        let opened = self.config.log_source().map_err(|e| {
            tracing::error!("cannot open the log source: {e}");
            ApiError::unavailable("the log source cannot be reached; /readyz says which dependency is down")
        })?;
        *source = Some(opened.clone());
        Ok(opened)
    }

    pub(crate) fn exports_dir(&self) -> std::io::Result<&cap_std::fs::Dir> {
        self.exports_dir
            .as_ref()
            .ok_or_else(|| std::io::Error::other("the exports folder could not be opened at start"))
    }

    fn uploads_dir(&self) -> std::io::Result<&cap_std::fs::Dir> {
        self.uploads_dir
            .as_ref()
            .ok_or_else(|| std::io::Error::other("the uploads folder could not be opened at start"))
    }

    /// Keeps an uploaded component as `<tenant>/<sha256>.wasm` inside the
    /// uploads folder, written whole under a temporary name first.
    pub(crate) fn write_upload(&self, tenant: &str, sha256: &str, bytes: &[u8]) -> std::io::Result<()> {
        let dir = self.uploads_dir()?;
        dir.create_dir_all(tenant)?;
        let file = upload_file(tenant, sha256);
        // Unique per write: two uploads of the same bytes at once each
        // write their own, and the second rename replaces the first whole.
        let temp = format!("{file}.{:016x}.part", rand::random::<u64>());
        dir.write(&temp, bytes)?;
        dir.rename(&temp, dir, &file)
    }

    pub(crate) fn read_upload(&self, tenant: &str, sha256: &str) -> std::io::Result<Vec<u8>> {
        self.uploads_dir()?.read(upload_file(tenant, sha256))
    }

    /// Where `tenant`'s own files live (its models): a validated tenant
    /// name under the data folder.
    fn tenant_dir(&self, tenant: &str) -> PathBuf {
        self.config.data_dir.join("tenants").join(tenant)
    }

    /// `tenant`'s own models, which its uploaded agents use (the
    /// deployment's serve the bundled agents).
    pub(crate) fn models_of(&self, tenant: &str) -> Result<Arc<ModelManager>, ApiError> {
        let mut opened = self.tenant_models.lock().map_err(|_| ApiError::internal("the models lock is poisoned"))?;
        if let Some(models) = opened.get(tenant) {
            return Ok(models.clone());
        }
        let dir = self.tenant_dir(tenant);
        std::fs::create_dir_all(dir.join("models"))?;
        let models =
            Arc::new(ModelManager::open(&dir.join("models"), &dir.join("models.db")).map_err(ApiError::internal)?);
        opened.insert(tenant.to_string(), models.clone());
        Ok(models)
    }

    /// Forgets a deleted tenant's models and removes their files.
    pub(crate) fn forget_tenant_models(&self, tenant: &str) {
        if let Ok(mut opened) = self.tenant_models.lock() {
            opened.remove(tenant);
        }
        let dir = self.tenant_dir(tenant);
        if dir.exists()
            && let Err(e) = std::fs::remove_dir_all(&dir)
        {
            tracing::warn!(tenant, "cannot remove a deleted tenant's files: {e}");
        }
    }

    /// Forgets a deleted tenant's uploaded agents and removes their files.
    pub(crate) fn forget_tenant_uploads(&self, tenant: &str, files: &[String]) {
        if let Ok(mut uploads) = self.uploads.write() {
            uploads.remove(tenant);
        }
        for sha256 in files {
            self.remove_upload_if_unused(tenant, sha256);
        }
    }

    /// Removes a component file no agent of `tenant` uses any more.
    pub(crate) fn remove_upload_if_unused(&self, tenant: &str, sha256: &str) {
        let used = self.control.uploads().is_ok_and(|all| all.iter().any(|(t, _, sha)| t == tenant && sha == sha256));
        if used {
            return;
        }
        if let Err(e) = self.uploads_dir().and_then(|dir| dir.remove_file(upload_file(tenant, sha256))) {
            tracing::warn!(tenant, sha256, "cannot remove an unused upload: {e}");
        }
    }

    /// Registers the uploaded agents recorded in the control store. One
    /// that no longer validates (a host upgrade, a damaged file) is logged
    /// and left out, not fatal.
    fn load_uploads(&self) {
        let uploads = match self.control.uploads() {
            Ok(uploads) => uploads,
            Err(e) => return tracing::error!("cannot read uploaded agents: {e}"),
        };
        for (tenant, name, sha256) in uploads {
            let path = upload_file(&tenant, &sha256);
            let registered = self.read_upload(&tenant, &sha256).map_err(|e| e.to_string()).and_then(|bytes| {
                self.replace_upload(&tenant, |registry| {
                    registry.register_bytes(&bytes, &format!("upload {name}")).map(|_| ()).map_err(|e| e.to_string())
                })
            });
            if let Err(e) = registered {
                tracing::error!(tenant, agent = name, path, "uploaded agent not loaded: {e}");
            }
        }
    }

    /// Changes `tenant`'s uploads through a copy, then puts the copy in place.
    pub(crate) fn replace_upload<E>(
        &self,
        tenant: &str,
        change: impl FnOnce(&mut Registry) -> Result<(), E>,
    ) -> Result<(), E> {
        let Ok(mut uploads) = self.uploads.write() else { return Ok(()) };
        let mut copy = match uploads.get(tenant) {
            Some(registry) => (**registry).clone(),
            None => Registry::new(self.registry.sandbox().clone()),
        };
        change(&mut copy)?;
        uploads.insert(tenant.to_string(), Arc::new(copy));
        Ok(())
    }

    /// The agent `name` as `tenant` sees it: its own upload, else a bundled one.
    pub(crate) fn resolve(&self, tenant: &str, name: &str) -> Option<ResolvedAgent> {
        let uploaded = self.uploads.read().ok().and_then(|u| u.get(tenant).cloned());
        if let Some(registry) = uploaded.filter(|r| r.get(name).is_ok()) {
            return Some(ResolvedAgent { registry, bundled: false });
        }
        self.registry.get(name).ok().map(|_| ResolvedAgent { registry: self.registry.clone(), bundled: true })
    }

    /// `tenant`'s uploaded agents.
    pub(crate) fn uploads_of(&self, tenant: &str) -> Option<Arc<Registry>> {
        self.uploads.read().ok().and_then(|u| u.get(tenant).cloned())
    }

    pub(crate) fn add_run_totals(&self, tenant: &str, agent: &str, add: &RunTotals) {
        if let Ok(mut totals) = self.run_totals.lock() {
            let t = totals.entry((tenant.to_string(), agent.to_string())).or_default();
            t.runs += add.runs;
            t.entries += add.entries;
            t.anomalies += add.anomalies;
            t.quarantined += add.quarantined;
            t.faults += add.faults;
            t.fuel += add.fuel;
            t.seconds += add.seconds;
            t.agent_ms += add.agent_ms;
            t.log_rows += add.log_rows;
            t.inferences += add.inferences;
            t.findings += add.findings;
            t.log_lines += add.log_lines;
            t.memory_high_water = t.memory_high_water.max(add.memory_high_water);
        }
    }

    pub(crate) fn run_totals(&self, tenant: &str, agent: &str) -> RunTotals {
        self.run_totals
            .lock()
            .ok()
            .and_then(|t| t.get(&(tenant.to_string(), agent.to_string())).cloned())
            .unwrap_or_default()
    }

    /// Runs `f` with a pooled embedded anomaly store connection, on this
    /// thread.
    pub(crate) fn with_store_blocking<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&mut AnomalyStore) -> Result<T, E>,
    ) -> Result<T, E> {
        let pooled = self.stores.lock().ok().and_then(|mut stores| stores.pop());
        let mut store = match pooled {
            Some(store) => store,
            None => {
                let mut store = AnomalyStore::open(&self.anomalies_db)?;
                store.tune_for_reads()?;
                store.set_page_query_steps(self.config.page_query_steps);
                store
            }
        };
        let result = f(&mut store);
        if let Ok(mut stores) = self.stores.lock() {
            stores.push(store);
        }
        result
    }

    /// Keeps anomalies in `store` (opened at start, so a server whose
    /// PostgreSQL is down does not start).
    pub fn keep_anomalies_in(&mut self, store: mcp_storage::shared_store::SharedStore) {
        let store = self.adopt(store);
        if let Ok(shared) = self.shared_store.get_mut() {
            *shared = Some(store);
        }
    }

    /// The anomaly store on PostgreSQL as this server uses it: its runs'
    /// commits queue notifications by the tenants' routes, and the delivery
    /// worker claims from it on the same connections.
    fn adopt(&self, mut store: mcp_storage::shared_store::SharedStore) -> Arc<mcp_storage::shared_store::SharedStore> {
        store.route_with(self.routes.clone());
        let store = Arc::new(store);
        self.deliverer.share_store(store.clone());
        store
    }

    /// The anomaly store on PostgreSQL when the deployment keeps its
    /// anomalies there (opened now if it is not yet), else `None`. Blocking.
    pub(crate) fn shared_store(&self) -> Result<Option<Arc<mcp_storage::shared_store::SharedStore>>, ApiError> {
        if self.config.anomaly_store == mcp_engine::config::StoreKind::Embedded {
            return Ok(None);
        }
        let mut shared = self.shared_store.lock().map_err(|_| ApiError::internal("the store lock is poisoned"))?;
        if let Some(store) = &*shared {
            return Ok(Some(store.clone()));
        }
        let opened = match self.config.shared_store() {
            Ok(Some(opened)) => self.adopt(opened),
            Ok(None) => return Ok(None),
            Err(error) => {
                tracing::error!("cannot reach the anomaly store on PostgreSQL: {error}");
                return Err(ApiError::unavailable(
                    "the anomaly store (PostgreSQL) cannot be reached; /readyz says which dependency is down",
                ));
            }
        };
        *shared = Some(opened.clone());
        Ok(Some(opened))
    }

    /// Runs `f` with the deployment's anomaly store, embedded or on
    /// PostgreSQL, on this thread.
    pub(crate) fn with_anomalies_blocking<T>(
        &self,
        f: impl FnOnce(AnomalyReads<'_>) -> Result<T, ReadError>,
    ) -> Result<T, ApiError> {
        match self.shared_store()? {
            Some(shared) => f(AnomalyReads::Shared(&shared)).map_err(ApiError::from),
            None => self.with_store_blocking(|store| f(AnomalyReads::Embedded(store))).map_err(ApiError::from),
        }
    }

    /// A turn at the store for `tenant`: a tenant holds at most half the
    /// store's slots, so another tenant's page never waits behind a flood
    /// of its queries.
    async fn store_turn(
        &self,
        tenant: &str,
    ) -> Result<(tokio::sync::OwnedSemaphorePermit, tokio::sync::SemaphorePermit<'_>), ApiError> {
        let share = {
            let mut shares = self.tenant_store_slots.lock().map_err(|_| ApiError::internal("store slots poisoned"))?;
            let permits = (self.store_slot_count / 2).max(1);
            shares.entry(tenant.to_string()).or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(permits))).clone()
        };
        let share = share.acquire_owned().await?;
        let slot = self.store_slots.acquire().await?;
        Ok((share, slot))
    }

    /// Runs `f` for `tenant` with the notification outbox of the
    /// deployment's anomaly store (embedded or on PostgreSQL) on a blocking
    /// thread.
    pub(crate) async fn with_outbox<T: Send + 'static>(
        self: &Arc<Self>,
        tenant: &str,
        f: impl FnOnce(OutboxStore<'_>) -> Result<T, ReadError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let _turn = self.store_turn(tenant).await?;
        let state = self.clone();
        tokio::task::spawn_blocking(move || match state.shared_store()? {
            Some(shared) => f(OutboxStore::Shared(&shared)).map_err(ApiError::from),
            None => state.with_store_blocking(|store| f(OutboxStore::Embedded(store))).map_err(ApiError::from),
        })
        .await?
    }

    /// Runs `f` for `tenant` with the deployment's anomaly store (embedded
    /// or on PostgreSQL) on a blocking thread.
    pub(crate) async fn with_anomalies<T: Send + 'static>(
        self: &Arc<Self>,
        tenant: &str,
        f: impl FnOnce(AnomalyReads<'_>) -> Result<T, ReadError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let _turn = self.store_turn(tenant).await?;
        let state = self.clone();
        tokio::task::spawn_blocking(move || state.with_anomalies_blocking(f)).await?
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "MCP control plane",
        description = "Agents, runs, anomalies and models of a tenant. Every endpoint under /v1 needs `Authorization: Bearer <token>` (`mcp tokens create`); another tenant's ids answer 404. Errors are RFC 9457 problem details with a stable `code`.",
        version = "1"
    ),
    components(schemas(anomalies::Sort, anomalies::SeverityFilter, runs::RunState, problem::Problem)),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("mcp_<64 hex>").build(),
            ),
        );
    }
}

/// The router and the OpenAPI document it serves.
pub fn router(state: Arc<ApiState>) -> Router {
    let (api, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(agents::list_agents, agents::upload_agent))
        .routes(routes!(agents::get_agent, agents::delete_agent))
        .routes(routes!(agents::enable_agent))
        .routes(routes!(agents::disable_agent))
        .routes(routes!(agents::reload_agent))
        .routes(routes!(agents::release_agent))
        .routes(routes!(agents::put_manifest))
        .routes(routes!(agents::approve_agent))
        .routes(routes!(shadow::shadow_agent))
        .routes(routes!(budgets::get_budget))
        .routes(routes!(budgets::put_budget))
        .routes(routes!(tenancy::list_tokens, tenancy::create_token))
        .routes(routes!(tenancy::revoke_token))
        .routes(routes!(tenancy::list_tenants, tenancy::create_tenant))
        .routes(routes!(tenancy::delete_tenant))
        .routes(routes!(tenancy::disable_tenant))
        .routes(routes!(tenancy::enable_tenant))
        .routes(routes!(config::get_config, config::patch_config))
        .routes(routes!(config::get_audit))
        .routes(routes!(anomalies::list_anomalies))
        .routes(routes!(anomalies::get_anomaly))
        .routes(routes!(models::list_models))
        .routes(routes!(models::activate_model))
        .routes(routes!(models::rollback_model))
        .routes(routes!(models::upload_model))
        .routes(routes!(models::reload_models))
        .routes(routes!(runs::list_runs, runs::start_run))
        .routes(routes!(runs::get_run))
        .routes(routes!(runs::cancel_run))
        .routes(routes!(metrics::render))
        .routes(routes!(nodes::list_nodes))
        .routes(routes!(exports::list_exports, exports::start_export))
        .routes(routes!(exports::get_export, exports::delete_export))
        .routes(routes!(exports::download_export))
        .routes(routes!(notifications::list_channels))
        .routes(routes!(notifications::get_channel, notifications::put_channel, notifications::delete_channel))
        .routes(routes!(notifications::test_channel))
        .routes(routes!(notifications::list_routes))
        .routes(routes!(notifications::put_route, notifications::delete_route))
        .routes(routes!(notifications::list_outbox))
        .routes(routes!(notifications::get_outbox))
        .routes(routes!(notifications::retry_outbox))
        .routes(routes!(notifications::drop_outbox))
        .with_state(state.clone())
        .split_for_parts();
    let document = openapi.clone();
    let declared = Arc::new(contract::DeclaredQueries::of(&openapi));
    api.route("/openapi.json", get(move || std::future::ready(axum::Json(document.clone()))))
        .route("/docs", get(docs::page))
        .route("/docs/redoc.standalone.js", get(docs::script))
        .fallback(|| async { ApiError::not_found("no such endpoint; /openapi.json lists them") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this path does not take that method; /openapi.json lists what it takes",
            )
        })
        .layer(axum::middleware::from_fn_with_state(declared, contract::refuse_undeclared_queries))
        .layer(axum::extract::DefaultBodyLimit::max(state.config.max_upload_bytes))
        .layer(axum::middleware::from_fn(contract::errors_as_problems))
        // The console answers in HTML and takes its own query strings: it
        // stays outside the API's contract checks.
        .merge(console::router(state.clone()))
        .layer(axum::middleware::from_fn_with_state(state, metrics::observe))
}

/// `/metrics` alone, with no token, for the `metrics_listen` address.
pub fn metrics_router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics::render_open))
        .fallback(|| async { ApiError::not_found("this address serves /metrics only") })
        .with_state(state)
}

/// Serves `router` on `address` (and `/metrics` alone on `metrics_listen`,
/// when set) until the process ends.
pub async fn serve(address: std::net::SocketAddr, state: Arc<ApiState>) -> std::io::Result<()> {
    serve_with_shutdown(address, state, std::future::pending()).await
}

/// As [`serve`], until `shutdown` resolves; requests in flight then finish.
/// [`serve_until`] also stops the runs and exports.
pub async fn serve_with_shutdown(
    address: std::net::SocketAddr,
    state: Arc<ApiState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    tracing::info!(%address, "control plane listening");
    if let Some(metrics_address) = &state.config.metrics_listen {
        let metrics_listener = tokio::net::TcpListener::bind(metrics_address.as_str()).await?;
        tracing::info!(address = %metrics_address, "metrics listening (no token)");
        let metrics = metrics_router(state.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(metrics_listener, metrics).await {
                tracing::error!("the metrics listener stopped: {e}");
            }
        });
    }
    if state.config.notifications.deliver {
        let deliverer = state.deliverer.clone();
        let stopping = state.stopping.clone();
        tokio::spawn(async move { deliverer.run(stopping).await });
        tracing::info!("notification delivery started");
    }
    let sweeping = state.clone();
    tokio::spawn(async move {
        // Once at start, then hourly: a retention counted in days needs no finer grain.
        let mut every = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            every.tick().await;
            let state = sweeping.clone();
            match tokio::task::spawn_blocking(move || expire_exports(&state, mcp_storage::jobstatus::now_ms())).await {
                Ok(Ok(0)) => {}
                Ok(Ok(removed)) => tracing::info!(removed, "exports older than the retention removed"),
                Ok(Err(e)) => tracing::error!("cannot remove expired exports: {e}"),
                Err(e) => tracing::error!("the export retention sweep stopped: {e}"),
            }
        }
    });
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}
