//! Hostile guests are stopped with the right typed error within their
//! budget, and the host and the other agents carry on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mcp_columns::Anomaly;
use mcp_sandbox::conformance::to_batch;
use mcp_sandbox::{Fault, InstanceContext, Sandbox, SandboxError, SandboxLimits};

use crate::common::{bundled_registry, hostile, sandbox, sandbox_with, test_limits, wifi_batch};

fn fault_of(mode: &str) -> anyhow::Result<(Fault, Duration)> {
    let sandbox = sandbox();
    let mut instance = hostile(&sandbox, mode)?;
    let started = Instant::now();
    let result = instance.detect_batch(&wifi_batch(3));
    let elapsed = started.elapsed();
    match result {
        Err(SandboxError::Fault { agent, fault }) => {
            assert_eq!(agent, "hostile", "the error names the agent");
            assert_eq!(instance.faults(), 1);
            // The same instance object recovers: a fresh Store behind it.
            Ok((fault, elapsed))
        }
        other => anyhow::bail!("mode {mode}: expected a fault, got {other:?}"),
    }
}

fn agent_error_of(mode: &str) -> anyhow::Result<String> {
    let sandbox = sandbox();
    let mut instance = hostile(&sandbox, mode)?;
    match instance.detect_batch(&wifi_batch(3)) {
        Err(SandboxError::Agent { message, .. }) => Ok(message),
        other => anyhow::bail!("mode {mode}: expected the guest to be refused, got {other:?}"),
    }
}

#[test]
fn infinite_loop_hits_the_deadline() -> anyhow::Result<()> {
    let (fault, elapsed) = fault_of("loop")?;
    assert_eq!(fault, Fault::Deadline { timeout_ms: test_limits().call_timeout_ms });
    assert!(elapsed < Duration::from_secs(10), "stopped after {elapsed:?}");
    Ok(())
}

#[test]
fn memory_bomb_hits_the_memory_limit() -> anyhow::Result<()> {
    let (fault, _) = fault_of("memory-bomb")?;
    assert!(matches!(fault, Fault::MemoryLimit { limit, .. } if limit == 64 << 20), "{fault:?}");
    Ok(())
}

#[test]
fn deep_recursion_overflows_the_stack() -> anyhow::Result<()> {
    let (fault, _) = fault_of("recursion")?;
    assert!(matches!(fault, Fault::StackOverflow { .. }), "{fault:?}");
    Ok(())
}

#[test]
fn panic_is_a_fault() -> anyhow::Result<()> {
    assert_eq!(fault_of("panic")?.0, Fault::Panic);
    Ok(())
}

#[test]
fn huge_result_hits_the_memory_limit() -> anyhow::Result<()> {
    let (fault, _) = fault_of("huge-result")?;
    assert!(matches!(fault, Fault::MemoryLimit { .. }), "{fault:?}");
    Ok(())
}

#[test]
fn host_call_spin_ends_at_its_log_budget_or_the_deadline() -> anyhow::Result<()> {
    // It logs and reads its config in a loop: the log budget (100,000 lines
    // a run) ends it, or the deadline on a machine too slow to reach that.
    let (fault, elapsed) = fault_of("host-spin")?;
    let log_budget =
        Fault::Budget(mcp_sandbox::BudgetExceeded { budget: mcp_sandbox::Budget::LogLines, limit: 100_000 });
    assert!(fault == log_budget || matches!(fault, Fault::Deadline { .. }), "{fault:?}");
    assert!(elapsed < Duration::from_secs(10), "stopped after {elapsed:?}");
    Ok(())
}

#[test]
fn files_are_not_reachable() -> anyhow::Result<()> {
    let message = agent_error_of("read-file")?;
    assert!(message.contains("read-file denied"), "{message}");
    assert!(!message.contains("root:"), "leaked /etc/passwd: {message}");
    Ok(())
}

#[test]
fn sockets_are_not_reachable() -> anyhow::Result<()> {
    let message = agent_error_of("socket")?;
    assert!(message.contains("socket denied"), "{message}");
    Ok(())
}

