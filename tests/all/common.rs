use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mcp_sandbox::conformance::{SampleEntries, to_batch};
use mcp_sandbox::registry::Registry;
use mcp_sandbox::{AgentInstance, CompileCache, GuestBatch as LogBatch, InstanceContext, Sandbox, SandboxLimits};

/// Limits small enough that hostile fixtures hit them quickly. The deadline
/// is wall-clock, so it leaves room for a loaded CI machine: a memory bomb
/// must meet its memory cap before its deadline even when cores are busy.
pub fn test_limits() -> SandboxLimits {
    SandboxLimits { call_timeout_ms: 2_000, memory_bytes: 64 << 20, max_instances: 32, ..SandboxLimits::default() }
}

/// Tests share one compile cache, which also exercises it under concurrency.
pub fn test_cache() -> CompileCache {
    CompileCache::new(Some(PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("compile-cache")))
}

pub fn sandbox_with(limits: SandboxLimits) -> Arc<Sandbox> {
    match Sandbox::new(limits, test_cache()) {
        Ok(sandbox) => Arc::new(sandbox),
        Err(e) => panic!("cannot build the sandbox: {e}"),
    }
}

pub fn sandbox() -> Arc<Sandbox> {
    sandbox_with(test_limits())
}

pub fn agents_dir() -> &'static Path {
    Path::new(mcp_fixtures::AGENTS_DIR)
}

pub fn hostile_path() -> PathBuf {
    PathBuf::from(mcp_fixtures::HOSTILE)
}

pub fn bundled_registry(sandbox: Arc<Sandbox>) -> anyhow::Result<Registry> {
    let mut registry = Registry::new(sandbox);
    registry.discover(agents_dir())?;
    Ok(registry)
}

/// A hostile instance in `mode`, registered in its own registry.
pub fn hostile(sandbox: &Arc<Sandbox>, mode: &str) -> anyhow::Result<AgentInstance> {
    let mut registry = Registry::new(sandbox.clone());
    registry.register_file(&hostile_path())?;
    let mut context = InstanceContext::new("hostile", "tenant-a");
    context.config = Arc::new(BTreeMap::from([("mode".to_string(), mode.to_string())]));
    Ok(registry.instantiate("hostile", context)?)
}

pub fn wifi_batch(count: usize) -> LogBatch {
    to_batch("wifi", &mcp_synth::GeneratedSamples.entries("wifi", count).unwrap_or_default())
}
