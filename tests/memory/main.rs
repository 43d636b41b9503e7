//! The host's resident memory returns to its level after hostile guests
//! exhaust theirs. A test binary of its own, so no other test's allocations
//! blur the measurement.

#[path = "../all/common.rs"]
#[allow(dead_code)]
mod common;

use mcp_sandbox::{Fault, SandboxError};

fn resident_bytes() -> anyhow::Result<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm")?;
    let pages: u64 = statm.split_whitespace().nth(1).ok_or_else(|| anyhow::anyhow!("odd /proc/self/statm"))?.parse()?;
    Ok(pages * 4096)
}

#[test]
fn memory_returns_after_memory_bombs() -> anyhow::Result<()> {
    let sandbox = common::sandbox();
    // Warm up: compile, instantiate and run once so lazily built state exists.
    common::hostile(&sandbox, "behave")?.detect_batch(&common::wifi_batch(2))?;
    let before = resident_bytes()?;
    for round in 0..4 {
        for mode in ["memory-bomb", "huge-result"] {
            let mut instance = common::hostile(&sandbox, mode)?;
            match instance.detect_batch(&common::wifi_batch(2)) {
                Err(SandboxError::Fault { fault: Fault::MemoryLimit { .. }, .. }) => {}
                other => {
                    anyhow::bail!("round {round}, {mode}: expected the memory limit, got {other:?}")
                }
            }
        }
    }
    let after = resident_bytes()?;
    let grown = after.saturating_sub(before);
    // Each bomb filled 64 MiB; eight of them kept would be 512 MiB.
    assert!(
        grown < 32 << 20,
        "resident memory grew by {} MiB (from {} to {} MiB)",
        grown >> 20,
        before >> 20,
        after >> 20
    );
    let mut behaving = common::hostile(&sandbox, "behave")?;
    assert_eq!(behaving.detect_batch(&common::wifi_batch(2))?.len(), 1);
    Ok(())
}
