//! The host's batch builder (`mcp-columns`), answering in this SDK's
//! binding types, so an agent's tests build batches exactly as the host does.

pub use mcp_columns::{RawRow, shape};

use crate::{Column, ColumnValues, LogBatch, TextColumn};

impl From<mcp_columns::TextColumn> for TextColumn {
    fn from(column: mcp_columns::TextColumn) -> Self {
        TextColumn { data: column.data, ends: column.ends }
    }
}

impl From<mcp_columns::ColumnValues> for ColumnValues {
    fn from(values: mcp_columns::ColumnValues) -> Self {
        match values {
            mcp_columns::ColumnValues::Text(t) => ColumnValues::Text(t.into()),
            mcp_columns::ColumnValues::Integer(v) => ColumnValues::Integer(v),
            mcp_columns::ColumnValues::Real(v) => ColumnValues::Real(v),
            mcp_columns::ColumnValues::Boolean(v) => ColumnValues::Boolean(v),
        }
    }
}

impl From<mcp_columns::LogBatch> for LogBatch {
    fn from(batch: mcp_columns::LogBatch) -> Self {
        LogBatch {
            log_type: batch.log_type,
            schema_version: batch.schema_version,
            ids: batch.ids,
            timestamps_ms: batch.timestamps_ms,
            sources: batch.sources.into(),
            columns: batch
                .columns
                .into_iter()
                .map(|c| Column { name: c.name, values: c.values.into(), missing: c.missing })
                .collect(),
        }
    }
}

/// Builds a batch row by row from JSON, as the host does.
#[derive(Debug)]
pub struct BatchBuilder(mcp_columns::BatchBuilder);

impl BatchBuilder {
    /// An empty batch of `log_type` at `schema_version`.
    pub fn new(log_type: &str, schema_version: u32) -> Self {
        BatchBuilder(mcp_columns::BatchBuilder::new(log_type, schema_version))
    }

    /// Entries so far.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no entry was added.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds one entry whose fields are a JSON object; a row that does not
    /// fit the batch is refused with the reason and leaves it unchanged.
    pub fn push_json(&mut self, id: u64, timestamp_ms: i64, source: &str, fields: &str) -> Result<(), String> {
        self.0.push_json(id, timestamp_ms, source, fields)
    }

    /// The finished batch.
    pub fn finish(self) -> LogBatch {
        self.0.finish().into()
    }
}

/// Builds a batch from `rows`, typing each field by what most rows hold.
/// Returns the batch and the refused rows (index into `rows`, reason).
pub fn build_batch(log_type: &str, schema_version: u32, rows: &[RawRow<'_>]) -> (LogBatch, Vec<(usize, String)>) {
    let (batch, refused) = mcp_columns::build_batch(log_type, schema_version, rows);
    (batch.into(), refused)
}

/// Builds a batch from `rows` normalised to `shape`, as the host does for a
/// log type with a schema file. Returns the batch and the refused rows.
pub fn build_shaped_batch(shape: &shape::Shape, rows: &[RawRow<'_>]) -> (LogBatch, Vec<(usize, String)>) {
    let (batch, refused) = mcp_columns::build_shaped_batch(shape, rows);
    (batch.into(), refused)
}
