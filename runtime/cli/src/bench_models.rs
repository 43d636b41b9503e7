//! `mcp bench --models`: what a model costs an agent, through the host
//! import as the agent sees it. The same batches run in the sandbox with
//! rules only and with rules and the model; the difference is inference
//! (feature rows, the call, tract, the scores back). tract alone is timed on
//! the same rows for comparison. Medians of several rounds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use mcp_engine::config::McpConfig;
use mcp_engine::models::ModelManager;
use mcp_engine::pipeline::instance_with_models;
use mcp_sandbox::GuestBatch as LogBatch;
use mcp_sandbox::conformance::to_batch;
use mcp_sandbox::registry::Registry;
use mcp_synth as generator;
use mcp_synth::to_entries;

use crate::bench::median;

fn detect_round(
    registry: &Registry,
    agent: &str,
    mode: &str,
    models: &Arc<ModelManager>,
    batches: &[LogBatch],
) -> Result<Duration> {
    let settings = [("detection".to_string(), mode.to_string())].into_iter().collect();
    let mut instance = instance_with_models(registry, agent, "bench", settings, None, Some(models.clone()))?;
    let started = Instant::now();
    for batch in batches {
        instance.detect_batch(batch)?;
    }
    let elapsed = started.elapsed();
    if mode == "both" && instance.model_used().is_none() {
        anyhow::bail!("{agent}: no model served the run; deploy one under {}", models.dir().display());
    }
    Ok(elapsed)
}

pub fn run(config: &McpConfig, registry: &Registry, entries: usize, rounds: usize) -> Result<()> {
    let models = config.model_manager()?;
    let rounds = rounds.max(1);
    #[allow(clippy::print_stdout)]
    {
        println!("mcp bench --models: {entries} normal entries per log type, median of {rounds} rounds");
        println!(
            "\n{:<9} {:<20} {:>6} {:>13} {:>13} {:>9} {:>14}",
            "agent", "model", "batch", "rules e/s", "both e/s", "added", "tract rows/s"
        );
    }
    let mut load_times = Vec::new();
    for agent in generator::LOG_TYPES {
        let model = models.model(agent, None)?;
        let dir = models.dir().join(agent).join(&model.metadata.version);
        let started = Instant::now();
        mcp_engine::models::LoadedModel::load_dir(&dir, model.metadata.clone())?;
        load_times.push(format!("{agent} {:.1} ms", started.elapsed().as_secs_f64() * 1e3));
        let logs = generator::generate(agent, 99, entries)?;
        let all = to_entries(agent, &logs);
        for batch_size in [1usize, 1024] {
            // Batch 1 makes one call per entry: a tenth of the entries keeps it short.
            let used = if batch_size == 1 { &all[..all.len() / 10] } else { &all[..] };
            let batches: Vec<LogBatch> = used.chunks(batch_size).map(|c| to_batch(agent, c)).collect();
            let mut rules = Vec::new();
            let mut both = Vec::new();
            for _ in 0..rounds {
                rules.push(detect_round(registry, agent, "rules", &models, &batches)?);
                both.push(detect_round(registry, agent, "both", &models, &batches)?);
            }
            let width = model.features();
            let rows: Vec<f32> = (0..batch_size * width).map(|i| (i % 7) as f32).collect();
            let calls = (used.len() / batch_size).max(1);
            let mut tract = Vec::new();
            for _ in 0..rounds {
                let started = Instant::now();
                for _ in 0..calls {
                    model.infer(batch_size, &rows)?;
                }
                tract.push(started.elapsed());
            }
            let (rules, both, tract) = (median(rules), median(both), median(tract));
            let eps = |d: Duration| used.len() as f64 / d.as_secs_f64().max(1e-9);
            let added = both.as_secs_f64() / rules.as_secs_f64().max(1e-9) - 1.0;
            #[allow(clippy::print_stdout)]
            {
                println!(
                    "{:<9} {:<20} {:>6} {:>13.0} {:>13.0} {:>8.0}% {:>14.0}",
                    agent,
                    format!("{} {}", model.metadata.family, model.metadata.version),
                    batch_size,
                    eps(rules),
                    eps(both),
                    added * 100.0,
                    (calls * batch_size) as f64 / tract.as_secs_f64().max(1e-9)
                );
            }
        }
    }
    #[allow(clippy::print_stdout)]
    {
        println!("\nload, optimise and check against the reference outputs: {}", load_times.join(", "));
    }
    Ok(())
}
