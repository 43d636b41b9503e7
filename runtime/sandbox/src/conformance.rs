//! The protocol conformance check behind `mcp agents check` and the tests:
//! is this component an agent of the world, is its info consistent, does
//! every export answer well on entries of its schema, and does it refuse
//! entries of another log type with an error rather than a trap.

use std::collections::HashSet;

use mcp_columns::RawRow;

use crate::registry::{self, RegisteredAgent};
use crate::{AgentInstance, GuestBatch, InstanceContext, LogEntry, Sandbox, SandboxError};

/// One named check and how it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Passed(String),
    Failed(String),
    /// Not run, and why; a report with skips is not a full pass.
    Skipped(String),
}

/// Everything the check found about one component.
#[derive(Debug, Clone)]
pub struct Report {
    pub origin: String,
    pub agent: Option<RegisteredAgent>,
    pub checks: Vec<Check>,
}

impl Report {
    /// True when no check failed or was skipped.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| matches!(c.outcome, Outcome::Passed(_)))
    }
}

/// Where the check takes entries of a log type to call the exports with.
pub trait SampleEntries {
    /// `count` entries of `log_type` with ids from 1, as the host sends them;
    /// `None` when it has none of that type.
    fn entries(&self, log_type: &str, count: usize) -> Option<Vec<LogEntry>>;
}

const SAMPLE_SIZE: usize = 300;

/// Packs entries into the columnar batch the host builds; entries that do
/// not fit a batch are left out, as the source would quarantine them.
pub fn to_columns(log_type: &str, entries: &[LogEntry]) -> mcp_columns::LogBatch {
    let rows: Vec<RawRow<'_>> = entries.iter().map(LogEntry::raw_row).collect();
    let (batch, refused) = mcp_columns::build_batch(log_type, 1, &rows);
    for (index, reason) in refused {
        tracing::warn!(index, "sample entry left out: {reason}");
    }
    batch
}

/// As [`to_columns`], in the form the guest receives.
pub fn to_batch(log_type: &str, entries: &[LogEntry]) -> GuestBatch {
    to_columns(log_type, entries).into()
}

fn pass(name: &'static str, detail: impl Into<String>) -> Check {
    Check { name, outcome: Outcome::Passed(detail.into()) }
}

fn fail(name: &'static str, detail: impl Into<String>) -> Check {
    Check { name, outcome: Outcome::Failed(detail.into()) }
}

/// Whether the agent's state survives a restart: a fresh instance given the
/// snapshot finds on the next batch exactly what the original finds.
/// Whether each field the agent declares it reads is in some sample entry:
/// one in none would never reach it (a typo, or a field the log type's
/// schema file lacks).
fn fields_check(required: &[String], batch: &GuestBatch) -> Check {
    let present: HashSet<&str> = batch.0.columns.iter().map(|c| c.name.as_str()).collect();
    match required.iter().find(|field| !present.contains(field.as_str())) {
        Some(missing) => fail(
            "required fields",
            format!(
                "'{missing}' is in no sample entry: the log type's schema file or the samples lack it, so the agent would never be given it"
            ),
        ),
        None => pass("required fields", format!("{} declared, each in the samples", required.len())),
    }
}

fn state_check(sandbox: &Sandbox, agent: &RegisteredAgent, original: &mut AgentInstance, next: &GuestBatch) -> Check {
    const NAME: &str = "snapshot and restore";
    if !agent.protocol.has_state() {
        return pass(
            NAME,
            format!(
                "protocol {}: no state export; after a restart the host replays recent entries",
                agent.protocol.version()
            ),
        );
    }
    let state = match original.snapshot() {
        Ok(state) => state.unwrap_or_default().to_vec(),
        Err(e) => return fail(NAME, format!("snapshot: {e}")),
    };
    let context = InstanceContext::new(&agent.info.name, "conformance");
    let mut restored = match sandbox.instantiate(agent.component(), context) {
        Ok(instance) => instance,
        Err(e) => return fail(NAME, e.to_string()),
    };
    if let Err(e) = restored.restore(&state) {
        return fail(NAME, format!("restore of its own {} bytes: {e}", state.len()));
    }
    let key = |found: Vec<mcp_columns::Anomaly>| {
        let mut keys: Vec<(u64, String)> = found.into_iter().map(|a| (a.log_id, a.label)).collect();
        keys.sort();
        keys
    };
    match (original.detect_batch(next), restored.detect_batch(next)) {
        (Ok(a), Ok(b)) => {
            let (a, b) = (key(a), key(b));
            if a == b {
                pass(NAME, format!("{} bytes; the restored instance found the same {} anomalies", state.len(), a.len()))
            } else {
                fail(NAME, format!("after restore it found {} anomalies where the original found {}", b.len(), a.len()))
            }
        }
        (Err(e), _) | (_, Err(e)) => fail(NAME, e.to_string()),
    }
}

