//! `mcp bench --follow RATES`: continuous detection's latency. For each
//! insert rate, in a PostgreSQL schema of its own (dropped afterwards), a
//! worker in this process follows the three bundled agents' log types
//! while rows are written at that rate in ticks of 100 ms. A tick's
//! latency is from its rows' commit to the moment every following unit's
//! checkpoint is seen past them: a row's findings commit in the
//! transaction that moves the checkpoint past it, so that is when they are
//! stored. Reports p50, p99 and the maximum over the ticks, the backlog
//! when the writing stopped, and how long the worker took to catch up.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use mcp_engine::config::McpConfig;
use mcp_engine::worker::{WorkerContext, WorkerOptions};
use mcp_sandbox::registry::Registry;
use mcp_storage::cluster::Cluster;
use mcp_storage::control::ControlStore;
use mcp_storage::source::{LogSource, NewRow, PgLogSource};
use mcp_synth as generator;

/// Rows are written in ticks of this length.
const TICK: Duration = Duration::from_millis(100);
/// How often the worker looks for new rows.
const POLL: Duration = Duration::from_millis(50);
const TENANT: &str = "bench";

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

pub fn run(config: &McpConfig, agents_dir: &Path, rates: &[u32], seconds: u64) -> Result<()> {
    let url = config
        .database_url
        .clone()
        .context("the latency benchmark needs PostgreSQL: set database_url in the config or MCP_DATABASE_URL")?;
    let registry = Arc::new(crate::registry(config, agents_dir)?);
    println!(
        "continuous detection: the three bundled agents follow rows written for {seconds} s at each rate; \
         the worker looks for new rows every {} ms",
        POLL.as_millis()
    );
    println!(
        "{:>10} {:>10} {:>10} {:>9} {:>9} {:>9} {:>14} {:>12}",
        "asked/s", "written/s", "anomalies", "p50 ms", "p99 ms", "max ms", "backlog rows", "caught up s"
    );
    for &rate in rates {
        let namespace = format!("mcp_bench_follow_{}_{rate}", std::process::id());
        let mut config = config.clone();
        config.database_schema = Some(namespace.clone());
        let source = Arc::new(PgLogSource::connect(&url, Some(&namespace), config.schema_files())?);
        source.migrate()?;
        let outcome = measure(&config, registry.clone(), &source, rate, Duration::from_secs(seconds));
        source.drop_namespace()?;
        outcome?;
    }
    Ok(())
}

/// When a tick's rows were written, and the newest id each log type had
/// then: the tick is detected once every following unit's checkpoint has
/// passed its id, since a row's findings commit with the checkpoint that
/// passes it.
struct Tick {
    written_at: Instant,
    last_ids: Vec<(String, u64)>,
}

