//! Loading JSON Lines files into the embedded source (`mcp db load`). Every
//! line is stored, even one that cannot be read: it then reaches quarantine,
//! with its reason, at the next run, instead of disappearing at load time.

use std::io::BufRead;

use serde::Deserialize;

use super::{LogSource, NewRow, SourceError};

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
}

/// Reads `input` line by line into `tenant`'s logs of `log_type`.
pub fn load_json_lines(
    source: &dyn LogSource,
    tenant: &str,
    log_type: &str,
    input: impl BufRead,
) -> Result<LoadReport, LoadError> {
    load_json_lines_observed(source, tenant, log_type, input, &mut |_| {})
}

/// As [`load_json_lines`], telling `progress` the bytes read so far after
/// each chunk is stored.
pub fn load_json_lines_observed(
    source: &dyn LogSource,
    tenant: &str,
    log_type: &str,
    input: impl BufRead,
    progress: &mut dyn FnMut(u64),
) -> Result<LoadReport, LoadError> {
    let mut report = LoadReport::default();
    let mut bytes_read = 0u64;
    let mut pending = Vec::with_capacity(CHUNK);
    for (number, line) in input.lines().enumerate() {
        let line = line.map_err(|e| LoadError::Read { line: number + 1, source: e })?;
        bytes_read += line.len() as u64 + 1;
        if line.trim().is_empty() {
            continue;
        }
        pending.push(match serde_json::from_str::<Line>(&line) {
            Ok(parsed) => NewRow {
                timestamp_ms: parsed.timestamp_ms,
                source: parsed.source,
                fields: parsed.fields.to_string(),
                schema_version: parsed.schema_version,
                label: None,
            },
            Err(e) => {
                tracing::warn!(line = number + 1, "stored as it is, to be quarantined: {e}");
                report.unreadable += 1;
                NewRow { timestamp_ms: 0, source: String::new(), fields: line, schema_version: 0, label: None }
            }
        });
        if pending.len() == CHUNK {
            report.lines += source.append(tenant, log_type, &pending)?;
            pending.clear();
            progress(bytes_read);
        }
    }
    report.lines += source.append(tenant, log_type, &pending)?;
    Ok(report)
}

/// Rows sent to the source at once.
const CHUNK: usize = 10_000;

/// Errors of a load.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read line {line}: {source}")]
    Read { line: usize, source: std::io::Error },
    #[error(transparent)]
    Source(#[from] SourceError),
}
