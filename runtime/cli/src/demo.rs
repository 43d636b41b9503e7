//! `mcp demo`: generate labelled logs, load them into the embedded source,
//! run the bundled agents through the sandbox and score what they found.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use mcp_engine::config::McpConfig;
use mcp_engine::models::ModelManager;
use mcp_engine::pipeline::{RunError, RunReport};
use mcp_engine::runs::RunBuilder;
use mcp_sandbox::registry::{Registry, RegistryError};
use mcp_sandbox::{CompileCache, Sandbox, SandboxError};
use mcp_storage::source::{LogSource, SourceError, SqliteLogSource};
use mcp_storage::store::{AnomalyStore, StoreError};
use mcp_synth::scoring::Detection;
use mcp_synth::{self as generator, GeneratorError};

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
    /// The language the agent was written in, where the binary knows it.
    pub language: &'static str,
}

/// The language of a component the binary ships, by its file name.
pub fn language_of(origin: &str) -> &'static str {
    let file = Path::new(origin).file_name().and_then(|f| f.to_str()).unwrap_or_default();
    if mcp_agent_artifacts::AGENTS.iter().any(|(name, _)| *name == file) {
        return "Rust";
    }
    mcp_agent_artifacts::EXAMPLES.iter().find(|(name, _, _)| *name == file).map_or("?", |(_, language, _)| language)
}

/// Options of one demo.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub seed: u64,
    pub entries_per_type: usize,
    /// The generator's traffic: easy (templates) or realistic.
    pub profile: generator::Profile,
    /// Overrides every agent's `detection` setting (rules, model or both).
    pub detection: Option<String>,
    /// A folder of agents in other languages to run beside the bundled
    /// ones, each over its log type's entries.
    pub examples_dir: Option<std::path::PathBuf>,
}

/// Runs the demo in `config.data_dir`/demo, starting from empty databases,
/// with the models of `models` when given.
pub fn run(
    config: &McpConfig,
    agents_dir: &Path,
    models: Option<Arc<ModelManager>>,
    options: &DemoOptions,
) -> Result<Vec<AgentOutcome>, DemoError> {
    run_observed(config, agents_dir, models, options, &mut |_, _| {})
}

/// As [`run`], showing `progress` each agent's report after each batch.
pub fn run_observed(
    config: &McpConfig,
    agents_dir: &Path,
    models: Option<Arc<ModelManager>>,
    options: &DemoOptions,
    progress: &mut dyn FnMut(&str, &RunReport),
) -> Result<Vec<AgentOutcome>, DemoError> {
    let sandbox = Arc::new(Sandbox::new(config.sandbox.clone(), CompileCache::new(Some(config.cache_dir())))?);
    let mut registry = Registry::new(sandbox.clone());
    registry.discover(agents_dir)?;
    let examples = match &options.examples_dir {
        Some(dir) => {
            let mut examples = Registry::new(sandbox);
            examples.discover(dir)?;
            Some(Arc::new(examples))
        }
        None => None,
    };
    let dir = config.data_dir.join("demo");
    let mut outcomes = run_with(config, &Arc::new(registry), models.clone(), options, &dir, progress)?;
    if let Some(examples) = examples {
        outcomes.extend(run_examples(config, &examples, models, options, &dir, progress)?);
    }
    Ok(outcomes)
}

/// Runs each agent of `examples` over the entries `run_with` loaded for its
/// log type, into the same store, so they are scored on the same labels.
fn run_examples(
    config: &McpConfig,
    examples: &Arc<Registry>,
    models: Option<Arc<ModelManager>>,
    options: &DemoOptions,
    dir: &Path,
    progress: &mut dyn FnMut(&str, &RunReport),
) -> Result<Vec<AgentOutcome>, DemoError> {
    let source = Arc::new(SqliteLogSource::open(&dir.join("logs.db"), config.schema_files())?);
    let mut store = AnomalyStore::open(&dir.join("anomalies.db"))?;
    let mut outcomes = Vec::new();
    let agents: Vec<(String, String, String)> =
        examples.list().map(|a| (a.info.name.clone(), a.info.log_type.clone(), a.origin.clone())).collect();
    for (agent, log_type, origin) in agents {
        let job = Scored { agent: &agent, log_type: &log_type, origin: &origin };
        outcomes.push(run_and_score(config, examples, &source, &mut store, &models, options, job, progress)?);
    }
    Ok(outcomes)
}

