//! `mcp bench`: the sandbox against the same detection code compiled
//! natively, over the same entries, in one run. Medians of several rounds.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use mcp_engine::config::McpConfig;
use mcp_sandbox::conformance::{to_batch, to_columns};
use mcp_sandbox::registry::{Registry, sha256_hex};
use mcp_sandbox::{BudgetKind, CompileCache, GuestBatch as LogBatch, InstanceContext, Sandbox, SandboxLimits};
use mcp_sdk::Agent;
use mcp_synth as generator;
use mcp_synth::to_entries;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Normal entries per log type.
    #[arg(long, default_value_t = 20_000)]
    pub entries: usize,
    /// Entries per agent call.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Rounds per measurement; the median is reported.
    #[arg(long, default_value_t = 7)]
    pub rounds: usize,
    /// Only this log type's agent.
    #[arg(long)]
    pub only: Option<String>,
    /// Measure only the boundary encodings: typed field records against JSON lines.
    #[arg(long)]
    pub boundary: bool,
    /// Measure log source to anomaly store end to end over this many rows, agents with their models:
    /// PostgreSQL when database_url is set, the embedded SQLite source otherwise.
    #[arg(long)]
    pub pipeline: Option<usize>,
    /// Measure continuous detection's latency (row written to anomaly stored) at these insert rates, in
    /// rows per second, comma-separated (needs database_url).
    #[arg(long, value_delimiter = ',')]
    pub follow: Vec<u32>,
    /// Measure a backfill shared by this many `mcp worker` processes, for each count, comma-separated
    /// (needs database_url).
    #[arg(long, value_delimiter = ',')]
    pub nodes: Vec<usize>,
    /// Rows of the `--nodes` backfill.
    #[arg(long, default_value_t = 1_000_000)]
    pub nodes_rows: usize,
    /// Rows per unit of the `--nodes` backfill.
    #[arg(long, default_value_t = 50_000)]
    pub rows_per_unit: u64,
    /// How long rows are written at each `--follow` rate, in seconds.
    #[arg(long, default_value_t = 20)]
    pub follow_seconds: u64,
    /// Measure what the deployed models add to each agent's batch time, at batch 1 and 1024.
    #[arg(long)]
    pub models: bool,
    /// Fill the anomaly store with this many synthetic anomalies for the API benchmark (scripts/bench_api.sh).
    #[arg(long)]
    pub fill_anomalies: Option<usize>,
    /// Measure lookups against a Redis GET of the same answer (needs Redis).
    #[arg(long)]
    pub cache: bool,
    /// Measure notification delivery: this many signed webhook deliveries
    /// to a receiver on loopback, and what queueing them adds to a commit.
    #[arg(long)]
    pub notify: Option<usize>,
    /// Compare the DNS rules in Rust, Python and JavaScript: size, compile,
    /// instantiate, entries per second and memory per instance.
    #[arg(long)]
    pub languages: bool,
    /// Hold this many warm agent instances at once: resident memory per instance, instantiation, and one
    /// batch across many tenants' instances.
    #[arg(long)]
    pub density: Option<usize>,
    /// Tenants the `--density` instances are spread over.
    #[arg(long, default_value_t = 1000)]
    pub density_tenants: usize,
    /// Entries in each `--density` instance's batch (the generator's first ones in time).
    #[arg(long, default_value_t = 100)]
    pub density_batch: usize,
}

pub(crate) fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

fn native_round<A: Agent>(batches: &[mcp_sdk::LogBatch]) -> Result<(Duration, usize)> {
    let mut agent = A::default();
    let started = Instant::now();
    let mut found = 0;
    for batch in batches {
        found +=
            mcp_sdk::run_batch(&mut agent, batch).map_err(|e| anyhow::anyhow!("native agent failed: {e:?}"))?.len();
    }
    Ok((started.elapsed(), found))
}

fn sandbox_round(registry: &Registry, agent: &str, batches: &[LogBatch]) -> Result<(Duration, usize)> {
    let mut instance = registry.instantiate(agent, InstanceContext::new(agent, "bench"))?;
    let started = Instant::now();
    let mut found = 0;
    for batch in batches {
        found += instance.detect_batch(batch)?.len();
    }
    Ok((started.elapsed(), found))
}

fn registry_with(budget: BudgetKind, config: &McpConfig, dir: &Path) -> Result<Registry> {
    let limits = SandboxLimits { budget, ..config.sandbox.clone() };
    let mut registry = Registry::new(Arc::new(Sandbox::new(limits, CompileCache::new(Some(config.cache_dir())))?));
    registry.discover(dir)?;
    Ok(registry)
}

