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

pub fn run(config: &McpConfig, command: NotifyCommand) -> Result<ExitCode> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
    let control = ControlStore::open(&config.control_db())?;
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
