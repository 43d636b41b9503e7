//! Where logs come from. The embedded SQLite source is the default; the
//! PostgreSQL source is on the roadmap (docs/ROADMAP.md).

pub mod sqlite;

pub use sqlite::{SourceBatch, SqliteLogSource};

/// Errors of a log source.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("log source database {path}: {source}")]
    Database {
        path: String,
        source: rusqlite::Error,
    },
    #[error("log source lock poisoned")]
    Poisoned,
}

/// Why a stored row cannot go to an agent; it goes to quarantine instead.
pub fn validate_row(source: &str, fields: &str) -> Result<(), String> {
    if source.contains('\n') {
        return Err("source contains a line break".into());
    }
    if fields.contains('\n') {
        return Err("fields contain a raw line break".into());
    }
    match serde_json::from_str::<serde_json::Value>(fields) {
        Ok(serde_json::Value::Object(_)) => Ok(()),
        Ok(_) => Err("fields are not a JSON object".into()),
        Err(e) => Err(format!("fields are not valid JSON: {e}")),
    }
}
