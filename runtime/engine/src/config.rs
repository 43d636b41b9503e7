//! The runtime's configuration file (config/mcp.toml), typed and strict:
//! an unknown key is an error, not a silent default.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use mcp_sandbox::{RunBudget, SandboxLimits};

/// The file read when no `--config` is given, if it exists.
pub const DEFAULT_CONFIG: &str = "config/mcp.toml";

/// Errors reading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("config {path}: {source}")]
    Parse { path: String, source: toml::de::Error },
    #[error(
        "config {origin}: tenant '{tenant}' must be 1 to 64 of a-z, 0-9, '-' and '_', not starting with '_' (kept for the deployment's own tokens)"
    )]
    Tenant { origin: String, tenant: String },
    #[error("environment variable {name} names no configuration key (see docs/deployment.md)")]
    UnknownEnv { name: String },
    #[error("config {path}: agents.{agent}.{key} must be a string, number, boolean or a list of them")]
    Setting { path: String, agent: String, key: String },
}

/// Bounds of anomaly exports, from `[exports]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExportLimits {
    /// Exports of one tenant queued or running at once.
    pub active_per_tenant: u64,
    /// The most rows one export may hold.
    pub max_rows: u64,
    /// Anomalies looked at per window of an export's walk of the store.
    pub page_rows: u32,
    /// Exports written at once, all tenants together (one thread each);
    /// the rest wait their tenant's turn.
    pub running: usize,
    /// Rows per Parquet row group: larger groups compress and scan better,
    /// smaller ones hold less in memory while written.
    pub row_group_rows: usize,
    /// Days a finished export (file and record) is kept; 0 keeps them.
    pub retention_days: u32,
    /// Exports (records, whatever their state) a tenant may keep at once.
    pub kept_per_tenant: u64,
    /// Bytes of completed export files a tenant may keep at once.
    pub kept_bytes_per_tenant: u64,
}

impl Default for ExportLimits {
    fn default() -> Self {
        ExportLimits {
            active_per_tenant: 2,
            max_rows: 10_000_000,
            page_rows: 1_000,
            running: 2,
            row_group_rows: 65_536,
            retention_days: 30,
            kept_per_tenant: 200,
            kept_bytes_per_tenant: 10 << 30,
        }
    }
}

impl ExportLimits {
    /// The export queue's limits: each tenant's exports wait in its own
    /// line, one of them written at a time, tenants taking turns.
    pub fn queue_limits(&self) -> crate::queue::RunLimits {
        let per_tenant = usize::try_from(self.active_per_tenant).unwrap_or(usize::MAX);
        crate::queue::RunLimits {
            running: self.running.max(1),
            queued: 4096,
            running_per_tenant: 1,
            queued_per_tenant: per_tenant.max(1),
        }
    }
}

/// How the process writes its log lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Lines for a person: time, level, span fields, message.
    #[default]
    Text,
    /// One JSON object a line, span fields included, for a log pipeline.
    Json,
}

/// Where a kind of state is kept: anomalies with the checkpoints and agent
/// states of runs (`anomaly_store`), model activations (`model_state`),
/// tenants, tokens and the other control records (`control_store`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// This node's own SQLite file under `data_dir`.
    #[default]
    Embedded,
    /// The PostgreSQL of `database_url`, shared by every node: what any
    /// node stores, every node sees.
    Postgres,
}

/// Environment variables whose names start with this hold secrets of
/// notification channels (docs/notifications.md), not configuration: they
/// are read when a message is sent, and never when the configuration is.
pub const SECRET_ENV_PREFIX: &str = "MCP_SECRET_";

/// The variable holding the key that seals secrets given to the API.
pub const SECRETS_KEY_ENV: &str = "MCP_SECRETS_KEY";

