//! Holding an agent that keeps faulting out of runs, with a backoff that
//! grows each time, so a crashing agent cannot be run in a loop at the
//! cost of the host and every other tenant (Envoy's crash-reload loop is
//! the lesson). The control store keeps the records; this is the policy.

use serde::{Deserialize, Serialize};

use crate::runs::RunOutcome;
use mcp_storage::control::{ControlError, ControlStore};
use mcp_storage::jobstatus::now_ms;
use mcp_storage::quarantine::Quarantine;

/// The `[quarantine]` table of the config file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuarantinePolicy {
    /// Faults within `window_ms` that quarantine an agent.
    pub faults: u32,
    pub window_ms: u64,
    /// The first quarantine's length; each one after doubles it.
    pub backoff_ms: u64,
    /// The longest a quarantine lasts.
    pub max_backoff_ms: u64,
}

impl Default for QuarantinePolicy {
    fn default() -> Self {
        QuarantinePolicy { faults: 3, window_ms: 600_000, backoff_ms: 60_000, max_backoff_ms: 86_400_000 }
    }
}

impl QuarantinePolicy {
    /// How long the `level`-th quarantine in a row lasts.
    pub fn backoff(&self, level: u32) -> u64 {
        let doubled = self.backoff_ms.saturating_mul(1u64 << level.saturating_sub(1).min(40));
        doubled.min(self.max_backoff_ms)
    }
}

/// The quarantine in force for `tenant`'s `agent` now, if any.
pub fn in_force(control: &ControlStore, tenant: &str, agent: &str) -> Result<Option<Quarantine>, ControlError> {
    Ok(control.quarantine(tenant, agent)?.filter(|q| q.until_ms > now_ms()))
}

/// Records the faults a run met (and an agent error that ended it) and
/// quarantines the agent when they reach the policy's count within its
/// window; a run that made calls without any clears a past quarantine's
/// level once it has expired. Returns the quarantine it started, if any.
pub fn settle(
    control: &ControlStore,
    policy: &QuarantinePolicy,
    tenant: &str,
    agent: &str,
    outcome: &RunOutcome,
) -> Result<Option<Quarantine>, ControlError> {
    let mut faults: Vec<(&str, String)> = outcome.fault_list.iter().map(|f| (f.kind(), f.to_string())).collect();
    if let Err(error) = &outcome.result
        && let Some(message) = error.agent_error()
    {
        // An agent that fails every batch with an error loops like one that traps.
        faults.push(("agent-error", message.to_string()));
    }
    record(control, policy, tenant, agent, &faults, outcome.usage.calls > 0)
}

/// As [`settle`], with the faults as (kind, message) and whether the run
/// made any agent call.
pub fn record(
    control: &ControlStore,
    policy: &QuarantinePolicy,
    tenant: &str,
    agent: &str,
    faults: &[(&str, String)],
    made_calls: bool,
) -> Result<Option<Quarantine>, ControlError> {
    let now = now_ms();
    if faults.is_empty() {
        // Only a run that called the agent shows it healthy.
        if made_calls && control.quarantine(tenant, agent)?.is_some_and(|q| q.until_ms <= now) {
            control.release_quarantine(tenant, agent, now, true)?;
        }
        return Ok(None);
    }
    for (kind, message) in faults {
        control.record_fault(tenant, agent, now, kind, message)?;
    }
    let since = now.saturating_sub(i64::try_from(policy.window_ms).unwrap_or(i64::MAX));
    let count = control.faults_since(tenant, agent, since)?;
    if count < policy.faults || in_force(control, tenant, agent)?.is_some() {
        return Ok(None);
    }
    let level = control.quarantine(tenant, agent)?.map_or(1, |past| past.level.saturating_add(1));
    let backoff = i64::try_from(policy.backoff(level)).unwrap_or(i64::MAX);
    // The kind only: the reason is shown in listings and problem details.
    let last = faults.last().map_or("", |(kind, _)| kind);
    let record = Quarantine {
        since_ms: now,
        until_ms: now.saturating_add(backoff),
        level,
        reason: format!("{count} faults within {} s, the last of kind '{last}'", policy.window_ms / 1000),
    };
    control.set_quarantine(tenant, agent, &record)?;
    tracing::warn!(tenant, agent, level, until_ms = record.until_ms, "agent quarantined: {}", record.reason);
    Ok(Some(record))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_up_to_its_ceiling() {
        let policy = QuarantinePolicy { backoff_ms: 1000, max_backoff_ms: 5000, ..QuarantinePolicy::default() };
        assert_eq!([1, 2, 3, 4, 60].map(|l| policy.backoff(l)), [1000, 2000, 4000, 5000, 5000]);
    }

    #[test]
    fn k_faults_quarantine_and_a_clean_run_after_expiry_resets_the_level() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let control = ControlStore::open(&dir.path().join("control.db"))?;
        let policy = QuarantinePolicy { faults: 3, window_ms: 60_000, backoff_ms: 1, max_backoff_ms: 1 };
        let panic = [("panic", "panicked".to_string())];
        assert_eq!(record(&control, &policy, "acme", "crash", &panic, true)?, None);
        assert_eq!(record(&control, &policy, "acme", "crash", &panic, true)?, None);
        let quarantined = record(&control, &policy, "acme", "crash", &panic, true)?;
        assert_eq!(quarantined.as_ref().map(|q| q.level), Some(1));
        assert!(quarantined.is_some_and(|q| q.reason.contains("3 faults")));
        assert!(control.quarantine("globex", "crash")?.is_none(), "another tenant's agent is untouched");
        std::thread::sleep(std::time::Duration::from_millis(5));
        // Still within the window: the next fault quarantines again, longer.
        let again = record(&control, &policy, "acme", "crash", &panic, true)?;
        assert_eq!(again.map(|q| q.level), Some(2));
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert_eq!(record(&control, &policy, "acme", "crash", &[], false)?, None);
        assert!(control.quarantine("acme", "crash")?.is_some(), "a run that made no call shows nothing");
        assert_eq!(record(&control, &policy, "acme", "crash", &[], true)?, None);
        assert!(control.quarantine("acme", "crash")?.is_none(), "a clean run after expiry clears it");
        Ok(())
    }
}
