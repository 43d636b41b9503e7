//! Crash safety: `mcp run` over 150,000 PostgreSQL rows of the three log
//! types, killed with SIGKILL at random moments and started again until it
//! finishes, stores exactly the anomalies an uninterrupted run stores, each
//! once. Every agent is interrupted, the Wi-Fi agent (whose learned access
//! points come back from its state snapshot) included; `tests/all/runs.rs`
//! shows deterministically that a restart without that state loses findings.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mcp_storage::source::{LogSource, NewRow};
use mcp_synth as generator;

mod common;
use common::{Namespace, namespace, quiet_mcp, stored};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// A schema of the test's own, loaded with `rows`.
fn loaded(tag: &str, rows: &[(String, Vec<NewRow>)]) -> Result<Namespace> {
    let ns = namespace(&format!("crash_{tag}"))?;
    for (log_type, batch) in rows {
        ns.source.append("t", log_type, batch)?;
    }
    Ok(ns)
}

/// A small deterministic generator for kill delays; the seed is printed.
struct Lcg(u64);

impl Lcg {
    fn next_ms(&mut self, low: u64, high: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        low + (self.0 >> 33) % (high - low)
    }
}

/// Runs `mcp run --agent AGENT`, SIGKILLing it after random delays of up to
/// half the agent's uninterrupted run (`alone`), so the first attempt is
/// always interrupted, until a run finishes on its own or `MAX_KILLS` kills
/// were made and a last run completes. Returns the kills.
fn run_with_kills(dir: &Path, agent: &str, alone: Duration, delays: &mut Lcg, started: Instant) -> Result<u32> {
    let longest = u64::try_from(alone.as_millis() / 2).unwrap_or(u64::MAX).max(60);
    const MAX_KILLS: u32 = 6;
    let mut kills = 0;
    loop {
        let mut child = quiet_mcp(dir).args(["run", "--agent", agent]).spawn()?;
        if kills == MAX_KILLS {
            // Enough interruptions: let this one finish.
            let status = child.wait()?;
            assert!(status.success(), "{agent}: the last run failed: {status}");
            return Ok(kills);
        }
        let deadline = Instant::now() + Duration::from_millis(delays.next_ms(40, longest));
        let finished = loop {
            if let Some(status) = child.try_wait()? {
                break Some(status);
            }
            if Instant::now() >= deadline {
                break None;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        match finished {
            Some(status) => {
                assert!(status.success(), "{agent}: a run failed on its own: {status}");
                return Ok(kills);
            }
            None => {
                child.kill()?; // SIGKILL on Unix
                child.wait()?;
                kills += 1;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(600), "runs did not finish in 10 minutes");
    }
}

#[test]
fn sigkilled_runs_store_every_anomaly_exactly_once() -> Result<()> {
    let rows: Vec<(String, Vec<NewRow>)> = ["firewall", "dns", "wifi"]
        .iter()
        .map(|t| Ok((t.to_string(), generator::to_rows(&generator::generate(t, 77, 50_000)?))))
        .collect::<std::result::Result<_, generator::GeneratorError>>()?;
    let total: usize = rows.iter().map(|(_, r)| r.len()).sum();
    assert!(total >= 100_000, "only {total} rows");

    let reference_dir = tempfile::tempdir()?;
    let reference_ns = loaded("ref", &rows)?;
    reference_ns.write_config(reference_dir.path(), "t")?;
    // Agent by agent, timed, to bound the kill delays below.
    let mut alone = Vec::new();
    for agent in ["wifi", "firewall", "dns"] {
        let began = Instant::now();
        let status = quiet_mcp(reference_dir.path()).args(["run", "--agent", agent]).status()?;
        assert!(status.success(), "{agent}: the uninterrupted run failed");
        alone.push((agent, began.elapsed()));
    }
    let (expected, expected_count) = stored(reference_dir.path())?;
    assert!(expected.len() > 1_000, "only {} anomalies", expected.len());
    let learned =
        expected.iter().filter(|(agent, _, label)| agent == "wifi" && (label == "evil_twin" || label == "rogue_ap"));
    assert!(learned.count() > 0, "no access-point findings: the Wi-Fi agent's learned state is not exercised");
    assert_eq!(expected.len(), expected_count);

    let crash_dir = tempfile::tempdir()?;
    let crash_ns = loaded("kill", &rows)?;
    crash_ns.write_config(crash_dir.path(), "t")?;
    let seed = u64::from(SystemTime::now().duration_since(UNIX_EPOCH)?.subsec_nanos());
    eprintln!("kill delays from seed {seed}");
    let mut delays = Lcg(seed);
    let started = Instant::now();
    // Agent by agent, so that every agent is interrupted, the Wi-Fi agent
    // (whose learned state must come back) included.
    for (agent, alone) in alone {
        let kills = run_with_kills(crash_dir.path(), agent, alone, &mut delays, started)?;
        eprintln!("{agent}: killed {kills} times (uninterrupted run {alone:?})");
        assert!(kills >= 1, "{agent}: the run finished before the first kill; nothing was interrupted");
    }
    let (found, found_count) = stored(crash_dir.path())?;
    assert_eq!(found_count, found.len(), "an anomaly was stored twice");
    let missing: Vec<_> = expected.difference(&found).take(5).collect();
    let extra: Vec<_> = found.difference(&expected).take(5).collect();
    assert!(missing.is_empty() && extra.is_empty(), "missing {missing:?}, extra {extra:?}");
    Ok(())
}