/// How notifications are delivered, from `[notifications]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotificationsConfig {
    /// The channels and routes file applied at every start; the
    /// repository's config/notifications.toml when unset.
    pub file: Option<PathBuf>,
    /// Whether `mcp serve` runs the delivery worker.
    pub deliver: bool,
    /// How long the worker sleeps when nothing is due, in milliseconds.
    pub poll_ms: u64,
    /// Notifications sent at once.
    pub concurrency: usize,
    /// How long a receiver may take to answer, in milliseconds.
    pub timeout_ms: u64,
    /// Attempts before a notification is dead-lettered.
    pub max_attempts: u32,
    /// The first retry's delay; each next one doubles, with full jitter.
    pub backoff_base_ms: u64,
    /// The longest delay between two attempts.
    pub backoff_max_ms: u64,
    /// Whether channels may send to loopback, private, link-local and other
    /// internal addresses. Off, a tenant cannot aim a webhook at the
    /// deployment's own services.
    pub allow_private_targets: bool,
    /// The address links in messages point at (`https://mcp.example.com`);
    /// `http://<listen>` when unset.
    pub public_url: Option<String>,
    /// A file holding the sealing key (64 hex digits), read instead of
    /// `MCP_SECRETS_KEY` when set (for a key the service manager hands
    /// over as a file).
    pub secrets_key_file: Option<PathBuf>,
    /// Defaults of a channel that does not say.
    pub dedup_window_s: u64,
    pub rate_per_minute: u32,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        NotificationsConfig {
            file: None,
            deliver: true,
            poll_ms: 500,
            concurrency: 8,
            timeout_ms: 10_000,
            max_attempts: 8,
            backoff_base_ms: 2_000,
            backoff_max_ms: 900_000,
            allow_private_targets: false,
            public_url: None,
            secrets_key_file: None,
            dedup_window_s: 600,
            rate_per_minute: 30,
        }
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct McpConfig {
    /// Where the embedded log source, the anomaly store and the compile cache live.
    pub data_dir: PathBuf,
    /// The tenant the command-line tools act for.
    pub tenant: String,
    /// Where agent components are discovered; the bundled agents when unset.
    pub agents_dir: Option<PathBuf>,
    /// PostgreSQL log source (`postgres://user@host/db`); the embedded SQLite
    /// source under `data_dir` when unset.
    pub database_url: Option<String>,
    /// The PostgreSQL schema (namespace) the log tables live in; the
    /// connection's default when unset.
    pub database_schema: Option<String>,
    /// Connections to PostgreSQL, all of the server's runs together.
    pub database_connections: u32,
    /// `embedded` (this node's SQLite file) or `postgres` (the PostgreSQL
    /// of `database_url`, shared by every node; docs/scaling.md).
    pub anomaly_store: StoreKind,
    /// `embedded` (`data_dir/models.db`) or `postgres`: where model
    /// activations and events are kept, so that a version activated or
    /// rolled back on one node is in force on every node.
    pub model_state: StoreKind,
    /// `embedded` (`data_dir/control.db`) or `postgres`: where tenants,
    /// tokens, settings, enable flags, budgets, grants, agent quarantine,
    /// the audit trail and notification channels and routes are kept, so a
    /// token or channel made through one node works on every node. Export
    /// records stay in each node's file, with the export files.
    pub control_store: StoreKind,
    /// The longest one anomaly page or chart may run on PostgreSQL, in
    /// milliseconds; past it the query is refused as too broad.
    pub page_query_timeout_ms: u64,
    /// Redis for job status and cached lookups (`redis://host:port/db`); an
    /// in-process fallback when unset.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key this deployment writes.
    pub redis_prefix: String,
    /// How often a run's progress is written to the job status, in milliseconds.
    pub status_interval_ms: u64,
    /// Address `mcp serve` listens on.
    pub listen: String,
    /// A second address serving `/metrics` alone with no token, for a
    /// scraper on an internal network; unset: `/metrics` is on `listen`
    /// only, behind a deployment token.
    pub metrics_listen: Option<String>,
    /// Largest agent component `POST /v1/agents` accepts, in bytes.
    pub max_upload_bytes: usize,
    /// `text` or `json`; `--log-format` overrides it.
    pub log_format: LogFormat,
    /// How long `mcp serve` waits at SIGTERM or SIGINT for runs and exports
    /// to stop at a committed batch, in milliseconds.
    pub shutdown_timeout_ms: u64,
    /// The most work one anomaly page query may do, in SQLite steps; a
    /// page over it is refused as too broad (docs/api_usage.md).
    pub page_query_steps: u64,
    /// Where model versions live (`{agent}/{version}/model.onnx` and
    /// `metadata.json`); the repository's models/ when unset.
    pub models_dir: Option<PathBuf>,
    /// How often the model watcher looks for new version directories, in milliseconds.
    pub model_watch_ms: u64,
    /// The operator's folder of log schema files, searched before the
    /// bundled ones (`<data_dir>/bundled/log_schemas`): it adds log types and
    /// overrides bundled ones of the same name.
    pub schema_dir: Option<PathBuf>,
    /// Entries per agent call.
    pub batch_size: u32,
    /// Milliseconds of entries before a checkpoint fed again to a restarted
    /// agent, to rebuild its windows (0: off).
    pub replay_ms: i64,
    /// Limits of every agent instance: the ceilings no tenant passes.
    pub sandbox: SandboxLimits,
    /// Each tenant's budget, unless overridden for it through the API.
    pub budgets: RunBudget,
    /// When an agent that keeps faulting is held out of runs.
    pub quarantine: crate::quarantine::QuarantinePolicy,
    /// How many runs go and wait at once, in all and per tenant.
    pub runs: crate::queue::RunLimits,
    /// Bounds of anomaly exports.
    pub exports: ExportLimits,
    /// How transient database failures are retried.
    pub retry: mcp_storage::source::RetryPolicy,
    /// How notifications are delivered.
    pub notifications: NotificationsConfig,
    /// Settings per agent name, handed to the agent through the config import.
    pub agents: BTreeMap<String, BTreeMap<String, toml::Value>>,
    /// Where this configuration came from, for messages.
    #[serde(skip)]
    pub origin: String,
}

