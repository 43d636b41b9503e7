//! `mcp backfill`, `mcp worker` and `mcp nodes`: many nodes sharing the
//! work of one deployment through PostgreSQL (docs/scaling.md).

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Subcommand;
use mcp_engine::config::McpConfig;
use mcp_engine::worker::{WorkerContext, WorkerOptions};
use mcp_storage::cluster::{Backfill, Cluster};

use crate::printable::one_line;

#[derive(Subcommand)]
pub enum BackfillCommand {
    /// Cut the tenant's stored logs into units of work that `mcp worker` nodes claim; planning again adds
    /// units for rows that came since.
    Plan {
        /// The tenant (default: the config's).
        #[arg(long)]
        tenant: Option<String>,
        /// One agent; every enabled agent when omitted.
        #[arg(long)]
        agent: Option<String>,
        /// Rows per unit; 0 (the default) makes one unit per agent, which every agent's results match a
        /// single run's in. Smaller units spread one agent over nodes (docs/scaling.md says which agents
        /// that suits).
        #[arg(long, default_value_t = 0)]
        rows_per_unit: u64,
        /// Also add, per agent, a unit that follows new rows from where the planned ones end: `mcp worker`
        /// nodes keep detecting as logs arrive (continuous detection).
        #[arg(long)]
        follow: bool,
    },
    /// Try a failed unit again from its checkpoint (after fixing what `status` shows as its last error).
    Retry {
        /// The unit's id, as `status` shows it.
        unit: i64,
    },
    /// Every unit: its range, checkpoint, holder and status.
    Status {
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum NodesCommand {
    /// The nodes, their heartbeats and the units they hold.
    List {
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Forget a node known to be dead: its units are free at once instead of when its leases expire.
    Forget {
        /// The node's name, as `list` shows it.
        name: String,
        /// Even if it beat within its lease time: its units are free at once; if it was alive after all,
        /// it joins again at its next heartbeat, and its commits to any unit another node took meanwhile
        /// are refused.
        #[arg(long)]
        force: bool,
    },
}

#[derive(clap::Args)]
pub struct WorkerArgs {
    /// This node's name in the shared table (default: host name and process id).
    #[arg(long)]
    pub node: Option<String>,
    /// Units run at once.
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// Exit once every range is done or failed, instead of waiting for more; following units are left
    /// to other nodes.
    #[arg(long)]
    pub until_done: bool,
    /// Take no following units (continuous detection), only ranges.
    #[arg(long)]
    pub no_follow: bool,
    /// How long a unit stays this node's without a heartbeat (beats come every third of it).
    #[arg(long, default_value = "15s")]
    pub lease_ttl: humantime::Duration,
    /// The wait between two looks for work when none is open.
    #[arg(long, default_value = "500ms")]
    pub poll: humantime::Duration,
}

/// A connection for the commands that hold no lease (planning, listing);
/// `migrate` creates the shared tables first, for the commands that write.
fn observer(config: &McpConfig, migrate: bool) -> Result<Cluster> {
    let cluster = config.cluster(&format!("observer-{}", std::process::id()), Duration::from_secs(15))?;
    if migrate {
        cluster.migrate()?;
    }
    Ok(cluster)
}

/// One line on the tenant's work units for `mcp jobs list`: their status
/// is in PostgreSQL, not among the jobs above it.
pub fn units_summary(config: &McpConfig) {
    let listed = observer(config, false).and_then(|cluster| Ok(cluster.units()?));
    match listed {
        Ok(all) => {
            let mine: Vec<_> = all.iter().filter(|u| u.tenant == config.tenant).collect();
            if mine.is_empty() {
                return;
            }
            let count = |status: &str| mine.iter().filter(|u| u.status == status).count();
            println!(
                "work units of tenant {} (PostgreSQL, shared by every node): {} held, {} open, {} done, {} failed; \
                 `mcp backfill status` lists them",
                config.tenant,
                count("held"),
                count("open"),
                count("done"),
                count("failed")
            );
        }
        Err(e) => println!("work units: PostgreSQL did not answer ({e})"),
    }
}

/// "1 unit", "2 units".
fn units(count: usize) -> String {
    if count == 1 { "1 unit".into() } else { format!("{count} units") }
}

/// The fewest rows a range unit may have: each unit costs a claim and an
/// agent start, and every cut between units is a place where an agent
/// starts from the state before it or from the replay window.
const MIN_ROWS_PER_UNIT: u64 = 1_000;

pub fn backfill(config: &McpConfig, agents_dir: &Path, command: BackfillCommand) -> Result<ExitCode> {
    match command {
        BackfillCommand::Plan { tenant, agent, rows_per_unit, follow } => {
            if rows_per_unit != 0 && rows_per_unit < MIN_ROWS_PER_UNIT {
                anyhow::bail!(
                    "--rows-per-unit {rows_per_unit} is too small: at least {MIN_ROWS_PER_UNIT} (or 0 for one unit per \
                     agent); each unit costs a claim and an agent start"
                );
            }
            let tenant = tenant.unwrap_or_else(|| config.tenant.clone());
            if !mcp_storage::control::valid_new_tenant(&tenant) {
                anyhow::bail!("'{}' is not a tenant name (1 to 64 of a-z, 0-9, '-' and '_')", tenant.escape_debug());
            }
            let cluster = observer(config, true)?;
            let registry = crate::registry(config, agents_dir)?;
            let agents: Vec<(String, String)> = match agent {
                Some(name) => {
                    let agent = registry.get(&name)?;
                    vec![(agent.info.name.clone(), agent.info.log_type.clone())]
                }
                None => registry
                    .list()
                    .filter(|a| a.enabled)
                    .map(|a| (a.info.name.clone(), a.info.log_type.clone()))
                    .collect(),
            };
            for (agent, log_type) in &agents {
                let added = cluster.plan_backfill(&Backfill { tenant: &tenant, agent, log_type, rows_per_unit })?;
                println!("{agent:<10} {} added over tenant {tenant}'s stored '{log_type}' logs", units(added));
                if follow && cluster.plan_follow(&tenant, agent, log_type)? {
                    println!("{agent:<10} a following unit added: new '{log_type}' logs of {tenant} as they arrive");
                }
            }
            println!("next: start `mcp worker` on each node (`--until-done` to exit when the work is done)");
            Ok(ExitCode::SUCCESS)
        }
        BackfillCommand::Retry { unit } => {
            if !observer(config, false)?.retry_unit(unit)? {
                anyhow::bail!("unit {unit} has not failed: `mcp backfill status` shows each unit's status");
            }
            println!("unit {unit} is open again; a worker takes it from its checkpoint");
            Ok(ExitCode::SUCCESS)
        }
        BackfillCommand::Status { json } => {
            let units = observer(config, false)?.units()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&units)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:>6} {:<12} {:<10} {:<10} {:>10} {:>10} {:>10} {:<7} {:<24} {:>5} {:>9}",
                "unit", "tenant", "agent", "log type", "after", "up to", "at", "status", "holder", "token", "anomalies"
            );
            for u in &units {
                println!(
                    "{:>6} {:<12} {:<10} {:<10} {:>10} {:>10} {:>10} {:<7} {:<24} {:>5} {:>9}",
                    u.id,
                    one_line(&u.tenant),
                    one_line(&u.agent),
                    one_line(&u.log_type),
                    u.start_after,
                    if u.follows() { "follows".to_string() } else { u.up_to.to_string() },
                    u.checkpoint,
                    u.status,
                    one_line(u.holder.as_deref().unwrap_or("-")),
                    u.token,
                    u.anomalies
                );
                if let Some(error) = &u.last_error {
                    println!("       failed {} times, last: {}", u.failures, one_line(error));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub fn nodes(config: &McpConfig, command: NodesCommand) -> Result<ExitCode> {
    let json = match command {
        NodesCommand::List { json } => json,
        NodesCommand::Forget { name, force } => {
            return match observer(config, false)?.forget_node(&name, force)? {
                Some(freed) => {
                    println!("node {name} forgotten; {} free to claim", units(usize::try_from(freed)?));
                    Ok(ExitCode::SUCCESS)
                }
                None => anyhow::bail!(
                    "no node '{}' has stopped beating (none has that name, or it is alive: --force forgets a live \
                     one); `mcp nodes list` shows the nodes",
                    name.escape_debug()
                ),
            };
        }
    };
    let nodes = observer(config, false)?.nodes()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&nodes)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:<28} {:<20} {:>8} {:>14} {:<6} leases", "node", "host", "pid", "heartbeat ago", "alive");
    for n in &nodes {
        let leases: Vec<String> = n.leases.iter().map(i64::to_string).collect();
        println!(
            "{:<28} {:<20} {:>8} {:>12}ms {:<6} {}",
            one_line(&n.name),
            one_line(&n.host),
            n.pid,
            n.heartbeat_age_ms,
            if n.alive { "yes" } else { "no" },
            if leases.is_empty() { "-".to_string() } else { leases.join(",") }
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn worker(config: &McpConfig, agents_dir: &Path, args: WorkerArgs) -> Result<ExitCode> {
    let lease_ttl: Duration = args.lease_ttl.into();
    if lease_ttl < Duration::from_secs(1) || lease_ttl > Duration::from_secs(600) {
        anyhow::bail!(
            "--lease-ttl {} is out of range: 1s to 10min (15s by default); a lease must outlast a batch and a \
             heartbeat, and a dead node's units wait that long",
            args.lease_ttl
        );
    }
    if args.concurrency == 0 {
        anyhow::bail!("--concurrency 0 would run nothing: give 1 or more");
    }
    let node = args.node.unwrap_or_else(|| format!("{}-{}", mcp_storage::cluster::hostname(), std::process::id()));
    let mut cluster = config.cluster(&node, lease_ttl)?;
    cluster.migrate()?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
    let registry = Arc::new(crate::registry(config, agents_dir)?);
    let control = config.control_store()?;
    // The outbox is beside the anomalies: on PostgreSQL, where units
    // commit, only when the deployment serves its anomalies from there.
    if config.anomaly_store == mcp_engine::config::StoreKind::Postgres {
        crate::notify_cli::apply_seed(config, &control)?;
        cluster.route_with(Arc::new(control.route_book()?));
    }
    let models = config.model_manager()?;
    models.watch(Duration::from_millis(config.model_watch_ms));
    let context = WorkerContext { config, registry, source: config.log_source()?, control: &control, models };
    let options = WorkerOptions {
        concurrency: args.concurrency,
        until_done: args.until_done,
        // A poll of nothing would spin a core.
        poll: Duration::from(args.poll).max(Duration::from_millis(10)),
        follow: !args.no_follow,
        ..WorkerOptions::default()
    };
    let stop = Arc::new(AtomicBool::new(false));
    stop_on_signal(stop.clone())?;
    let delivery = deliver_beside(config, &stop)?;
    println!("node {node} joining (lease {})", args.lease_ttl);
    if args.until_done && cluster.units()?.is_empty() {
        println!("no units are planned: `mcp backfill plan` makes them");
    }
    let report = mcp_engine::worker::work(&context, &cluster, &options, &stop);
    let signalled = stop.swap(true, Ordering::Relaxed);
    let delivery = match delivery {
        Some((thread, deliverer)) => match thread.join() {
            Ok(runtime) => Some((runtime, deliverer)),
            Err(_) => {
                eprintln!("notification delivery stopped with a panic");
                None
            }
        },
        None => None,
    };
    let report = report?;
    // A backfill run to its end sends what it queued, as `mcp run` does;
    // what fails waits in the outbox for any node.
    if let Some((runtime, deliverer)) = delivery
        && args.until_done
        && !signalled
    {
        let delivered = || -> u64 { deliverer.metrics().snapshot(None).iter().map(|(_, c)| c.delivered).sum() };
        let before = delivered();
        let handled = runtime.block_on(deliverer.drain())?;
        println!("notifications: {} of {handled} delivered", delivered() - before);
    }
    let count = |counter: &std::sync::atomic::AtomicU64| usize::try_from(counter.load(Ordering::Relaxed)).unwrap_or(0);
    println!(
        "node {node}: {} finished, {} entries, {} new anomalies; {} lost to other nodes, {} failed runs (each \
         gave its unit back), {} given to other nodes for their share, {} left at their checkpoint on stop",
        units(count(&report.finished)),
        report.entries.load(Ordering::Relaxed),
        report.anomalies.load(Ordering::Relaxed),
        units(count(&report.lost)),
        report.failed.load(Ordering::Relaxed),
        units(count(&report.rebalanced)),
        units(count(&report.left))
    );
    if args.until_done {
        let failed: Vec<String> =
            cluster.units()?.into_iter().filter(|u| u.status == "failed").map(|u| u.id.to_string()).collect();
        if !failed.is_empty() {
            eprintln!(
                "units failed: {} (`mcp backfill status` shows why; `mcp backfill retry UNIT` after fixing it)",
                failed.join(", ")
            );
            return Ok(ExitCode::FAILURE);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// With the anomalies (and so the outbox) on PostgreSQL, a worker node
/// delivers notifications too, on a thread of its own until `stop`: every
/// node claims from the one outbox, so any of them may send. The thread
/// hands its runtime back when it ends, so that the deliverer and its
/// connections serve a last drain.
type Delivery = (std::thread::JoinHandle<tokio::runtime::Runtime>, Arc<mcp_notify::Deliverer>);

fn deliver_beside(config: &McpConfig, stop: &Arc<AtomicBool>) -> Result<Option<Delivery>> {
    if config.anomaly_store != mcp_engine::config::StoreKind::Postgres || !config.notifications.deliver {
        return Ok(None);
    }
    let deliverer = mcp_notify::Deliverer::open(config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let (stop, running) = (stop.clone(), deliverer.clone());
    let thread = std::thread::Builder::new().name("mcp-delivery".into()).spawn(move || {
        runtime.block_on(running.run(stop));
        runtime
    })?;
    Ok(Some((thread, deliverer)))
}

/// SIGTERM or SIGINT sets `stop`: runs stop at their next committed batch
/// and the node leaves, giving its units back.
fn stop_on_signal(stop: Arc<AtomicBool>) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    std::thread::Builder::new().name("mcp-signals".into()).spawn(move || {
        runtime.block_on(async {
            let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
                return;
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            tracing::info!("stopping: runs stop at their next batch and the node leaves");
            stop.store(true, Ordering::Relaxed);
        });
    })?;
    Ok(())
}
