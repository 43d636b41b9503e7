//! The one place generated binding types meet the host's own: each
//! conversion is one `From`, and batches move rather than copy.

use mcp_columns as host;

use crate::bindings::mcp::agent::logs::LogQuery as GuestQuery;
use crate::bindings::{Column, ColumnValues, HostError, LogBatch, Severity, TextColumn};

/// A batch in the form a guest receives it, built once from the host's batch
/// by move and then handed to every call that needs it.
#[derive(Debug, Clone)]
pub struct GuestBatch(pub(crate) LogBatch);

impl GuestBatch {
    /// The log type of the entries.
    pub fn log_type(&self) -> &str {
        &self.0.log_type
    }

    /// The schema version the entries were normalised to.
    pub fn schema_version(&self) -> u32 {
        self.0.schema_version
    }

    /// Log ids, ascending.
    pub fn ids(&self) -> &[u64] {
        &self.0.ids
    }

    /// The source of entry `index`, if in range.
    pub fn source_at(&self, index: usize) -> Option<&str> {
        mcp_columns::text_in(&self.0.sources.data, &self.0.sources.ends, index)
    }

    /// The time of entry `index`, if in range.
    pub fn timestamp_at(&self, index: usize) -> Option<i64> {
        self.0.timestamps_ms.get(index).copied()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.ids.len()
    }

    /// Whether the batch has no entries.
    pub fn is_empty(&self) -> bool {
        self.0.ids.is_empty()
    }
}

impl From<host::LogBatch> for GuestBatch {
    fn from(batch: host::LogBatch) -> Self {
        GuestBatch(batch.into())
    }
}

impl From<host::TextColumn> for TextColumn {
    fn from(column: host::TextColumn) -> Self {
        TextColumn { data: column.data, ends: column.ends }
    }
}

impl From<host::LogBatch> for LogBatch {
    fn from(batch: host::LogBatch) -> Self {
        LogBatch {
            log_type: batch.log_type,
            schema_version: batch.schema_version,
            ids: batch.ids,
            timestamps_ms: batch.timestamps_ms,
            sources: batch.sources.into(),
            columns: batch
                .columns
                .into_iter()
                .map(|c| Column {
                    name: c.name,
                    values: match c.values {
                        host::ColumnValues::Text(t) => ColumnValues::Text(t.into()),
                        host::ColumnValues::Integer(v) => ColumnValues::Integer(v),
                        host::ColumnValues::Real(v) => ColumnValues::Real(v),
                        host::ColumnValues::Boolean(v) => ColumnValues::Boolean(v),
                    },
                    missing: c.missing,
                })
                .collect(),
        }
    }
}

impl From<GuestQuery> for host::LogQuery {
    fn from(query: GuestQuery) -> Self {
        host::LogQuery {
            log_type: query.log_type,
            after_id: query.after_id,
            from_ms: query.from_ms,
            to_ms: query.to_ms,
            source: query.source,
            limit: query.limit,
        }
    }
}

impl From<Severity> for host::Severity {
    fn from(severity: Severity) -> Self {
        match severity {
            Severity::Info => host::Severity::Info,
            Severity::Low => host::Severity::Low,
            Severity::Medium => host::Severity::Medium,
            Severity::High => host::Severity::High,
            Severity::Critical => host::Severity::Critical,
        }
    }
}

/// Why the host refused an import call, as its backends (log reader, model
/// provider) say it; the guest receives it as the protocol's `host-error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("denied: {0}")]
    Denied(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),
    #[error("unavailable: {0}")]
    Unavailable(String),
}

impl From<ImportError> for HostError {
    fn from(error: ImportError) -> Self {
        match error {
            ImportError::NotFound(m) => HostError::NotFound(m),
            ImportError::Denied(m) => HostError::Denied(m),
            ImportError::InvalidArgument(m) => HostError::InvalidArgument(m),
            ImportError::LimitExceeded(m) => HostError::LimitExceeded(m),
            ImportError::Unavailable(m) => HostError::Unavailable(m),
        }
    }
}

/// The names of `features`, in order; a malformed end offset yields "".
pub fn feature_names(features: &crate::bindings::Features) -> Vec<String> {
    let names = &features.names;
    (0..names.ends.len())
        .map(|i| mcp_columns::text_in(&names.data, &names.ends, i).unwrap_or_default().to_string())
        .collect()
}
