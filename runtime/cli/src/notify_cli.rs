//! `mcp notify`: send a test message on a channel, deliver what the outbox
//! holds without a server, and list the outbox.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use mcp_api::ControlStore;
use mcp_engine::config::McpConfig;
use mcp_storage::notify::{OutboxFilter, OutboxState, OutboxStore};
use mcp_storage::store::AnomalyStore;

#[derive(Subcommand)]
pub enum NotifyCommand {
    /// Send a test message on a channel now and print the receiver's answer.
    Test {
        /// The channel's name.
        channel: String,
        /// Whose channel (default: the config's tenant).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Deliver the notifications due now, then stop (or keep going with --watch).
    Deliver {
        /// Keep delivering until interrupted, as `mcp serve` does.
        #[arg(long)]
        watch: bool,
    },
    /// The tenant's notifications, newest first.
    Outbox {
        /// pending, sending, delivered, dead or dropped.
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        tenant: Option<String>,
    },
}

fn parse_state(name: &str) -> Result<OutboxState> {
    [OutboxState::Pending, OutboxState::Sending, OutboxState::Delivered, OutboxState::Dead, OutboxState::Dropped]
        .into_iter()
        .find(|s| s.name() == name)
        .with_context(|| format!("--state must be pending, sending, delivered, dead or dropped, not '{name}'"))
}

/// Applies config/notifications.toml, as a server would at its start.
pub fn apply_seed(config: &McpConfig, control: &ControlStore) -> Result<()> {
    mcp_notify::seed::apply(control, &config.notifications).context("notifications")?;
    Ok(())
}

/// `mcp config check`'s look at notifications: the operator's file as
/// `serve` would apply it, the sealing key, and whether each `MCP_SECRET_*`
/// the file names is set here (the service's environment may differ).
pub fn check(config: &McpConfig, report: &mut mcp_engine::config_check::CheckReport) {
    if let Err(e) = mcp_notify::secret::SecretKey::load(&config.notifications) {
        report.problem("notifications.secrets_key_file / MCP_SECRETS_KEY", e.to_string());
    }
    let Some(path) = mcp_notify::seed::seed_path(&config.notifications) else { return };
    match mcp_notify::seed::read(&path, &config.notifications) {
        Err(e) => report.problem("notifications.file", e.to_string()),
        Ok((channels, routes)) => {
            let mut missing = std::collections::BTreeSet::new();
            for channel in &channels {
                let spec: serde_json::Value = serde_json::from_str(&channel.spec).unwrap_or_default();
                for name in env_references(&spec) {
                    if std::env::var_os(&name).is_none() {
                        missing.insert((channel.tenant.clone(), channel.name.clone(), name));
                    }
                }
            }
            for (tenant, channel, name) in missing {
                report.problem(
                    format!("{}: channel {tenant}/{channel}", path.display()),
                    format!("{name} is not set in this environment; the channel cannot send where it is not"),
                );
            }
            report.checked.push(format!("{}: {} channels, {} routes", path.display(), channels.len(), routes.len()));
        }
    }
}

/// The environment variables a channel's settings name (`{"env": NAME}`).
fn env_references(value: &serde_json::Value) -> Vec<String> {
    match value {
        serde_json::Value::Object(map) => match (map.len(), map.get("env")) {
            (1, Some(serde_json::Value::String(name))) => vec![name.clone()],
            _ => map.values().flat_map(env_references).collect(),
        },
        serde_json::Value::Array(items) => items.iter().flat_map(env_references).collect(),
        _ => Vec::new(),
    }
}

pub fn run(config: &McpConfig, command: NotifyCommand) -> Result<ExitCode> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
    let control = config.control_store()?;
    apply_seed(config, &control)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match command {
        NotifyCommand::Test { channel, tenant } => {
            let tenant = tenant.unwrap_or_else(|| config.tenant.clone());
            let deliverer = mcp_notify::Deliverer::open(config)?;
            match runtime.block_on(deliverer.test(&tenant, &channel))? {
                Ok(delivery) => {
                    println!(
                        "delivered in {} ms: status {}, answer: {}",
                        delivery.latency_ms,
                        delivery.status.map_or("-".to_string(), |s| s.to_string()),
                        delivery.answer.as_deref().unwrap_or("(none)")
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(failure) => {
                    println!(
                        "not delivered after {} ms: {}{}",
                        failure.latency_ms,
                        failure.error,
                        failure.answer.map(|a| format!("; answer: {a}")).unwrap_or_default()
                    );
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        NotifyCommand::Deliver { watch } => {
            let deliverer = mcp_notify::Deliverer::open(config)?;
            if watch {
                let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
                runtime.block_on(deliverer.run(stop));
                return Ok(ExitCode::SUCCESS);
            }
            let handled = runtime.block_on(deliverer.drain())?;
            let counts = deliverer.metrics().snapshot(None);
            let delivered: u64 = counts.iter().map(|(_, c)| c.delivered).sum();
            let retried: u64 = counts.iter().map(|(_, c)| c.retried).sum();
            let dead: u64 = counts.iter().map(|(_, c)| c.dead_lettered).sum();
            println!("{handled} handled: {delivered} delivered, {retried} to retry later, {dead} dead-lettered");
            Ok(ExitCode::SUCCESS)
        }
        NotifyCommand::Outbox { state, limit, tenant } => {
            let tenant = tenant.unwrap_or_else(|| config.tenant.clone());
            let state = state.as_deref().map(parse_state).transpose()?;
            let filter = OutboxFilter { state, channel: None, before: None, limit };
            // The outbox is beside the anomalies: this node's file, or
            // PostgreSQL's with `anomaly_store = "postgres"`.
            let entries = match config.shared_store()? {
                Some(shared) => OutboxStore::Shared(&shared).outbox(&tenant, &filter)?,
                None => {
                    OutboxStore::Embedded(&mut AnomalyStore::open(&config.anomalies_db())?).outbox(&tenant, &filter)?
                }
            };
            println!(
                "{:>8}  {:<16} {:<8} {:>8} {:<10} {:>8}  last error",
                "id", "channel", "kind", "anomaly", "state", "attempts"
            );
            for e in entries {
                println!(
                    "{:>8}  {:<16} {:<8} {:>8} {:<10} {:>8}  {}",
                    e.id,
                    e.channel,
                    e.kind,
                    e.anomaly_id,
                    e.state.name(),
                    e.attempts,
                    e.last_error.unwrap_or_default()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