impl Default for McpConfig {
    fn default() -> Self {
        McpConfig {
            data_dir: PathBuf::from("mcp-data"),
            tenant: "default".into(),
            agents_dir: None,
            database_url: None,
            database_schema: None,
            database_connections: 8,
            anomaly_store: StoreKind::Embedded,
            model_state: StoreKind::Embedded,
            control_store: StoreKind::Embedded,
            page_query_timeout_ms: 2_000,
            redis_url: None,
            redis_prefix: "mcp:".into(),
            status_interval_ms: 1000,
            schema_dir: None,
            models_dir: None,
            model_watch_ms: 2000,
            listen: "127.0.0.1:8080".into(),
            metrics_listen: None,
            // A Python component carries CPython: about 18 MB.
            max_upload_bytes: 32 << 20,
            shutdown_timeout_ms: 30_000,
            log_format: LogFormat::Text,
            page_query_steps: mcp_storage::store::PAGE_QUERY_STEPS,
            batch_size: 1000,
            replay_ms: 900_000,
            sandbox: SandboxLimits::default(),
            budgets: RunBudget::default(),
            quarantine: crate::quarantine::QuarantinePolicy::default(),
            runs: crate::queue::RunLimits::default(),
            exports: ExportLimits::default(),
            retry: mcp_storage::source::RetryPolicy::default(),
            notifications: NotificationsConfig::default(),
            agents: BTreeMap::new(),
            origin: "built-in defaults".into(),
        }
    }
}

