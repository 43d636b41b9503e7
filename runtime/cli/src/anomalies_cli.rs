//! `mcp anomalies list|show`: the configured tenant's anomalies with the
//! API's filters, read from the anomaly store without a server: this
//! node's embedded file, or PostgreSQL with `anomaly_store = "postgres"`.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use mcp_engine::config::McpConfig;
use mcp_storage::reads::AnomalyReads;
use mcp_storage::store::{AnomalyQuery, AnomalyRecord, AnomalySort, AnomalyStore};

use crate::printable::one_line;

#[derive(Subcommand)]
pub enum AnomaliesCommand {
    /// A page of anomalies, newest (or highest scored) first, with the API's filters.
    List(ListArgs),
    /// One anomaly with its provenance and the entry's fields.
    Show {
        /// The anomaly's id, as `list` shows it.
        id: i64,
        /// Print it as JSON, as GET /v1/anomalies/{id} serves it.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
pub struct ListArgs {
    #[arg(long)]
    pub agent: Option<String>,
    #[arg(long)]
    pub log_type: Option<String>,
    /// The agent's label of the finding.
    #[arg(long)]
    pub label: Option<String>,
    /// info, low, medium, high or critical.
    #[arg(long)]
    pub severity: Option<String>,
    /// The entry's source.
    #[arg(long)]
    pub source: Option<String>,
    #[arg(long)]
    pub min_score: Option<f64>,
    /// From this log time, in milliseconds since the epoch.
    #[arg(long)]
    pub from_ms: Option<i64>,
    /// Before this log time, in milliseconds since the epoch.
    #[arg(long)]
    pub to_ms: Option<i64>,
    /// time (newest first) or score (highest first).
    #[arg(long, default_value = "time")]
    pub sort: String,
    /// At most this many (1 to 100000).
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// One JSON object a line instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(config: &McpConfig, command: AnomaliesCommand) -> Result<ExitCode> {
    if let Some(shared) = config.shared_store()? {
        return answer(config, AnomalyReads::Shared(&shared), command);
    }
    let path = config.anomalies_db();
    if !path.exists() {
        bail!("no anomaly store at {} yet: `mcp run` makes it", path.display());
    }
    let store = AnomalyStore::open(&path)?;
    answer(config, AnomalyReads::Embedded(&store), command)
}

fn answer(config: &McpConfig, store: AnomalyReads<'_>, command: AnomaliesCommand) -> Result<ExitCode> {
    match command {
        AnomaliesCommand::List(args) => list(config, store, &args),
        AnomaliesCommand::Show { id, json } => {
            let Some(record) = store.get(&config.tenant, id)? else {
                bail!("tenant {} has no anomaly {id}", config.tenant);
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&record)?);
            } else {
                show(&record);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn list(config: &McpConfig, store: AnomalyReads<'_>, args: &ListArgs) -> Result<ExitCode> {
    if !(1..=100_000).contains(&args.limit) {
        bail!("--limit {} must be between 1 and 100000", args.limit);
    }
    if args.min_score.is_some_and(|s| !(0.0..=1.0).contains(&s)) {
        bail!("--min-score must be between 0 and 1");
    }
    let severity = match &args.severity {
        Some(name) => Some(
            mcp_columns::Severity::from_name(name)
                .with_context(|| format!("severity '{name}' is not info, low, medium, high or critical"))?
                .name()
                .to_string(),
        ),
        None => None,
    };
    let sort = match args.sort.as_str() {
        "time" => AnomalySort::Time,
        "score" => AnomalySort::Score,
        other => bail!("--sort '{other}' must be time or score"),
    };
    let query = AnomalyQuery {
        tenant: config.tenant.clone(),
        agent: args.agent.clone(),
        log_type: args.log_type.clone(),
        label: args.label.clone(),
        severity,
        source: args.source.clone(),
        min_score: args.min_score,
        from_ms: args.from_ms,
        to_ms: args.to_ms,
        sort,
        after: None,
        limit: args.limit,
    };
    let records = store.query(&query)?;
    if args.json {
        for record in &records {
            println!("{}", serde_json::to_string(record)?);
        }
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:>8} {:<10} {:<9} {:>9} {:<22} {:<9} {:>6}  reason",
        "id", "agent", "log type", "log id", "label", "severity", "score"
    );
    for r in &records {
        println!(
            "{:>8} {:<10} {:<9} {:>9} {:<22} {:<9} {:>6.3}  {}",
            r.id,
            r.agent,
            r.log_type,
            r.log_id,
            one_line(&r.label),
            r.severity,
            r.score,
            one_line(&r.reason)
        );
    }
    let more = if records.len() >= usize::try_from(args.limit).unwrap_or(usize::MAX) {
        format!("the first {}; there may be more: raise --limit", args.limit)
    } else {
        "all that match".to_string()
    };
    println!("\n{} anomalies of tenant {} shown ({more})", records.len(), config.tenant);
    Ok(ExitCode::SUCCESS)
}

fn show(r: &AnomalyRecord) {
    println!("anomaly {} of agent {} ({})", r.id, r.agent, r.agent_sha256);
    println!("  log entry      {} id {} from {} at {} ms", r.log_type, r.log_id, one_line(&r.source), r.log_ts_ms);
    println!("  label          {}", one_line(&r.label));
    println!("  severity       {} (score {:.3})", r.severity, r.score);
    println!("  reason         {}", one_line(&r.reason));
    println!("  detected at    {} ms", r.detected_at_ms);
    println!("  schema version {}", r.schema_version);
    println!("  model          {}", r.model.as_deref().unwrap_or("none (rules only)"));
    if let Some(fields) = &r.entry_fields {
        println!("  fields         {}", one_line(fields));
    }
}
