//! `mcp export`: the configured tenant's anomalies to a file on this
//! machine, with a progress bar, the same walk and formats as the API's
//! exports; prints the file's sha256 and notes the export in the tenant's
//! audit trail.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use mcp_engine::config::McpConfig;
use mcp_engine::export::{ExportFormat, ExportProgress, ExportSpec, write_export};
use mcp_storage::control::{Caller, Role};
use mcp_storage::export_scan::ExportFilter;
use mcp_storage::reads::AnomalyReads;
use mcp_storage::store::AnomalyStore;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FormatArg {
    Jsonl,
    Csv,
    Parquet,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SeverityArg {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The file to write (refused if it exists, unless --force).
    #[arg(short, long)]
    pub output: PathBuf,
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: FormatArg,
    /// Log entries at or after this time: RFC 3339 (`2026-11-30T00:00:00Z`),
    /// a span back from now (`24h`, `7d`), or ms since the epoch.
    #[arg(long, value_parser = parse_time)]
    pub since: Option<i64>,
    /// Log entries before this time (same forms as --since).
    #[arg(long, value_parser = parse_time)]
    pub until: Option<i64>,
    /// Anomalies detected at or after this time.
    #[arg(long, value_parser = parse_time)]
    pub detected_since: Option<i64>,
    /// Anomalies detected before this time.
    #[arg(long, value_parser = parse_time)]
    pub detected_until: Option<i64>,
    /// Agents (repeat for several: any of them).
    #[arg(long)]
    pub agent: Vec<String>,
    #[arg(long)]
    pub log_type: Vec<String>,
    #[arg(long)]
    pub label: Vec<String>,
    #[arg(long, value_enum)]
    pub severity: Vec<SeverityArg>,
    /// Sources (devices) of the entries.
    #[arg(long)]
    pub source: Vec<String>,
    /// Models that scored the batch, as `name@version`.
    #[arg(long)]
    pub model: Vec<String>,
    #[arg(long)]
    pub min_score: Option<f64>,
    #[arg(long)]
    pub max_score: Option<f64>,
    /// Replace the output file if it exists.
    #[arg(long)]
    pub force: bool,
    /// The tenant whose anomalies to export (default: the config's).
    #[arg(long)]
    pub tenant: Option<String>,
}

/// A time given on the command line, as ms since the epoch.
pub fn parse_time(text: &str) -> Result<i64, String> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    let millis = |time: std::time::SystemTime| {
        time.duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .map_err(|_| format!("'{text}' is before 1970"))
    };
    if let Ok(time) = humantime::parse_rfc3339_weak(text) {
        return millis(time);
    }
    // A day alone is its first instant, in UTC.
    if text.len() == 10
        && let Ok(time) = humantime::parse_rfc3339_weak(&format!("{text}T00:00:00Z"))
    {
        return millis(time);
    }
    match humantime::parse_duration(text) {
        Ok(span) => {
            millis(std::time::SystemTime::now().checked_sub(span).ok_or(format!("'{text}' reaches before 1970"))?)
        }
        Err(_) => Err(format!(
            "'{text}' is neither a time (2026-11-30T00:00:00Z), a span back from now (24h, 7d) nor ms since the epoch"
        )),
    }
}

fn severity_name(severity: SeverityArg) -> &'static str {
    match severity {
        SeverityArg::Info => "info",
        SeverityArg::Low => "low",
        SeverityArg::Medium => "medium",
        SeverityArg::High => "high",
        SeverityArg::Critical => "critical",
    }
}

fn filter_of(tenant: &str, args: &ExportArgs) -> ExportFilter {
    ExportFilter {
        tenant: tenant.to_string(),
        agents: args.agent.clone(),
        log_types: args.log_type.clone(),
        labels: args.label.clone(),
        severities: args.severity.iter().map(|s| severity_name(*s).to_string()).collect(),
        sources: args.source.clone(),
        models: args.model.clone(),
        min_score: args.min_score,
        max_score: args.max_score,
        from_ms: args.since,
        to_ms: args.until,
        detected_from_ms: args.detected_since,
        detected_to_ms: args.detected_until,
        up_to_id: None,
    }
}

