//! Building the columnar batches the host sends to agents. The JSON-to-column
//! logic lives once, in the SDK's `BatchBuilder`; this module moves its
//! result into the host's binding types (and back, for native comparisons).

use mcp_sdk::{BatchBuilder, ColumnValues as SdkValues};

use crate::sandbox::{Column, ColumnValues, LogBatch, TextColumn};

/// Accumulates JSON rows of one log type into a batch.
#[derive(Debug)]
pub struct HostBatchBuilder(BatchBuilder);

impl HostBatchBuilder {
    pub fn new(log_type: &str, schema_version: u32) -> Self {
        HostBatchBuilder(BatchBuilder::new(log_type, schema_version))
    }

    /// Adds a row; a row that does not fit is refused with the reason and
    /// leaves the batch as it was.
    pub fn push_json(&mut self, id: u64, timestamp_ms: i64, source: &str, fields: &str) -> Result<(), String> {
        self.0.push_json(id, timestamp_ms, source, fields)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn finish(self) -> LogBatch {
        to_host(self.0.finish())
    }
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
                    ColumnValues::Text(t) => SdkValues::Text(mcp_sdk::TextColumn { data: t.data.clone(), ends: t.ends.clone() }),
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
