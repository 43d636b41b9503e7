//! The outbox of whichever store the deployment keeps its anomalies in:
//! this node's embedded file, or PostgreSQL, where every node's delivery
//! worker claims from one outbox. The delivery worker and the API ask the
//! same questions of either.

use super::outbox::{AdminAction, AfterAttempt, Attempt, Claimed, OutboxEntry, OutboxFilter};
use crate::reads::{AnomalyReads, ReadError};
use crate::shared_store::SharedStore;
use crate::store::AnomalyStore;

/// The store holding the outbox.
#[derive(Debug)]
pub enum OutboxStore<'a> {
    Embedded(&'a mut AnomalyStore),
    Shared(&'a SharedStore),
}

impl OutboxStore<'_> {
    /// The anomalies beside the outbox (a notification names one).
    pub fn anomalies(&self) -> AnomalyReads<'_> {
        match self {
            OutboxStore::Embedded(store) => AnomalyReads::Embedded(store),
            OutboxStore::Shared(store) => AnomalyReads::Shared(store),
        }
    }

    /// Claims up to `limit` of `tenant`'s `channel`'s due notifications
    /// for `lease_ms`.
    pub fn claim_channel(
        &mut self,
        tenant: &str,
        channel: &str,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<Claimed>, ReadError> {
        match self {
            OutboxStore::Embedded(store) => Ok(store.claim_channel(tenant, channel, now_ms, lease_ms, limit)?),
            OutboxStore::Shared(store) => Ok(store.claim_channel(tenant, channel, now_ms, lease_ms, limit)?),
        }
    }

    /// The (tenant, channel) pairs with notifications still to send.
    pub fn channels_with_work(&self) -> Result<Vec<(String, String)>, ReadError> {
        match self {
            OutboxStore::Embedded(store) => Ok(store.channels_with_work()?),
            OutboxStore::Shared(store) => Ok(store.channels_with_work()?),
        }
    }

    /// Dead-letters what `tenant`'s `channel` still had to send.
    pub fn give_up_channel(&self, tenant: &str, channel: &str, reason: &str, now_ms: i64) -> Result<usize, ReadError> {
        match self {
            OutboxStore::Embedded(store) => Ok(store.give_up_channel(tenant, channel, reason, now_ms)?),
            OutboxStore::Shared(store) => Ok(store.give_up_channel(tenant, channel, reason, now_ms)?),
        }
    }

    /// Records `attempt` on notification `id` and moves it on.
    pub fn record_attempt(&mut self, id: i64, attempt: &Attempt, after: AfterAttempt) -> Result<(), ReadError> {
        match self {
            OutboxStore::Embedded(store) => Ok(store.record_attempt(id, attempt, after)?),
            OutboxStore::Shared(store) => Ok(store.record_attempt(id, attempt, after)?),
        }
    }

    /// Puts a claimed notification back, due at `until_ms`, with `why`
    /// as its last error when given, without counting an attempt.
    pub fn defer_notification(&self, id: i64, until_ms: i64, why: Option<&str>) -> Result<(), ReadError> {
        match self {
            OutboxStore::Embedded(store) => Ok(store.defer_notification(id, until_ms, why)?),
            OutboxStore::Shared(store) => Ok(store.defer_notification(id, until_ms, why)?),
        }
    }

    /// `tenant`'s notifications, newest first.
    pub fn outbox(&self, tenant: &str, filter: &OutboxFilter) -> Result<Vec<OutboxEntry>, ReadError> {
        match self {
            OutboxStore::Embedded(store) => Ok(store.outbox(tenant, filter)?),
            OutboxStore::Shared(store) => Ok(store.outbox(tenant, filter)?),
        }
    }

    /// One of `tenant`'s notifications with its attempts.
    pub fn outbox_entry(&self, tenant: &str, id: i64) -> Result<Option<(OutboxEntry, Vec<Attempt>)>, ReadError> {
        match self {
            OutboxStore::Embedded(store) => Ok(store.outbox_entry(tenant, id)?),
            OutboxStore::Shared(store) => Ok(store.outbox_entry(tenant, id)?),
        }
    }

    /// Makes a dead, dropped or waiting notification due now.
    pub fn retry_notification(&self, tenant: &str, id: i64, now_ms: i64) -> Result<AdminAction, ReadError> {
        match self {
            OutboxStore::Embedded(store) => Ok(store.retry_notification(tenant, id, now_ms)?),
            OutboxStore::Shared(store) => Ok(store.retry_notification(tenant, id, now_ms)?),
        }
    }

    /// Gives up a notification that has not been delivered.
    pub fn drop_notification(&self, tenant: &str, id: i64, now_ms: i64) -> Result<AdminAction, ReadError> {
        match self {
            OutboxStore::Embedded(store) => Ok(store.drop_notification(tenant, id, now_ms)?),
            OutboxStore::Shared(store) => Ok(store.drop_notification(tenant, id, now_ms)?),
        }
    }
}
