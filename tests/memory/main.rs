//! The host's resident memory returns to its level after hostile guests
//! exhaust theirs. A test binary of its own, so no other test's allocations
//! blur the measurement.

#[path = "../all/common.rs"]
#[allow(dead_code)]
mod common;

use mcp_sandbox::{Fault, SandboxError};

/// The tests of this binary measure one process's memory: one at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn resident_bytes() -> anyhow::Result<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm")?;
    let pages: u64 = statm.split_whitespace().nth(1).ok_or_else(|| anyhow::anyhow!("odd /proc/self/statm"))?.parse()?;
    Ok(pages * 4096)
}

#[test]
fn memory_returns_after_memory_bombs() -> anyhow::Result<()> {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
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

/// The hostile suite's attacks that make the host hold memory (lifted
/// errors, reported findings, log lines, handles), each run four times:
/// what they made the host hold is given back.
#[test]
fn memory_returns_after_the_hostile_suite() -> anyhow::Result<()> {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let sandbox = common::sandbox();
    let modes = ["huge-error", "report-flood", "log-flood", "handles", "recursion", "nan", "other-model"];
    // The peak resident size of each round, sampled after every attack.
    // The first round is the baseline (lazily built state is not a leak):
    // a single sample taken after a warm-up was sometimes 68 MiB low, when
    // the allocator had just given pages back that the next attack took
    // again, and the test failed on a host that held nothing.
    let mut peaks = Vec::new();
    for round in 0..5 {
        let mut peak = 0;
        for mode in modes {
            let mut instance = common::hostile(&sandbox, mode)?;
            if instance.detect_batch(&common::wifi_batch(2)).is_ok() {
                anyhow::bail!("round {round}, {mode}: the attack was not stopped");
            }
            drop(instance);
            peak = peak.max(resident_bytes()?);
        }
        peaks.push(peak);
    }
    let first = peaks.first().copied().unwrap_or_default();
    let grown = peaks.last().copied().unwrap_or_default().saturating_sub(first);
    let mib: Vec<u64> = peaks.iter().map(|p| p >> 20).collect();
    assert!(grown < 32 << 20, "resident memory grew by {} MiB over four rounds (peaks in MiB: {mib:?})", grown >> 20);
    let mut behaving = common::hostile(&sandbox, "behave")?;
    assert_eq!(behaving.detect_batch(&common::wifi_batch(2))?.len(), 1);
    Ok(())
}
