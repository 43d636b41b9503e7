//! A leased unit as the store a run commits to: the checkpoint and the
//! agent's state are the unit's, and each commit checks the lease's
//! fencing token under the unit's row lock, in the transaction that stores
//! the anomalies, so nothing of a superseded holder lands.

use sqlx::Row;

use std::collections::VecDeque;

use super::{Cluster, ClusterError, Horizon, Lease, db, horizon};
use crate::run_store::{RunStore, RunStoreError};
use crate::shared_store::{SharedStore, insert_anomalies};
use crate::source::postgres::id_param;
use crate::store::{AnomalyWithEntry, CheckpointKey, Provenance, sha256_hex, usable_state};

/// The store of one leased unit.
#[derive(Debug)]
pub struct LeasedStore<'a> {
    cluster: &'a Cluster,
    lease: &'a Lease,
    /// Horizons seen and not yet settled (transactions older than their
    /// `xmax` were still going), oldest first.
    pending: VecDeque<Horizon>,
    /// Every row up to this id is final.
    settled: i64,
}

/// What one commit attempt found.
enum Committed {
    Stored(u64),
    Fenced(i64),
}

impl<'a> LeasedStore<'a> {
    pub(super) fn new(cluster: &'a Cluster, lease: &'a Lease) -> Self {
        LeasedStore { cluster, lease, pending: VecDeque::new(), settled: 0 }
    }

    /// A run is given only its own unit's key: anything else is a bug in
    /// the caller, refused rather than written to the wrong unit.
    fn check(&self, key: &CheckpointKey<'_>) -> Result<(), ClusterError> {
        let lease = self.lease;
        if key.tenant == lease.tenant && key.agent == lease.agent && key.log_type == lease.log_type {
            return Ok(());
        }
        Err(ClusterError::WrongUnit {
            unit: lease.unit,
            expected: format!("{}/{}/{}", lease.tenant, lease.agent, lease.log_type),
            asked: format!("{}/{}/{}", key.tenant, key.agent, key.log_type),
        })
    }
}