#[test]
fn environment_and_arguments_are_empty() -> anyhow::Result<()> {
    let message = agent_error_of("environment")?;
    assert!(message.contains("environment empty"), "{message}");
    Ok(())
}

#[test]
fn instance_recovers_after_a_fault() -> anyhow::Result<()> {
    let sandbox = sandbox();
    let mut instance = hostile(&sandbox, "panic")?;
    assert!(matches!(instance.detect_batch(&wifi_batch(2)), Err(SandboxError::Fault { .. })));
    // After the trap the Store was dropped; the next call instantiates anew and
    // panics again rather than touching a poisoned instance.
    assert!(matches!(instance.detect_batch(&wifi_batch(2)), Err(SandboxError::Fault { fault: Fault::Panic, .. })));
    assert_eq!(instance.faults(), 2);
    Ok(())
}

#[test]
fn other_agents_keep_working_while_one_loops() -> anyhow::Result<()> {
    let sandbox = sandbox();
    let registry = bundled_registry(sandbox.clone())?;
    let looping = std::thread::spawn({
        let sandbox = sandbox.clone();
        move || -> anyhow::Result<bool> {
            let mut instance = hostile(&sandbox, "loop")?;
            Ok(matches!(
                instance.detect_batch(&wifi_batch(1)),
                Err(SandboxError::Fault { fault: Fault::Deadline { .. }, .. })
            ))
        }
    });
    let mut wifi = registry.instantiate("wifi", mcp_sandbox::InstanceContext::new("wifi", "tenant-b"))?;
    for _ in 0..5 {
        wifi.detect_batch(&wifi_batch(200))?;
    }
    let stopped = looping.join().map_err(|_| anyhow::anyhow!("looping thread panicked"))??;
    assert!(stopped, "the looping agent was not stopped by its deadline");
    // And after the fault, a normal agent in the same sandbox still works.
    let mut behaving = hostile(&sandbox, "behave")?;
    assert_eq!(behaving.detect_batch(&wifi_batch(2))?.len(), 1);
    Ok(())
}

#[test]
fn fuel_budget_stops_a_loop() -> anyhow::Result<()> {
    let limits = mcp_sandbox::SandboxLimits {
        budget: mcp_sandbox::BudgetKind::Fuel,
        fuel_per_call: 50_000_000,
        ..test_limits()
    };
    let sandbox = crate::common::sandbox_with(limits);
    let mut instance = hostile(&sandbox, "loop")?;
    match instance.detect_batch(&wifi_batch(1)) {
        Err(SandboxError::Fault { fault: Fault::FuelExhausted { fuel }, .. }) => assert_eq!(fuel, 50_000_000),
        other => anyhow::bail!("expected fuel exhaustion, got {other:?}"),
    }
    let mut behaving = hostile(&sandbox, "behave")?;
    assert_eq!(behaving.detect_batch(&wifi_batch(2))?.len(), 1);
    assert!(behaving.usage().fuel > 0, "fuel use is counted");
    Ok(())
}

#[test]
fn host_stamps_agent_name_and_entry_provenance() -> anyhow::Result<()> {
    let sandbox = sandbox();
    let mut instance = hostile(&sandbox, "behave")?;
    let batch = wifi_batch(3);
    let found = instance.detect_batch(&batch)?;
    let [anomaly] = found.as_slice() else { anyhow::bail!("expected one anomaly, got {found:?}") };
    assert_eq!(anomaly.agent, "hostile");
    assert!(anomaly.detected_at_ms > 0);
    assert_eq!(anomaly.log_type, "wifi");
    assert_eq!(Some(anomaly.source.as_str()), batch.source_at(0));
    assert_eq!(Some(anomaly.log_timestamp_ms), batch.timestamp_at(0));
    Ok(())
}

/// A tracing writer that keeps what was written, for asserting on logs.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut bytes) = self.0.lock() {
            bytes.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        self.0.lock().map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
    }
}

