//! One model version loaded and optimised by tract, with a symbolic batch
//! dimension so that one plan serves every batch size, and checked against
//! its metadata and the reference outputs stored at export time.

use std::path::Path;
use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::dims;
use tract_onnx::tract_hir::internal::{DimLike, Factoid};

use super::sized::SizedPlans;
use super::{ModelError, ModelMetadata};

/// A validated model, ready to run; shared by every instance that uses it.
#[derive(Debug)]
pub struct LoadedModel {
    pub metadata: ModelMetadata,
    plan: Arc<TypedRunnableModel>,
    /// Run states kept between calls: spawning one per call costs more
    /// than running a small model on a batch.
    states: std::sync::Mutex<Vec<TypedSimpleState>>,
    /// Plans for the batch sizes seen often.
    sized: SizedPlans,
    /// Index of the score output among the plan's outputs.
    score_index: usize,
    features: usize,
    /// Columns of the score output.
    score_columns: usize,
}

/// What one inference returns: the score output, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelOutput {
    pub shape: Vec<u32>,
    pub data: Vec<f32>,
}

impl ModelOutput {
    /// The last column of each row: the anomaly score by convention.
    pub fn scores(&self) -> Vec<f32> {
        let columns = self.shape.last().copied().unwrap_or(1).max(1) as usize;
        self.data.chunks(columns).map(|row| row.last().copied().unwrap_or(0.0)).collect()
    }
}

impl LoadedModel {
    /// Loads `onnx` (the bytes of model.onnx) under `metadata`, optimises it
    /// and checks shapes, then its outputs on the reference inputs.
    pub fn load(onnx: &[u8], metadata: ModelMetadata) -> Result<Self, ModelError> {
        let invalid = |detail: String| ModelError::Invalid {
            agent: metadata.agent.clone(),
            version: metadata.version.clone(),
            detail,
        };
        let features = metadata.feature_names.len();
        match metadata.inputs.as_slice() {
            [input] if input.shape.len() == 2 && input.shape[1] == Some(features as u32) => {}
            _ => {
                return Err(invalid(format!(
                    "metadata must declare one input of shape [batch, {features}] (one column per feature name)"
                )));
            }
        }
        let mut model = tract_onnx::onnx()
            .model_for_read(&mut std::io::Cursor::new(onnx))
            .map_err(|e| invalid(format!("model.onnx does not load in tract: {e}")))?;
        let names: Vec<String> = model
            .output_outlets()
            .map_err(|e| invalid(e.to_string()))?
            .iter()
            .map(|outlet| model.outlet_label(*outlet).unwrap_or_default().to_string())
            .collect();
        let score_index = names.iter().position(|n| *n == metadata.score.output).ok_or_else(|| {
            invalid(format!("score output '{}' is not among the model's outputs {names:?}", metadata.score.output))
        })?;
        let declared: Vec<&str> = metadata.outputs.iter().map(|o| o.name.as_str()).collect();
        if declared != names.iter().map(String::as_str).collect::<Vec<_>>() {
            return Err(invalid(format!("metadata declares outputs {declared:?}, the model has {names:?}")));
        }
        // The model's own input width must be the agent's feature count; an
        // input fact set over a mismatched one would only fail later, less clearly.
        let declared_width = model
            .input_fact(0)
            .ok()
            .and_then(|fact| fact.shape.dim(1))
            .and_then(|dim| dim.concretize())
            .and_then(|dim| dim.to_usize().ok());
        if let Some(width) = declared_width
            && width != features
        {
            return Err(invalid(format!(
                "model.onnx takes {width} features per row; the metadata names {features} ({})",
                metadata.feature_names.join(", ")
            )));
        }
        let batch = model.sym("N");
        model = model
            .with_input_fact(0, f32::fact(dims!(batch, features)).into())
            .map_err(|e| invalid(format!("input is not [batch, {features}] f32: {e}")))?;
        let decluttered = model
            .into_typed()
            .and_then(|typed| typed.into_decluttered())
            .map_err(|e| invalid(format!("tract cannot type it (an operator tract lacks?): {e}")))?;
        let sized = SizedPlans::new(decluttered.clone(), batch);
        let typed = decluttered
            .into_optimized()
            .map_err(|e| invalid(format!("tract cannot optimise it (an operator tract lacks?): {e}")))?;
        let fact = typed.output_fact(score_index).map_err(|e| invalid(e.to_string()))?;
        let score_columns = match fact.shape.as_concrete() {
            Some(_) => return Err(invalid("the score output has no batch dimension".into())),
            None => match fact.shape.dims().last().and_then(|d| d.to_usize().ok()) {
                Some(columns) if fact.shape.rank() == 2 => columns,
                _ => return Err(invalid(format!("score output shape {:?} is not [batch, columns]", fact.shape))),
            },
        };
        let expected = metadata.outputs[score_index].shape.last().copied().flatten();
        if expected != Some(score_columns as u32) {
            return Err(invalid(format!("score output has {score_columns} columns, metadata says {expected:?}")));
        }
        let plan = typed.into_runnable().map_err(|e| invalid(format!("cannot plan: {e}")))?;
        let loaded = LoadedModel {
            metadata,
            plan,
            states: std::sync::Mutex::default(),
            sized,
            score_index,
            features,
            score_columns,
        };
        loaded.check_reference()?;
        Ok(loaded)
    }

