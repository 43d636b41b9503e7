//! The protocol conformance check behind `mcp agents check` and the tests:
//! is this component an agent of the world, is its info consistent, does
//! every export answer well on entries of its schema, and does it refuse
//! entries of another log type with an error rather than a trap.

use std::collections::HashSet;

use mcp_columns::RawRow;

use crate::registry::{self, RegisteredAgent};
use crate::{GuestBatch, InstanceContext, LogEntry, Sandbox, SandboxError};

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

/// Packs entries into the columnar batch the host sends; entries that do
/// not fit a batch are left out, as the source would quarantine them.
pub fn to_batch(log_type: &str, entries: &[LogEntry]) -> GuestBatch {
    let rows: Vec<RawRow<'_>> = entries
        .iter()
        .map(|e| RawRow {
            id: e.id,
            timestamp_ms: e.timestamp_ms,
            source: &e.source,
            fields: &e.fields,
            schema_version: 0,
        })
        .collect();
    let (batch, refused) = mcp_columns::build_batch(log_type, 1, &rows);
    for (index, reason) in refused {
        tracing::warn!(index, "sample entry left out: {reason}");
    }
    batch.into()
}

fn pass(name: &'static str, detail: impl Into<String>) -> Check {
    Check { name, outcome: Outcome::Passed(detail.into()) }
}

fn fail(name: &'static str, detail: impl Into<String>) -> Check {
    Check { name, outcome: Outcome::Failed(detail.into()) }
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

    checks.push(match instance.detect_batch(&batch) {
        Ok(found) => match found.iter().find(|a| !ids.contains(&a.log_id)) {
            Some(stray) => {
                fail("detect-batch", format!("anomaly names log id {} that was not in the batch", stray.log_id))
            }
            None => pass("detect-batch", format!("{} entries, {} anomalies", entries.len(), found.len())),
        },
        Err(e) => fail("detect-batch", e.to_string()),
    });

    let single = &entries[..entries.len().min(5)];
    let singles: Result<Vec<_>, SandboxError> = single.iter().map(|e| instance.detect(e)).collect();
    checks.push(match singles {
        Ok(found) => {
            pass("detect", format!("{} entries, {} anomalies", single.len(), found.iter().map(Vec::len).sum::<usize>()))
        }
        Err(e) => fail("detect", e.to_string()),
    });

    checks.push(match single.first().map(|e| instance.extract_features(e)) {
        Some(Ok(features))
            if features.names.ends.len() == features.values.len()
                && (0..features.values.len())
                    .all(|i| mcp_columns::text_in(&features.names.data, &features.names.ends, i).is_some()) =>
        {
            let scored = instance.infer(&features);
            match scored {
                Ok(result) if result.score.is_finite() => pass(
                    "extract-features and infer",
                    format!("{} features, score {:.3} '{}'", features.values.len(), result.score, result.label),
                ),
                Ok(result) => {
                    fail("extract-features and infer", format!("score {} is not a finite number", result.score))
                }
                Err(e) => fail("extract-features and infer", e.to_string()),
            }
        }
        Some(Ok(features)) => fail(
            "extract-features and infer",
            format!("{} names for {} values", features.names.ends.len(), features.values.len()),
        ),
        Some(Err(e)) => fail("extract-features and infer", e.to_string()),
        None => fail("extract-features and infer", "no sample entry"),
    });

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