fn measure(
    config: &McpConfig,
    registry: Arc<Registry>,
    source: &Arc<PgLogSource>,
    rate: u32,
    length: Duration,
) -> Result<()> {
    let cluster = config.cluster("bench", Duration::from_secs(5))?;
    for log_type in generator::LOG_TYPES {
        cluster.plan_follow(TENANT, log_type, log_type)?;
    }
    // Every agent enabled, whatever the configured tenants' settings say.
    let control_dir = tempfile::tempdir()?;
    let control = ControlStore::open(&control_dir.path().join("control.db"))?;
    let context = WorkerContext {
        config,
        registry,
        source: source.clone() as Arc<dyn LogSource>,
        control: &control,
        models: config.model_manager()?,
    };
    let options = WorkerOptions { poll: POLL, ..WorkerOptions::default() };
    let pools: Vec<(&str, Vec<NewRow>)> = generator::LOG_TYPES
        .iter()
        .map(|log_type| Ok((*log_type, generator::to_rows(&generator::generate(log_type, 9, 20_000)?))))
        .collect::<Result<_>>()?;
    let stop = AtomicBool::new(false);
    let writing = AtomicBool::new(true);
    let ticks = Mutex::new(VecDeque::<Tick>::new());
    let write_tick = |written: usize, per_tick: usize| -> Result<(usize, Tick)> {
        let mut added = 0;
        let mut last_ids = Vec::new();
        for (i, (log_type, pool)) in pools.iter().enumerate() {
            // The rate shared between the log types.
            let share = per_tick / pools.len() + usize::from(i < per_tick % pools.len());
            let rows: Vec<NewRow> = (0..share)
                .map(|k| NewRow { timestamp_ms: now_ms(), ..pool[(written + added + k) % pool.len()].clone() })
                .collect();
            added += usize::try_from(source.append(TENANT, log_type, &rows)?)?;
            last_ids.push((log_type.to_string(), cluster.last_row(TENANT, log_type)?));
        }
        Ok((added, Tick { written_at: Instant::now(), last_ids }))
    };
    let (written, elapsed, backlog, caught_up, mut latencies) = std::thread::scope(|scope| -> Result<_> {
        let worker = scope.spawn(|| mcp_engine::worker::work(&context, &cluster, &options, &stop));
        // Warm up: the worker claims the units and makes its instances on
        // the first rows, which are not measured.
        let (mut written, _) = write_tick(0, 300)?;
        let warming = Instant::now();
        while cluster.follow_backlog(TENANT)? > 0 && warming.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let warm_up_rows = written;
        let monitor = scope.spawn(|| watch_checkpoints(&cluster, &ticks, &writing));
        let per_tick = (u64::from(rate) * TICK.as_millis() as u64 / 1000).max(1) as usize;
        let started = Instant::now();
        let mut tick = 0u32;
        while started.elapsed() < length {
            let (added, written_tick) = write_tick(written, per_tick)?;
            written += added;
            ticks.lock().unwrap_or_else(PoisonError::into_inner).push_back(written_tick);
            tick += 1;
            if let Some(wait) = (TICK * tick).checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        let elapsed = started.elapsed();
        let backlog = cluster.follow_backlog(TENANT)?;
        let catching_up = Instant::now();
        while cluster.follow_backlog(TENANT)? > 0 && catching_up.elapsed() < Duration::from_secs(120) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let caught_up = catching_up.elapsed();
        writing.store(false, Ordering::Relaxed);
        let latencies = monitor.join().map_err(|_| anyhow::anyhow!("the monitor panicked"))??;
        stop.store(true, Ordering::Relaxed);
        worker.join().map_err(|_| anyhow::anyhow!("the worker panicked"))??;
        Ok((written - warm_up_rows, elapsed, backlog, caught_up, latencies))
    })?;
    latencies.sort_unstable();
    let at = |q: f64| latencies.get(((latencies.len() as f64 - 1.0) * q).round() as usize).map_or(0, |d| d.as_millis());
    let anomalies: i64 = cluster.units()?.iter().map(|u| u.anomalies).sum();
    println!(
        "{:>10} {:>10.0} {:>10} {:>9} {:>9} {:>9} {:>14} {:>12.1}",
        rate,
        written as f64 / elapsed.as_secs_f64(),
        anomalies,
        at(0.5),
        at(0.99),
        at(1.0),
        backlog,
        caught_up.as_secs_f64()
    );
    Ok(())
}

/// Every 5 ms, the ticks whose rows every following unit has passed, with
/// how long after their writing that was seen; until the writing stopped
/// and every tick was seen.
fn watch_checkpoints(cluster: &Cluster, ticks: &Mutex<VecDeque<Tick>>, writing: &AtomicBool) -> Result<Vec<Duration>> {
    let mut latencies = Vec::new();
    loop {
        let checkpoints: Vec<(String, u64)> = cluster
            .units()?
            .into_iter()
            .filter(|u| u.follows())
            .map(|u| (u.log_type, u.checkpoint.unsigned_abs()))
            .collect();
        let seen = Instant::now();
        let mut pending = ticks.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(tick) = pending.front() {
            let passed = tick.last_ids.iter().all(|(log_type, id)| {
                checkpoints.iter().any(|(followed, checkpoint)| followed == log_type && checkpoint >= id)
            });
            if !passed {
                break;
            }
            latencies.push(seen.duration_since(tick.written_at));
            pending.pop_front();
        }
        let done = pending.is_empty() && !writing.load(Ordering::Relaxed);
        drop(pending);
        if done {
            return Ok(latencies);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
