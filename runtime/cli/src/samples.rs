//! Sample entries as the host's column batches, for the benchmarks that
//! feed the same batch to the sandboxed and the native agent.

use mcp_columns::{LogBatch, RawRow};
use mcp_sandbox::LogEntry;

/// `entries` built into one batch as the host builds it.
pub fn columns(log_type: &str, entries: &[LogEntry]) -> LogBatch {
    let rows: Vec<RawRow<'_>> = entries
        .iter()
        .map(|e| RawRow {
            id: e.id,
            timestamp_ms: e.timestamp_ms,
            source: &e.source,
            fields: &e.fields,
            schema_version: 0,
        })
        .collect();
    mcp_columns::build_batch(log_type, 1, &rows).0
}
