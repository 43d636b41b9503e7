//! What the `mcp` binary carries: the bundled agents, the log schema files
//! and the shipped models, embedded at build time so that the binary runs
//! anywhere, with no source tree. They are installed under the data
//! directory's `bundled/` folder (agents and models for the options left
//! unset, `agents_dir` and `models_dir`; the log schemas always, as the end
//! of the schema search path), rewritten only where their bytes differ, so
//! the model state and edits elsewhere are never touched.

use std::path::Path;

use anyhow::{Context, Result};
use mcp_engine::config::McpConfig;

include!(concat!(env!("OUT_DIR"), "/bundled.rs"));

/// Writes the embedded files that `config` needs under its bundled folder.
pub fn install(config: &McpConfig) -> Result<()> {
    let root = config.bundled_dir();
    let mut wanted: Vec<(String, &[u8])> = Vec::new();
    for (name, bytes) in mcp_agent_artifacts::AGENTS {
        wanted.push((format!("agents/{name}"), bytes));
    }
    for (name, _, bytes) in mcp_agent_artifacts::EXAMPLES {
        wanted.push((format!("examples/{name}"), bytes));
    }
    // Always: they stay on the schema search path behind the operator's folder.
    wanted.extend(SCHEMAS.iter().map(|(name, bytes)| (format!("log_schemas/{name}"), *bytes)));
    if config.models_dir.is_none() {
        wanted.extend(MODELS.iter().map(|(name, bytes)| (format!("models/{name}"), *bytes)));
    }
    for (relative, bytes) in wanted {
        write_if_changed(&root.join(relative), bytes)?;
    }
    Ok(())
}

fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<()> {
    if std::fs::read(path).ok().as_deref() == Some(bytes) {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    // Written beside and renamed, so a reader never sees half a file.
    let partial = path.with_extension("partial");
    std::fs::write(&partial, bytes).with_context(|| format!("cannot write {}", partial.display()))?;
    std::fs::rename(&partial, path).with_context(|| format!("cannot write {}", path.display()))
}
