//! Generated logs in the product's own types: entries for the conformance
//! check, rows to append to a log source.

use mcp_sandbox::LogEntry;
use mcp_sandbox::conformance::SampleEntries;
use mcp_storage::source::NewRow;

use crate::GeneratedLog;

const SAMPLE_SEED: u64 = 0x5eed;

/// Sample entries from the generator, for the log types it knows.
#[derive(Debug, Clone, Copy, Default)]
pub struct GeneratedSamples;

impl SampleEntries for GeneratedSamples {
    fn entries(&self, log_type: &str, count: usize) -> Option<Vec<LogEntry>> {
        let logs = crate::generate(log_type, SAMPLE_SEED, count).ok()?;
        Some(to_entries(log_type, &logs))
    }
}

/// Generated logs as the entries the host sends, ids from 1.
pub fn to_entries(log_type: &str, logs: &[GeneratedLog]) -> Vec<LogEntry> {
    logs.iter()
        .enumerate()
        .map(|(i, log)| LogEntry {
            id: i as u64 + 1,
            timestamp_ms: log.timestamp_ms,
            source: log.source.clone(),
            log_type: log_type.to_string(),
            fields: log.fields.to_string(),
        })
        .collect()
}

/// Generated logs as rows to append to a log source, labels kept.
pub fn to_rows(logs: &[GeneratedLog]) -> Vec<NewRow> {
    logs.iter()
        .map(|log| NewRow {
            timestamp_ms: log.timestamp_ms,
            source: log.source.clone(),
            fields: log.fields.to_string(),
            schema_version: 0,
            label: log.label.map(str::to_string),
            load_error: None,
        })
        .collect()
}
