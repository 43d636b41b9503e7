//! The `mcp` command: the edge where errors become messages and exit codes.
#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use demo::DemoOptions;
use mcp_api::{ApiState, Role};
use mcp_engine::config::McpConfig;

use mcp_engine::runs::RunBuilder;
use mcp_sandbox::registry::Registry;
use mcp_sandbox::{CompileCache, Sandbox};
use mcp_storage::run_store::ConfiguredStore;
use mcp_storage::store::AnomalyStore;

mod agents_cli;
mod anomalies_cli;
mod assets;
mod bench;
mod bench_api;
mod bench_cache;
mod bench_density;
mod bench_follow;
mod bench_languages;
mod bench_models;
mod bench_nodes;
mod bench_notify;
mod bench_pipeline;
mod cluster_cli;
mod export_cli;
mod models_cli;
mod notify_cli;
mod printable;
mod progress;
mod scaffold;

use mcp_cli::{demo, training};

#[derive(Parser)]
#[command(name = "mcp", version, about = "Run untrusted log-anomaly agents in a WebAssembly sandbox")]
struct Cli {
    /// Configuration file (default: config/mcp.toml when it exists).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Folder of agent components (default: the config's agents_dir, else the bundled agents).
    #[arg(long, global = true)]
    agents_dir: Option<PathBuf>,
    /// An environment file (KEY=VALUE lines, as systemd's EnvironmentFile=) whose MCP_* variables are read
    /// over the process's own, so a command sees what the service sees.
    #[arg(long, global = true)]
    env_file: Option<PathBuf>,
    /// Log lines as text or as JSON objects (default: the config's log_format, MCP_LOG_FORMAT, else text).
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormatArg>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Generate labelled logs, run the bundled agents on them and score the result.
    Demo {
        /// Generator seed.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Normal entries per log type (attacks come on top).
        #[arg(long, default_value_t = 10_000)]
        entries: usize,
        /// The generator's traffic: realistic (real services' names, mixed
        /// case, harmless bursts and incidents, attacks as tools make them)
        /// or easy (templates the rules were first written for).
        #[arg(long, default_value = "realistic")]
        profile: mcp_synth::Profile,
    },
    /// Inspect agents.
    Agents {
        #[command(subcommand)]
        command: agents_cli::AgentsCommand,
    },
    /// Each tenant's budget: what its runs may use.
    Budgets {
        #[command(subcommand)]
        command: BudgetsCommand,
    },
    /// Run agents over the configured log source, from their checkpoints.
    Run {
        /// One agent; all enabled agents when omitted.
        #[arg(long)]
        agent: Option<String>,
    },
    /// Measure the sandbox against the same detection code compiled natively.
    Bench(bench::BenchArgs),
    /// Work over stored logs shared by many nodes: plan units, see their status (docs/scaling.md).
    Backfill {
        #[command(subcommand)]
        command: cluster_cli::BackfillCommand,
    },
    /// Join the nodes that share the deployment's work through PostgreSQL, and claim and run units of it.
    Worker(cluster_cli::WorkerArgs),
    /// The nodes sharing the work: heartbeats and leases.
    Nodes {
        #[command(subcommand)]
        command: cluster_cli::NodesCommand,
    },
    /// Export the tenant's anomalies to a file (JSON Lines, CSV or Parquet), with a progress bar; prints its sha256.
    Export(Box<export_cli::ExportArgs>),
    /// The configured log source.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
    /// Detection quality of the bundled agents on generated, labelled traffic: per agent and mode
    /// (rules, model, both) precision, recall, F1 and false positives per million normal entries,
    /// then recall per attack kind (`mcp models evaluate` with the realistic profile by default).
    Eval {
        /// A seed the models were not trained on.
        #[arg(long, default_value_t = 9001)]
        seed: u64,
        /// Normal entries per log type (attacks come on top).
        #[arg(long, default_value_t = 10_000)]
        entries: usize,
        /// realistic (traffic as a real site sees it, attacks as tools make them) or easy.
        #[arg(long, default_value = "realistic")]
        profile: mcp_synth::Profile,
    },
    /// Model versions: list, add, activate, roll back; training data and evaluation.
    Models {
        #[command(subcommand)]
        command: models_cli::ModelsCommand,
    },
    /// Start the REST control plane and the web console (console at /ui/, OpenAPI at /openapi.json, browsable at /docs).
    Serve {
        /// Address to listen on (default: the config's `listen`, 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<String>,
    },
    /// API tokens.
    Tokens {
        #[command(subcommand)]
        command: TokensCommand,
    },
    /// Tenants: list, create, disable, enable, delete.
    Tenants {
        #[command(subcommand)]
        command: TenantsCommand,
    },
    /// Job status (runs) from the shared cache: Redis when configured.
    Jobs {
        #[command(subcommand)]
        command: JobsCommand,
    },
    /// Check the configuration (file and MCP_* environment) and what it points to.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Notifications: a test message on a channel, delivery without a server, the outbox.
    Notify {
        #[command(subcommand)]
        command: notify_cli::NotifyCommand,
    },
    /// The configured tenant's anomalies: list with the API's filters, show one.
    Anomalies {
        #[command(subcommand)]
        command: anomalies_cli::AnomaliesCommand,
    },
    /// Rows of the configured log source that were set aside, with why.
    Quarantine {
        #[command(subcommand)]
        command: QuarantineCommand,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Every problem of the file and the environment (unknown keys, bad values, unreadable folders,
    /// schema files, models, PostgreSQL and Redis reachable), each with where it came from; exits
    /// non-zero on any.
    Check {
        /// Do not connect to PostgreSQL and Redis.
        #[arg(long)]
        offline: bool,
    },
    /// The MemoryMax and TasksMax a service manager should hold `mcp serve` to, from the sandbox's ceilings.
    Limits,
}

#[derive(Subcommand)]
enum DbCommand {
    /// Create or update the PostgreSQL log tables.
    Migrate,
    /// Copy this node's control records (data_dir/control.db: tenants, tokens, settings, flags,
    /// budgets, grants, quarantines, audit, channels and routes) into the PostgreSQL control store,
    /// once, when switching to control_store = "postgres"; refused if that store has tenants already.
    CopyControl,
    /// Append a JSON Lines file of logs (one {"timestamp_ms", "source", "fields", "schema_version"?, "label"?}
    /// object a line; docs/log_schemas.md).
    Load {
        /// The file.
        file: PathBuf,
        /// The log type of every line.
        #[arg(long)]
        log_type: String,
    },
    /// Append the demo's generated, labelled logs to the configured source for the configured tenant,
    /// moved in time so the newest entry is now: data to try `mcp run`, the API and the console on.
    Generate {
        /// Log types to generate (default: wifi, firewall and dns).
        #[arg(long = "log-type")]
        log_types: Vec<String>,
        /// Normal entries per log type (attacks come on top).
        #[arg(long, default_value_t = 10_000)]
        entries: usize,
        /// The generator's seed.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// realistic or easy, as for `mcp demo`.
        #[arg(long, default_value = "realistic")]
        profile: mcp_synth::Profile,
    },
}

#[derive(Subcommand)]
enum TokensCommand {
    /// Create a token bound to a tenant and a role; it is printed once and only its hash is kept.
    Create {
        /// The tenant (made if new); `_deployment` for the deployment's own
        /// tokens, the default with `--role deployment_admin`.
        #[arg(long)]
        tenant: Option<String>,
        /// read_only, tenant_admin, admin or deployment_admin.
        #[arg(long)]
        role: String,
        /// A name to tell it apart in `mcp tokens list`.
        #[arg(long, default_value = "")]
        name: String,
    },
    /// A tenant's tokens (never their secrets).
    List {
        #[arg(long)]
        tenant: String,
    },
    /// Revoke a tenant's token by id.
    Revoke {
        #[arg(long)]
        tenant: String,
        id: i64,
    },
}

#[derive(Subcommand)]
enum TenantsCommand {
    /// Every tenant with its state.
    List,
    /// Create a tenant.
    Create { name: String },
    /// Disable a tenant: its tokens stop working, its data stays.
    Disable { name: String },
    /// Enable a disabled tenant.
    Enable { name: String },
    /// Delete a tenant's tokens and control records (uploads, settings,
    /// grants, budgets, quarantine); its audit trail, logs and anomalies stay.
    Delete { name: String },
}

#[derive(Subcommand)]
enum JobsCommand {
    /// The configured tenant's jobs still kept, newest first.
    List,
    /// Ask a running job to stop after its current batch.
    Cancel {
        /// The job id, as `mcp jobs list` shows it.
        id: String,
    },
}

#[derive(Subcommand)]
enum QuarantineCommand {
    /// Every quarantined row of the configured tenant.
    List {
        /// Print the raw rows too.
        #[arg(long)]
        raw: bool,
    },
}

#[derive(Subcommand)]
enum BudgetsCommand {
    /// A tenant's budget in force (the configured tenant by default).
    Show {
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Override one budget of a tenant; `default` removes the override.
    Set {
        tenant: String,
        /// A budget name (`mcp budgets show` lists them).
        key: String,
        /// A number, or `default`.
        value: String,
    },
}

/// A reader that closes the pipe early (`mcp anomalies list | head`) ends
/// the command quietly, as a shell tool's default SIGPIPE would: `println!`
/// panics on EPIPE, and this project denies the unsafe code that would
/// restore the signal.
fn quiet_on_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.contains("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

fn main() -> ExitCode {
    quiet_on_closed_pipe();
    let cli = Cli::parse();
    // Read once, before logging starts, since it chooses how logs look; a
    // configuration that does not load is reported by run().
    let config = load_config(&cli);
    let json = match cli.log_format {
        Some(flag) => matches!(flag, LogFormatArg::Json),
        None => config.as_ref().is_ok_and(|config| config.log_format == mcp_engine::config::LogFormat::Json),
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        logs.json().with_current_span(true).with_span_list(true).init();
    } else {
        // Colour codes only for a terminal, not in a log file or a pipe.
        logs.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init();
    }
    match run(cli, config) {
        Ok(code) => code,
        Err(error) => {
            // An agent's error message is guest text: escaped like any.
            eprintln!("error: {}", printable::one_line(&format!("{error:#}")));
            ExitCode::FAILURE
        }
    }
}

/// The process's environment with the MCP_* variables of `env_file` over
/// it, read as systemd reads an EnvironmentFile: `#` and `;` comments,
/// values in single or double quotes; an `export ` before a name is
/// allowed, as shells write it.
fn environment(env_file: Option<&Path>) -> Result<Vec<(String, String)>> {
    let mut env: Vec<(String, String)> = std::env::vars().collect();
    let Some(file) = env_file else { return Ok(env) };
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let (name, value) = line
            .split_once('=')
            .with_context(|| format!("{}:{}: '{line}' is not NAME=VALUE", file.display(), number + 1))?;
        let (name, value) = (name.trim(), value.trim());
        let unquoted =
            ['"', '\''].iter().find_map(|q| value.strip_prefix(*q).and_then(|v| v.strip_suffix(*q))).unwrap_or(value);
        env.retain(|(existing, _)| existing != name);
        env.push((name.to_string(), unquoted.to_string()));
    }
    Ok(env)
}

/// The configuration as `--config` and `--env-file` give it.
fn load_config(cli: &Cli) -> Result<McpConfig> {
    Ok(McpConfig::load_with_env(cli.config.as_deref(), environment(cli.env_file.as_deref())?)?)
}

/// Prints each problem of the configuration, or what was checked; the exit
/// code says whether there was any.
fn config_check(
    path: Option<&Path>,
    env: Vec<(String, String)>,
    services: bool,
    config: Option<&McpConfig>,
) -> Result<ExitCode> {
    let mut report = mcp_engine::config_check::check(path, env, services);
    // The notifications file and secrets are read by the notify crate,
    // which the engine's check cannot see.
    if let Some(config) = config {
        notify_cli::check(config, &mut report);
    }
    for checked in &report.checked {
        println!("ok       {checked}");
    }
    for problem in &report.problems {
        println!("problem  {problem}");
    }
    if report.problems.is_empty() {
        println!("the configuration is sound");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("{} problem(s)", report.problems.len());
        Ok(ExitCode::FAILURE)
    }
}

pub(crate) fn agents_dir(cli_dir: Option<PathBuf>, config: &McpConfig) -> Result<PathBuf> {
    let dir = cli_dir.or_else(|| config.agents_dir.clone()).unwrap_or_else(|| config.bundled_dir().join("agents"));
    if !dir.is_dir() {
        bail!("agents folder {} does not exist; pass --agents-dir or set agents_dir in the config", dir.display());
    }
    Ok(dir)
}

fn sandbox(config: &McpConfig) -> Result<Arc<Sandbox>> {
    Ok(Arc::new(Sandbox::new(config.sandbox.clone(), CompileCache::new(Some(config.cache_dir())))?))
}

pub(crate) fn registry(config: &McpConfig, dir: &Path) -> Result<Registry> {
    let mut registry = Registry::new(sandbox(config)?);
    registry.discover(dir)?;
    Ok(registry)
}

fn run(cli: Cli, config: Result<McpConfig>) -> Result<ExitCode> {
    // A configuration that does not load is what `config check` is for.
    if let Command::Config { command: ConfigCommand::Check { offline } } = &cli.command {
        return config_check(
            cli.config.as_deref(),
            environment(cli.env_file.as_deref())?,
            !offline,
            config.as_ref().ok(),
        );
    }
    let config = config?;
    // Reading the configuration writes nothing (setup_prod.sh runs it as
    // root, before the data folder belongs to the service's user).
    if let Command::Config { command: ConfigCommand::Limits } = &cli.command {
        let (memory, tasks) = mcp_engine::config_check::service_limits(&config);
        println!("MemoryMax={memory}\nTasksMax={tasks}");
        return Ok(ExitCode::SUCCESS);
    }
    assets::install(&config)?;
    match cli.command {
        Command::Demo { seed, entries, profile } => {
            let dir = agents_dir(cli.agents_dir, &config)?;
            println!(
                "mcp demo: seed {seed}, {} profile, {entries} normal entries per log type plus injected attacks, agents from {}",
                profile.name(),
                dir.display()
            );
            println!(
                "embedded default: SQLite under {}/demo, no PostgreSQL or Redis needed\n",
                config.data_dir.display()
            );
            let models = config.model_manager()?;
            let examples = config.bundled_dir().join("examples");
            let options =
                DemoOptions { seed, entries_per_type: entries, profile, detection: None, examples_dir: Some(examples) };
            let mut bar: Option<(String, progress::Progress)> = None;
            let outcomes = demo::run_observed(&config, &dir, Some(models.clone()), &options, &mut |agent, report| {
                if bar.as_ref().is_none_or(|(shown, _)| shown != agent) {
                    if let Some((_, done)) = bar.take() {
                        done.finish();
                    }
                    bar = Some((agent.to_string(), progress::Progress::new(agent, None)));
                }
                if let Some((_, shown)) = bar.as_mut() {
                    shown.show_run(report);
                }
            });
            if let Some((_, done)) = bar.take() {
                done.finish();
            }
            let outcomes = outcomes?;
            println!(
                "{:<10} {:<10} {:>8} {:>10} {:>10} {:>8} {:>7} {:>12} {:>11}",
                "agent", "language", "entries", "anomalies", "precision", "recall", "F1", "entries/s", "quarantined"
            );
            for o in &outcomes {
                let d = &o.detection;
                println!(
                    "{:<10} {:<10} {:>8} {:>10} {:>10.3} {:>8.3} {:>7.3} {:>12.0} {:>11}",
                    o.run.agent,
                    o.language,
                    o.run.entries,
                    o.run.anomalies,
                    d.precision(),
                    d.recall(),
                    d.f1(),
                    o.run.entries_per_second(),
                    o.run.quarantined
                );
            }
            println!("\nper attack kind (entries flagged / entries in the attack):");
            for o in &outcomes {
                let kinds: Vec<String> =
                    o.detection.per_kind.iter().map(|(k, (hit, all))| format!("{k} {hit}/{all}")).collect();
                println!("  {:<10} {}", o.run.agent, kinds.join(", "));
                for fault in &o.run.faults {
                    println!("  {:<10} recovered from fault: {fault}", o.run.agent);
                }
            }
            println!("\nmodels (from {}; rules and model combined):", models.dir().display());
            for o in &outcomes {
                match &o.run.model {
                    Some((name, version)) => {
                        let family = models.load(name, version).map(|m| m.metadata.family.clone()).unwrap_or_default();
                        println!("  {:<10} model {name} version {version} ({family})", o.run.agent)
                    }
                    None => println!("  {:<10} no model deployed: rules only", o.run.agent),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Agents { command } => agents_cli::run(&config, cli.agents_dir, command),
        Command::Budgets { command: BudgetsCommand::Show { tenant } } => {
            let control = config.control_store()?;
            let tenant = tenant.unwrap_or_else(|| config.tenant.clone());
            let budget = mcp_engine::runs::tenant_budget(&config.budgets, &control, &tenant)?;
            let overrides: std::collections::BTreeMap<String, u64> =
                control.budget_overrides(&tenant)?.into_iter().collect();
            println!("budget of tenant {tenant} (before the [sandbox] ceilings):");
            for b in mcp_sandbox::Budget::ALL {
                let note = if overrides.contains_key(b.name()) { " (override)" } else { "" };
                println!("  {:<20} {}{note}", b.name(), budget.get(b));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Budgets { command: BudgetsCommand::Set { tenant, key, value } } => {
            let control = config.control_store()?;
            let budget = mcp_sandbox::Budget::parse(&key).with_context(|| format!("no budget named '{key}'"))?;
            let value = match value.as_str() {
                "default" => None,
                number => {
                    let number: u64 = number.parse().with_context(|| format!("'{number}' is not a number"))?;
                    mcp_sandbox::RunBudget::default().set(budget, number).map_err(anyhow::Error::msg)?;
                    Some(number)
                }
            };
            control.ensure_tenant(&tenant)?;
            control.set_budget_override(&tenant, budget.name(), value)?;
            println!("{tenant}: {} = {}", budget.name(), value.map_or("default".to_string(), |v| v.to_string()));
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { agent } => {
            let registry = registry(&config, &agents_dir(cli.agents_dir, &config)?)?;
            std::fs::create_dir_all(&config.data_dir)
                .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
            let source = config.log_source()?;
            let control = config.control_store()?;
            notify_cli::apply_seed(&config, &control)?;
            let routes = Arc::new(control.route_book()?);
            let mut shared = config.shared_store()?;
            if let Some(shared) = &mut shared {
                shared.migrate()?;
                shared.route_with(routes.clone());
            }
            let mut store = match &shared {
                Some(shared) => ConfiguredStore::Shared(shared),
                None => {
                    let mut embedded = AnomalyStore::open(&config.anomalies_db())?;
                    embedded.route_with(routes);
                    ConfiguredStore::Embedded(embedded)
                }
            };
            let cache = config.shared_cache()?;
            println!("{}", cache.describe());
            let models = config.model_manager()?;
            // New version directories are picked up while the run goes on.
            models.watch(std::time::Duration::from_millis(config.model_watch_ms));
            let interval = std::time::Duration::from_millis(config.status_interval_ms);
            let names: Vec<String> = match agent {
                Some(name) => vec![registry.get(&name)?.info.name.clone()],
                None => registry.list().filter(|a| a.enabled).map(|a| a.info.name.clone()).collect(),
            };
            let registry = Arc::new(registry);
            let mut failed = false;
            for name in names {
                let outcome = RunBuilder::new(&config, registry.clone(), source.clone(), &config.tenant, &name)
                    .tenant_control(&control)
                    .and_then(|run| run.models(models.clone()).build())
                    .map(|run| {
                        let mut bar = progress::Progress::new(&name, None);
                        let ran = run.execute_as_job(&mut store, &cache, interval, &mut |report| bar.show_run(report));
                        bar.finish();
                        ran
                    });
                if let Ok((outcome, _)) = &outcome {
                    let settled =
                        mcp_engine::quarantine::settle(&control, &config.quarantine, &config.tenant, &name, outcome)?;
                    if let Some(held) = settled {
                        println!(
                            "{name:<10} quarantined until {} (ms since the epoch): {}",
                            held.until_ms, held.reason
                        );
                    }
                }
                match outcome {
                    Ok((outcome, job)) => match outcome.result {
                        Ok(r) if r.state_discarded.is_some() => println!(
                            "{:<10} {} entries, {} new anomalies; its stored state could not be restored and was dropped ({}); it was replayed to instead (job {})",
                            r.agent,
                            r.entries,
                            r.anomalies,
                            r.state_discarded.as_deref().unwrap_or_default(),
                            job.id
                        ),
                        Ok(r) => println!(
                            "{:<10} {} entries, {} new anomalies, {} quarantined, {} retried, {} replayed, {:.0} entries/s (job {})",
                            r.agent,
                            r.entries,
                            r.anomalies,
                            r.quarantined,
                            r.retries,
                            r.replayed,
                            r.entries_per_second(),
                            job.id
                        ),
                        Err(e) => {
                            failed = true;
                            println!("{name:<10} failed: {}", printable::one_line(&e.to_string()));
                        }
                    },
                    Err(e) => {
                        failed = true;
                        println!("{name:<10} failed: {}", printable::one_line(&e.to_string()));
                    }
                }
            }
            // What the runs queued goes out now; what fails waits in the
            // outbox for `mcp serve` or `mcp notify deliver`.
            if config.notifications.deliver {
                let deliverer = mcp_notify::Deliverer::open(&config)?;
                let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
                let handled = runtime.block_on(deliverer.drain())?;
                if handled > 0 {
                    let delivered: u64 = deliverer.metrics().snapshot(None).iter().map(|(_, c)| c.delivered).sum();
                    println!(
                        "notifications: {delivered} of {handled} delivered (the rest wait in the outbox: mcp notify outbox)"
                    );
                }
            }
            Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
        }
        Command::Db { command: DbCommand::CopyControl } => {
            if config.control_store != mcp_engine::config::StoreKind::Postgres {
                bail!("set control_store = \"postgres\" (or MCP_CONTROL_STORE=postgres) and database_url first");
            }
            let local = config.control_db();
            if !local.exists() {
                bail!("no control store at {} to copy (is data_dir the node's?)", local.display());
            }
            let from = mcp_storage::control::ControlStore::open(&local)?;
            if from.tenants()?.is_empty() {
                bail!("the control store at {} has no tenants: nothing to copy", local.display());
            }
            let to = config.control_store()?;
            for (table, rows) in mcp_storage::control_copy::copy_control_records(&from, &to)? {
                println!("{table}: {rows} rows copied");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Db { command: DbCommand::Migrate } => {
            let Some(url) = &config.database_url else {
                println!("no database_url configured: the embedded SQLite source creates its tables when opened");
                return Ok(ExitCode::SUCCESS);
            };
            let source = mcp_storage::source::PgLogSource::connect(
                url,
                config.database_schema.as_deref(),
                config.schema_files(),
            )?;
            source.migrate()?;
            println!("PostgreSQL log tables are up to date");
            Ok(ExitCode::SUCCESS)
        }
        Command::Db { command: DbCommand::Generate { log_types, entries, seed, profile } } => {
            let log_types: Vec<String> = if log_types.is_empty() {
                mcp_synth::LOG_TYPES.iter().map(|t| t.to_string()).collect()
            } else {
                log_types
            };
            std::fs::create_dir_all(&config.data_dir)
                .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
            let source = config.log_source()?;
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            for log_type in &log_types {
                let mut rows = mcp_synth::to_rows(&mcp_synth::generate_with(log_type, seed, entries, profile)?);
                // One shift for the whole type keeps every gap, so the
                // windowed rules see the same traffic.
                let newest = rows.iter().map(|r| r.timestamp_ms).max().unwrap_or(now_ms);
                for row in &mut rows {
                    row.timestamp_ms += now_ms - newest;
                }
                let attacks = rows.iter().filter(|r| r.label.is_some()).count();
                let added = source.append(&config.tenant, log_type, &rows)?;
                println!(
                    "generated {added} '{log_type}' entries ({attacks} labelled attacks, seed {seed}, {} profile) \
                     into the {} source for tenant {}, the newest at now",
                    profile.name(),
                    source.name(),
                    config.tenant
                );
            }
            println!("next: `mcp run` finds their anomalies; `mcp serve` shows them at /ui/");
            Ok(ExitCode::SUCCESS)
        }
        Command::Db { command: DbCommand::Load { file, log_type } } => {
            if !mcp_storage::schema::valid_log_type(&log_type) {
                bail!("log type '{}' must be 1 to 64 of a-z, 0-9, '-' and '_'", log_type.escape_debug());
            }
            let schemas = config.schema_files();
            if schemas.shape(&log_type)?.is_none() {
                println!(
                    "note: no {log_type}.yaml on the schema search path ({}): the rows load untyped, and agents \
                     that read schema versions will not run on them until one is there",
                    schemas.describe()
                );
            }
            std::fs::create_dir_all(&config.data_dir)
                .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
            let source = config.log_source()?;
            let opened = std::fs::File::open(&file).with_context(|| format!("cannot open {}", file.display()))?;
            let size = opened.metadata().map(|m| m.len()).ok();
            let input = std::io::BufReader::new(opened);
            let mut bar = progress::Progress::new("load", size);
            let report = mcp_storage::source::load::load_json_lines_observed(
                &*source,
                &config.tenant,
                &log_type,
                input,
                &mut |bytes| bar.update(bytes, size, || format!("{} MiB", bytes >> 20)),
            );
            bar.finish();
            let report = report?;
            println!(
                "loaded {} '{log_type}' lines into the {} source for tenant {} ({} unreadable, stored for quarantine)",
                report.lines,
                source.name(),
                config.tenant,
                report.unreadable
            );
            if report.unreadable == 0 {
                return Ok(ExitCode::SUCCESS);
            }
            // Every line is stored; the status tells a script that some will
            // only reach quarantine, and the file should not be loaded again.
            for (line, reason) in &report.first_unreadable {
                println!("  line {line}: {reason}");
            }
            println!(
                "{} line(s) could not be read; they are stored and the next run quarantines them with this reason \
                 (docs/log_schemas.md shows a line of each log type). Do not load the file again.",
                report.unreadable
            );
            Ok(ExitCode::FAILURE)
        }
        Command::Models { command } => models_cli::run(&config, cli.agents_dir, command),
        Command::Eval { seed, entries, profile } => {
            models_cli::run(&config, cli.agents_dir, models_cli::ModelsCommand::Evaluate { seed, entries, profile })
        }
        Command::Tokens { command: TokensCommand::List { tenant } } => {
            let control = config.control_store()?;
            println!("{:>5} {:<24} {:<13} {:<14} {:<14} created by", "id", "name", "role", "created", "last used");
            for t in control.tokens(&tenant)? {
                let last = t.last_used_ms.map_or("never".to_string(), |ms| ms.to_string());
                let by = t.created_by.map_or("command line".to_string(), |id| format!("token {id}"));
                println!("{:>5} {:<24} {:<13} {:<14} {:<14} {by}", t.id, t.name, t.role, t.created_ms, last);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Tokens { command: TokensCommand::Revoke { tenant, id } } => {
            let control = config.control_store()?;
            if !control.revoke_token(&tenant, id)? {
                anyhow::bail!("tenant {tenant} has no token {id}");
            }
            println!("token {id} of {tenant} revoked (a running server stops taking it within 30 s)");
            Ok(ExitCode::SUCCESS)
        }
        Command::Tenants { command } => tenants(&config, command),
        Command::Tokens { command: TokensCommand::Create { tenant, role, name } } => {
            let role = Role::parse(&role)
                .with_context(|| format!("role '{role}' must be read_only, tenant_admin, admin or deployment_admin"))?;
            let deployment = mcp_storage::control::DEPLOYMENT_TENANT;
            let tenant = match (tenant, role) {
                (None, Role::DeploymentAdmin) => deployment.to_string(),
                (Some(tenant), Role::DeploymentAdmin) if tenant != deployment => {
                    anyhow::bail!(
                        "deployment_admin tokens belong to the deployment ({deployment}), not to tenant {tenant}"
                    )
                }
                (Some(tenant), Role::TenantAdmin | Role::Admin) if tenant == deployment => {
                    anyhow::bail!("the deployment's tokens are deployment_admin or read_only")
                }
                (Some(tenant), _) => tenant,
                (None, _) => anyhow::bail!("say which tenant with --tenant"),
            };
            if tenant != deployment && !mcp_storage::control::valid_new_tenant(&tenant) {
                anyhow::bail!(mcp_storage::control::ControlError::BadTenant(tenant));
            }
            std::fs::create_dir_all(&config.data_dir)
                .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
            let control = config.control_store()?;
            control.ensure_tenant(&tenant)?;
            let (_, token) = control.create_named_token(&tenant, role, &name, None)?;
            println!("{token}");
            eprintln!("token for tenant {tenant} with role {}: shown once, only its hash is kept", role.name());
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve { listen } => {
            let address: std::net::SocketAddr = listen
                .as_deref()
                .unwrap_or(&config.listen)
                .parse()
                .with_context(|| "listen must be an address such as 127.0.0.1:8080")?;
            std::fs::create_dir_all(&config.data_dir)
                .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
            let shared = config.shared_store()?;
            if let Some(shared) = &shared {
                shared.migrate()?;
            }
            let control = config.control_store()?;
            if control.token_count()? == 0 {
                let token = control.create_token(&config.tenant, Role::Admin)?;
                let deployment =
                    control.create_token(mcp_storage::control::DEPLOYMENT_TENANT, Role::DeploymentAdmin)?;
                println!(
                    "first start: tenant '{}' created with an admin token (shown once):\n{token}\n\
                     and the deployment admin's token (tenants, budgets, the bundled agents' models; shown once):\n{deployment}\n",
                    config.tenant
                );
            }
            let registry = Arc::new(registry(&config, &agents_dir(cli.agents_dir, &config)?)?);
            let models = config.model_manager()?;
            models.watch(std::time::Duration::from_millis(config.model_watch_ms));
            let cache = Arc::new(config.shared_cache()?);
            println!("{}", cache.describe());
            println!("control plane on http://{address}: the console at /ui/, OpenAPI at /openapi.json, docs at /docs");
            let mut state = ApiState::new(config.clone(), control, registry, models, cache)?;
            if let Some(shared) = shared {
                state.keep_anomalies_in(shared);
            }
            let state = Arc::new(state);
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            let timeout = std::time::Duration::from_millis(config.shutdown_timeout_ms);
            let drained =
                runtime.block_on(mcp_api::serve_until(address, state, mcp_api::terminate_signal(), timeout))?;
            println!(
                "stopped: {} waiting runs and {} waiting exports withdrawn; {}",
                drained.runs_withdrawn,
                drained.exports_withdrawn,
                if drained.settled {
                    "every run and export going stopped at a committed batch"
                } else {
                    "some were still going at the bound and end with the process (the next run resumes from its checkpoint)"
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        // Both answered before the assets are installed (above).
        Command::Config { .. } => Ok(ExitCode::SUCCESS),
        Command::Jobs { command: JobsCommand::List } => {
            let cache = config.shared_cache()?;
            println!("{}\n", cache.describe());
            let jobs = cache.jobs(&config.tenant)?;
            println!("{:<28} {:<10} {:<40} counters", "job", "state", "subject");
            for job in &jobs {
                let counters: Vec<String> = job.counters.iter().map(|(k, v)| format!("{k}={v}")).collect();
                println!(
                    "{:<28} {:<10} {:<40} {}",
                    job.id,
                    format!("{:?}", job.state).to_lowercase(),
                    job.subject,
                    counters.join(" ")
                );
                if let Some(error) = &job.error {
                    println!("{:<28} error: {error}", "");
                }
            }
            println!("\n{} jobs for tenant {}", jobs.len(), config.tenant);
            if config.database_url.is_some() {
                cluster_cli::units_summary(&config);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Jobs { command: JobsCommand::Cancel { id } } => {
            let cache = config.shared_cache()?;
            if cache.job(&config.tenant, &id)?.is_none() {
                bail!("no job {id} for tenant {}; `mcp jobs list` shows the jobs kept", config.tenant);
            }
            mcp_engine::jobs::request_cancel(&cache, &config.tenant, &id)?;
            println!("asked job {id} to stop after its current batch");
            Ok(ExitCode::SUCCESS)
        }
        Command::Quarantine { command: QuarantineCommand::List { raw } } => {
            let source = config.log_source()?;
            let rows = source.quarantined(&config.tenant)?;
            println!("{:<10} {:<10} {:<7} reason", "log id", "log type", "schema");
            for row in &rows {
                let reason = printable::one_line(&row.reason);
                println!("{:<10} {:<10} {:<7} {reason}", row.log_id, row.log_type, row.schema_version);
                if raw {
                    println!("           raw: {}", printable::one_line(&row.raw));
                }
            }
            println!("\n{} quarantined rows for tenant {}", rows.len(), config.tenant);
            Ok(ExitCode::SUCCESS)
        }
        Command::Notify { command } => notify_cli::run(&config, command),
        Command::Anomalies { command } => anomalies_cli::run(&config, command),
        Command::Backfill { command } => cluster_cli::backfill(&config, &agents_dir(cli.agents_dir, &config)?, command),
        Command::Worker(args) => cluster_cli::worker(&config, &agents_dir(cli.agents_dir, &config)?, args),
        Command::Nodes { command } => cluster_cli::nodes(&config, command),
        Command::Export(args) => {
            export_cli::run(&config, &args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(args) => {
            if args.boundary {
                // The boundary measurement needs a test fixture, which the
                // production binary does not carry.
                bail!(
                    "the boundary measurement moved to the test crate: cargo run --release -p mcp-tests --bin boundary-bench -- [ENTRIES BATCH ROUNDS]"
                );
            }
            if let Some(count) = args.fill_anomalies {
                bench_api::fill(&config, count)?;
                return Ok(ExitCode::SUCCESS);
            }
            if args.models {
                let registry = registry(&config, &agents_dir(cli.agents_dir, &config)?)?;
                bench_models::run(&config, &registry, args.entries, args.rounds)?;
                return Ok(ExitCode::SUCCESS);
            }
            if let Some(count) = args.notify {
                bench_notify::run(&config, count, args.rounds)?;
                return Ok(ExitCode::SUCCESS);
            }
            if args.languages {
                let dir = agents_dir(cli.agents_dir, &config)?;
                bench_languages::run(&config, &dir, args.entries, args.batch, args.rounds)?;
                return Ok(ExitCode::SUCCESS);
            }
            if let Some(instances) = args.density {
                let dir = agents_dir(cli.agents_dir, &config)?;
                bench_density::run(&config, &dir, instances, args.density_tenants, args.density_batch, args.rounds)?;
                return Ok(ExitCode::SUCCESS);
            }
            if args.cache {
                bench_cache::run(&config, &agents_dir(cli.agents_dir, &config)?)?;
                return Ok(ExitCode::SUCCESS);
            }
            if !args.nodes.is_empty() {
                let dir = agents_dir(cli.agents_dir, &config)?;
                bench_nodes::run(&config, &dir, &args.nodes, args.nodes_rows, args.rows_per_unit)?;
                return Ok(ExitCode::SUCCESS);
            }
            if !args.follow.is_empty() {
                bench_follow::run(&config, &agents_dir(cli.agents_dir, &config)?, &args.follow, args.follow_seconds)?;
                return Ok(ExitCode::SUCCESS);
            }
            if let Some(rows) = args.pipeline {
                bench_pipeline::run(&config, &agents_dir(cli.agents_dir, &config)?, rows)?;
                return Ok(ExitCode::SUCCESS);
            }
            bench::run(&config, &agents_dir(cli.agents_dir, &config)?, &args)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `mcp tenants ...`: the same changes as the API's, for the operator.
fn tenants(config: &McpConfig, command: TenantsCommand) -> Result<ExitCode> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
    let control = config.control_store()?;
    match command {
        TenantsCommand::List => {
            println!("{:<24} {:<14} {:<14} tokens", "name", "created", "disabled");
            for t in control.tenant_records()? {
                let disabled = t.disabled_ms.map_or("-".to_string(), |ms| ms.to_string());
                println!("{:<24} {:<14} {:<14} {}", t.name, t.created_ms, disabled, t.tokens);
            }
        }
        TenantsCommand::Create { name } => {
            if !mcp_storage::control::valid_new_tenant(&name) {
                anyhow::bail!(mcp_storage::control::ControlError::BadTenant(name));
            }
            control.ensure_tenant(&name)?;
            println!("tenant {name} exists; `mcp tokens create --tenant {name} --role tenant_admin` gives it a token");
        }
        TenantsCommand::Disable { name }
            if name == config.tenant || name == mcp_storage::control::DEPLOYMENT_TENANT =>
        {
            anyhow::bail!("{name} is the deployment's own tenant");
        }
        TenantsCommand::Disable { name } => {
            anyhow::ensure!(control.set_tenant_disabled(&name, true)?, "no tenant named '{name}'");
            println!("tenant {name} disabled: its tokens stop working (within 30 s on a running server)");
        }
        TenantsCommand::Enable { name } => {
            anyhow::ensure!(control.set_tenant_disabled(&name, false)?, "no tenant named '{name}'");
            println!("tenant {name} enabled");
        }
        TenantsCommand::Delete { name } => {
            let own = name == config.tenant || name == mcp_storage::control::DEPLOYMENT_TENANT;
            anyhow::ensure!(!own, "{name} is the deployment's own tenant");
            anyhow::ensure!(control.delete_tenant(&name)?, "no tenant named '{name}'");
            // Its uploaded components and its own models go with it; the
            // name was a valid tenant's.
            for files in [config.data_dir.join("agents").join(&name), config.data_dir.join("tenants").join(&name)] {
                if files.exists() {
                    std::fs::remove_dir_all(&files).with_context(|| format!("cannot remove {}", files.display()))?;
                }
            }
            println!("tenant {name} deleted: tokens and control records gone; audit trail, logs and anomalies kept");
        }
    }
    Ok(ExitCode::SUCCESS)
}
