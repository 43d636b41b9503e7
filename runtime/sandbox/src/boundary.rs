//! The one place generated binding types meet the host's own: each
//! conversion is one `From`, and batches move rather than copy.

use mcp_columns as host;

use crate::bindings::{v1, v2};

/// A batch in the form a guest receives it, built once from the host's batch
/// by move and then handed to every call that needs it.
#[derive(Debug, Clone)]
pub struct GuestBatch(pub(crate) v2::LogBatch);

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

/// The conversions between one protocol version's bindings and the host's
/// types; every version's records have the same fields.
macro_rules! conversions_for {
    ($module:ident) => {
        impl From<host::TextColumn> for $module::TextColumn {
            fn from(column: host::TextColumn) -> Self {
                $module::TextColumn { data: column.data, ends: column.ends }
            }
        }

        impl From<host::LogBatch> for $module::LogBatch {
            fn from(batch: host::LogBatch) -> Self {
                $module::LogBatch {
                    log_type: batch.log_type,
                    schema_version: batch.schema_version,
                    ids: batch.ids,
                    timestamps_ms: batch.timestamps_ms,
                    sources: batch.sources.into(),
                    columns: batch
                        .columns
                        .into_iter()
                        .map(|c| $module::Column {
                            name: c.name,
                            values: match c.values {
                                host::ColumnValues::Text(t) => $module::ColumnValues::Text(t.into()),
                                host::ColumnValues::Integer(v) => $module::ColumnValues::Integer(v),
                                host::ColumnValues::Real(v) => $module::ColumnValues::Real(v),
                                host::ColumnValues::Boolean(v) => $module::ColumnValues::Boolean(v),
                            },
                            missing: c.missing,
                        })
                        .collect(),
                }
            }
        }

        impl From<$module::mcp::agent::logs::LogQuery> for host::LogQuery {
            fn from(query: $module::mcp::agent::logs::LogQuery) -> Self {
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

        impl From<$module::Severity> for host::Severity {
            fn from(severity: $module::Severity) -> Self {
                match severity {
                    $module::Severity::Info => host::Severity::Info,
                    $module::Severity::Low => host::Severity::Low,
                    $module::Severity::Medium => host::Severity::Medium,
                    $module::Severity::High => host::Severity::High,
                    $module::Severity::Critical => host::Severity::Critical,
                }
            }
        }

        impl From<ImportError> for $module::HostError {
            fn from(error: ImportError) -> Self {
                match error {
                    ImportError::NotFound(m) => $module::HostError::NotFound(m),
                    ImportError::Denied(m) => $module::HostError::Denied(m),
                    ImportError::InvalidArgument(m) => $module::HostError::InvalidArgument(m),
                    ImportError::LimitExceeded(m) => $module::HostError::LimitExceeded(m),
                    ImportError::Unavailable(m) => $module::HostError::Unavailable(m),
                }
            }
        }

        /// One line naming an agent error and its detail.
        impl From<&$module::AgentError> for AgentFailure {
            fn from(error: &$module::AgentError) -> Self {
                AgentFailure::bounded(match error {
                    $module::AgentError::UnsupportedLogType(m) => format!("unsupported log type: {m}"),
                    $module::AgentError::InvalidEntry(e) => format!("invalid entry {}: {}", e.log_id, e.reason),
                    $module::AgentError::ModelUnavailable(m) => format!("model unavailable: {m}"),
                    $module::AgentError::Config(m) => format!("{}: {m}", crate::CONFIGURATION),
                    $module::AgentError::Internal(m) => format!("internal: {m}"),
                })
            }
        }
    };
}

conversions_for!(v1);
conversions_for!(v2);

/// An agent's error, as one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentFailure(pub String);

/// The most of an agent's error message the host keeps: it is printed,
/// stored in the job record and returned by the API.
pub const MAX_ERROR_BYTES: usize = 1024;

impl AgentFailure {
    /// `message` on one line, cut to [`MAX_ERROR_BYTES`] with a note of how
    /// much was cut.
    pub fn bounded(message: String) -> Self {
        AgentFailure(crate::text::one_line(&crate::text::bounded(message, MAX_ERROR_BYTES)))
    }
}

/// A 0.1.0 guest's findings are a 0.2.0 guest's, field for field.
impl From<v1::Findings> for v2::Findings {
    fn from(found: v1::Findings) -> Self {
        v2::Findings {
            log_ids: found.log_ids,
            scores: found.scores,
            severities: found
                .severities
                .into_iter()
                .map(|s| match s {
                    v1::Severity::Info => v2::Severity::Info,
                    v1::Severity::Low => v2::Severity::Low,
                    v1::Severity::Medium => v2::Severity::Medium,
                    v1::Severity::High => v2::Severity::High,
                    v1::Severity::Critical => v2::Severity::Critical,
                })
                .collect(),
            labels: v2::TextColumn { data: found.labels.data, ends: found.labels.ends },
            reasons: v2::TextColumn { data: found.reasons.data, ends: found.reasons.ends },
        }
    }
}

/// What a 0.1.0 guest receives: the same batch in that version's types.
impl From<&v2::LogBatch> for v1::LogBatch {
    fn from(batch: &v2::LogBatch) -> Self {
        let text = |t: &v2::TextColumn| v1::TextColumn { data: t.data.clone(), ends: t.ends.clone() };
        v1::LogBatch {
            log_type: batch.log_type.clone(),
            schema_version: batch.schema_version,
            ids: batch.ids.clone(),
            timestamps_ms: batch.timestamps_ms.clone(),
            sources: text(&batch.sources),
            columns: batch
                .columns
                .iter()
                .map(|c| v1::Column {
                    name: c.name.clone(),
                    values: match &c.values {
                        v2::ColumnValues::Text(t) => v1::ColumnValues::Text(text(t)),
                        v2::ColumnValues::Integer(v) => v1::ColumnValues::Integer(v.clone()),
                        v2::ColumnValues::Real(v) => v1::ColumnValues::Real(v.clone()),
                        v2::ColumnValues::Boolean(v) => v1::ColumnValues::Boolean(v.clone()),
                    },
                    missing: c.missing.clone(),
                })
                .collect(),
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

/// Features of every entry of a batch, in the host's types.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FeatureTable {
    pub names: Vec<String>,
    pub rows: usize,
    /// Row-major, `rows` × `names.len()`.
    pub values: Vec<f32>,
}

impl FeatureTable {
    /// Row `index`, if in range.
    pub fn row(&self, index: usize) -> Option<&[f32]> {
        let width = self.names.len();
        self.values.get(index * width..(index + 1) * width)
    }
}

/// A table a guest returned, checked: well-formed names and as many values
/// as rows times names.
pub(crate) fn feature_table(table: v2::FeatureTable) -> Result<FeatureTable, String> {
    let names = mcp_columns::texts_in(&table.names.data, &table.names.ends)
        .ok_or("feature names are not a well-formed text column")?;
    let rows = table.rows as usize;
    if table.values.len() != rows.saturating_mul(names.len()) {
        return Err(format!("{} values for {rows} rows of {} features", table.values.len(), names.len()));
    }
    Ok(FeatureTable { names, rows, values: table.values })
}