fn with_captured_logs(f: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<String> {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
    tracing::subscriber::with_default(subscriber, f)?;
    Ok(captured.text())
}

#[test]
fn guest_output_goes_to_the_host_log_with_the_agent_name() -> anyhow::Result<()> {
    let logs = with_captured_logs(|| {
        let sandbox = sandbox();
        let mut instance = hostile(&sandbox, "print")?;
        instance.detect_batch(&wifi_batch(1))?;
        Ok(())
    })?;
    let line = logs.lines().find(|l| l.contains("hello from the guest on stdout")).unwrap_or_default();
    assert!(line.contains("agent=hostile") && line.contains("stream=\"stdout\""), "{logs}");
    let line = logs.lines().find(|l| l.contains("and on stderr")).unwrap_or_default();
    assert!(line.contains("agent=hostile") && line.contains("stream=\"stderr\""), "{logs}");
    Ok(())
}

#[test]
fn a_flood_of_guest_output_is_cut_off() -> anyhow::Result<()> {
    let logs = with_captured_logs(|| {
        let sandbox = sandbox();
        let mut instance = hostile(&sandbox, "print-flood")?;
        instance.detect_batch(&wifi_batch(1))?;
        Ok(())
    })?;
    let printed = logs.lines().filter(|l| l.contains("yyyy")).count();
    // 2 MiB printed, 256 KiB logged: 256 lines of 1 KiB.
    assert!(printed > 200 && printed <= 256, "{printed} lines logged");
    assert!(logs.contains("guest output limit reached"), "no warning about the cut");
    Ok(())
}

#[test]
fn a_guest_that_sleeps_is_stopped_at_once() -> anyhow::Result<()> {
    for mode in ["sleep", "sleep-forever"] {
        let (fault, elapsed) = fault_of(mode)?;
        assert!(matches!(&fault, Fault::Wait(m) if m.contains("may not sleep")), "{mode}: {fault:?}");
        assert_eq!(fault.kind(), "wait");
        // Well inside the 2 s deadline that a blocking host call would outlive.
        assert!(elapsed < Duration::from_secs(2), "{mode}: stopped after {elapsed:?}");
    }
    Ok(())
}

#[test]
fn a_guest_may_read_the_clocks() -> anyhow::Result<()> {
    let sandbox = sandbox();
    let mut instance = hostile(&sandbox, "clock")?;
    assert_eq!(instance.detect_batch(&wifi_batch(2))?.len(), 1);
    Ok(())
}

/// A pool too large to reserve 4 GiB per memory reserves each memory's
/// ceiling instead, and its guests get explicit bounds checks: the agents
/// must find the same, many instances must live at once, and the memory
/// cap must still stop a bomb.
#[test]
fn a_pool_of_ten_thousand_instances_finds_the_same_and_keeps_the_memory_cap() -> anyhow::Result<()> {
    let large = sandbox_with(SandboxLimits { max_instances: 10_000, ..test_limits() });
    let batch = wifi_batch(2_000);
    let findings = |sandbox: Arc<Sandbox>| -> anyhow::Result<Vec<Anomaly>> {
        let registry = bundled_registry(sandbox)?;
        let found = registry.instantiate("wifi", InstanceContext::new("wifi", "tenant-a"))?.detect_batch(&batch)?;
        // When the host stamped them is not the guest's to agree on.
        Ok(found.into_iter().map(|a| Anomaly { detected_at_ms: 0, ..a }).collect())
    };
    let usual = findings(sandbox())?;
    assert!(!usual.is_empty(), "the batch holds no attack to compare on");
    assert_eq!(findings(large.clone())?, usual, "bounds-checked guests found something else");

    let registry = bundled_registry(large.clone())?;
    let mut live = Vec::new();
    for i in 0..300 {
        let mut instance = registry.instantiate("dns", InstanceContext::new("dns", &format!("tenant-{}", i % 30)))?;
        instance.detect_batch(&to_batch("dns", &[]))?;
        live.push(instance);
    }

    let mut bomb = hostile(&large, "memory-bomb")?;
    match bomb.detect_batch(&wifi_batch(3)) {
        Err(SandboxError::Fault { fault: Fault::MemoryLimit { limit, .. }, .. }) => assert_eq!(limit, 64 << 20),
        other => anyhow::bail!("the bomb in the large pool: expected the memory limit, got {other:?}"),
    }
    Ok(())
}
