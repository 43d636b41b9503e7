//! `mcp bench --density N`: how many warm agent instances one process
//! holds and what each costs. N instances of the bundled agents, spread
//! over many tenants, each runs one batch (so its guest heap and windows
//! exist); then the process's resident memory is read, and one batch is run
//! across one instance of every tenant, as a scheduler serving them all in
//! turn would.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use mcp_engine::config::McpConfig;
use mcp_sandbox::conformance::to_columns;
use mcp_sandbox::registry::Registry;
use mcp_sandbox::{AgentInstance, CompileCache, GuestBatch, InstanceContext, Sandbox, SandboxLimits};
use mcp_synth as generator;

use crate::bench::median;

/// The process's resident memory now, from `/proc/self/statm`.
fn resident_bytes() -> Result<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").context("cannot read /proc/self/statm")?;
    let pages: u64 = statm.split_whitespace().nth(1).context("odd /proc/self/statm")?.parse()?;
    Ok(pages * 4096)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

/// `batch_entries` in each instance's batch: 100 by default, enough for
/// every agent's windows to hold state, few enough that the instances, not
/// the batches, dominate; a warm instance's heap grows with its batch.
pub fn run(
    config: &McpConfig,
    dir: &Path,
    instances: usize,
    tenants: usize,
    batch_entries: usize,
    rounds: usize,
) -> Result<()> {
    anyhow::ensure!(
        instances > 0 && tenants > 0 && batch_entries > 0,
        "--density, --density-tenants and --density-batch must be 1 or more"
    );
    let tenants = tenants.min(instances);
    let per_tenant = instances.div_ceil(tenants);
    let allowed = mcp_sandbox::RunBudget::default().max_instances as usize;
    anyhow::ensure!(
        per_tenant <= allowed,
        "{per_tenant} instances a tenant is over the default budget of {allowed}: give --density-tenants {} or more",
        instances.div_ceil(allowed)
    );
    let limits = SandboxLimits { max_instances: u32::try_from(instances + 8)?, ..config.sandbox.clone() };
    let sandbox = Arc::new(Sandbox::new(limits, CompileCache::new(Some(config.cache_dir())))?);
    let mut registry = Registry::new(sandbox);
    registry.discover(dir)?;
    let agents = generator::LOG_TYPES;
    let batches: Vec<GuestBatch> = agents
        .iter()
        .map(|log_type| {
            // The generator adds its attacks to the normal entries asked
            // for (thousands of them at this size), so the batch is cut to
            // its first entries in time.
            let logs = generator::generate(log_type, 7, batch_entries)?;
            let mut entries = generator::to_entries(log_type, &logs);
            entries.truncate(batch_entries);
            Ok(GuestBatch::from(to_columns(log_type, &entries)))
        })
        .collect::<Result<_>>()?;
    println!(
        "mcp bench --density: {instances} instances of {} over {tenants} tenants ({per_tenant} each at most), \
         a batch of {batch_entries} entries each; {} cores",
        agents.join(", "),
        std::thread::available_parallelism().map_or(1, usize::from)
    );

    // Warm the compile cache and the allocator before the baseline.
    for (agent, batch) in agents.iter().zip(&batches) {
        registry.instantiate(agent, InstanceContext::new(agent, "warm-up"))?.detect_batch(batch)?;
    }
    let before = resident_bytes()?;
    let mut live: Vec<(usize, AgentInstance)> = Vec::with_capacity(instances);
    let mut instantiations = Vec::with_capacity(instances);
    let mut first_batches = Vec::with_capacity(instances);
    let started = Instant::now();
    for i in 0..instances {
        let kind = i % agents.len();
        let tenant = format!("tenant-{:05}", i % tenants);
        let begun = Instant::now();
        let mut instance = registry
            .instantiate(agents[kind], InstanceContext::new(agents[kind], &tenant))
            .with_context(|| format!("instance {i} of {instances}"))?;
        instantiations.push(begun.elapsed());
        let begun = Instant::now();
        instance.detect_batch(&batches[kind])?;
        first_batches.push(begun.elapsed());
        live.push((kind, instance));
    }
    let filled = started.elapsed();
    let after = resident_bytes()?;
    let grown = after.saturating_sub(before);
    println!(
        "\n{instances} warm instances: resident {:.0} MiB before, {:.0} MiB after (+{:.0} MiB, {:.1} KiB an instance); \
         made in {:.1} s",
        mib(before),
        mib(after),
        mib(grown),
        grown as f64 / 1024.0 / instances as f64,
        filled.as_secs_f64()
    );
    println!(
        "instantiate (registry, prepared): median {:.1} µs; first batch of an instance: median {:.1} µs",
        micros(median(instantiations)),
        micros(median(first_batches))
    );

    // One batch through one instance of each tenant, as a round: the
    // first `tenants` instances belong to as many tenants.
    let mut round_times = Vec::new();
    for _ in 0..rounds.max(1) {
        let begun = Instant::now();
        for (kind, instance) in live.iter_mut().take(tenants) {
            instance.detect_batch(&batches[*kind])?;
        }
        round_times.push(begun.elapsed());
    }
    let round = median(round_times);
    println!(
        "one batch across {tenants} tenants' instances: median {:.1} ms ({:.1} µs an instance, {:.0} entries/s), \
         median of {} rounds",
        round.as_secs_f64() * 1e3,
        micros(round) / tenants as f64,
        (tenants * batch_entries) as f64 / round.as_secs_f64().max(1e-9),
        rounds.max(1)
    );
    let dropping = Instant::now();
    drop(live);
    println!("dropping them all: {:.1} ms", dropping.elapsed().as_secs_f64() * 1e3);
    Ok(())
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