/// Detection quality per agent with rules only, the model only and both,
/// on one seed: `(mode, outcomes)` for each mode.
pub fn evaluate(
    config: &McpConfig,
    agents_dir: &Path,
    models: Arc<ModelManager>,
    seed: u64,
    entries_per_type: usize,
    profile: generator::Profile,
) -> Result<Vec<(String, Vec<AgentOutcome>)>, DemoError> {
    let sandbox = Arc::new(Sandbox::new(config.sandbox.clone(), CompileCache::new(Some(config.cache_dir())))?);
    let mut registry = Registry::new(sandbox);
    registry.discover(agents_dir)?;
    let registry = Arc::new(registry);
    let mut results = Vec::new();
    for mode in ["rules", "model", "both"] {
        let detection = Some(mode.to_string());
        let options = DemoOptions { seed, entries_per_type, profile, detection, examples_dir: None };
        let dir = config.data_dir.join(format!("evaluate-{mode}"));
        results.push((
            mode.to_string(),
            run_with(config, &registry, Some(models.clone()), &options, &dir, &mut |_, _| {})?,
        ));
    }
    Ok(results)
}

fn run_with(
    config: &McpConfig,
    registry: &Arc<Registry>,
    models: Option<Arc<ModelManager>>,
    options: &DemoOptions,
    dir: &Path,
    progress: &mut dyn FnMut(&str, &RunReport),
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
        let logs = generator::generate_with(log_type, options.seed, options.entries_per_type, options.profile)?;
        source.append(tenant, log_type, &generator::to_rows(&logs))?;
        let (agent, origin) = registry
            .list()
            .find(|a| a.info.log_type == *log_type && a.enabled)
            .map(|a| (a.info.name.clone(), a.origin.clone()))
            .ok_or_else(|| DemoError::MissingAgent((*log_type).to_string()))?;
        let job = Scored { agent: &agent, log_type, origin: &origin };
        outcomes.push(run_and_score(config, registry, &source, &mut store, &models, options, job, progress)?);
    }
    Ok(outcomes)
}

/// Which agent `run_and_score` runs, over which log type, and from which file.
struct Scored<'a> {
    agent: &'a str,
    log_type: &'a str,
    origin: &'a str,
}

/// Runs `job.agent` of `registry` over its log type's entries in `source`
/// and scores what it stored against the labels.
#[allow(clippy::too_many_arguments)]
fn run_and_score(
    config: &McpConfig,
    registry: &Arc<Registry>,
    source: &Arc<SqliteLogSource>,
    store: &mut AnomalyStore,
    models: &Option<Arc<ModelManager>>,
    options: &DemoOptions,
    job: Scored<'_>,
    progress: &mut dyn FnMut(&str, &RunReport),
) -> Result<AgentOutcome, DemoError> {
    let tenant = config.tenant.as_str();
    let shared: Arc<dyn LogSource> = source.clone();
    let mut run = RunBuilder::new(config, registry.clone(), shared, tenant, job.agent);
    if let Some(mode) = &options.detection {
        run = run.setting("detection", mode);
    }
    if let Some(models) = models {
        run = run.models(models.clone());
    }
    let run = run
        .build()?
        .execute(store, &mut |report| {
            progress(job.agent, report);
            std::ops::ControlFlow::Continue(())
        })
        .result?;
    let flagged: HashSet<u64> = store.anomalies(tenant, job.agent)?.into_iter().map(|a| a.log_id).collect();
    let detection = Detection::score(&source.labels(tenant, job.log_type)?, &flagged);
    Ok(AgentOutcome { run, detection, language: language_of(job.origin) })
}