/// Writes the export; prints its rows, size and sha256.
pub fn run(config: &McpConfig, args: &ExportArgs) -> Result<()> {
    let tenant = args.tenant.clone().unwrap_or_else(|| config.tenant.clone());
    let filter = filter_of(&tenant, args);
    filter.check().map_err(|e| {
        let flag = match e.field {
            "to_ms" => "--until",
            "detected_to_ms" => "--detected-until",
            "min_score" => "--min-score",
            "max_score" => "--max-score",
            other => other,
        };
        let reason = e.reason.replace("detected_from_ms", "--detected-since").replace("from_ms", "--since");
        anyhow::anyhow!("{flag}: {}", reason.replace("min_score", "--min-score"))
    })?;
    let format = match args.format {
        FormatArg::Jsonl => ExportFormat::JsonLines,
        FormatArg::Csv => ExportFormat::Csv,
        FormatArg::Parquet => ExportFormat::Parquet,
    };
    let shared = config.shared_store()?;
    let store_path = config.anomalies_db();
    if shared.is_none() && !store_path.exists() {
        bail!("no anomaly store at {}: nothing has been detected yet (mcp run)", store_path.display());
    }
    if args.output.as_os_str() == "-" {
        bail!("-o needs a file: an export is written whole, then named, and its sha256 is of that file");
    }
    if let Ok(existing) = std::fs::symlink_metadata(&args.output) {
        if !existing.file_type().is_file() {
            bail!("{} is not a regular file; refusing to replace it", args.output.display());
        }
        if !args.force {
            bail!("{} exists; pass --force to replace it", args.output.display());
        }
    }
    let (folder, file_name) = split_output(&args.output)?;
    let dir = cap_std::fs::Dir::open_ambient_dir(&folder, cap_std::ambient_authority())
        .with_context(|| format!("cannot open the folder {}", folder.display()))?;
    let embedded;
    let store = match &shared {
        Some(shared) => AnomalyReads::Shared(shared),
        None => {
            embedded = AnomalyStore::open(&store_path)?;
            AnomalyReads::Embedded(&embedded)
        }
    };
    // What the API refuses as selecting nothing, the command refuses too.
    let control = config.control_store()?;
    if tenant != config.tenant && !control.tenants()?.contains(&tenant) {
        bail!("--tenant: no tenant named '{tenant}' (mcp tenants list)");
    }
    for agent in &args.agent {
        if !store.agent_has_anomalies(&tenant, agent)? {
            bail!("--agent: tenant {tenant} has no anomalies of an agent named '{agent}'");
        }
    }
    let limits = config.exports;
    let spec = ExportSpec {
        filter,
        format,
        page_rows: limits.page_rows,
        max_rows: limits.max_rows,
        row_group_rows: limits.row_group_rows,
    };
    let mut bar = crate::progress::Progress::new("export", Some(0));
    let mut progress = |done: &ExportProgress| {
        bar.update(done.examined, Some(done.to_examine), || format!("{} rows", done.rows));
        ControlFlow::Continue(())
    };
    let written = write_export(store, &spec, &dir, &file_name, &mut progress);
    bar.finish();
    let file = written.with_context(|| format!("exporting to {}", args.output.display()))?;
    let operator = Caller { token_id: 0, tenant: tenant.clone(), role: Role::Admin };
    let detail = format!("{} {} rows sha256 {} (mcp export)", args.output.display(), file.rows, file.sha256);
    control.audit(&operator, "export.cli", &detail)?;
    #[allow(clippy::print_stdout)]
    {
        println!(
            "wrote {} anomalies of tenant {tenant} ({} bytes, {}) to {}",
            file.rows,
            file.bytes,
            format.name(),
            args.output.display()
        );
        println!("{}  {}", file.sha256, args.output.display());
    }
    Ok(())
}

/// The output's folder and file name.
fn split_output(output: &Path) -> Result<(PathBuf, String)> {
    let name = output
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("{} names no file", output.display()))?
        .to_string();
    let folder = match output.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((folder, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_instants_spans_back_or_milliseconds() {
        assert_eq!(parse_time("1700000000000"), Ok(1_700_000_000_000));
        assert_eq!(parse_time("2026-01-01T00:00:00Z"), Ok(1_767_225_600_000));
        let day_ago = parse_time("24h").unwrap_or_default();
        let now = mcp_storage::jobstatus::now_ms();
        assert!((now - 86_400_000 - day_ago).abs() < 60_000, "{day_ago}");
        assert!(parse_time("yesterday").is_err());
        assert_eq!(parse_time("2026-01-01"), Ok(1_767_225_600_000));
    }
}
