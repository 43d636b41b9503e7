//! `mcp bench --nodes 1,2,3`: how a backfill grows with nodes. For each
//! count, in a PostgreSQL schema of its own (dropped afterwards), the same
//! generated rows are loaded, cut into units, and that many `mcp worker`
//! processes (this binary) share them until done. Reports the wall time,
//! rows per second, and the CPU the workers and PostgreSQL's processes
//! used, so that one can see which of them is the limit.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use mcp_engine::config::McpConfig;
use mcp_storage::cluster::Backfill;
use mcp_storage::source::PgLogSource;
use mcp_synth as generator;

const TENANT: &str = "bench";

/// Clock ticks a second of `/proc`'s CPU times (the kernel's USER_HZ,
/// 100 on every Linux this runs on).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU seconds used so far by each process named `postgres`, by pid.
/// Backends end with their connections, so a round samples them while it
/// goes and keeps each one's last figure.
fn postgres_cpu(seen: &mut HashMap<u32, f64>) {
    let Ok(entries) = std::fs::read_dir("/proc") else { return };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        if stat.contains("(postgres)") {
            seen.insert(pid, cpu_of(&stat, 13));
        }
    }
}

/// User plus system CPU seconds from a `/proc/<pid>/stat` line, starting at
/// field `first` (0-based, after the command's closing parenthesis: 13 for
/// the process's own, 15 for its waited-for children's).
fn cpu_of(stat: &str, first: usize) -> f64 {
    let Some(after) = stat.rfind(')').map(|i| &stat[i + 2..]) else { return 0.0 };
    let fields: Vec<&str> = after.split_whitespace().collect();
    // The fields after the command start at stat's third, so shift by 2.
    let at = |i: usize| fields.get(i - 2).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (at(first) + at(first + 1)) / TICKS_PER_SECOND
}

/// CPU seconds of this process's children that were waited for.
fn children_cpu() -> f64 {
    std::fs::read_to_string("/proc/self/stat").map_or(0.0, |stat| cpu_of(&stat, 15))
}

pub fn run(config: &McpConfig, agents_dir: &Path, counts: &[usize], rows: usize, rows_per_unit: u64) -> Result<()> {
    let url = config
        .database_url
        .clone()
        .context("the nodes benchmark needs PostgreSQL: set database_url in the config or MCP_DATABASE_URL")?;
    let binary = std::env::current_exe().context("cannot find this binary to start workers with")?;
    // Compiled once here, so the workers find the compile cache warm.
    crate::registry(config, agents_dir)?;
    println!(
        "backfill of {rows} rows ({} log types, units of {rows_per_unit} rows) by worker processes on this machine",
        generator::LOG_TYPES.len()
    );
    println!(
        "{:>6} {:>8} {:>10} {:>12} {:>13} {:>15} {:>10}",
        "nodes", "units", "seconds", "rows/s", "worker CPU s", "PostgreSQL CPU s", "anomalies"
    );
    for &count in counts {
        let namespace = format!("mcp_bench_nodes_{}_{count}", std::process::id());
        let source = PgLogSource::connect(&url, Some(&namespace), config.schema_files())?;
        let outcome = measure(config, agents_dir, &binary, &url, &namespace, &source, count, rows, rows_per_unit);
        source.drop_namespace()?;
        outcome?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)] // one benchmark round's whole setting
fn measure(
    config: &McpConfig,
    agents_dir: &Path,
    binary: &Path,
    url: &str,
    namespace: &str,
    source: &PgLogSource,
    count: usize,
    rows: usize,
    rows_per_unit: u64,
) -> Result<()> {
    source.migrate()?;
    let per_type = crate::bench_pipeline::load_generated(source, TENANT, rows)?;
    let dir = tempfile::tempdir()?;
    let mut worker_config = config.clone();
    worker_config.database_url = Some(url.to_string());
    worker_config.database_schema = Some(namespace.to_string());
    let cluster = worker_config.cluster("bench-planner", Duration::from_secs(10))?;
    let mut units = 0;
    for log_type in generator::LOG_TYPES {
        units += cluster.plan_backfill(&Backfill { tenant: TENANT, agent: log_type, log_type, rows_per_unit })?;
    }
    let config_file = dir.path().join("mcp.toml");
    std::fs::write(
        &config_file,
        format!(
            "data_dir = {:?}\ntenant = {TENANT:?}\nagents_dir = {:?}\nbatch_size = {}\nreplay_ms = {}\ndatabase_url = {url:?}\ndatabase_schema = {namespace:?}\n",
            config.data_dir, agents_dir, config.batch_size, config.replay_ms
        ),
    )?;
    let mut pg_before = HashMap::new();
    postgres_cpu(&mut pg_before);
    let mut pg_seen = pg_before.clone();
    let children_before = children_cpu();
    let started = Instant::now();
    let workers = (0..count)
        .map(|n| {
            Command::new(binary)
                .arg("--config")
                .arg(&config_file)
                .args(["worker", "--until-done", "--poll", "50ms", "--node", &format!("bench-{n}")])
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    let mut running = workers;
    while !running.is_empty() {
        postgres_cpu(&mut pg_seen);
        let mut still = Vec::new();
        for mut worker in running {
            match worker.try_wait()? {
                Some(status) if !status.success() => bail!("a worker failed: {status}"),
                Some(_) => {}
                None => still.push(worker),
            }
        }
        running = still;
        std::thread::sleep(Duration::from_millis(50));
    }
    let elapsed = started.elapsed();
    let worker_cpu = children_cpu() - children_before;
    postgres_cpu(&mut pg_seen);
    let pg_cpu: f64 = pg_seen.iter().map(|(pid, cpu)| cpu - pg_before.get(pid).copied().unwrap_or(0.0)).sum();
    let anomalies: i64 = cluster.units()?.iter().map(|u| u.anomalies).sum();
    let rows = per_type * generator::LOG_TYPES.len();
    println!(
        "{:>6} {:>8} {:>10.2} {:>12.0} {:>13.1} {:>15.1} {:>10}",
        count,
        units,
        elapsed.as_secs_f64(),
        rows as f64 / elapsed.as_secs_f64(),
        worker_cpu,
        pg_cpu,
        anomalies
    );
    Ok(())
}
