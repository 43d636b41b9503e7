//! The control store's records of agent faults and of agents held out of
//! runs after too many of them. The policy (how many, how long) is the
//! engine's; this keeps the facts.

use serde::Serialize;

use crate::control::{ControlError, ControlStore};
use crate::control_sql::args;

/// Faults kept per (tenant, agent): enough to show and to count a window.
const KEPT_FAULTS: i64 = 100;

/// One fault of an agent's call, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FaultRecord {
    pub at_ms: i64,
    pub kind: String,
    pub message: String,
}

/// An agent held out of runs until `until_ms` (or an admin's release).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Quarantine {
    pub since_ms: i64,
    pub until_ms: i64,
    /// How many times in a row it was quarantined; the backoff doubles with each.
    pub level: u32,
    pub reason: String,
}

impl ControlStore {
    /// Records a fault of `tenant`'s `agent`, keeping the newest ones only.
    pub fn record_fault(
        &self,
        tenant: &str,
        agent: &str,
        at_ms: i64,
        kind: &str,
        message: &str,
    ) -> Result<(), ControlError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO agent_faults (tenant, agent, at_ms, kind, message) VALUES (?1, ?2, ?3, ?4, ?5)",
                &args![tenant, agent, at_ms, kind, message],
            )?;
            c.execute(
                "DELETE FROM agent_faults WHERE tenant = ?1 AND agent = ?2 AND id NOT IN
                 (SELECT id FROM agent_faults WHERE tenant = ?1 AND agent = ?2 ORDER BY id DESC LIMIT ?3)",
                &args![tenant, agent, KEPT_FAULTS],
            )?;
            Ok(())
        })
    }

    /// Faults of `tenant`'s `agent` at or after `since_ms`.
    pub fn faults_since(&self, tenant: &str, agent: &str, since_ms: i64) -> Result<u32, ControlError> {
        self.with(|c| {
            Ok(c.one(
                "SELECT COUNT(*) FROM agent_faults WHERE tenant = ?1 AND agent = ?2 AND at_ms >= ?3",
                &args![tenant, agent, since_ms],
                |r| r.get(0),
            )?)
        })
    }

    /// The newest `limit` faults of `tenant`'s `agent`, newest first.
    pub fn recent_faults(&self, tenant: &str, agent: &str, limit: u32) -> Result<Vec<FaultRecord>, ControlError> {
        self.with(|c| {
            Ok(c.rows(
                "SELECT at_ms, kind, message FROM agent_faults WHERE tenant = ?1 AND agent = ?2 ORDER BY id DESC LIMIT ?3",
                &args![tenant, agent, limit],
                |r| Ok(FaultRecord { at_ms: r.get(0)?, kind: r.get(1)?, message: r.get(2)? }),
            )?)
        })
    }

    /// The quarantine record of `tenant`'s `agent`, current or past (its
    /// level is what the next backoff grows from).
    pub fn quarantine(&self, tenant: &str, agent: &str) -> Result<Option<Quarantine>, ControlError> {
        self.with(|c| {
            Ok(c.first(
                "SELECT since_ms, until_ms, level, reason FROM agent_quarantine WHERE tenant = ?1 AND agent = ?2",
                &args![tenant, agent],
                |r| Ok(Quarantine { since_ms: r.get(0)?, until_ms: r.get(1)?, level: r.get(2)?, reason: r.get(3)? }),
            )?)
        })
    }

    pub fn set_quarantine(&self, tenant: &str, agent: &str, record: &Quarantine) -> Result<(), ControlError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO agent_quarantine (tenant, agent, since_ms, until_ms, level, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (tenant, agent) DO UPDATE SET since_ms = excluded.since_ms, until_ms = excluded.until_ms,
                 level = excluded.level, reason = excluded.reason",
                &args![tenant, agent, record.since_ms, record.until_ms, record.level, record.reason],
            )?;
            Ok(())
        })
    }

    /// Ends a quarantine now; with `forget`, its level too (a clean run).
    /// The faults that led to it no longer count against the agent.
    pub fn release_quarantine(
        &self,
        tenant: &str,
        agent: &str,
        at_ms: i64,
        forget: bool,
    ) -> Result<bool, ControlError> {
        self.with_tx(|c| {
            c.execute("DELETE FROM agent_faults WHERE tenant = ?1 AND agent = ?2", &args![tenant, agent])?;
            let changed = if forget {
                c.execute("DELETE FROM agent_quarantine WHERE tenant = ?1 AND agent = ?2", &args![tenant, agent])?
            } else {
                c.execute(
                    "UPDATE agent_quarantine SET until_ms = ?3 WHERE tenant = ?1 AND agent = ?2 AND until_ms > ?3",
                    &args![tenant, agent, at_ms],
                )?
            };
            Ok(changed > 0)
        })
    }
}
