//! Precompiled components on disk, keyed by the component's sha256 and the
//! engine's configuration, so a second start does not recompile.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

use super::SandboxError;

/// Where precompiled artifacts live; `None` compiles every time.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: Option<PathBuf>,
}

/// How a component was obtained, for logs and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    Hit,
    Miss,
    Disabled,
}

impl CompileCache {
    pub fn new(dir: Option<PathBuf>) -> Self {
        CompileCache { dir }
    }

    fn artifact_path(dir: &Path, engine: &Engine, sha256: &str) -> PathBuf {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        dir.join(format!("{sha256}-{:016x}.cwasm", hasher.finish()))
    }

    /// Compiles `bytes`, or loads the artifact compiled before.
    pub fn load(&self, engine: &Engine, bytes: &[u8], sha256: &str) -> Result<(Component, CacheOutcome), SandboxError> {
        let Some(dir) = &self.dir else {
            let component = Component::new(engine, bytes).map_err(|e| SandboxError::Compile(one_line(&e)))?;
            return Ok((component, CacheOutcome::Disabled));
        };
        let path = Self::artifact_path(dir, engine, sha256);
        if path.exists() {
            match deserialize_file(engine, &path) {
                Ok(component) => return Ok((component, CacheOutcome::Hit)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), "stale compile cache entry ignored: {e:#}")
                }
            }
        }
        let artifact = engine.precompile_component(bytes).map_err(|e| SandboxError::Compile(one_line(&e)))?;
        let stored = std::fs::create_dir_all(dir).and_then(|()| {
            let temp = path.with_extension(format!("tmp{}", std::process::id()));
            std::fs::write(&temp, &artifact)?;
            std::fs::rename(&temp, &path)
        });
        if let Err(e) = stored {
            tracing::warn!(dir = %dir.display(), "cannot write the compile cache: {e}");
        }
        let component = deserialize_bytes(engine, &artifact)?;
        Ok((component, CacheOutcome::Miss))
    }
}

// Loading precompiled code is unsafe because wasmtime trusts the bytes to be
// its own output. They are: this process wrote them (atomically, by rename)
// under a key that includes the engine's compatibility hash, and wasmtime
// checks version and configuration again on load. The cache directory must be
// writable only by the operator, as config/mcp.toml says.
#[allow(unsafe_code)]
fn deserialize_file(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    unsafe { Component::deserialize_file(engine, path) }
}

#[allow(unsafe_code)]
fn deserialize_bytes(engine: &Engine, artifact: &[u8]) -> Result<Component, SandboxError> {
    unsafe { Component::deserialize(engine, artifact) }.map_err(|e| SandboxError::Compile(one_line(&e)))
}

/// wasmtime's messages may span lines (byte arrays, backtraces); operators
/// read them in one line of a table or log.
fn one_line(error: &wasmtime::Error) -> String {
    format!("{error:#}").split_whitespace().collect::<Vec<_>>().join(" ")
}
