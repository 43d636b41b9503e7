//! `mcp models`: the deployment workflow of the ModelManager, the training
//! data export and the rules/model/both evaluation.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::process::ExitCode;

use crate::demo;
use crate::training;
use anyhow::{Context, Result};
use clap::Subcommand;
use mcp_engine::config::McpConfig;

#[derive(Subcommand)]
pub enum ModelsCommand {
    /// Every agent's versions, which is active, and why any is refused.
    List,
    /// Copy a model (a folder with model.onnx and metadata.json) in as a new version, after validating it.
    Add {
        /// The folder (or its model.onnx).
        path: PathBuf,
        #[arg(long)]
        agent: String,
        #[arg(long)]
        version: String,
    },
    /// Put a version in force; refused (and the active one kept) if it does not validate.
    Activate { agent: String, version: String },
    /// Put the version in force before the current one back.
    Rollback { agent: String },
    /// The recorded loads, activations, refusals and rollbacks of an agent's models.
    Events { agent: String },
    /// Write the agent's features for generated logs, with their labels, as CSV (training data).
    Features {
        #[arg(long)]
        agent: String,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long, default_value_t = 20_000)]
        entries: usize,
        /// The generator's traffic: realistic (what the shipped models are trained on) or easy.
        #[arg(long, default_value = "realistic")]
        profile: mcp_synth::Profile,
        #[arg(long)]
        out: PathBuf,
    },
    /// Precision, recall and F1 per agent with rules only, the model only and both.
    Evaluate {
        /// A seed the models were not trained on.
        #[arg(long, default_value_t = 9001)]
        seed: u64,
        #[arg(long, default_value_t = 10_000)]
        entries: usize,
        /// The generator's traffic: realistic (what the models were trained on) or easy.
        #[arg(long, default_value = "realistic")]
        profile: mcp_synth::Profile,
    },
}

pub fn run(config: &McpConfig, agents_dir: Option<PathBuf>, command: ModelsCommand) -> Result<ExitCode> {
    let models = config.model_manager()?;
    match command {
        ModelsCommand::List => {
            println!("models in {}\n", models.dir().display());
            println!("{:<10} {:<10} {:<7} {:<20} status", "agent", "version", "active", "family");
            for v in models.list()? {
                let status = v.refused.as_deref().unwrap_or("valid");
                let active = if v.active { "yes" } else { "" };
                println!(
                    "{:<10} {:<10} {:<7} {:<20} {status}",
                    v.agent,
                    v.version,
                    active,
                    v.family.as_deref().unwrap_or("-")
                );
            }
        }
        ModelsCommand::Add { path, agent, version } => {
            let model = models.add(&path, &agent, &version)?;
            println!(
                "added {agent} {version} ({}, {} features); `mcp models activate {agent} {version}` puts it in force",
                model.metadata.family,
                model.features()
            );
        }
        ModelsCommand::Activate { agent, version } => {
            models.activate(&agent, &version)?;
            println!("{agent} {version} is active");
        }
        ModelsCommand::Rollback { agent } => {
            let version = models.rollback(&agent)?;
            println!("{agent} rolled back: {version} is active");
        }
        ModelsCommand::Events { agent } => {
            for e in models.events(&agent)? {
                println!("{:>14} {:<10} {:<9} {}", e.at_ms, e.version, e.action, e.detail);
            }
        }
        ModelsCommand::Features { agent, seed, entries, profile, out } => {
            let registry = crate::registry(config, &crate::agents_dir(agents_dir, config)?)?;
            let table = training::feature_table(&registry, &agent, seed, entries, profile)?;
            let file = std::fs::File::create(&out).with_context(|| format!("cannot create {}", out.display()))?;
            table.write_csv(std::io::BufWriter::new(file))?;
            println!(
                "wrote {} rows of {} features for {agent} (seed {seed}) to {}",
                table.rows.len(),
                table.names.len(),
                out.display()
            );
        }
        ModelsCommand::Evaluate { seed, entries, profile } => {
            let dir = crate::agents_dir(agents_dir, config)?;
            let results = demo::evaluate(config, &dir, models, seed, entries, profile)?;
            print_evaluation(&results, seed, entries, profile);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The evaluation's tables: per agent and mode, then each attack kind's
/// recall per mode (an anomaly's label is the agent's word, not the
/// generator's kind, so precision is per agent only).
fn print_evaluation(
    results: &[(String, Vec<demo::AgentOutcome>)],
    seed: u64,
    entries: usize,
    profile: mcp_synth::Profile,
) {
    println!("seed {seed}, {} profile, {entries} normal entries per log type plus attacks", profile.name());
    println!();
    println!(
        "{:<10} {:<6} {:>10} {:>8} {:>7} {:>9} {:>10}",
        "agent", "mode", "precision", "recall", "F1", "FP/M", "model"
    );
    for (mode, outcomes) in results {
        for o in outcomes {
            let d = &o.detection;
            let model = o.run.model.as_ref().map(|(n, v)| format!("{n} {v}")).unwrap_or_else(|| "-".into());
            println!(
                "{:<10} {:<6} {:>10.3} {:>8.3} {:>7.3} {:>9.0} {:>10}",
                o.run.agent,
                mode,
                d.precision(),
                d.recall(),
                d.f1(),
                d.false_positives_per_million(),
                model
            );
        }
    }
    let modes: Vec<&str> = results.iter().map(|(mode, _)| mode.as_str()).collect();
    println!("\nrecall per attack kind (entries found of the kind's entries), by mode: {}", modes.join(", "));
    let Some((_, first)) = results.first() else { return };
    for (index, outcome) in first.iter().enumerate() {
        for kind in outcome.detection.per_kind.keys() {
            let found: Vec<String> = results
                .iter()
                .filter_map(|(_, outcomes)| outcomes.get(index))
                .map(|o| {
                    let (hit, of) = o.detection.per_kind.get(kind).copied().unwrap_or_default();
                    format!("{hit:>7}/{of:<7}")
                })
                .collect();
            println!("{:<10} {:<28} {}", outcome.run.agent, kind, found.join(" "));
        }
    }
}
