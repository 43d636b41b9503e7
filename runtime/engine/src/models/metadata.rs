//! metadata.json, the description that travels with every model.onnx.

use serde::{Deserialize, Serialize};

/// A tensor's name and shape; `-1` (or a name) in the metadata marks the
/// batch dimension, here kept as `None`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TensorSpec {
    pub name: String,
    pub shape: Vec<Option<u32>>,
}

/// Which output holds the anomaly score: its last column, in [0, 1], with
/// the decision threshold the training chose.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreOutput {
    pub output: String,
    pub threshold: f32,
}

/// Inputs and the outputs the exporter's reference runtime gave for them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceCase {
    /// Rows of features.
    pub inputs: Vec<Vec<f32>>,
    /// The score output for those rows, row by row.
    pub outputs: Vec<Vec<f32>>,
    /// Largest absolute difference accepted per value.
    pub tolerance: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelMetadata {
    pub agent: String,
    pub version: String,
    /// RFC 3339 time of export.
    pub created: String,
    /// Hex sha256 of model.onnx.
    pub sha256: String,
    /// "logistic-regression", "mahalanobis", ...
    pub family: String,
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
    /// The agent's feature names, in input column order.
    pub feature_names: Vec<String>,
    pub score: ScoreOutput,
    /// What the model was trained on, for people.
    pub training_data: String,
    /// Figures measured at training time (precision, recall, f1, ...).
    pub metrics: std::collections::BTreeMap<String, f64>,
    pub reference: ReferenceCase,
}
