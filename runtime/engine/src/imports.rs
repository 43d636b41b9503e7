//! The backends of the sandbox's imports: a log source answers `logs.query`,
//! the ModelManager answers `model`. The sandbox sees only its traits.

use std::sync::Arc;

use mcp_columns::{LogBatch, LogQuery};
use mcp_sandbox::{ImportError, LogReader, ModelProvider, ServedModel};
use mcp_storage::source::LogSource;

use crate::models::{LoadedModel, ModelError, ModelManager};

/// Serves `logs.query` from a log source, scoped to the instance's tenant.
#[derive(Clone)]
pub struct SourceReader(pub Arc<dyn LogSource>);

impl std::fmt::Debug for SourceReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SourceReader").field(&self.0.name()).finish()
    }
}

impl LogReader for SourceReader {
    fn query(&self, tenant: &str, query: &LogQuery) -> Result<(LogBatch, u64), ImportError> {
        let read = |page: mcp_storage::source::SourceBatch| {
            let rows = page.batch.ids.len() as u64 + page.quarantined as u64;
            (page.batch, rows)
        };
        self.0.read_batch(tenant, query).map(read).map_err(|e| {
            tracing::error!(tenant, "log query failed: {e}");
            ImportError::Unavailable("the log source failed; the host log has details".into())
        })
    }
}

/// Serves the `model` import from the ModelManager.
#[derive(Debug, Clone)]
pub struct ManagedModels(pub Arc<ModelManager>);

impl ModelProvider for ManagedModels {
    fn model(&self, agent: &str, version: Option<&str>) -> Result<Arc<dyn ServedModel>, ImportError> {
        let model: Arc<dyn ServedModel> = self.0.model(agent, version).map_err(import_error)?;
        Ok(model)
    }
}

impl ServedModel for LoadedModel {
    fn version(&self) -> &str {
        &self.metadata.version
    }

    fn feature_names(&self) -> &[String] {
        &self.metadata.feature_names
    }

    fn infer(&self, rows: usize, data: &[f32]) -> Result<(Vec<u32>, Vec<f32>), ImportError> {
        let output = LoadedModel::infer(self, rows, data).map_err(import_error)?;
        Ok((output.shape, output.data))
    }
}

/// What a guest may learn of a model failure: a missing model or bad input
/// by name, anything else only that it failed (the host log has details).
fn import_error(error: ModelError) -> ImportError {
    match error {
        ModelError::NotFound { .. } => ImportError::NotFound(error.to_string()),
        ModelError::Inference { .. } => ImportError::InvalidArgument(error.to_string()),
        other => {
            tracing::error!("model unavailable: {other}");
            ImportError::Unavailable("the model could not be served; the host log has details".into())
        }
    }
}
