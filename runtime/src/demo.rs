//! `mcp demo`: generate labelled logs, load them into the embedded source,
//! run the bundled agents through the sandbox and score what they found.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use crate::config::McpConfig;
use crate::generator::{self, GeneratorError};
use crate::metrics::Detection;
use crate::models::ModelManager;
use crate::pipeline::{self, RunError, RunReport, RunSpec};
use crate::registry::{Registry, RegistryError};
use crate::sandbox::{CompileCache, Sandbox, SandboxError};
use crate::source::{LogSource, SourceError, SqliteLogSource};
use crate::store::{AnomalyStore, StoreError};

/// Errors of the demo.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Generator(#[from] GeneratorError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("cannot prepare {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("no bundled agent handles '{0}' logs")]
    MissingAgent(String),
}

/// What the demo measured for one agent.
#[derive(Debug, Clone)]
pub struct AgentOutcome {
    pub run: RunReport,
    pub detection: Detection,
}

/// Options of one demo.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub seed: u64,
    pub entries_per_type: usize,
    /// Overrides every agent's `detection` setting (rules, model or both).
    pub detection: Option<String>,
}

/// Runs the demo in `config.data_dir`/demo, starting from empty databases,
/// with the models of `models` when given.
pub fn run(
    config: &McpConfig,
    agents_dir: &Path,
    models: Option<Arc<ModelManager>>,
    options: &DemoOptions,
) -> Result<Vec<AgentOutcome>, DemoError> {
    let sandbox = Arc::new(Sandbox::new(config.sandbox.clone(), CompileCache::new(Some(config.cache_dir())))?);
    let mut registry = Registry::new(sandbox);
    registry.discover(agents_dir)?;
    run_with(config, &registry, models, options, &config.data_dir.join("demo"))
}

/// Detection quality per agent with rules only, the model only and both,
/// on one seed: `(mode, outcomes)` for each mode.
pub fn evaluate(
    config: &McpConfig,
    agents_dir: &Path,
    models: Arc<ModelManager>,
    seed: u64,
    entries_per_type: usize,
) -> Result<Vec<(String, Vec<AgentOutcome>)>, DemoError> {
    let sandbox = Arc::new(Sandbox::new(config.sandbox.clone(), CompileCache::new(Some(config.cache_dir())))?);
    let mut registry = Registry::new(sandbox);
    registry.discover(agents_dir)?;
    let mut results = Vec::new();
    for mode in ["rules", "model", "both"] {
        let options = DemoOptions { seed, entries_per_type, detection: Some(mode.to_string()) };
        let dir = config.data_dir.join(format!("evaluate-{mode}"));
        results.push((mode.to_string(), run_with(config, &registry, Some(models.clone()), &options, &dir)?));
    }
    Ok(results)
}

fn run_with(
    config: &McpConfig,
    registry: &Registry,
    models: Option<Arc<ModelManager>>,
    options: &DemoOptions,
    dir: &Path,
) -> Result<Vec<AgentOutcome>, DemoError> {
    let io = |source| DemoError::Io { path: dir.display().to_string(), source };
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(io)?;
    }
    std::fs::create_dir_all(dir).map_err(io)?;

    let source = Arc::new(SqliteLogSource::open(&dir.join("logs.db"), config.schema_files())?);
    let mut store = AnomalyStore::open(&dir.join("anomalies.db"))?;
    let tenant = config.tenant.as_str();
    let mut outcomes = Vec::new();
    for log_type in generator::LOG_TYPES {
        let logs = generator::generate(log_type, options.seed, options.entries_per_type)?;
        source.load(tenant, log_type, &logs)?;
        let agent = registry
            .list()
            .find(|a| a.info.log_type == *log_type && a.enabled)
            .map(|a| a.info.name.clone())
            .ok_or_else(|| DemoError::MissingAgent((*log_type).to_string()))?;
        let logs_reader: Arc<dyn crate::sandbox::LogReader> = source.clone();
        let mut settings = config.settings_for(&agent);
        if let Some(mode) = &options.detection {
            settings.insert("detection".into(), mode.clone());
        }
        let mut instance =
            pipeline::instance_with_models(registry, &agent, tenant, settings, Some(logs_reader), models.clone())?;
        let spec = RunSpec {
            tenant,
            agent: &agent,
            log_source: "embedded",
            batch_size: config.batch_size,
            replay_ms: config.replay_ms,
        };
        let run = pipeline::run(registry, &mut instance, &*source, &mut store, &spec)?;
        let flagged: HashSet<u64> = store.anomalies(tenant, &agent)?.into_iter().map(|a| a.log_id).collect();
        let detection = Detection::score(&source.labels(tenant, log_type)?, &flagged);
        outcomes.push(AgentOutcome { run, detection });
    }
    Ok(outcomes)
}
