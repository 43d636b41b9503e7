//! Where logs come from. The embedded SQLite source is the default; the
//! PostgreSQL source is on the roadmap (docs/ROADMAP.md).

pub mod load;
pub mod sqlite;

pub use sqlite::{Quarantined, SourceBatch, SqliteLogSource};

/// Errors of a log source.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("log source database {path}: {source}")]
    Database { path: String, source: rusqlite::Error },
    #[error("log source lock poisoned")]
    Poisoned,
    #[error(transparent)]
    Schema(#[from] crate::schema::SchemaError),
}
