//! The data that crosses the sandbox boundary, in plain Rust.
//!
//! This crate owns the columnar log batch (the shape of `log-batch` in
//! `wit/`), the one builder that turns JSON rows into it under a log
//! schema's [`shape::Shape`], the decoding of text columns, the log query and
//! the host's anomaly record. The host and the Rust SDK both build batches
//! here, so what an agent sees in its own tests is what it sees in
//! production.
//!
//! It must not know wasmtime, wit-bindgen, storage or HTTP: the sandbox and
//! the SDK convert these types to their generated bindings at the one place
//! they call across the boundary, by move.
#![deny(missing_docs)]

mod anomaly;
mod builder;
pub mod shape;
mod text;

pub use anomaly::{Anomaly, Severity};

/// The newest protocol version: that of `wit/0.2.0/agent.wit`. The SDK
/// builds agents against it; the host serves it and the versions before it
/// that `mcp-sandbox` lists. A test ties this constant to the WIT files.
pub const PROTOCOL_VERSION: &str = "0.2.0";
pub use builder::{BatchBuilder, RawRow, build_batch, build_shaped_batch};
pub use text::{is_invisible_format, text_at, text_in, texts_in};

/// A column of texts: the texts end to end in `data`, entry `i` ending at
/// byte `ends[i]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TextColumn {
    /// The texts, end to end.
    pub data: String,
    /// Where each text ends in `data`.
    pub ends: Vec<u32>,
}

/// The values of one column, one per entry.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnValues {
    /// Text values.
    Text(TextColumn),
    /// Integer values.
    Integer(Vec<i64>),
    /// Real values.
    Real(Vec<f64>),
    /// Boolean values.
    Boolean(Vec<bool>),
}

/// One field of every entry of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// The field's name.
    pub name: String,
    /// One value per entry (a placeholder where the entry has none).
    pub values: ColumnValues,
    /// Indices of the entries that lack the field.
    pub missing: Vec<u32>,
}

/// Entries of one log type, in id order, as typed columns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogBatch {
    /// The log type of every entry.
    pub log_type: String,
    /// The schema version the entries were normalised to; 0 without a schema file.
    pub schema_version: u32,
    /// Log ids, ascending.
    pub ids: Vec<u64>,
    /// When each entry happened, in milliseconds since the Unix epoch.
    pub timestamps_ms: Vec<i64>,
    /// The device or sensor of each entry.
    pub sources: TextColumn,
    /// The fields.
    pub columns: Vec<Column>,
}

/// Which entries to read: one log type after a log id, optionally within a
/// time range and from one source, at most `limit` of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogQuery {
    /// The log type.
    pub log_type: String,
    /// Entries with a larger id only.
    pub after_id: u64,
    /// Entries at or after this time only.
    pub from_ms: Option<i64>,
    /// Entries before this time only.
    pub to_ms: Option<i64>,
    /// Entries of this source only.
    pub source: Option<String>,
    /// The most entries to return.
    pub limit: u32,
}
