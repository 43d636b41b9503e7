//! Building the columnar batches the host sends to agents. The JSON-to-column
//! logic lives once, in the SDK's `BatchBuilder`; this module moves its
//! result into the host's binding types (and back, for native comparisons).

use mcp_sdk::{ColumnValues as SdkValues, RawRow};

use crate::sandbox::{Column, ColumnValues, LogBatch, TextColumn};

/// Builds a batch from raw rows, typing each field by what most rows hold;
/// returns the refused rows as (index into `rows`, reason).
pub fn build(log_type: &str, schema_version: u32, rows: &[RawRow<'_>]) -> (LogBatch, Vec<(usize, String)>) {
    let (batch, refused) = mcp_sdk::build_batch(log_type, schema_version, rows);
    (to_host(batch), refused)
}

/// Builds a batch from raw rows normalised to a schema file's shape.
pub fn build_shaped(shape: &mcp_sdk::shape::Shape, rows: &[RawRow<'_>]) -> (LogBatch, Vec<(usize, String)>) {
    let (batch, refused) = mcp_sdk::build_shaped_batch(shape, rows);
    (to_host(batch), refused)
}

fn to_host(batch: mcp_sdk::LogBatch) -> LogBatch {
    LogBatch {
        log_type: batch.log_type,
        schema_version: batch.schema_version,
        ids: batch.ids,
        timestamps_ms: batch.timestamps_ms,
        sources: TextColumn { data: batch.sources.data, ends: batch.sources.ends },
        columns: batch
            .columns
            .into_iter()
            .map(|c| Column {
                name: c.name,
                missing: c.missing,
                values: match c.values {
                    SdkValues::Text(t) => ColumnValues::Text(TextColumn { data: t.data, ends: t.ends }),
                    SdkValues::Integer(v) => ColumnValues::Integer(v),
                    SdkValues::Real(v) => ColumnValues::Real(v),
                    SdkValues::Boolean(v) => ColumnValues::Boolean(v),
                },
            })
            .collect(),
    }
}

/// The same batch in the SDK's types, for running agent code natively.
pub fn to_sdk(batch: &LogBatch) -> mcp_sdk::LogBatch {
    mcp_sdk::LogBatch {
        log_type: batch.log_type.clone(),
        schema_version: batch.schema_version,
        ids: batch.ids.clone(),
        timestamps_ms: batch.timestamps_ms.clone(),
        sources: mcp_sdk::TextColumn { data: batch.sources.data.clone(), ends: batch.sources.ends.clone() },
        columns: batch
            .columns
            .iter()
            .map(|c| mcp_sdk::Column {
                name: c.name.clone(),
                missing: c.missing.clone(),
                values: match &c.values {
                    ColumnValues::Text(t) => {
                        SdkValues::Text(mcp_sdk::TextColumn { data: t.data.clone(), ends: t.ends.clone() })
                    }
                    ColumnValues::Integer(v) => SdkValues::Integer(v.clone()),
                    ColumnValues::Real(v) => SdkValues::Real(v.clone()),
                    ColumnValues::Boolean(v) => SdkValues::Boolean(v.clone()),
                },
            })
            .collect(),
    }
}

/// The text of entry `index` in `column`, if in range.
pub fn text_at(column: &TextColumn, index: usize) -> Option<&str> {
    let end = *column.ends.get(index)? as usize;
    let start = if index == 0 { 0 } else { *column.ends.get(index - 1)? as usize };
    column.data.get(start..end)
}

/// Every text of a column, in order; a malformed end offset yields "".
pub fn texts(column: &TextColumn) -> Vec<String> {
    (0..column.ends.len()).map(|i| text_at(column, i).unwrap_or_default().to_string()).collect()
}
