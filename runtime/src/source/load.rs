//! Loading JSON Lines files into the embedded source (`mcp db load`). Every
//! line is stored, even one that cannot be read: it then reaches quarantine,
//! with its reason, at the next run, instead of disappearing at load time.

use std::io::BufRead;

use serde::Deserialize;

use super::{SourceError, SqliteLogSource};

/// One line of a log file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    timestamp_ms: i64,
    source: String,
    fields: serde_json::Value,
    #[serde(default)]
    schema_version: u32,
}

/// What a load did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    pub lines: u64,
    /// Lines stored as they were because their envelope could not be read;
    /// they will be quarantined with the reason.
    pub unreadable: u64,
    pub first_id: Option<u64>,
    pub last_id: Option<u64>,
}

/// Reads `input` line by line into `tenant`'s logs of `log_type`.
pub fn load_json_lines(
    source: &SqliteLogSource,
    tenant: &str,
    log_type: &str,
    input: impl BufRead,
) -> Result<LoadReport, LoadError> {
    let mut report = LoadReport::default();
    for (number, line) in input.lines().enumerate() {
        let line = line.map_err(|e| LoadError::Read { line: number + 1, source: e })?;
        if line.trim().is_empty() {
            continue;
        }
        let id = match serde_json::from_str::<Line>(&line) {
            Ok(parsed) => source.insert_raw(
                tenant,
                log_type,
                parsed.timestamp_ms,
                &parsed.source,
                &parsed.fields.to_string(),
                parsed.schema_version,
            )?,
            Err(e) => {
                tracing::warn!(line = number + 1, "stored as it is, to be quarantined: {e}");
                report.unreadable += 1;
                source.insert_raw(tenant, log_type, 0, "", &line, 0)?
            }
        };
        report.lines += 1;
        report.first_id.get_or_insert(id);
        report.last_id = Some(id);
    }
    Ok(report)
}

/// Errors of a load.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read line {line}: {source}")]
    Read { line: usize, source: std::io::Error },
    #[error(transparent)]
    Source(#[from] SourceError),
}
