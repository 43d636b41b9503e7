//! Training data for the models: generated logs turned into features by the
//! agent itself, through its `extract-features` export in the sandbox, so a
//! model is trained on exactly the numbers it will be served.

use std::io::Write;

use mcp_sandbox::conformance::to_batch;
use mcp_sandbox::registry::{Registry, RegistryError};
use mcp_sandbox::{InstanceContext, SandboxError};
use mcp_synth::{self as generator, GeneratorError, to_entries};

#[derive(Debug, thiserror::Error)]
pub enum TrainingError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Generator(#[from] GeneratorError),
    #[error("agent {agent}: extract-features failed on entry {id}: {source}")]
    Features { agent: String, id: u64, source: SandboxError },
    #[error("agent {agent}: detection with its rules failed on the batch from entry {id}: {source}")]
    Rules { agent: String, id: u64, source: SandboxError },
    #[error("agent {agent} gave {found} features for entry {id}, {expected} for the first")]
    Ragged { agent: String, id: u64, expected: usize, found: usize },
    #[error("cannot write the feature table: {0}")]
    Write(#[from] std::io::Error),
}

/// Features per entry with the generator's label (None for normal traffic)
/// and whether the agent's rules flag it: the training picks the model's
/// decision point so that rules and model together keep the rules'
/// precision.
#[derive(Debug, Clone, Default)]
pub struct FeatureTable {
    pub names: Vec<String>,
    pub rows: Vec<Vec<f32>>,
    pub labels: Vec<Option<String>>,
    pub by_rules: Vec<bool>,
}

/// Generates `entries` normal entries (plus attacks) of `agent`'s log type
/// with `seed` and `profile` and asks the sandboxed agent for each entry's
/// features, in time order, as it would see them served.
pub fn feature_table(
    registry: &Registry,
    agent: &str,
    seed: u64,
    entries: usize,
    profile: generator::Profile,
) -> Result<FeatureTable, TrainingError> {
    let log_type = registry.get(agent)?.info.log_type.clone();
    let logs = generator::generate_with(&log_type, seed, entries, profile)?;
    let mut instance = registry.instantiate(agent, InstanceContext::new(agent, "training"))?;
    // Another instance, with the rules only, over the same stream: its
    // windows count each entry once, as the first one's do.
    let mut rules_context = InstanceContext::new(agent, "training-rules");
    rules_context.config = std::sync::Arc::new([("detection".to_string(), "rules".to_string())].into());
    let mut rules = registry.instantiate(agent, rules_context)?;
    let mut table = FeatureTable::default();
    let entries = to_entries(&log_type, &logs);
    for (chunk, labels) in entries.chunks(1_000).zip(logs.chunks(1_000)) {
        let batch = to_batch(&log_type, chunk);
        let first = chunk.first().map_or(0, |e| e.id);
        let features = instance.extract_features(&batch, chunk).map_err(|source| TrainingError::Features {
            agent: agent.into(),
            id: first,
            source,
        })?;
        if table.names.is_empty() {
            table.names.clone_from(&features.names);
        } else if features.names.len() != table.names.len() {
            return Err(TrainingError::Ragged {
                agent: agent.into(),
                id: first,
                expected: table.names.len(),
                found: features.names.len(),
            });
        }
        if features.rows != chunk.len() {
            return Err(TrainingError::Ragged {
                agent: agent.into(),
                id: first,
                expected: chunk.len(),
                found: features.rows,
            });
        }
        let flagged: std::collections::HashSet<u64> = rules
            .detect_batch(&batch)
            .map_err(|source| TrainingError::Rules { agent: agent.into(), id: first, source })?
            .into_iter()
            .map(|anomaly| anomaly.log_id)
            .collect();
        for (index, (log, entry)) in labels.iter().zip(chunk).enumerate() {
            table.rows.push(features.row(index).map(<[f32]>::to_vec).unwrap_or_default());
            table.labels.push(log.label.map(str::to_string));
            table.by_rules.push(flagged.contains(&entry.id));
        }
    }
    Ok(table)
}

impl FeatureTable {
    /// Writes a CSV: the feature names, `rules` (1 where the rules flag the
    /// entry) and `label`, one row per entry.
    pub fn write_csv(&self, mut out: impl Write) -> Result<(), TrainingError> {
        writeln!(out, "{},rules,label", self.names.join(","))?;
        for ((row, label), by_rules) in self.rows.iter().zip(&self.labels).zip(&self.by_rules) {
            let values: Vec<String> = row.iter().map(|v| format!("{v}")).collect();
            writeln!(out, "{},{},{}", values.join(","), u8::from(*by_rules), label.as_deref().unwrap_or(""))?;
        }
        Ok(())
    }
}
