//! `mcp agents ...`: list, check, test and release agents. `check` and
//! `test` are the author's loop: they need a component and, for a log type
//! of the author's own, a schema file or a sample file; no database, no
//! server and no source tree.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use mcp_engine::config::McpConfig;
use mcp_engine::pipeline::Verdict;
use mcp_sandbox::conformance::{self, Outcome, SampleEntries};
use mcp_synth::author::{FileSamples, FirstOf, LabelColumn, LogFile, SchemaSamples};
use mcp_synth::scoring::Detection;

use crate::printable::one_line;

#[derive(Subcommand)]
pub enum AgentsCommand {
    /// Name, log type, versions and sha256 of every agent.
    List,
    /// Run the protocol conformance check on a component.
    Check {
        /// The component file.
        file: PathBuf,
        /// Entries of the agent's log type to call it with: a JSON Lines file
        /// in `mcp db load`'s line format. Without it, the generator's for the
        /// bundled log types, else entries made up from the log type's schema
        /// file.
        #[arg(long)]
        samples: Option<PathBuf>,
    },
    /// Run a component on a JSON Lines file in the sandbox, with no database
    /// or server: its findings, timing and limits used, and with labels its
    /// precision, recall and F1.
    Test(TestArgs),
    /// Write a new agent project: source, vendored SDK, a labelled sample file,
    /// a test, and a config that finds its schema file.
    New {
        /// The agent's name (a-z, 0-9, '-', '_').
        name: String,
        /// The language of the project.
        #[arg(long, value_enum, default_value = "rust")]
        lang: crate::scaffold::Language,
        /// The log type it reads: a bundled one, or your own (a starter schema file is written).
        #[arg(long)]
        log_type: String,
        /// Where to write it (default: ./NAME).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Run a candidate build beside the active agent over history, storing
    /// nothing, and report which entries only one of them flags.
    Shadow(ShadowArgs),
    /// End an agent's quarantine for the configured tenant now.
    Release {
        /// The agent.
        name: String,
    },
}

#[derive(clap::Args)]
pub struct TestArgs {
    /// The component file.
    pub file: PathBuf,
    /// The log file, one `mcp db load` line each (docs/log_schemas.md).
    #[arg(long)]
    pub logs: PathBuf,
    /// The log type of the file (default: the agent's).
    #[arg(long)]
    pub log_type: Option<String>,
    /// Where each line's ground truth is: `label` for the line's own `label`
    /// key, or the name of a field (taken out before the agent sees it).
    #[arg(long)]
    pub labels: Option<String>,
    /// Exit non-zero when F1 is below this (needs --labels): a release gate for CI.
    #[arg(long)]
    pub min_f1: Option<f64>,
    /// Entries per call, as a run's batch_size.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// table (default) or json.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Findings printed in the table (all of them in JSON).
    #[arg(long, default_value_t = 20)]
    pub show: usize,
}

#[derive(clap::Args)]
pub struct ShadowArgs {
    /// The candidate component.
    pub file: PathBuf,
    /// The active agent to compare with (same log type).
    #[arg(long)]
    pub against: String,
    /// From this log time, in ms since the epoch (default: the oldest entry).
    #[arg(long)]
    pub since: Option<i64>,
    /// Before this log time, in ms since the epoch.
    #[arg(long)]
    pub until: Option<i64>,
    /// Rows read at most.
    #[arg(long, default_value_t = 1_000_000)]
    pub max_rows: u64,
    /// Examples shown of each difference.
    #[arg(long, default_value_t = 5)]
    pub examples: usize,
    /// table (default) or json.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

pub fn run(config: &McpConfig, agents_dir: Option<PathBuf>, command: AgentsCommand) -> Result<ExitCode> {
    match command {
        AgentsCommand::List => list(config, agents_dir),
        AgentsCommand::Check { file, samples } => check(config, &file, samples.as_deref()),
        AgentsCommand::Test(args) => test(config, &args),
        AgentsCommand::Shadow(args) => shadow(config, agents_dir, &args),
        AgentsCommand::New { name, lang, log_type, dir } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
            println!("{}", crate::scaffold::new_project(config, &name, &log_type, lang, &dir)?);
            Ok(ExitCode::SUCCESS)
        }
        AgentsCommand::Release { name } => {
            let control = config.control_store()?;
            let now = mcp_storage::jobstatus::now_ms();
            let released = control.release_quarantine(&config.tenant, &name, now, false)?;
            println!("{name}: {}", if released { "released" } else { "was not quarantined; its faults are cleared" });
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn list(config: &McpConfig, agents_dir: Option<PathBuf>) -> Result<ExitCode> {
    let registry = crate::registry(config, &crate::agents_dir(agents_dir, config)?)?;
    let control = config.control_store()?;
    println!(
        "{:<10} {:<9} {:<8} {:<9} {:<8} {:<64} state (tenant {})",
        "name", "log type", "version", "protocol", "enabled", "sha256", config.tenant
    );
    for a in registry.list() {
        let state = match mcp_engine::quarantine::in_force(&control, &config.tenant, &a.info.name)? {
            Some(q) => format!("quarantined until {} (level {}): {}", q.until_ms, q.level, q.reason),
            None => "runnable".to_string(),
        };
        let state = one_line(&state);
        println!(
            "{:<10} {:<9} {:<8} {:<9} {:<8} {} {state}",
            a.info.name, a.info.log_type, a.info.agent_version, a.info.protocol_version, a.enabled, a.sha256
        );
        let grant = mcp_sandbox::Grant::of_info(&a.info);
        println!(
            "           grants: log types [{}], models [{}], settings all",
            grant.log_types.join(", "),
            grant.models.join(", ")
        );
        for fault in control.recent_faults(&config.tenant, &a.info.name, 3)? {
            println!("           fault at {}: {} ({})", fault.at_ms, one_line(&fault.message), fault.kind);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The log type a component declares, read without running anything else.
fn declared_log_type(config: &McpConfig, bytes: &[u8], origin: &str) -> Result<String> {
    let sandbox = crate::sandbox(config)?;
    let agent = mcp_sandbox::registry::validate(&sandbox, bytes, origin)?;
    Ok(agent.info.log_type.clone())
}

fn check(config: &McpConfig, file: &Path, samples: Option<&Path>) -> Result<ExitCode> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let origin = file.display().to_string();
    let from_file = match samples {
        None => None,
        Some(path) => {
            let log_type = declared_log_type(config, &bytes, &origin)?;
            let mut read = LogFile::read(path, &log_type, None)?;
            let mut left_out = std::mem::take(&mut read.unreadable);
            // As a run would: lines the schema refuses never reach the agent.
            match config.schema_files().shape(&log_type)? {
                Some(shape) => left_out.extend(refused_by(&shape, &mut read)),
                None => println!(
                    "note  no {log_type}.yaml on the schema search path: runs and `agents test` refuse an agent \
                     that reads schema versions until one is there (docs/log_schemas.md)"
                ),
            }
            for (line, reason) in left_out.iter().take(5) {
                println!("note  {}:{line} left out: {}", path.display(), one_line(reason));
            }
            if left_out.len() > 5 {
                println!("note  ... and {} more lines left out", left_out.len() - 5);
            }
            if read.entries.is_empty() {
                bail!("no line of {} is a log line its schema accepts", path.display());
            }
            Some(FileSamples::new(&log_type, read))
        }
    };
    let schema_samples = SchemaSamples::new(config.schema_files());
    let mut sources: Vec<&dyn SampleEntries> = Vec::new();
    if let Some(file_samples) = &from_file {
        sources.push(file_samples);
    }
    sources.push(&mcp_synth::GeneratedSamples);
    sources.push(&schema_samples);
    let report = conformance::check(&*crate::sandbox(config)?, &bytes, &origin, &FirstOf(sources));
    for check in &report.checks {
        let (mark, detail) = match &check.outcome {
            Outcome::Passed(d) => ("pass", d),
            Outcome::Failed(d) => ("FAIL", d),
            Outcome::Skipped(d) => ("skip", d),
        };
        println!("{mark}  {:<42} {detail}", check.name);
    }
    if report.passed() {
        let version = report.agent.as_ref().map_or(mcp_sandbox::PROTOCOL_VERSION, |a| a.protocol.version());
        println!("\n{} conforms to mcp:agent@{version}", file.display());
        Ok(ExitCode::SUCCESS)
    } else {
        if report.checks.iter().any(|c| matches!(c.outcome, Outcome::Skipped(_))) {
            println!(
                "\nno entries to call it with: give --samples FILE.jsonl, or put the log type's schema file \
                 in schema_dir (docs/log_schemas.md)"
            );
        }
        println!("\n{} does not conform", file.display());
        Ok(ExitCode::FAILURE)
    }
}

/// An author's entries as the rows a source hands the batch builder.
fn raw_rows(entries: &[mcp_synth::author::LabelledEntry]) -> Vec<mcp_columns::RawRow<'_>> {
    entries
        .iter()
        .map(|e| mcp_columns::RawRow {
            id: e.entry.id,
            timestamp_ms: e.entry.timestamp_ms,
            source: &e.entry.source,
            fields: &e.entry.fields,
            schema_version: 0,
        })
        .collect()
}

/// Takes the entries `shape` refuses out of `file`: (line, why) of each.
fn refused_by(shape: &mcp_columns::shape::Shape, file: &mut LogFile) -> Vec<(usize, String)> {
    let (_, refused) = mcp_columns::build_shaped_batch(shape, &raw_rows(&file.entries));
    let refused: std::collections::HashMap<usize, String> = refused.into_iter().collect();
    let mut left_out = Vec::new();
    let mut index = 0;
    file.entries.retain(|e| {
        let keep = match refused.get(&index) {
            Some(why) => {
                left_out.push((e.line, why.clone()));
                false
            }
            None => true,
        };
        index += 1;
        keep
    });
    left_out
}

/// What one test run found and used.
struct TestOutcome {
    /// What a run would store: findings it would drop are not here.
    findings: Vec<mcp_columns::Anomaly>,
    /// Findings a run would drop (duplicates, too many labels, entries the
    /// agent was not given), neither shown nor scored.
    rejected: usize,
    entries: usize,
    /// (line of the file, why) of each entry the schema refused.
    quarantined: Vec<(usize, String)>,
    calls: u64,
    agent_ms: f64,
    wall_ms: f64,
    usage: mcp_sandbox::Usage,
}

fn test(config: &McpConfig, args: &TestArgs) -> Result<ExitCode> {
    if args.min_f1.is_some() && args.labels.is_none() {
        bail!("--min-f1 needs --labels: F1 is measured against the file's ground truth");
    }
    if let Some(bar) = args.min_f1
        && !(0.0..=1.0).contains(&bar)
    {
        bail!("--min-f1 {bar} must be between 0 and 1");
    }
    if args.batch_size == Some(0) {
        bail!("--batch-size must be at least 1");
    }
    let started = Instant::now();
    let bytes = std::fs::read(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?;
    let origin = args.file.display().to_string();
    let sandbox = crate::sandbox(config)?;
    let mut registry = mcp_sandbox::registry::Registry::new(sandbox);
    let agent = registry.register_bytes(&bytes, &origin)?.clone();
    let info = &agent.info;
    if let Some(given) = &args.log_type
        && *given != info.log_type
    {
        bail!("agent {} reads '{}' logs, not '{}'", info.name, info.log_type, given.escape_debug());
    }
    let log_type = info.log_type.clone();
    let labels = args.labels.as_deref().map(LabelColumn::named);
    let shape = config.schema_files().shape(&log_type)?;
    if let (Some(LabelColumn::Field(name)), Some(shape)) = (&labels, shape.as_deref())
        && shape.fields.iter().any(|f| &f.name == name)
    {
        bail!("'{name}' is a field of the '{log_type}' schema, which the agent reads: it cannot be the answer key");
    }
    let file = LogFile::read(&args.logs, &log_type, labels.as_ref())?;
    if let Some(column) = &args.labels
        && file.labelled_lines == 0
    {
        bail!(
            "no line of {} carries '{}': every entry would count as normal (--labels label reads each line's \
             own label key; any other name a field of `fields`)",
            args.logs.display(),
            column.escape_debug()
        );
    }
    // As a run checks each batch: the version the schema file gives it.
    let version = shape.as_deref().map_or(mcp_storage::source::UNSCHEMATIZED_VERSION, |s| s.version);
    mcp_engine::pipeline::reads_schema_version(&info.name, &info.schema, version)?;

    let models = config.model_manager()?;
    let context = mcp_engine::pipeline::context_for(
        &info.name,
        &config.tenant,
        config.settings_for(&info.name),
        None,
        Some(models),
        // The operator's budgets, so the gate sees the limits a run enforces.
        config.budgets.clone(),
    );
    let mut instance = registry.instantiate(&info.name, context)?;
    let batch_size = args.batch_size.unwrap_or(config.batch_size as usize).max(1);
    let mut outcome = detect_all(&mut instance, shape.as_deref(), &log_type, &file, batch_size)?;
    outcome.wall_ms = started.elapsed().as_secs_f64() * 1e3;
    let detection = args.labels.as_ref().map(|_| {
        let flagged: HashSet<u64> = outcome.findings.iter().map(|a| a.log_id).collect();
        Detection::score(&file.labels(), &flagged)
    });
    match args.format {
        Format::Table => {
            println!("config: {}", config.origin());
            print_table(args, &info.name, &file, &outcome, detection.as_ref())
        }
        Format::Json => print_json(&info.name, &log_type, &file, &outcome, detection.as_ref())?,
    }
    match (args.min_f1, &detection) {
        (Some(bar), Some(d)) if d.f1() < bar => {
            eprintln!("F1 {:.3} is below --min-f1 {bar}", d.f1());
            Ok(ExitCode::FAILURE)
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// Calls the agent batch after batch, as a run does, keeping its state.
fn detect_all(
    instance: &mut mcp_sandbox::AgentInstance,
    shape: Option<&mcp_columns::shape::Shape>,
    log_type: &str,
    file: &LogFile,
    batch_size: usize,
) -> Result<TestOutcome> {
    let mut outcome = TestOutcome {
        findings: Vec::new(),
        rejected: 0,
        entries: 0,
        quarantined: Vec::new(),
        calls: 0,
        agent_ms: 0.0,
        wall_ms: 0.0,
        usage: mcp_sandbox::Usage::default(),
    };
    // Entries the agent has been given, and what a run would have stored.
    let mut given: HashSet<u64> = HashSet::new();
    let mut stored: HashSet<(u64, String)> = HashSet::new();
    for chunk in file.entries.chunks(batch_size) {
        let rows = raw_rows(chunk);
        let (batch, refused) = match shape {
            Some(shape) => mcp_columns::build_shaped_batch(shape, &rows),
            None => mcp_columns::build_batch(log_type, mcp_storage::source::UNSCHEMATIZED_VERSION, &rows),
        };
        outcome.quarantined.extend(refused.into_iter().filter_map(|(i, why)| Some((chunk.get(i)?.line, why))));
        outcome.entries += batch.ids.len();
        if batch.ids.is_empty() {
            continue;
        }
        let batch = mcp_sandbox::GuestBatch::from(batch);
        let call = Instant::now();
        let found = instance.detect_batch(&batch).with_context(|| {
            format!("the agent failed on the batch from log id {}", chunk.first().map_or(0, |e| e.entry.id))
        })?;
        outcome.agent_ms += call.elapsed().as_secs_f64() * 1e3;
        outcome.calls += 1;
        // Judged as a run judges them, so the gate scores what would be stored.
        let in_batch: HashSet<u64> = batch.ids().iter().copied().collect();
        let mut admission = mcp_engine::pipeline::Admission::new(batch.ids().first().copied().unwrap_or(0));
        for anomaly in found {
            let kept = match admission.judge(anomaly.log_id, &anomaly.label, in_batch.contains(&anomaly.log_id)) {
                Verdict::InBatch => true,
                Verdict::Earlier => given.contains(&anomaly.log_id),
                Verdict::Rejected => false,
            };
            // A run stores one anomaly per (entry, label), whichever batch named it.
            if kept && stored.insert((anomaly.log_id, anomaly.label.clone())) {
                outcome.findings.push(anomaly);
            } else if !kept {
                outcome.rejected += 1;
            }
        }
        given.extend(in_batch);
    }
    outcome.usage = *instance.usage();
    Ok(outcome)
}

fn print_table(args: &TestArgs, agent: &str, file: &LogFile, o: &TestOutcome, detection: Option<&Detection>) {
    println!(
        "{agent} on {}: {} entries in {} batches, {} quarantined, {} unreadable lines, {} findings",
        args.logs.display(),
        o.entries,
        o.calls,
        o.quarantined.len(),
        file.unreadable.len(),
        o.findings.len()
    );
    if o.rejected > 0 {
        println!(
            "  {} findings dropped, as a run drops them: duplicates, more than 8 labels on an entry, or entries the agent was not given (not scored)",
            o.rejected
        );
    }
    for (what, list) in [("unreadable", &file.unreadable), ("quarantined", &o.quarantined)] {
        for (line, reason) in list.iter().take(5) {
            println!("  {what} line {line}: {}", one_line(reason));
        }
        if list.len() > 5 {
            println!("  ... {} more {what} lines (--format json lists them all)", list.len() - 5);
        }
    }
    if !o.findings.is_empty() {
        println!("\n{:>8} {:<24} {:<9} {:>6}  reason", "log id", "label", "severity", "score");
        for a in o.findings.iter().take(args.show) {
            println!(
                "{:>8} {:<24} {:<9} {:>6.3}  {}",
                a.log_id,
                one_line(&a.label),
                a.severity.name(),
                a.score,
                one_line(&a.reason)
            );
        }
        if o.findings.len() > args.show {
            println!("   ... {} more (--show N, or --format json)", o.findings.len() - args.show);
        }
    }
    let per_second = if o.agent_ms > 0.0 { o.entries as f64 / (o.agent_ms / 1e3) } else { 0.0 };
    println!(
        "\ntiming: {:.1} ms inside the agent ({per_second:.0} entries/s), {:.1} ms in all (reading, compiling, typing)",
        o.agent_ms, o.wall_ms
    );
    let u = &o.usage;
    println!(
        "limits used: memory high water {} KiB, findings {}, inferences {}, log lines {}, fuel {}",
        u.memory_high_water / 1024,
        u.findings,
        u.inferences,
        u.log_lines,
        u.fuel
    );
    if let Some(d) = detection {
        println!(
            "\nagainst the labels: precision {:.3}, recall {:.3}, F1 {:.3} (tp {}, fp {}, fn {})",
            d.precision(),
            d.recall(),
            d.f1(),
            d.true_positives,
            d.false_positives,
            d.false_negatives
        );
        for (kind, (hit, all)) in &d.per_kind {
            println!("  {}: {hit} of {all} flagged", one_line(kind));
        }
    }
}

fn print_json(
    agent: &str,
    log_type: &str,
    file: &LogFile,
    o: &TestOutcome,
    detection: Option<&Detection>,
) -> Result<()> {
    let findings: Vec<serde_json::Value> = o
        .findings
        .iter()
        .map(|a| {
            serde_json::json!({
                "log_id": a.log_id, "label": a.label, "severity": a.severity.name(), "score": a.score,
                "reason": a.reason, "source": a.source, "log_timestamp_ms": a.log_timestamp_ms,
            })
        })
        .collect();
    let score = detection.map(|d| {
        serde_json::json!({
            "precision": d.precision(), "recall": d.recall(), "f1": d.f1(),
            "true_positives": d.true_positives, "false_positives": d.false_positives,
            "false_negatives": d.false_negatives, "per_kind": d.per_kind,
        })
    });
    let u = &o.usage;
    let document = serde_json::json!({
        "agent": agent,
        "log_type": log_type,
        "entries": o.entries,
        "calls": o.calls,
        "unreadable_lines": file.unreadable.iter().map(|(line, why)| serde_json::json!({"line": line, "reason": why})).collect::<Vec<_>>(),
        "quarantined": o.quarantined.iter().map(|(line, why)| serde_json::json!({"line": line, "reason": why})).collect::<Vec<_>>(),
        "findings": findings,
        "rejected_findings": o.rejected,
        "timing_ms": {"agent": o.agent_ms, "total": o.wall_ms},
        "usage": {
            "memory_high_water_bytes": u.memory_high_water, "findings": u.findings, "inferences": u.inferences,
            "log_lines": u.log_lines, "log_bytes": u.log_bytes, "fuel": u.fuel,
        },
        "score": score,
    });
    println!("{}", serde_json::to_string_pretty(&document)?);
    Ok(())
}

fn shadow(config: &McpConfig, agents_dir: Option<PathBuf>, args: &ShadowArgs) -> Result<ExitCode> {
    if args.max_rows == 0 {
        bail!("--max-rows must be at least 1");
    }
    let bytes = std::fs::read(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?;
    let registry = std::sync::Arc::new(crate::registry(config, &crate::agents_dir(agents_dir, config)?)?);
    let source = config.log_source()?;
    let control = config.control_store()?;
    // The operator's own command: the candidate gets what the active agent
    // gets (settings and models), so the two differ only in their code.
    let models = config.model_manager()?;
    let build = || {
        mcp_engine::runs::RunBuilder::new(config, registry.clone(), source.clone(), &config.tenant, &args.against)
            .tenant_control(&control)
            .map(|builder| builder.models(models.clone()))
            .and_then(|builder| builder.build())
    };
    let (active, candidate) = (build()?, build()?);
    let window = mcp_engine::runs::ShadowWindow {
        from_ms: args.since,
        to_ms: args.until,
        max_rows: args.max_rows,
        examples: args.examples,
        ..Default::default()
    };
    let report = active.shadow(candidate, &bytes, &args.file.display().to_string(), window)?;
    if args.format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} entries of tenant {} in {} batches ({} quarantined){}",
        report.entries,
        config.tenant,
        report.batches,
        report.quarantined,
        match report.stopped_by.as_deref() {
            Some("max_rows") => ", stopped at --max-rows",
            Some(_) => ", stopped early",
            None => "",
        }
    );
    println!("{:<24} {:>9} {:>12}  labels", "", "flagged", "agent ms");
    for (name, side) in [(args.against.as_str(), &report.active), ("candidate", &report.candidate)] {
        let labels: Vec<String> = side.labels.iter().map(|(label, n)| format!("{} {n}", one_line(label))).collect();
        println!("{name:<24} {:>9} {:>12.1}  {}", side.flagged, side.agent_ms, labels.join(", "));
    }
    println!(
        "\nflagged by both: {}; only by the candidate: {}; only by {}: {}",
        report.both, report.only_candidate, args.against, report.only_active
    );
    for (title, examples) in
        [("only the candidate", &report.only_candidate_examples), (args.against.as_str(), &report.only_active_examples)]
    {
        if examples.is_empty() {
            continue;
        }
        println!("\nexamples flagged by {title} alone:");
        for e in examples {
            let (source, label, reason) = (one_line(&e.source), one_line(&e.label), one_line(&e.reason));
            println!("  log id {:>8} {source:<12} {label:<20} {:.3}  {reason}", e.log_id, e.score);
        }
    }
    Ok(ExitCode::SUCCESS)
}
