//! Reading anomalies from whichever store the deployment keeps them in:
//! the embedded SQLite file of this node, or PostgreSQL, where every
//! node's anomalies are. Callers (the API, the console, exports, `mcp
//! anomalies`) ask the same questions of either.

use crate::export_scan::{ExportFilter, ScanPosition, ScanWindow};
use crate::histogram::{Histogram, HistogramGroup};
use crate::shared_store::{SharedStore, SharedStoreError};
use crate::store::{AnomalyQuery, AnomalyRecord, AnomalyStore, StoreError};

/// Errors of a read (or an outbox change) in either store.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Embedded(#[from] StoreError),
    #[error(transparent)]
    Shared(#[from] SharedStoreError),
}

impl ReadError {
    /// Whether a page query was stopped by the store's work bound.
    pub fn too_broad(&self) -> bool {
        match self {
            ReadError::Embedded(error) => error.too_broad(),
            ReadError::Shared(error) => error.too_broad(),
        }
    }
}

/// The store anomalies are read from.
#[derive(Debug, Clone, Copy)]
pub enum AnomalyReads<'a> {
    Embedded(&'a AnomalyStore),
    Shared(&'a SharedStore),
}

impl AnomalyReads<'_> {
    /// One keyset page of the query's tenant's anomalies.
    pub fn query(self, query: &AnomalyQuery) -> Result<Vec<AnomalyRecord>, ReadError> {
        match self {
            AnomalyReads::Embedded(store) => Ok(store.query(query)?),
            AnomalyReads::Shared(store) => Ok(store.query(query)?),
        }
    }

    /// One anomaly of `tenant` by id; `None` for another tenant's.
    pub fn get(self, tenant: &str, id: i64) -> Result<Option<AnomalyRecord>, ReadError> {
        match self {
            AnomalyReads::Embedded(store) => Ok(store.get(tenant, id)?),
            AnomalyReads::Shared(store) => Ok(store.get(tenant, id)?),
        }
    }

    /// The query's anomalies counted over time, split by `group`.
    pub fn histogram(
        self,
        query: &AnomalyQuery,
        group: HistogramGroup,
        max_slots: usize,
    ) -> Result<Histogram, ReadError> {
        match self {
            AnomalyReads::Embedded(store) => Ok(store.histogram(query, group, max_slots)?),
            AnomalyReads::Shared(store) => Ok(store.histogram(query, group, max_slots)?),
        }
    }

    /// Whether `agent` of `tenant` has stored anomalies.
    pub fn agent_has_anomalies(self, tenant: &str, agent: &str) -> Result<bool, ReadError> {
        match self {
            AnomalyReads::Embedded(store) => Ok(store.agent_has_anomalies(tenant, agent)?),
            AnomalyReads::Shared(store) => Ok(store.agent_has_anomalies(tenant, agent)?),
        }
    }

    /// The id of the newest anomaly stored, 0 when none: where an export
    /// stops, so that it holds the store as it was when it started.
    pub fn last_anomaly_id(self) -> Result<i64, ReadError> {
        match self {
            AnomalyReads::Embedded(store) => Ok(store.last_anomaly_id()?),
            AnomalyReads::Shared(store) => Ok(store.last_anomaly_id()?),
        }
    }

    /// How many index entries an export's walk of `filter` passes.
    pub fn export_walk_length(self, filter: &ExportFilter) -> Result<u64, ReadError> {
        match self {
            AnomalyReads::Embedded(store) => Ok(store.export_walk_length(filter)?),
            AnomalyReads::Shared(store) => Ok(store.export_walk_length(filter)?),
        }
    }

    /// The next `window` index entries of an export's walk after `after`,
    /// with those that pass `filter`.
    pub fn export_window(
        self,
        filter: &ExportFilter,
        after: Option<ScanPosition>,
        window: u32,
    ) -> Result<ScanWindow, ReadError> {
        match self {
            AnomalyReads::Embedded(store) => Ok(store.export_window(filter, after, window)?),
            AnomalyReads::Shared(store) => Ok(store.export_window(filter, after, window)?),
        }
    }
}