impl RunStore for LeasedStore<'_> {
    fn checkpoint(&self, key: &CheckpointKey<'_>) -> Result<u64, RunStoreError> {
        self.check(key)?;
        let unit = self.lease.unit;
        let checkpoint: i64 = self.cluster.with_retry("read a unit's checkpoint", || async {
            sqlx::query("SELECT checkpoint FROM work_units WHERE id = $1")
                .bind(unit)
                .fetch_one(&self.cluster.pool)
                .await?
                .try_get(0)
        })?;
        Ok(checkpoint.unsigned_abs())
    }

    fn agent_state(&self, key: &CheckpointKey<'_>, agent_sha256: &str) -> Result<Option<Vec<u8>>, RunStoreError> {
        self.check(key)?;
        let unit = self.lease.unit;
        // A unit not started yet has no state of its own: it starts from
        // the final state of the unit that ends where it begins, when that
        // one is done, and so continues it exactly; else the run replays.
        let row = self.cluster.with_retry("read a unit's agent state", || {
            sqlx::query(
                "SELECT s.state, s.state_sha256, s.agent_sha256
                 FROM work_units u
                 JOIN work_units s ON (s.id = u.id AND u.state IS NOT NULL)
                    OR (u.state IS NULL AND u.checkpoint = u.start_after AND u.start_after > 0
                        AND s.tenant = u.tenant AND s.agent = u.agent AND s.log_type = u.log_type
                        AND s.up_to = u.start_after AND s.done_at IS NOT NULL AND s.state IS NOT NULL)
                 WHERE u.id = $1
                 LIMIT 1",
            )
            .bind(unit)
            .fetch_optional(&self.cluster.pool)
        })?;
        let Some(row) = row else { return Ok(None) };
        let read = || -> Result<(Vec<u8>, String, String), sqlx::Error> {
            Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))
        };
        let (state, sha256, taken_by) = read().map_err(db("read a unit's agent state"))?;
        Ok(usable_state(key, state, &sha256, &taken_by, agent_sha256))
    }

    fn forget_agent_state(&self, key: &CheckpointKey<'_>) -> Result<(), RunStoreError> {
        self.check(key)?;
        let (unit, token) = (self.lease.unit, self.lease.token);
        self.cluster.with_retry("forget a unit's agent state", || {
            sqlx::query("UPDATE work_units SET state = NULL, state_sha256 = NULL WHERE id = $1 AND token = $2")
                .bind(unit)
                .bind(token)
                .execute(&self.cluster.pool)
        })?;
        Ok(())
    }

    fn settled_up_to(&mut self) -> Result<Option<u64>, RunStoreError> {
        let (tenant, log_type) = (&self.lease.tenant, &self.lease.log_type);
        let now = self.cluster.with_retry("read the settled rows", || horizon(&self.cluster.pool, tenant, log_type))?;
        // A horizon newer than the last one pending only if it sees more
        // rows: a long transaction elsewhere holds every horizon back, and
        // the queue stays as long as the rows that came meanwhile.
        if self.pending.back().is_none_or(|last| now.newest > last.newest) {
            self.pending.push_back(now);
        }
        while let Some(oldest) = self.pending.front() {
            if oldest.xmax > now.xmin {
                break;
            }
            self.settled = self.settled.max(oldest.newest);
            self.pending.pop_front();
        }
        Ok(Some(self.settled.unsigned_abs()))
    }

    fn commit_with_state(
        &mut self,
        key: &CheckpointKey<'_>,
        provenance: &Provenance<'_>,
        anomalies: &[AnomalyWithEntry],
        last_id: u64,
        state: Option<&[u8]>,
    ) -> Result<usize, RunStoreError> {
        self.check(key)?;
        let lease = self.lease;
        let ttl = self.cluster.ttl_seconds();
        let state_sha256 = state.filter(|bytes| !bytes.is_empty()).map(sha256_hex);
        let routes = SharedStore::routes_for(self.cluster.routes.as_deref(), key.tenant, anomalies.len())?;
        // Safe to repeat after a lost answer: the token check, the absolute
        // checkpoint and the unique key make a second attempt of a
        // transaction that did commit store nothing more.
        let outcome = self.cluster.with_retry("commit a batch", || async {
            let mut tx = self.cluster.pool.begin().await?;
            let current: i64 = sqlx::query("SELECT token FROM work_units WHERE id = $1 FOR UPDATE")
                .bind(lease.unit)
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
            if current != lease.token {
                tx.rollback().await?;
                return Ok(Committed::Fenced(current));
            }
            let inserted =
                insert_anomalies(&mut tx, key, provenance, anomalies, Some(lease.unit), routes.as_ref()).await?;
            sqlx::query(
                "UPDATE work_units SET checkpoint = $2, anomalies = anomalies + $3,
                     expires_at = clock_timestamp() + make_interval(secs => $4)
                 WHERE id = $1",
            )
            .bind(lease.unit)
            .bind(id_param(last_id))
            .bind(i64::try_from(inserted).unwrap_or(i64::MAX))
            .bind(ttl)
            .execute(&mut *tx)
            .await?;
            match state {
                None => {}
                Some([]) => {
                    sqlx::query(
                        "UPDATE work_units SET state = NULL, state_sha256 = NULL, agent_sha256 = NULL WHERE id = $1",
                    )
                    .bind(lease.unit)
                    .execute(&mut *tx)
                    .await?;
                }
                Some(bytes) => {
                    sqlx::query("UPDATE work_units SET state = $2, state_sha256 = $3, agent_sha256 = $4 WHERE id = $1")
                        .bind(lease.unit)
                        .bind(bytes)
                        .bind(state_sha256.as_deref())
                        .bind(provenance.agent_sha256)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            tx.commit().await?;
            Ok(Committed::Stored(inserted))
        })?;
        match outcome {
            Committed::Stored(inserted) => Ok(usize::try_from(inserted).unwrap_or(usize::MAX)),
            Committed::Fenced(current) => {
                tracing::warn!(
                    node = %self.cluster.node,
                    unit = lease.unit,
                    held = lease.token,
                    current,
                    "commit refused: the lease was taken over"
                );
                Err(ClusterError::Fenced { unit: lease.unit, held: lease.token, current }.into())
            }
        }
    }
}
