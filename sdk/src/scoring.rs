//! Rules and a model together. An agent keeps a [`ModelSlot`]; on its first
//! batch the slot asks the host for the agent's active model, and from then
//! on one call scores the whole batch. Where no model is deployed the slot
//! stays empty and the agent runs on its rules.

use crate::{AgentError, Batch, Config, Finding};

/// How an agent combines its rules with its model (setting `detection`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detection {
    /// Rules only, as without a model.
    Rules,
    /// The model only: an entry is flagged when its score reaches the threshold.
    Model,
    /// Rules, and the model for what the rules did not flag.
    Both,
}

impl Detection {
    /// Reads `detection` (`rules`, `model` or `both`; default `both`).
    pub fn from_config(config: &Config) -> Result<Self, AgentError> {
        match config.get("detection").map(str::trim) {
            None | Some("both") => Ok(Detection::Both),
            Some("rules") => Ok(Detection::Rules),
            Some("model") => Ok(Detection::Model),
            Some(other) => {
                Err(AgentError::Config(format!("setting 'detection' = '{other}' must be 'rules', 'model' or 'both'")))
            }
        }
    }

    /// Whether the rules run.
    pub fn uses_rules(self) -> bool {
        self != Detection::Model
    }

    /// Whether the model is asked.
    pub fn uses_model(self) -> bool {
        self != Detection::Rules
    }
}

#[derive(Debug, Default)]
enum Slot {
    #[default]
    Untried,
    #[cfg(target_arch = "wasm32")]
    Loaded(crate::host::Model),
    Missing,
}

/// The agent's model, loaded through the host on first use.
#[derive(Debug, Default)]
pub struct ModelSlot {
    slot: Slot,
    version: Option<String>,
}

impl ModelSlot {
    /// Loads `name` at `version` (the active one when `None`), replacing
    /// what the slot held; for the `load-model` export.
    #[cfg(target_arch = "wasm32")]
    pub fn load(&mut self, name: &str, version: Option<&str>) -> Result<String, AgentError> {
        match crate::host::Model::load(name, version) {
            Ok(model) => {
                let loaded = model.version();
                self.version = Some(loaded.clone());
                self.slot = Slot::Loaded(model);
                Ok(loaded)
            }
            Err(e) => {
                self.slot = Slot::Missing;
                Err(AgentError::ModelUnavailable(crate::host::describe(&e)))
            }
        }
    }

    /// Outside the sandbox there is no host to ask.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn load(&mut self, name: &str, _version: Option<&str>) -> Result<String, AgentError> {
        self.slot = Slot::Missing;
        Err(AgentError::ModelUnavailable(format!("model '{name}': no host outside the sandbox")))
    }

    /// The version that served the last batch, if any.
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    /// Scores `rows` rows of `width` features (row-major): the last column
    /// of the model's output, per row. `None` when no model is deployed.
    pub fn scores(
        &mut self,
        name: &str,
        rows: usize,
        width: usize,
        data: Vec<f32>,
    ) -> Result<Option<Vec<f32>>, AgentError> {
        if matches!(self.slot, Slot::Untried) && self.load(name, None).is_err() {
            self.slot = Slot::Missing;
        }
        self.run(rows, width, data)
    }

    #[cfg(target_arch = "wasm32")]
    fn run(&mut self, rows: usize, width: usize, data: Vec<f32>) -> Result<Option<Vec<f32>>, AgentError> {
        let Slot::Loaded(model) = &self.slot else { return Ok(None) };
        if rows == 0 {
            return Ok(Some(Vec::new()));
        }
        let input = crate::Tensor { shape: vec![rows as u32, width as u32], data };
        let output = model.infer(&input).map_err(|e| AgentError::ModelUnavailable(crate::host::describe(&e)))?;
        self.version = Some(model.version());
        let columns = output.shape.last().copied().unwrap_or(1).max(1) as usize;
        Ok(Some(output.data.chunks(columns).map(|row| row.last().copied().unwrap_or(0.0)).collect()))
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn run(&mut self, _rows: usize, _width: usize, _data: Vec<f32>) -> Result<Option<Vec<f32>>, AgentError> {
        Ok(None)
    }
}

/// An agent's model use: the mode, the threshold and the model itself,
/// from the settings `detection` and `model_threshold` (default 0.5).
#[derive(Debug)]
pub struct Scorer {
    name: &'static str,
    detection: Detection,
    threshold: f32,
    slot: ModelSlot,
}

impl Scorer {
    /// A scorer for the model named after agent `name`.
    pub fn new(name: &'static str) -> Self {
        Scorer { name, detection: Detection::Both, threshold: 0.5, slot: ModelSlot::default() }
    }

    /// Reads `detection` and `model_threshold`.
    pub fn configure(&mut self, config: &Config) -> Result<(), AgentError> {
        self.detection = Detection::from_config(config)?;
        self.threshold = config.parse_or("model_threshold", 0.5)?;
        Ok(())
    }

    /// Whether the agent's rules should run.
    pub fn uses_rules(&self) -> bool {
        self.detection.uses_rules()
    }

    /// Whether the model is asked (it may still be missing): an agent whose
    /// rules and features share work builds the feature rows beside them.
    pub fn uses_model(&self) -> bool {
        self.detection.uses_model()
    }

    /// For the `load-model` export.
    pub fn load(&mut self, name: &str, version: Option<&str>) -> Result<String, AgentError> {
        self.slot.load(name, version)
    }

    /// Scores the batch's `rows` (`width` features each, row-major, built
    /// only when the model is in use) and returns a finding for each entry
    /// whose score reaches the threshold and that `found` does not name
    /// already. `describe` builds it from the entry index, the score and
    /// the model version.
    pub fn flag(
        &mut self,
        batch: &Batch<'_>,
        width: usize,
        rows: impl FnOnce() -> Vec<f32>,
        found: &[Finding],
        describe: impl Fn(usize, f32, &str) -> Finding,
    ) -> Result<Vec<Finding>, AgentError> {
        if !self.detection.uses_model() {
            return Ok(Vec::new());
        }
        let Some(scores) = self.slot.scores(self.name, batch.len(), width, rows())? else { return Ok(Vec::new()) };
        let flagged: std::collections::HashSet<u64> = found.iter().map(|f| f.entry.id).collect();
        let version = self.slot.version().unwrap_or("unknown").to_string();
        Ok(scores
            .into_iter()
            .enumerate()
            .filter(|&(i, score)| score >= self.threshold && score <= 1.0 && !flagged.contains(&batch.entry(i).id))
            .map(|(i, score)| describe(i, score, &version))
            .collect())
    }

    /// The threshold in force.
    pub fn threshold(&self) -> f32 {
        self.threshold
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_setting() {
        let mode = |v: &str| Detection::from_config(&Config::from_pairs([("detection", v)]));
        assert_eq!(mode("rules").ok(), Some(Detection::Rules));
        assert_eq!(mode("model").ok(), Some(Detection::Model));
        assert_eq!(Detection::from_config(&Config::default()).ok(), Some(Detection::Both));
        assert!(matches!(mode("magic"), Err(AgentError::Config(m)) if m.contains("magic")));
    }

    #[test]
    fn no_model_outside_the_sandbox() -> Result<(), AgentError> {
        let mut slot = ModelSlot::default();
        assert_eq!(slot.scores("dns", 1, 2, vec![0.0, 1.0])?, None);
        Ok(())
    }
}
