//! `mcp bench --pipeline ROWS`: PostgreSQL to the anomaly store, end to end,
//! with the three bundled agents, in a PostgreSQL schema of its own that is
//! dropped afterwards. Reports rows per second and the process's peak
//! resident memory.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use mcp_engine::config::McpConfig;
use mcp_engine::runs::RunBuilder;
use mcp_sandbox::registry::Registry;
use mcp_sandbox::{CompileCache, Sandbox};
use mcp_storage::source::{LogSource, NewRow, PgLogSource};
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
    let url = config
        .database_url
        .clone()
        .context("the pipeline benchmark needs PostgreSQL: set database_url in the config or MCP_DATABASE_URL")?;
    let namespace = format!("mcp_bench_{}", std::process::id());
    let source = Arc::new(PgLogSource::connect(&url, Some(&namespace), config.schema_files())?);
    let outcome = measure(config, agents_dir, &source, rows);
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

fn measure(config: &McpConfig, agents_dir: &Path, source: &Arc<PgLogSource>, rows: usize) -> Result<()> {
    source.migrate()?;
    let load_started = Instant::now();
    let per_type = load_generated(source.as_ref(), "bench", rows)?;
    let load = load_started.elapsed();
    let dir = tempfile::tempdir()?;
    let mut store = AnomalyStore::open(&dir.path().join("anomalies.db"))?;
    let mut registry =
        Registry::new(Arc::new(Sandbox::new(config.sandbox.clone(), CompileCache::new(Some(config.cache_dir())))?));
    registry.discover(agents_dir)?;
    let registry = Arc::new(registry);
    println!(
        "pipeline: {} rows ({per_type} per log type) in PostgreSQL, loaded with COPY in {:.1} s",
        per_type * 3,
        load.as_secs_f64()
    );
    println!("{:<10} {:>10} {:>10} {:>12} {:>10}", "agent", "rows", "anomalies", "rows/s", "seconds");
    let started = Instant::now();
    let mut total = 0;
    for log_type in generator::LOG_TYPES {
        let source: Arc<dyn LogSource> = source.clone();
        let run = RunBuilder::new(config, registry.clone(), source, "bench", log_type).build()?;
        let report = run.execute(&mut store, &mut |_| std::ops::ControlFlow::Continue(())).result?;
        total += report.entries;
        println!(
            "{:<10} {:>10} {:>10} {:>12.0} {:>10.1}",
            report.agent,
            report.entries,
            report.anomalies,
            report.entries_per_second(),
            report.elapsed.as_secs_f64()
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