    /// Reads model.onnx and metadata.json from `dir`, checking the checksum
    /// before anything else.
    pub fn load_dir(dir: &Path, metadata: ModelMetadata) -> Result<Self, ModelError> {
        let path = dir.join("model.onnx");
        let bytes =
            std::fs::read(&path).map_err(|source| ModelError::Io { path: path.display().to_string(), source })?;
        Self::load_checked(&bytes, metadata)
    }

    /// Loads model.onnx's `bytes`, checking them against the metadata's
    /// sha256 before anything else.
    pub fn load_checked(bytes: &[u8], metadata: ModelMetadata) -> Result<Self, ModelError> {
        let found = mcp_sandbox::registry::sha256_hex(bytes);
        if found != metadata.sha256 {
            return Err(ModelError::Checksum {
                agent: metadata.agent.clone(),
                version: metadata.version.clone(),
                expected: metadata.sha256.clone(),
                found,
            });
        }
        Self::load(bytes, metadata)
    }

    fn check_reference(&self) -> Result<(), ModelError> {
        let reference = &self.metadata.reference;
        if reference.inputs.is_empty() {
            return Err(self.invalid("metadata holds no reference inputs to check tract against".into()));
        }
        let data: Vec<f32> = reference.inputs.iter().flatten().copied().collect();
        let output = self.infer(reference.inputs.len(), &data)?;
        let expected: Vec<f32> = reference.outputs.iter().flatten().copied().collect();
        if expected.len() != output.data.len() {
            return Err(self.invalid(format!(
                "reference outputs hold {} values, tract gave {}",
                expected.len(),
                output.data.len()
            )));
        }
        // A NaN anywhere fails the check: f32::max would quietly skip it.
        let worst = expected
            .iter()
            .zip(&output.data)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, |worst, d| if d.is_nan() || worst.is_nan() { f32::NAN } else { worst.max(d) });
        if worst.is_nan() || worst > reference.tolerance {
            return Err(self.invalid(format!(
                "tract's outputs differ from the reference outputs by up to {worst:e} (tolerance {:e})",
                reference.tolerance
            )));
        }
        Ok(())
    }

    fn invalid(&self, detail: String) -> ModelError {
        ModelError::Invalid { agent: self.metadata.agent.clone(), version: self.metadata.version.clone(), detail }
    }

    pub fn features(&self) -> usize {
        self.features
    }

    /// Runs `rows` rows of features (row-major) and returns the score output.
    pub fn infer(&self, rows: usize, data: &[f32]) -> Result<ModelOutput, ModelError> {
        let fail = |detail: String| ModelError::Inference {
            agent: self.metadata.agent.clone(),
            version: self.metadata.version.clone(),
            detail,
        };
        if rows == 0 {
            return Ok(ModelOutput { shape: vec![0, self.score_columns as u32], data: Vec::new() });
        }
        if data.len() != rows * self.features {
            return Err(fail(format!(
                "input holds {} values; {rows} rows of {} features need {}",
                data.len(),
                self.features,
                rows * self.features
            )));
        }
        let input = tract_ndarray::Array2::from_shape_vec((rows, self.features), data.to_vec())
            .map_err(|e| fail(e.to_string()))?;
        let input = tvec!(Tensor::from(input).into_tvalue());
        let outputs = match self.sized.take(rows) {
            Some(mut state) => {
                let outputs = state.run(input).map_err(|e| fail(e.to_string()))?;
                self.sized.give_back(rows, state);
                outputs
            }
            None => {
                let pooled = self.states.lock().ok().and_then(|mut states| states.pop());
                let mut state = match pooled {
                    Some(state) => state,
                    None => self.plan.spawn().map_err(|e| fail(e.to_string()))?,
                };
                let outputs = state.run(input).map_err(|e| fail(e.to_string()))?;
                if let Ok(mut states) = self.states.lock() {
                    states.push(state);
                }
                outputs
            }
        };
        let score = outputs.get(self.score_index).ok_or_else(|| fail("score output missing".into()))?;
        let score = score.cast_to::<f32>().map_err(|e| fail(e.to_string()))?;
        let view = score.try_as_plain_ram().map_err(|e| fail(e.to_string()))?;
        let values = view.as_slice::<f32>().map_err(|e| fail(e.to_string()))?;
        let shape = score.shape().iter().map(|d| u32::try_from(*d).unwrap_or(u32::MAX)).collect();
        Ok(ModelOutput { shape, data: values.to_vec() })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn shipped(agent: &str, version: &str) -> Result<LoadedModel, ModelError> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models").join(agent).join(version);
        let text = std::fs::read_to_string(dir.join("metadata.json"))
            .map_err(|source| ModelError::Io { path: dir.display().to_string(), source })?;
        let metadata: ModelMetadata = serde_json::from_str(&text).map_err(|e| ModelError::Invalid {
            agent: agent.into(),
            version: version.into(),
            detail: e.to_string(),
        })?;
        LoadedModel::load_dir(&dir, metadata)
    }

    /// Rows that cover the features' ranges: a few pass over every value
    /// the reference inputs hold, scaled.
    fn rows(model: &LoadedModel, count: usize) -> Vec<f32> {
        let reference: Vec<f32> = model.metadata.reference.inputs.iter().flatten().copied().collect();
        (0..count * model.features()).map(|i| reference[i % reference.len()] * (1.0 + (i % 7) as f32 / 10.0)).collect()
    }

    #[test]
    fn a_size_seen_twice_gets_its_own_plan_with_the_same_scores() -> Result<(), ModelError> {
        for (agent, version) in [("wifi", "4"), ("firewall", "2"), ("dns", "2")] {
            let model = shipped(agent, version)?;
            let data = rows(&model, 1024);
            let general = model.infer(1024, &data)?;
            assert!(model.sized.sizes().is_empty(), "{agent}: one sighting earns no plan");
            let sized = model.infer(1024, &data)?;
            assert_eq!(model.sized.sizes(), vec![1024], "{agent}: the second sighting does");
            let again = model.infer(1024, &data)?;
            assert_eq!(sized, again, "{agent}: the plan's state is reused and gives the same");
            assert_eq!(general.shape, sized.shape);
            let worst = general.data.iter().zip(&sized.data).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(worst <= 1e-4, "{agent}: the sized plan's scores differ by {worst}");
        }
        Ok(())
    }

    #[test]
    fn small_sizes_keep_the_general_plan_and_a_guest_cycling_sizes_gets_one_plan_per_interval() -> Result<(), ModelError>
    {
        let model = shipped("wifi", "4")?;
        for _ in 0..3 {
            model.infer(10, &rows(&model, 10))?;
        }
        assert!(model.sized.sizes().is_empty(), "10 rows are served by the general plan");
        for size in [100, 200, 300, 400, 500, 600] {
            for _ in 0..2 {
                let scores = model.infer(size, &rows(&model, size))?;
                assert_eq!(scores.shape[0] as usize, size, "every size is served");
            }
        }
        assert_eq!(model.sized.sizes(), vec![100], "one plan built, the next not before the interval");
        Ok(())
    }

    #[test]
    fn the_four_sizes_used_last_keep_their_plans() -> Result<(), ModelError> {
        let mut model = shipped("wifi", "4")?;
        model.sized.min_build_interval = std::time::Duration::ZERO;
        for size in [100, 200, 300, 400, 500, 600] {
            for _ in 0..2 {
                model.infer(size, &rows(&model, size))?;
            }
        }
        assert_eq!(model.sized.sizes(), vec![300, 400, 500, 600]);
        model.infer(300, &rows(&model, 300))?;
        assert_eq!(model.sized.sizes(), vec![400, 500, 600, 300], "a use makes a plan the most recent");
        Ok(())
    }
}
