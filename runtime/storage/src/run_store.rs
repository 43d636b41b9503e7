//! What a run needs of the place its anomalies go: the checkpoint to resume
//! from, the agent's state as of it, and one atomic commit of a batch's
//! anomalies with the new checkpoint and state. The embedded SQLite store
//! serves one node's runs; a leased work unit on PostgreSQL
//! ([`crate::cluster::LeasedStore`]) serves a node of many, and refuses a
//! commit once its lease was taken over; the anomaly store on PostgreSQL
//! ([`crate::shared_store::SharedStore`]) serves the runs of a deployment
//! whose nodes share their anomalies.

use crate::cluster::ClusterError;
use crate::shared_store::{SharedStore, SharedStoreError};
use crate::store::{AnomalyStore, AnomalyWithEntry, CheckpointKey, Provenance, StoreError};

/// Errors of the store a run commits to.
#[derive(Debug, thiserror::Error)]
pub enum RunStoreError {
    #[error(transparent)]
    Embedded(#[from] StoreError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    Shared(#[from] SharedStoreError),
}

impl RunStoreError {
    /// Whether the commit was refused because another node holds the work
    /// now: the run must stop without writing anything more.
    pub fn is_fenced(&self) -> bool {
        matches!(self, RunStoreError::Cluster(ClusterError::Fenced { .. }))
    }
}

/// The store a run resumes from and commits to.
pub trait RunStore {
    /// The last id processed for `key`, 0 when none.
    fn checkpoint(&self, key: &CheckpointKey<'_>) -> Result<u64, RunStoreError>;
    /// The state the build `agent_sha256` of the agent stored with its
    /// checkpoint, if any (a state another build took is not given back).
    fn agent_state(&self, key: &CheckpointKey<'_>, agent_sha256: &str) -> Result<Option<Vec<u8>>, RunStoreError>;
    /// Drops the stored state (its restore failed; the run replays instead).
    fn forget_agent_state(&self, key: &CheckpointKey<'_>) -> Result<(), RunStoreError>;
    /// Stores `anomalies`, moves the checkpoint to `last_id` and replaces
    /// the agent's state with `state` (empty removes it, `None` keeps it),
    /// in one transaction. Returns how many anomalies were new.
    fn commit_with_state(
        &mut self,
        key: &CheckpointKey<'_>,
        provenance: &Provenance<'_>,
        anomalies: &[AnomalyWithEntry],
        last_id: u64,
        state: Option<&[u8]>,
    ) -> Result<usize, RunStoreError>;
    /// For a run that follows new rows: the last id up to which every row
    /// is committed for good, so that reading past it could skip a row a
    /// transaction still writing will commit with a lower id. `None` when
    /// the store cannot tell (the embedded source commits in id order).
    fn settled_up_to(&mut self) -> Result<Option<u64>, RunStoreError> {
        Ok(None)
    }
    /// Housekeeping after a run (planner statistics); nothing by default.
    fn after_run(&self) -> Result<(), RunStoreError> {
        Ok(())
    }
}

impl RunStore for AnomalyStore {
    fn checkpoint(&self, key: &CheckpointKey<'_>) -> Result<u64, RunStoreError> {
        Ok(AnomalyStore::checkpoint(self, key)?)
    }

    fn agent_state(&self, key: &CheckpointKey<'_>, agent_sha256: &str) -> Result<Option<Vec<u8>>, RunStoreError> {
        Ok(AnomalyStore::agent_state(self, key, agent_sha256)?)
    }

    fn forget_agent_state(&self, key: &CheckpointKey<'_>) -> Result<(), RunStoreError> {
        Ok(AnomalyStore::forget_agent_state(self, key)?)
    }

    fn commit_with_state(
        &mut self,
        key: &CheckpointKey<'_>,
        provenance: &Provenance<'_>,
        anomalies: &[AnomalyWithEntry],
        last_id: u64,
        state: Option<&[u8]>,
    ) -> Result<usize, RunStoreError> {
        Ok(AnomalyStore::commit_with_state(self, key, provenance, anomalies, last_id, state)?)
    }

    fn after_run(&self) -> Result<(), RunStoreError> {
        Ok(self.optimize()?)
    }
}

/// The store a run commits to as the deployment keeps its anomalies: this
/// node's embedded file, or the PostgreSQL store every node shares.
#[derive(Debug)]
pub enum ConfiguredStore<'a> {
    Embedded(AnomalyStore),
    Shared(&'a SharedStore),
}

impl ConfiguredStore<'_> {
    fn store(&self) -> &dyn RunStore {
        match self {
            ConfiguredStore::Embedded(store) => store,
            ConfiguredStore::Shared(store) => store,
        }
    }

    fn store_mut(&mut self) -> &mut dyn RunStore {
        match self {
            ConfiguredStore::Embedded(store) => store,
            ConfiguredStore::Shared(store) => store,
        }
    }
}

impl RunStore for ConfiguredStore<'_> {
    fn checkpoint(&self, key: &CheckpointKey<'_>) -> Result<u64, RunStoreError> {
        self.store().checkpoint(key)
    }

    fn agent_state(&self, key: &CheckpointKey<'_>, agent_sha256: &str) -> Result<Option<Vec<u8>>, RunStoreError> {
        self.store().agent_state(key, agent_sha256)
    }

    fn forget_agent_state(&self, key: &CheckpointKey<'_>) -> Result<(), RunStoreError> {
        self.store().forget_agent_state(key)
    }

    fn commit_with_state(
        &mut self,
        key: &CheckpointKey<'_>,
        provenance: &Provenance<'_>,
        anomalies: &[AnomalyWithEntry],
        last_id: u64,
        state: Option<&[u8]>,
    ) -> Result<usize, RunStoreError> {
        self.store_mut().commit_with_state(key, provenance, anomalies, last_id, state)
    }

    fn settled_up_to(&mut self) -> Result<Option<u64>, RunStoreError> {
        self.store_mut().settled_up_to()
    }

    fn after_run(&self) -> Result<(), RunStoreError> {
        self.store().after_run()
    }
}
