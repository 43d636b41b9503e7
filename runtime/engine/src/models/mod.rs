//! The ModelManager: versioned ONNX models per agent under
//! `models/{agent}/{version}/` (model.onnx and metadata.json), validated
//! before they serve, run in the host by tract, activated, rolled back and
//! picked up by a watcher. Models never enter the sandbox: agents reach them
//! through the `model` import.

mod engine;
mod manager;
mod metadata;
mod sized;
mod state;

pub use engine::{LoadedModel, ModelOutput};
pub use manager::{ModelManager, VersionListing};
pub use metadata::{ModelMetadata, ReferenceCase, ScoreOutput, TensorSpec};
pub use state::ModelEvent;

/// Why a model was refused or could not be served. Each names the agent and
/// version and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("no model for agent '{agent}'{}", version.as_ref().map(|v| format!(" at version {v}")).unwrap_or_default())]
    NotFound { agent: String, version: Option<String> },
    #[error("model {agent} {version}: {detail}")]
    Invalid { agent: String, version: String, detail: String },
    #[error("model {agent} {version}: checksum mismatch: metadata says {expected}, model.onnx is {found}")]
    Checksum { agent: String, version: String, expected: String, found: String },
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("model state {path}: {source}")]
    State { path: String, source: rusqlite::Error },
    #[error("model state: {0}")]
    SharedState(#[from] mcp_storage::shared_store::SharedStoreError),
    #[error(
        "model_state = \"postgres\" keeps model activations in the PostgreSQL of database_url, which is not set: \
         set it (or MCP_DATABASE_URL), or use model_state = \"embedded\""
    )]
    NoDatabase,
    #[error("model {agent}: nothing to roll back to (no earlier activation recorded)")]
    NoPrevious { agent: String },
    #[error("model lock poisoned")]
    Poisoned,
    #[error("inference with {agent} {version}: {detail}")]
    Inference { agent: String, version: String, detail: String },
}

/// Agent and version names are path components: keep them plain.
pub fn valid_component(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}
