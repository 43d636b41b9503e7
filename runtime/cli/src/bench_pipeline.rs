//! `mcp bench --pipeline ROWS`: log source to the anomaly store, end to end,
//! with the three bundled agents as a default run has them (rules and
//! models). The source is PostgreSQL when `database_url` is set, in a schema
//! of the benchmark's own that is dropped afterwards, and otherwise the
//! embedded SQLite source in a folder of its own. Reports rows per second
//! and the process's peak resident memory.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use mcp_engine::config::McpConfig;
use mcp_engine::runs::RunBuilder;
use mcp_sandbox::registry::Registry;
use mcp_sandbox::{CompileCache, Sandbox};
use mcp_storage::source::{LogSource, NewRow, PgLogSource, SqliteLogSource};
use mcp_storage::store::AnomalyStore;
use mcp_synth::{self as generator, EPOCH_START_MS};

/// Generated rows are made once per type and repeated with later timestamps,
/// so that tens of millions of rows need no more memory than one block.
const BLOCK: usize = 100_000;

fn peak_resident_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kib| kib / 1024)
}

pub fn run(config: &McpConfig, agents_dir: &Path, rows: usize) -> Result<()> {
    let Some(url) = config.database_url.clone() else {
        let dir = tempfile::tempdir()?;
        let source = Arc::new(SqliteLogSource::open(&dir.path().join("logs.db"), config.schema_files())?);
        return measure(config, agents_dir, source, "the embedded SQLite source", rows);
    };
    let namespace = format!("mcp_bench_{}", std::process::id());
    let source = Arc::new(PgLogSource::connect(&url, Some(&namespace), config.schema_files())?);
    source.migrate()?;
    let outcome = measure(config, agents_dir, source.clone(), "PostgreSQL", rows);
    source.drop_namespace()?;
    outcome
}

/// Appends `rows` generated rows for `tenant`, a third of each log type,
/// with one block per type repeated at later times; returns the rows per
/// type.
pub(crate) fn load_generated(source: &dyn LogSource, tenant: &str, rows: usize) -> Result<usize> {
    let per_type = rows.div_ceil(generator::LOG_TYPES.len());
    for log_type in generator::LOG_TYPES {
        let block: Vec<NewRow> =
            generator::to_rows(&generator::generate(log_type, 5, BLOCK)?).into_iter().take(BLOCK).collect();
        let span = block.last().map_or(0, |r| r.timestamp_ms - EPOCH_START_MS) + 1;
        let mut loaded = 0;
        let mut repeat = 0i64;
        while loaded < per_type {
            let take = (per_type - loaded).min(block.len());
            let shifted: Vec<NewRow> = block[..take]
                .iter()
                .map(|r| NewRow { timestamp_ms: r.timestamp_ms + repeat * span, ..r.clone() })
                .collect();
            source.append(tenant, log_type, &shifted)?;
            loaded += take;
            repeat += 1;
        }
    }
    Ok(per_type)
}

fn measure(
    config: &McpConfig,
    agents_dir: &Path,
    source: Arc<dyn LogSource>,
    described: &str,
    rows: usize,
) -> Result<()> {
    let load_started = Instant::now();
    let per_type = load_generated(source.as_ref(), "bench", rows)?;
    let load = load_started.elapsed();
    let dir = tempfile::tempdir()?;
    let mut store = AnomalyStore::open(&dir.path().join("anomalies.db"))?;
    let mut registry =
        Registry::new(Arc::new(Sandbox::new(config.sandbox.clone(), CompileCache::new(Some(config.cache_dir())))?));
    registry.discover(agents_dir)?;
    let registry = Arc::new(registry);
    // As a default run has them: each agent with its deployed model.
    let models = config.model_manager()?;
    println!(
        "pipeline: {} rows ({per_type} per log type) in {described}, loaded in {:.1} s; agents with their models",
        per_type * 3,
        load.as_secs_f64()
    );
    println!(
        "{:<10} {:>10} {:>10} {:>12} {:>10} {:>12}",
        "agent", "rows", "anomalies", "rows/s", "seconds", "agent share"
    );
    let started = Instant::now();
    let mut total = 0;
    for log_type in generator::LOG_TYPES {
        let run = RunBuilder::new(config, registry.clone(), source.clone(), "bench", log_type)
            .models(models.clone())
            .build()?;
        let report = run.execute(&mut store, &mut |_| std::ops::ControlFlow::Continue(())).result?;
        total += report.entries;
        // The share of the run's wall time spent in agent calls: with the
        // next page read meanwhile, the rest is what reading did not hide.
        println!(
            "{:<10} {:>10} {:>10} {:>12.0} {:>10.1} {:>11.0}%",
            report.agent,
            report.entries,
            report.anomalies,
            report.entries_per_second(),
            report.elapsed.as_secs_f64(),
            100.0 * report.agent_time.as_secs_f64() / report.elapsed.as_secs_f64().max(1e-9)
        );
    }
    let elapsed = started.elapsed();
    println!(
        "all three: {total} rows in {:.1} s, {:.0} rows/s end to end; peak resident memory {} MiB",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64().max(1e-9),
        peak_resident_mib().map_or_else(|| "unknown".to_string(), |m| m.to_string())
    );
    Ok(())
}
