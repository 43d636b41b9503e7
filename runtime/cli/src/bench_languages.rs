//! `mcp bench --languages`: the DNS detector's rules in Rust, Python and
//! JavaScript (the bundled `dns` agent with `detection = rules`, and the
//! examples `dns-py` and `dns-js`) on the same entries, in one run:
//! component size, compile, load from the compile cache, instantiate,
//! entries per second in batches, and an instance's memory high water.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use mcp_engine::config::McpConfig;
use mcp_sandbox::conformance::to_columns;
use mcp_sandbox::registry::sha256_hex;
use mcp_sandbox::{CompileCache, GuestBatch as LogBatch, InstanceContext, Sandbox};
use mcp_synth::to_entries;

use crate::bench::{median, time};

/// One agent measured: its name, language, bytes and settings.
struct Contender {
    agent: &'static str,
    language: &'static str,
    bytes: Vec<u8>,
    settings: BTreeMap<String, String>,
}

fn contenders(dir: &Path) -> Result<Vec<Contender>> {
    let rust =
        std::fs::read(dir.join("dns.wasm")).with_context(|| format!("cannot read {}/dns.wasm", dir.display()))?;
    let rules = BTreeMap::from([("detection".to_string(), "rules".to_string())]);
    let mut all = vec![Contender { agent: "dns", language: "Rust", bytes: rust, settings: rules }];
    for (agent, file) in [("dns-py", "dns-py.wasm"), ("dns-js", "dns-js.wasm")] {
        let (_, language, bytes) = mcp_agent_artifacts::EXAMPLES
            .iter()
            .find(|(name, _, _)| *name == file)
            .with_context(|| format!("{file} is not among the binary's examples"))?;
        all.push(Contender { agent, language, bytes: bytes.to_vec(), settings: BTreeMap::new() });
    }
    Ok(all)
}

fn timed<T>(f: impl FnOnce() -> Result<T>) -> Result<(Duration, T)> {
    let started = Instant::now();
    let value = f()?;
    Ok((started.elapsed(), value))
}

pub fn run(config: &McpConfig, dir: &Path, entries: usize, batch: usize, rounds: usize) -> Result<()> {
    let rounds = rounds.max(1);
    let logs = mcp_synth::generate("dns", 99, entries)?;
    let entries = to_entries("dns", &logs);
    let batches: Vec<LogBatch> = entries.chunks(batch.max(1)).map(|c| LogBatch::from(to_columns("dns", c))).collect();
    println!(
        "mcp bench --languages: the DNS rules on {} entries, batches of {batch}, median of {rounds} rounds; {} cores",
        entries.len(),
        std::thread::available_parallelism().map_or(1, usize::from)
    );
    println!(
        "\n{:<7} {:<11} {:>9} {:>11} {:>11} {:>12} {:>11} {:>11} {:>10}",
        "agent",
        "language",
        "size KiB",
        "compile ms",
        "cached ms",
        "instance µs",
        "entries/s",
        "memory KiB",
        "anomalies"
    );
    let cold = Sandbox::new(config.sandbox.clone(), CompileCache::new(None))?;
    let cache_dir = tempfile::tempdir()?;
    let warm = Sandbox::new(config.sandbox.clone(), CompileCache::new(Some(cache_dir.path().to_path_buf())))?;
    for contender in contenders(dir)? {
        let sha = sha256_hex(&contender.bytes);
        // Compiles take seconds for the big components: three at most.
        let compiles =
            (0..rounds.min(3)).map(|_| time(|| cold.load(&contender.bytes, &sha).map(drop))).collect::<Result<_>>()?;
        let (component, _) = warm.load(&contender.bytes, &sha)?;
        let cached = (0..10).map(|_| time(|| warm.load(&contender.bytes, &sha).map(drop))).collect::<Result<_>>()?;
        let context = || {
            let mut context = InstanceContext::new(contender.agent, "bench");
            context.config = Arc::new(contender.settings.clone());
            context
        };
        let instantiations =
            (0..50).map(|_| time(|| warm.instantiate(&component, context()).map(drop))).collect::<Result<_>>()?;
        let mut runs = Vec::new();
        let (mut found, mut memory) = (0, 0);
        for _ in 0..rounds {
            let mut instance = warm.instantiate(&component, context())?;
            let (elapsed, count) = timed(|| {
                let mut count = 0;
                for batch in &batches {
                    count += instance.detect_batch(batch)?.len();
                }
                Ok(count)
            })?;
            runs.push(elapsed);
            found = count;
            memory = instance.usage().memory_high_water;
        }
        let per_second = entries.len() as f64 / median(runs).as_secs_f64().max(1e-9);
        println!(
            "{:<7} {:<11} {:>9} {:>11.0} {:>11.2} {:>12.0} {:>11.0} {:>11} {:>10}",
            contender.agent,
            contender.language,
            contender.bytes.len() / 1024,
            median(compiles).as_secs_f64() * 1e3,
            median(cached).as_secs_f64() * 1e3,
            median(instantiations).as_secs_f64() * 1e6,
            per_second,
            memory / 1024,
            found
        );
    }
    Ok(())
}