/// Runs every check on the component in `bytes`, calling its exports with
/// entries from `samples`.
pub fn check(sandbox: &Sandbox, bytes: &[u8], origin: &str, samples: &dyn SampleEntries) -> Report {
    let mut checks = Vec::new();
    let agent = match registry::validate(sandbox, bytes, origin) {
        Ok(agent) => agent,
        Err(e) => {
            checks.push(fail("component of the world, protocol and info", e.to_string()));
            return Report { origin: origin.into(), agent: None, checks };
        }
    };
    let info = &agent.info;
    checks.push(pass(
        "component of the world, protocol and info",
        format!(
            "{} {} for '{}' logs, protocol {}",
            info.name, info.agent_version, info.log_type, info.protocol_version
        ),
    ));

    let context = InstanceContext::new(&info.name, "conformance");
    let mut instance = match sandbox.instantiate(agent.component(), context) {
        Ok(instance) => instance,
        Err(e) => {
            checks.push(fail("instantiate", e.to_string()));
            return Report { origin: origin.into(), agent: Some(agent), checks };
        }
    };

    let Some(entries) = samples.entries(&info.log_type, SAMPLE_SIZE) else {
        checks.push(Check {
            name: "exports on sample entries",
            outcome: Outcome::Skipped(format!("no sample generator for log type '{}'", info.log_type)),
        });
        return Report { origin: origin.into(), agent: Some(agent), checks };
    };
    let ids: HashSet<u64> = entries.iter().map(|e| e.id).collect();
    let batch = to_batch(&info.log_type, &entries);
    checks.push(fields_check(&info.schema.required_fields, &batch));

    // Half the samples first, so that the state check below has a second
    // half to compare on.
    let half = entries.len() / 2;
    let (first, second) = (to_batch(&info.log_type, &entries[..half]), to_batch(&info.log_type, &entries[half..]));
    checks.push(match instance.detect_batch(&first) {
        Ok(found) => match found.iter().find(|a| !ids.contains(&a.log_id)) {
            Some(stray) => {
                fail("detect-batch", format!("anomaly names log id {} that was not in the batch", stray.log_id))
            }
            None => pass("detect-batch", format!("{half} entries, {} anomalies", found.len())),
        },
        Err(e) => fail("detect-batch", e.to_string()),
    });

    checks.push(match instance.extract_features(&batch, &entries) {
        Ok(table) if table.rows != entries.len() => {
            fail("extract-features", format!("{} feature rows for {} entries", table.rows, entries.len()))
        }
        Ok(table) if table.values.iter().any(|v| !v.is_finite()) => {
            fail("extract-features", "a feature value is not a finite number")
        }
        Ok(table) => pass("extract-features", format!("{} rows of {} features", table.rows, table.names.len())),
        Err(e) => fail("extract-features", e.to_string()),
    });

    checks.push(state_check(sandbox, &agent, &mut instance, &second));

    let foreign_type = if info.log_type == "dns" { "firewall" } else { "dns" };
    let foreign = to_batch(foreign_type, &samples.entries(foreign_type, 20).unwrap_or_default());
    checks.push(match instance.detect_batch(&foreign) {
        Err(SandboxError::Agent { message, .. }) if message.starts_with("unsupported log type") => {
            pass("refuses another log type", format!("'{foreign_type}' batch refused: {message}"))
        }
        Err(SandboxError::Agent { message, .. }) => {
            fail("refuses another log type", format!("refused with the wrong error: {message}"))
        }
        Err(e) => fail("refuses another log type", format!("trapped instead of returning unsupported-log-type: {e}")),
        Ok(found) => fail(
            "refuses another log type",
            format!("accepted a '{foreign_type}' batch and found {} anomalies", found.len()),
        ),
    });
    Report { origin: origin.into(), agent: Some(agent), checks }
}
