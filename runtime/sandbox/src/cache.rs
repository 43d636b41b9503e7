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

    /// Compiles `bytes`, or loads the artifact compiled before. `accept`
    /// sees a freshly compiled component before its artifact is written, so
    /// nothing is cached for a component the host then refuses.
    pub fn load(
        &self,
        engine: &Engine,
        bytes: &[u8],
        sha256: &str,
        accept: impl Fn(&Component) -> Result<(), SandboxError>,
    ) -> Result<(Component, CacheOutcome), SandboxError> {
        let Some(dir) = &self.dir else {
            let component = Component::new(engine, bytes).map_err(|e| SandboxError::Compile(one_line(&e)))?;
            accept(&component)?;
            return Ok((component, CacheOutcome::Disabled));
        };
        let path = Self::artifact_path(dir, engine, sha256);
        if path.exists() {
            match load_verified(engine, &path) {
                Ok(component) => {
                    accept(&component)?;
                    return Ok((component, CacheOutcome::Hit));
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), "compile cache entry ignored: {e:#}")
                }
            }
        }
        let artifact = engine.precompile_component(bytes).map_err(|e| SandboxError::Compile(one_line(&e)))?;
        let component = deserialize_bytes(engine, &artifact)?;
        accept(&component)?;
        let stored = std::fs::create_dir_all(dir).and_then(|()| {
            let temp = path.with_extension(format!("tmp{}", std::process::id()));
            std::fs::write(&temp, &artifact)?;
            std::fs::write(digest_path(&path), sha256_hex(&artifact))?;
            std::fs::rename(&temp, &path)
        });
        if let Err(e) = stored {
            tracing::warn!(dir = %dir.display(), "cannot write the compile cache: {e}");
        }
        Ok((component, CacheOutcome::Miss))
    }
}

fn digest_path(artifact: &Path) -> PathBuf {
    artifact.with_extension("cwasm.sha256")
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

/// Loads an artifact whose bytes still hash to what was written beside it:
/// a truncated or altered file is compiled again instead of trusted.
fn load_verified(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    let artifact = std::fs::read(path)?;
    let expected = std::fs::read_to_string(digest_path(path))?;
    if expected.trim() != sha256_hex(&artifact) {
        wasmtime::bail!("its sha256 does not match the one written with it");
    }
    deserialize_bytes(engine, &artifact).map_err(wasmtime::Error::msg)
}

// Loading precompiled code is unsafe because wasmtime trusts the bytes to be
// its own output. They are: this process wrote them (atomically, by rename)
// under a key that includes the engine's compatibility hash, and wasmtime
// checks version and configuration again on load. The cache directory must be
// writable only by the operator, as config/mcp.toml says.
#[allow(unsafe_code)]
fn deserialize_bytes(engine: &Engine, artifact: &[u8]) -> Result<Component, SandboxError> {
    unsafe { Component::deserialize(engine, artifact) }.map_err(|e| SandboxError::Compile(one_line(&e)))
}

/// wasmtime's messages may span lines (byte arrays, backtraces); operators
/// read them in one line of a table or log.
fn one_line(error: &wasmtime::Error) -> String {
    format!("{error:#}").split_whitespace().collect::<Vec<_>>().join(" ")
}