pub fn run(config: &McpConfig, dir: &Path, args: &BenchArgs) -> Result<()> {
    let rounds = args.rounds.max(1);
    let epoch = registry_with(BudgetKind::Epoch, config, dir)?;
    let fuel = registry_with(BudgetKind::Fuel, config, dir)?;
    println!(
        "mcp bench: {} normal entries per log type, batches of {}, median of {rounds} rounds; {} cores",
        args.entries,
        args.batch,
        std::thread::available_parallelism().map_or(1, usize::from)
    );
    println!(
        "\n{:<9} {:>13} {:>13} {:>13} {:>8} {:>8} {:>10}",
        "agent", "native e/s", "epoch e/s", "fuel e/s", "epoch/n", "fuel/n", "anomalies"
    );
    for log_type in generator::LOG_TYPES.iter().filter(|t| args.only.as_deref().is_none_or(|o| o == **t)) {
        let logs = generator::generate(log_type, 99, args.entries)?;
        let entries = to_entries(log_type, &logs);
        let columns: Vec<mcp_columns::LogBatch> =
            entries.chunks(args.batch.max(1)).map(|c| to_columns(log_type, c)).collect();
        let host_batches: Vec<LogBatch> = columns.iter().cloned().map(LogBatch::from).collect();
        let sdk_batches: Vec<mcp_sdk::LogBatch> = columns.into_iter().map(mcp_sdk::LogBatch::from).collect();
        let native = |batches: &[mcp_sdk::LogBatch]| match *log_type {
            "wifi" => native_round::<mcp_agent_wifi::WifiAgent>(batches),
            "firewall" => native_round::<mcp_agent_firewall::FirewallAgent>(batches),
            _ => native_round::<mcp_agent_dns::DnsAgent>(batches),
        };
        let mut times = (Vec::new(), Vec::new(), Vec::new());
        let mut counts = (0, 0, 0);
        for _ in 0..rounds {
            let (t, n) = native(&sdk_batches)?;
            times.0.push(t);
            counts.0 = n;
            let (t, n) = sandbox_round(&epoch, log_type, &host_batches)?;
            times.1.push(t);
            counts.1 = n;
            let (t, n) = sandbox_round(&fuel, log_type, &host_batches)?;
            times.2.push(t);
            counts.2 = n;
        }
        if counts.0 != counts.1 || counts.0 != counts.2 {
            anyhow::bail!(
                "{log_type}: native found {} anomalies, epoch {}, fuel {}: the runs are not comparable",
                counts.0,
                counts.1,
                counts.2
            );
        }
        let eps = |d: Duration| entries.len() as f64 / d.as_secs_f64().max(1e-9);
        let (n, e, f) = (eps(median(times.0)), eps(median(times.1)), eps(median(times.2)));
        println!("{:<9} {:>13.0} {:>13.0} {:>13.0} {:>8.2} {:>8.2} {:>10}", log_type, n, e, f, e / n, f / n, counts.0);
    }

    let mut instance = epoch.instantiate("wifi", InstanceContext::new("wifi", "bench"))?;
    let empty = to_batch("wifi", &[]);
    let calls = 20_000;
    let mut per_call = Vec::new();
    for _ in 0..rounds {
        let started = Instant::now();
        for _ in 0..calls {
            instance.detect_batch(&empty)?;
        }
        per_call.push(started.elapsed() / calls);
    }
    println!(
        "\nfixed cost of one detect-batch call (empty batch, epoch deadline on): {:.2} µs",
        median(per_call).as_secs_f64() * 1e6
    );

    let wasm =
        std::fs::read(dir.join("wifi.wasm")).with_context(|| format!("cannot read {}/wifi.wasm", dir.display()))?;
    let sha = sha256_hex(&wasm);
    let cold_sandbox = Sandbox::new(config.sandbox.clone(), CompileCache::new(None))?;
    let cold = median((0..3).map(|_| time(|| cold_sandbox.load(&wasm, &sha).map(|_| ()))).collect::<Result<_>>()?);
    let warm_sandbox = Sandbox::new(config.sandbox.clone(), CompileCache::new(Some(config.cache_dir())))?;
    warm_sandbox.load(&wasm, &sha)?;
    let warm = median((0..20).map(|_| time(|| warm_sandbox.load(&wasm, &sha).map(|_| ()))).collect::<Result<_>>()?);
    let agent = epoch.get("wifi")?;
    let unprepared = median(
        (0..200)
            .map(|_| {
                time(|| {
                    epoch.sandbox().instantiate(agent.component(), InstanceContext::new("wifi", "bench")).map(|_| ())
                })
            })
            .collect::<Result<_>>()?,
    );
    let prepared = median(
        (0..200)
            .map(|_| time(|| epoch.instantiate("wifi", InstanceContext::new("wifi", "bench")).map(|_| ())))
            .collect::<Result<_>>()?,
    );
    println!(
        "wifi.wasm ({} KB): compile {:.1} ms, load from cache {:.2} ms, instantiate {:.1} µs \
         (resolving its imports each time: {:.1} µs)",
        wasm.len() / 1024,
        ms(cold),
        ms(warm),
        prepared.as_secs_f64() * 1e6,
        unprepared.as_secs_f64() * 1e6
    );
    Ok(())
}

pub(crate) fn time<E: Into<anyhow::Error>>(f: impl FnOnce() -> Result<(), E>) -> Result<Duration> {
    let started = Instant::now();
    f().map_err(Into::into)?;
    Ok(started.elapsed())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