impl McpConfig {
    /// Reads `path`, or config/mcp.toml when it exists, or the defaults,
    /// then applies `MCP_*` environment variables over it.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with_env(path, std::env::vars())
    }

    /// As [`McpConfig::load`], with the environment given.
    pub fn load_with_env(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let path = config_path(path);
        let (mut table, mut origin) = match &path {
            Some(path) => {
                let name = path.display().to_string();
                let text =
                    std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: name.clone(), source })?;
                let table: toml::Table =
                    toml::from_str(&text).map_err(|source| ConfigError::Parse { path: name.clone(), source })?;
                (table, name)
            }
            None => (toml::Table::new(), "built-in defaults".to_string()),
        };
        if let Some(folder) = path.as_deref().and_then(Path::parent) {
            resolve_paths_against(&mut table, folder);
        }
        let overridden = apply_env(&mut table, env)?;
        if !overridden.is_empty() {
            origin = format!("{origin} with {}", overridden.join(", "));
        }
        Self::from_table(table, origin)
    }

    /// The configuration a table (the file with the environment applied)
    /// holds, checked whole.
    pub(crate) fn from_table(table: toml::Table, origin: String) -> Result<Self, ConfigError> {
        let mut config: McpConfig =
            table.try_into().map_err(|source| ConfigError::Parse { path: origin.clone(), source })?;
        config.origin = origin;
        config.agent_settings_checked()?;
        if !mcp_storage::control::valid_new_tenant(&config.tenant) {
            return Err(ConfigError::Tenant { origin: config.origin, tenant: config.tenant });
        }
        Ok(config)
    }

    /// Where this configuration came from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    fn agent_settings_checked(&self) -> Result<(), ConfigError> {
        for (agent, settings) in &self.agents {
            for (key, value) in settings {
                if setting_text(value).is_none() {
                    return Err(ConfigError::Setting {
                        path: self.origin.clone(),
                        agent: agent.clone(),
                        key: key.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    /// The settings of `agent`, as the text values the config import serves.
    pub fn settings_for(&self, agent: &str) -> BTreeMap<String, String> {
        self.agents
            .get(agent)
            .map(|settings| settings.iter().filter_map(|(k, v)| setting_text(v).map(|t| (k.clone(), t))).collect())
            .unwrap_or_default()
    }

    /// The schema search path: the operator's `schema_dir`, then the
    /// bundled schema files.
    pub fn schema_dirs(&self) -> Vec<PathBuf> {
        self.schema_dir.iter().cloned().chain([self.bundled_dir().join("log_schemas")]).collect()
    }

    /// The schema files of [`McpConfig::schema_dirs`].
    pub fn schema_files(&self) -> std::sync::Arc<mcp_storage::schema::SchemaFiles> {
        std::sync::Arc::new(mcp_storage::schema::SchemaFiles::search(&self.schema_dirs()))
    }

    /// The configured log source: PostgreSQL when `database_url` is set,
    /// else the embedded SQLite file.
    pub fn log_source(
        &self,
    ) -> Result<std::sync::Arc<dyn mcp_storage::source::LogSource>, mcp_storage::source::SourceError> {
        match &self.database_url {
            Some(url) => Ok(std::sync::Arc::new(
                mcp_storage::source::PgLogSource::connect_pooled(
                    url,
                    self.database_schema.as_deref(),
                    self.schema_files(),
                    self.database_connections,
                )?
                .with_retry(self.retry),
            )),
            None => {
                std::fs::create_dir_all(&self.data_dir).map_err(|source| {
                    mcp_storage::source::SourceError::DataDir { path: self.data_dir.display().to_string(), source }
                })?;
                Ok(std::sync::Arc::new(mcp_storage::source::SqliteLogSource::open(
                    &self.logs_db(),
                    self.schema_files(),
                )?))
            }
        }
    }

    /// This node's connection to the work it shares with other nodes, as
    /// `node`, through the PostgreSQL of `database_url`.
    pub fn cluster(
        &self,
        node: &str,
        lease_ttl: std::time::Duration,
    ) -> Result<mcp_storage::cluster::Cluster, mcp_storage::cluster::ClusterError> {
        let Some(url) = &self.database_url else { return Err(mcp_storage::cluster::ClusterError::NoDatabase) };
        mcp_storage::cluster::Cluster::connect(url, self.database_schema.as_deref(), node, lease_ttl, self.retry)
    }

    /// The job status store and cache: Redis when `redis_url` is set, else
    /// in this process.
    pub fn shared_cache(&self) -> Result<mcp_storage::jobstatus::SharedCache, mcp_storage::jobstatus::CacheError> {
        mcp_storage::jobstatus::SharedCache::open(self.redis_url.as_deref(), &self.redis_prefix, self.retry)
    }

    /// The model store: `models_dir`, with activations and events recorded
    /// in `data_dir`/models.db.
    pub fn model_manager(&self) -> Result<std::sync::Arc<crate::models::ModelManager>, crate::models::ModelError> {
        std::fs::create_dir_all(&self.data_dir)
            .map_err(|source| crate::models::ModelError::Io { path: self.data_dir.display().to_string(), source })?;
        let dir = self.models_dir.clone().unwrap_or_else(|| self.bundled_dir().join("models"));
        if self.model_state == StoreKind::Embedded {
            return Ok(std::sync::Arc::new(crate::models::ModelManager::open(&dir, &self.data_dir.join("models.db"))?));
        }
        let Some(url) = &self.database_url else {
            return Err(crate::models::ModelError::NoDatabase);
        };
        // A few statements a minute: activations, events, and each watcher
        // pass's look at the version in force.
        let state = mcp_storage::shared_store::SharedStore::connect(
            url,
            self.database_schema.as_deref(),
            2,
            self.retry,
            std::time::Duration::from_millis(self.page_query_timeout_ms.max(1)),
        )?;
        state.migrate()?;
        Ok(std::sync::Arc::new(crate::models::ModelManager::open_shared(&dir, std::sync::Arc::new(state))))
    }

    /// Where the `mcp` binary installs the agents, log schemas and models it
    /// carries, for the options left unset (`agents_dir`, `schema_dir`,
    /// `models_dir`).
    pub fn bundled_dir(&self) -> PathBuf {
        self.data_dir.join("bundled")
    }

    /// This node's control store file: the control store itself when
    /// `control_store = "embedded"`, the export records either way.
    pub fn control_db(&self) -> PathBuf {
        self.data_dir.join("control.db")
    }

    /// The control store `control_store` names, migrated.
    pub fn control_store(&self) -> Result<mcp_storage::control::ControlStore, mcp_storage::control::ControlError> {
        use mcp_storage::control::{ControlError, ControlStore};
        std::fs::create_dir_all(&self.data_dir).map_err(|e| ControlError::Db {
            path: self.data_dir.display().to_string(),
            source: mcp_storage::control_sql::SqlError::Connect(e.to_string()),
        })?;
        if self.control_store == StoreKind::Embedded {
            return ControlStore::open(&self.control_db());
        }
        let Some(url) = &self.database_url else {
            return Err(ControlError::NoDatabase);
        };
        let pg = mcp_storage::control_sql::PgControl::connect(url, self.database_schema.as_deref())?;
        ControlStore::open_shared(pg, &self.control_db())
    }

    pub fn logs_db(&self) -> PathBuf {
        self.data_dir.join("logs.db")
    }

    /// The anomaly store on PostgreSQL, when `anomaly_store = "postgres"`;
    /// `None` for the embedded one.
    pub fn shared_store(
        &self,
    ) -> Result<Option<mcp_storage::shared_store::SharedStore>, mcp_storage::shared_store::SharedStoreError> {
        if self.anomaly_store == StoreKind::Embedded {
            return Ok(None);
        }
        let Some(url) = &self.database_url else {
            return Err(mcp_storage::shared_store::SharedStoreError::NoDatabase);
        };
        let timeout = std::time::Duration::from_millis(self.page_query_timeout_ms.max(1));
        mcp_storage::shared_store::SharedStore::connect(
            url,
            self.database_schema.as_deref(),
            self.database_connections,
            self.retry,
            timeout,
        )
        .map(Some)
    }

    pub fn anomalies_db(&self) -> PathBuf {
        self.data_dir.join("anomalies.db")
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.data_dir.join("cache")
    }
}

/// The keys of the file that name files or folders, by section.
const PATH_KEYS: [(Option<&str>, &str); 6] = [
    (None, "data_dir"),
    (None, "agents_dir"),
    (None, "models_dir"),
    (None, "schema_dir"),
    (Some("notifications"), "file"),
    (Some("notifications"), "secrets_key_file"),
];

/// Makes the file's relative paths relative to its own folder, so that a
/// command reads the same files from any working directory (a service
/// manager's, a shell's). Values from the environment stay as given.
pub(crate) fn resolve_paths_against(table: &mut toml::Table, folder: &Path) {
    for (section, key) in PATH_KEYS {
        let holder = match section {
            None => Some(&mut *table),
            Some(name) => table.get_mut(name).and_then(toml::Value::as_table_mut),
        };
        let Some(toml::Value::String(value)) = holder.and_then(|t| t.get_mut(key)) else { continue };
        if !value.is_empty() && Path::new(value.as_str()).is_relative() {
            *value = folder.join(value.as_str()).display().to_string();
        }
    }
}

/// The file read: `path` when given, else config/mcp.toml when it exists.
pub(crate) fn config_path(path: Option<&Path>) -> Option<PathBuf> {
    match path {
        Some(p) => Some(p.to_path_buf()),
        None if Path::new(DEFAULT_CONFIG).exists() => Some(PathBuf::from(DEFAULT_CONFIG)),
        None => None,
    }
}

/// Top-level keys an `MCP_<KEY>` variable may set.
const TOP: &[&str] = &[
    "data_dir",
    "tenant",
    "agents_dir",
    "schema_dir",
    "batch_size",
    "replay_ms",
    "database_url",
    "database_schema",
    "redis_url",
    "redis_prefix",
    "status_interval_ms",
    "models_dir",
    "model_watch_ms",
    "listen",
    "max_upload_bytes",
    "shutdown_timeout_ms",
    "log_format",
    "database_connections",
    "metrics_listen",
    "page_query_steps",
    "anomaly_store",
    "model_state",
    "control_store",
    "page_query_timeout_ms",
];

/// `[sandbox]` keys an `MCP_SANDBOX_<KEY>` variable may set.
const SANDBOX: &[&str] = &[
    "budget",
    "call_timeout_ms",
    "fuel_per_call",
    "memory_bytes",
    "stack_bytes",
    "max_instances",
    "max_anomalies_per_call",
    "max_query_page",
    "max_state_bytes",
];

/// Environment variables that override the file: `MCP_<KEY>` for a top-level
/// key and `MCP_SANDBOX_<KEY>` for a `[sandbox]` key, the key in capitals.
/// A value is read as TOML when it parses as a number or boolean, else as
/// text. An `MCP_` variable that names no key is an error, like an unknown
/// key in the file.
pub(crate) fn apply_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<String>, ConfigError> {
    let mut applied = Vec::new();
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        // `MCP_SECRET_KEY` is `MCP_SECRETS_KEY` mistyped, not a channel's
        // secret: it is reported like any unknown variable.
        .filter(|(k, _)| {
            k.starts_with("MCP_")
                && (!k.starts_with(SECRET_ENV_PREFIX) || k == "MCP_SECRET_KEY")
                && k != SECRETS_KEY_ENV
        })
        .collect();
    vars.sort();
    for (name, raw) in vars {
        let key = name["MCP_".len()..].to_ascii_lowercase();
        let (section, key) = match key.strip_prefix("sandbox_").filter(|k| SANDBOX.contains(k)) {
            Some(sandbox_key) => {
                let entry = table.entry("sandbox").or_insert_with(|| toml::Value::Table(toml::Table::new()));
                // A `sandbox` of the file that is no table is the file's
                // error, reported when the whole is read.
                let toml::Value::Table(sandbox) = entry else {
                    applied.push(name);
                    continue;
                };
                (sandbox, sandbox_key.to_string())
            }
            None if TOP.contains(&key.as_str()) => (&mut *table, key),
            None => return Err(ConfigError::UnknownEnv { name }),
        };
        // `MCP_REDIS_URL=` in an environment file means "not set", as the
        // key left out of the file does; the default then holds.
        if raw.is_empty() {
            section.remove(&key);
        } else {
            let value = match raw.parse::<i64>() {
                Ok(i) => toml::Value::Integer(i),
                Err(_) => match raw.as_str() {
                    "true" => toml::Value::Boolean(true),
                    "false" => toml::Value::Boolean(false),
                    _ => toml::Value::String(raw.clone()),
                },
            };
            section.insert(key, value);
        }
        applied.push(name);
    }
    Ok(applied)
}

/// A setting as the text the `config` import serves: a scalar as itself, a
/// list of scalars as a JSON array (which every SDK's `list` reads), and
/// nothing for a table or a nested list, which the config check refuses.
fn setting_text(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::Array(items) => {
            let items: Option<Vec<serde_json::Value>> = items.iter().map(json_scalar).collect();
            serde_json::to_string(&items?).ok()
        }
        toml::Value::String(s) => Some(s.clone()),
        scalar => json_scalar(scalar).map(|v| v.to_string()),
    }
}

fn json_scalar(value: &toml::Value) -> Option<serde_json::Value> {
    match value {
        toml::Value::String(s) => Some(s.clone().into()),
        toml::Value::Integer(i) => Some((*i).into()),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f).map(Into::into),
        toml::Value::Boolean(b) => Some((*b).into()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn environment_overrides_the_file() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("mcp.toml");
        std::fs::write(&path, "tenant = \"file\"\nbatch_size = 10\n[sandbox]\nbudget = \"fuel\"\n")?;
        let vars = env(&[
            ("MCP_TENANT", "acme"),
            ("MCP_SANDBOX_CALL_TIMEOUT_MS", "750"),
            ("MCP_REDIS_URL", ""),
            ("HOME", "/root"),
        ]);
        let config = McpConfig::load_with_env(Some(&path), vars)?;
        assert_eq!((config.tenant.as_str(), config.batch_size), ("acme", 10));
        assert_eq!(config.sandbox.call_timeout_ms, 750);
        assert_eq!(config.redis_url, None, "an empty variable leaves the key unset");
        assert_eq!(config.sandbox.budget, mcp_sandbox::BudgetKind::Fuel);
        assert!(config.origin().contains("MCP_TENANT") && config.origin().contains("MCP_SANDBOX_CALL_TIMEOUT_MS"));
        Ok(())
    }

    /// config/mcp.env.example names every variable there is, and only those.
    #[test]
    fn the_environment_example_lists_every_variable() -> Result<(), Box<dyn std::error::Error>> {
        let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/mcp.env.example"))?;
        let listed: Vec<String> = example
            .lines()
            .map(|l| l.trim_start_matches('#').trim())
            .filter_map(|l| l.split_once('=').map(|(name, _)| name.to_string()))
            .filter(|name| name.starts_with("MCP_"))
            .collect();
        let every = TOP
            .iter()
            .map(|k| format!("MCP_{}", k.to_ascii_uppercase()))
            .chain(SANDBOX.iter().map(|k| format!("MCP_SANDBOX_{}", k.to_ascii_uppercase())));
        for name in every {
            assert!(listed.contains(&name), "config/mcp.env.example lacks {name}");
        }
        for name in &listed {
            let mut table = toml::Table::new();
            assert!(apply_env(&mut table, [(name.clone(), "1".to_string())]).is_ok(), "{name} names no key");
        }
        Ok(())
    }

    #[test]
    fn unknown_and_mistyped_settings_are_errors() {
        let reserved = McpConfig::load_with_env(None, env(&[("MCP_TENANT", "_deployment")]));
        assert!(matches!(reserved, Err(ConfigError::Tenant { .. })), "{reserved:?}");
        let secret =
            McpConfig::load_with_env(None, env(&[("MCP_SECRET_SOC_URL", "https://x"), ("MCP_SECRETS_KEY", "ab")]));
        assert!(secret.is_ok(), "channel secrets and the sealing key are not settings: {secret:?}");
        let typo = McpConfig::load_with_env(None, env(&[("MCP_SECRET_KEY", "ab")]));
        assert!(matches!(typo, Err(ConfigError::UnknownEnv { ref name }) if name == "MCP_SECRET_KEY"), "{typo:?}");
        let unknown = McpConfig::load_with_env(None, env(&[("MCP_BATCHSIZE", "5")]));
        assert!(matches!(unknown, Err(ConfigError::UnknownEnv { ref name }) if name == "MCP_BATCHSIZE"), "{unknown:?}");
        let mistyped = McpConfig::load_with_env(None, env(&[("MCP_BATCH_SIZE", "many")]));
        assert!(mistyped.is_err());
    }

    #[test]
    fn list_settings_reach_the_agent_as_json_arrays_and_tables_are_refused() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("mcp.toml");
        std::fs::write(
            &path,
            "[agents.dns]\nallow = [\"corp.example\", \"cdn.example\"]\nports = [53, 853]\nratio = 0.25\nname = \"a,b\"\n",
        )?;
        let settings = McpConfig::load_with_env(Some(&path), Vec::new())?.settings_for("dns");
        assert_eq!(settings.get("allow").map(String::as_str), Some(r#"["corp.example","cdn.example"]"#));
        assert_eq!(settings.get("ports").map(String::as_str), Some("[53,853]"));
        assert_eq!(settings.get("ratio").map(String::as_str), Some("0.25"));
        assert_eq!(settings.get("name").map(String::as_str), Some("a,b"));
        for refused in ["nested = [[1], [2]]", "table = { a = 1 }", "mixed = [1, { a = 2 }]"] {
            std::fs::write(&path, format!("[agents.dns]\n{refused}\n"))?;
            let loaded = McpConfig::load_with_env(Some(&path), Vec::new());
            assert!(matches!(loaded, Err(ConfigError::Setting { .. })), "{refused}: {loaded:?}");
        }
        Ok(())
    }
}
