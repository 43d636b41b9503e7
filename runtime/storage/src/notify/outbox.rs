//! The outbox: one row per notification to send, written in the anomaly
//! store in the same transaction as the anomalies it announces, so a crash
//! either keeps both or neither. Delivery workers claim due rows for a
//! lease, record each attempt, and move the row on: delivered, due again
//! later, or dead.

use mcp_columns::Anomaly;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::routing::ChannelPolicy;
use crate::store::{AnomalyStore, StoreError};

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS notify_outbox (
    id INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    channel TEXT NOT NULL,
    -- 'anomaly': the first of its kind in a window; 'digest': what was
    -- folded in after that one had gone, sent when the window ends.
    kind TEXT NOT NULL,
    anomaly_id INTEGER NOT NULL,
    dedup_key TEXT NOT NULL,
    window_end_ms INTEGER NOT NULL,
    folded INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL,
    claimed_until_ms INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    created_ms INTEGER NOT NULL,
    finished_ms INTEGER
);
CREATE INDEX IF NOT EXISTS notify_outbox_due ON notify_outbox (state, next_attempt_ms);
CREATE INDEX IF NOT EXISTS notify_outbox_window ON notify_outbox (tenant, channel, dedup_key, window_end_ms);
CREATE INDEX IF NOT EXISTS notify_outbox_by_tenant ON notify_outbox (tenant, id);
CREATE INDEX IF NOT EXISTS notify_outbox_channel_due ON notify_outbox (tenant, channel, state, next_attempt_ms);
CREATE TABLE IF NOT EXISTS notify_attempts (
    id INTEGER PRIMARY KEY,
    outbox_id INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    status INTEGER,
    error TEXT,
    latency_ms INTEGER NOT NULL,
    answer TEXT
);
CREATE INDEX IF NOT EXISTS notify_attempts_by_outbox ON notify_attempts (outbox_id, id);
";

/// Where a notification is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutboxState {
    /// Waiting for its next attempt.
    Pending,
    /// Claimed by a worker for a while.
    Sending,
    Delivered,
    /// Gave up after the last attempt allowed; an admin may retry it.
    Dead,
    /// An admin dropped it.
    Dropped,
}

impl OutboxState {
    pub fn name(self) -> &'static str {
        match self {
            OutboxState::Pending => "pending",
            OutboxState::Sending => "sending",
            OutboxState::Delivered => "delivered",
            OutboxState::Dead => "dead",
            OutboxState::Dropped => "dropped",
        }
    }

    pub(crate) fn parse(text: &str) -> OutboxState {
        match text {
            "sending" => OutboxState::Sending,
            "delivered" => OutboxState::Delivered,
            "dead" => OutboxState::Dead,
            "dropped" => OutboxState::Dropped,
            _ => OutboxState::Pending,
        }
    }
}

/// A notification as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry {
    pub id: i64,
    pub tenant: String,
    pub channel: String,
    pub kind: String,
    pub anomaly_id: i64,
    pub window_end_ms: i64,
    pub folded: i64,
    pub state: OutboxState,
    pub attempts: i64,
    pub next_attempt_ms: i64,
    pub last_error: Option<String>,
    pub created_ms: i64,
    pub finished_ms: Option<i64>,
}

/// A row a worker claimed: send it, then record what happened.
pub type Claimed = OutboxEntry;

/// One try to deliver a notification.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attempt {
    pub at_ms: i64,
    /// The receiver's status (HTTP status, or SMTP reply code).
    pub status: Option<u16>,
    pub error: Option<String>,
    pub latency_ms: i64,
    /// The start of what the receiver answered.
    pub answer: Option<String>,
}

/// What follows an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterAttempt {
    Delivered,
    RetryAt(i64),
    Dead,
}

/// Which notifications a listing shows: newest first, before `before`.
#[derive(Debug, Clone, Default)]
pub struct OutboxFilter {
    pub state: Option<OutboxState>,
    pub channel: Option<String>,
    pub before: Option<i64>,
    pub limit: u32,
}

/// What an admin's retry or drop found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminAction {
    Done,
    NotFound,
    /// In a state the action does not apply to.
    Refused(OutboxState),
}

pub(crate) const ENTRY_COLUMNS: &str = "id, tenant, channel, kind, anomaly_id, window_end_ms, folded, state, attempts, next_attempt_ms, last_error, created_ms, finished_ms";

fn entry_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OutboxEntry> {
    Ok(OutboxEntry {
        id: r.get(0)?,
        tenant: r.get(1)?,
        channel: r.get(2)?,
        kind: r.get(3)?,
        anomaly_id: r.get(4)?,
        window_end_ms: r.get(5)?,
        folded: r.get(6)?,
        state: OutboxState::parse(&r.get::<_, String>(7)?),
        attempts: r.get(8)?,
        next_attempt_ms: r.get(9)?,
        last_error: r.get(10)?,
        created_ms: r.get(11)?,
        finished_ms: r.get(12)?,
    })
}

/// The key of "the same kind of anomaly": its agent, source and label.
pub(crate) fn dedup_key(anomaly: &Anomaly) -> String {
    format!("{}\u{1f}{}\u{1f}{}", anomaly.agent, anomaly.source, anomaly.label)
}

/// Queues the notification of the stored anomaly `anomaly_id` on `channel`,
/// inside the caller's transaction. Within the channel's dedup window the
/// first anomaly of a kind is sent at once; later ones are counted into it
/// while it waits, and into a digest sent at the window's end once it has
/// gone.
pub(crate) fn enqueue(
    tx: &Connection,
    tenant: &str,
    anomaly_id: i64,
    anomaly: &Anomaly,
    channel: &str,
    policy: ChannelPolicy,
    now_ms: i64,
) -> rusqlite::Result<()> {
    let key = dedup_key(anomaly);
    if policy.dedup_window_ms > 0 {
        let lead: Option<(i64, String, i64)> = tx
            .prepare_cached(
                "SELECT id, state, window_end_ms FROM notify_outbox
                 WHERE tenant = ?1 AND channel = ?2 AND dedup_key = ?3 AND window_end_ms > ?4 AND kind = 'anomaly'
                 ORDER BY window_end_ms DESC LIMIT 1",
            )?
            .query_row(params![tenant, channel, key, now_ms], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        if let Some((lead, state, window_end_ms)) = lead {
            if state == "pending" {
                tx.prepare_cached("UPDATE notify_outbox SET folded = folded + 1 WHERE id = ?1")?
                    .execute(params![lead])?;
                return Ok(());
            }
            let folded = tx
                .prepare_cached(
                    "UPDATE notify_outbox SET folded = folded + 1
                     WHERE tenant = ?1 AND channel = ?2 AND dedup_key = ?3 AND window_end_ms = ?4
                       AND kind = 'digest' AND state = 'pending'",
                )?
                .execute(params![tenant, channel, key, window_end_ms])?;
            if folded == 0 {
                tx.prepare_cached(
                    "INSERT INTO notify_outbox (tenant, channel, kind, anomaly_id, dedup_key, window_end_ms, folded, state, next_attempt_ms, created_ms)
                     VALUES (?1, ?2, 'digest', ?3, ?4, ?5, 1, 'pending', ?5, ?6)",
                )?
                .execute(params![tenant, channel, anomaly_id, key, window_end_ms, now_ms])?;
            }
            return Ok(());
        }
    }
    tx.prepare_cached(
        "INSERT INTO notify_outbox (tenant, channel, kind, anomaly_id, dedup_key, window_end_ms, state, next_attempt_ms, created_ms)
         VALUES (?1, ?2, 'anomaly', ?3, ?4, ?5, 'pending', ?6, ?6)",
    )?
    .execute(params![tenant, channel, anomaly_id, key, now_ms.saturating_add(policy.dedup_window_ms), now_ms])?;
    Ok(())
}

impl AnomalyStore {
    /// Claims up to `limit` of `tenant`'s `channel`'s due notifications
    /// (and any whose worker's lease ran out), oldest due first: a worker
    /// asks each channel in turn, so one channel's backlog never stands in
    /// front of another's.
    pub fn claim_channel(
        &mut self,
        tenant: &str,
        channel: &str,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        let sql = format!(
            "UPDATE notify_outbox SET state = 'sending', claimed_until_ms = ?4,
                 attempts = attempts + CASE WHEN state = 'sending' THEN 1 ELSE 0 END
             WHERE id IN (
                 SELECT id FROM (
                     SELECT id, next_attempt_ms AS due FROM notify_outbox
                     WHERE tenant = ?1 AND channel = ?2 AND state = 'pending' AND next_attempt_ms <= ?3
                     UNION ALL
                     SELECT id, claimed_until_ms AS due FROM notify_outbox
                     WHERE tenant = ?1 AND channel = ?2 AND state = 'sending' AND claimed_until_ms <= ?3)
                 ORDER BY due, id LIMIT ?5)
             RETURNING {ENTRY_COLUMNS}"
        );
        let result = (|| {
            let tx = self.conn.transaction()?;
            let claimed = {
                let mut s = tx.prepare_cached(&sql)?;
                let limit = i64::try_from(limit).unwrap_or(i64::MAX);
                s.query_map(params![tenant, channel, now_ms, now_ms.saturating_add(lease_ms), limit], entry_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()?
            };
            tx.commit()?;
            Ok(claimed)
        })();
        self.db(result)
    }

    /// The (tenant, channel) pairs with notifications still to send.
    pub fn channels_with_work(&self) -> Result<Vec<(String, String)>, StoreError> {
        let result = self
            .conn
            .prepare_cached(
                "SELECT DISTINCT tenant, channel FROM notify_outbox WHERE state IN ('pending', 'sending') ORDER BY 1, 2",
            )
            .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect());
        self.db(result)
    }

    /// Dead-letters every notification `tenant`'s `channel` still had to
    /// send (the channel is gone); returns how many.
    pub fn give_up_channel(&self, tenant: &str, channel: &str, reason: &str, now_ms: i64) -> Result<usize, StoreError> {
        self.db(self.conn.execute(
            "UPDATE notify_outbox SET state = 'dead', last_error = ?3, finished_ms = ?4, claimed_until_ms = 0
             WHERE tenant = ?1 AND channel = ?2 AND state IN ('pending', 'sending')",
            params![tenant, channel, reason, now_ms],
        ))
    }

    /// Records `attempt` on notification `id` and moves it on. A row whose
    /// lease was taken over by another worker meanwhile is still recorded:
    /// both tried, and the receiver sees the same delivery id twice.
    pub fn record_attempt(&mut self, id: i64, attempt: &Attempt, after: AfterAttempt) -> Result<(), StoreError> {
        let result = (|| {
            let tx = self.conn.transaction()?;
            tx.prepare_cached(
                "INSERT INTO notify_attempts (outbox_id, at_ms, status, error, latency_ms, answer) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![id, attempt.at_ms, attempt.status, attempt.error, attempt.latency_ms, attempt.answer])?;
            let (state, next, finished) = match after {
                AfterAttempt::Delivered => ("delivered", attempt.at_ms, Some(attempt.at_ms)),
                AfterAttempt::RetryAt(at) => ("pending", at, None),
                AfterAttempt::Dead => ("dead", attempt.at_ms, Some(attempt.at_ms)),
            };
            tx.prepare_cached(
                "UPDATE notify_outbox SET state = ?2, attempts = attempts + 1, next_attempt_ms = ?3, claimed_until_ms = 0,
                   last_error = ?4, finished_ms = ?5
                 WHERE id = ?1 AND state IN ('sending', 'pending')",
            )?
            .execute(params![id, state, next, attempt.error, finished])?;
            tx.commit()
        })();
        self.db(result)
    }

    /// Puts a claimed notification back, due at `until_ms`, without
    /// counting an attempt: its channel's rate limit held it, or the node
    /// could not send it (`why`, kept as its last error).
    pub fn defer_notification(&self, id: i64, until_ms: i64, why: Option<&str>) -> Result<(), StoreError> {
        self.db(self
            .conn
            .prepare_cached(
                "UPDATE notify_outbox SET state = 'pending', next_attempt_ms = ?2, claimed_until_ms = 0,
                     last_error = COALESCE(?3, last_error)
                 WHERE id = ?1 AND state = 'sending'",
            )
            .and_then(|mut s| s.execute(params![id, until_ms, why]))
            .map(|_| ()))
    }

    /// `tenant`'s notifications, newest first.
    pub fn outbox(&self, tenant: &str, filter: &OutboxFilter) -> Result<Vec<OutboxEntry>, StoreError> {
        let result = self
            .conn
            .prepare_cached(&format!(
                "SELECT {ENTRY_COLUMNS} FROM notify_outbox INDEXED BY notify_outbox_by_tenant
                 WHERE tenant = ?1 AND id < ?2 AND (?3 IS NULL OR state = ?3) AND (?4 IS NULL OR channel = ?4)
                 ORDER BY id DESC LIMIT ?5"
            ))
            .and_then(|mut s| {
                s.query_map(
                    params![
                        tenant,
                        filter.before.unwrap_or(i64::MAX),
                        filter.state.map(OutboxState::name),
                        filter.channel,
                        filter.limit
                    ],
                    entry_row,
                )?
                .collect()
            });
        self.db(result)
    }

    /// One of `tenant`'s notifications with its attempts, oldest first.
    pub fn outbox_entry(&self, tenant: &str, id: i64) -> Result<Option<(OutboxEntry, Vec<Attempt>)>, StoreError> {
        let entry = self.db(self
            .conn
            .query_row(
                &format!("SELECT {ENTRY_COLUMNS} FROM notify_outbox WHERE id = ?1 AND tenant = ?2"),
                params![id, tenant],
                entry_row,
            )
            .optional())?;
        let Some(entry) = entry else { return Ok(None) };
        let attempts = self.db(self
            .conn
            .prepare_cached(
                "SELECT at_ms, status, error, latency_ms, answer FROM notify_attempts WHERE outbox_id = ?1 ORDER BY id",
            )
            .and_then(|mut s| {
                s.query_map(params![id], |r| {
                    Ok(Attempt {
                        at_ms: r.get(0)?,
                        status: r.get(1)?,
                        error: r.get(2)?,
                        latency_ms: r.get(3)?,
                        answer: r.get(4)?,
                    })
                })?
                .collect()
            }))?;
        Ok(Some((entry, attempts)))
    }

    /// Makes a dead, dropped or waiting notification due now, with its
    /// attempts counted from zero again (those made stay on record).
    pub fn retry_notification(&self, tenant: &str, id: i64, now_ms: i64) -> Result<AdminAction, StoreError> {
        self.admin_action(
            tenant,
            id,
            "UPDATE notify_outbox SET state = 'pending', attempts = 0, next_attempt_ms = ?3, finished_ms = NULL
             WHERE id = ?1 AND tenant = ?2 AND state IN ('dead', 'dropped', 'pending')",
            now_ms,
        )
    }

    /// Gives up a notification that has not been delivered.
    pub fn drop_notification(&self, tenant: &str, id: i64, now_ms: i64) -> Result<AdminAction, StoreError> {
        self.admin_action(
            tenant,
            id,
            "UPDATE notify_outbox SET state = 'dropped', finished_ms = ?3
             WHERE id = ?1 AND tenant = ?2 AND state IN ('dead', 'pending')",
            now_ms,
        )
    }

    /// Runs `update` (guarded by the states it applies to, so a worker's
    /// claim in between is not overwritten) and says why it changed nothing.
    fn admin_action(&self, tenant: &str, id: i64, update: &str, now_ms: i64) -> Result<AdminAction, StoreError> {
        if self.db(self.conn.execute(update, params![id, tenant, now_ms]))? > 0 {
            return Ok(AdminAction::Done);
        }
        let state: Option<String> = self.db(self
            .conn
            .query_row("SELECT state FROM notify_outbox WHERE id = ?1 AND tenant = ?2", params![id, tenant], |r| {
                r.get(0)
            })
            .optional())?;
        Ok(state.map_or(AdminAction::NotFound, |s| AdminAction::Refused(OutboxState::parse(&s))))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use mcp_columns::Severity;

    use super::*;
    use crate::control::ControlStore;
    use crate::notify::{ChannelRecord, Managed, RouteBook, RouteRecord};
    use crate::store::{CheckpointKey, Provenance};

    fn anomaly(log_id: u64, source: &str) -> (Anomaly, Option<String>) {
        let a = Anomaly {
            agent: "dns".into(),
            log_id,
            log_type: "dns".into(),
            source: source.into(),
            log_timestamp_ms: 0,
            score: 0.9,
            label: "tunnel".into(),
            severity: Severity::Critical,
            reason: "long names".into(),
            detected_at_ms: 0,
        };
        (a, None)
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        control: ControlStore,
        store: AnomalyStore,
        last_id: u64,
    }

    impl Fixture {
        fn new(dedup_window_ms: i64) -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let control = ControlStore::open(&dir.path().join("control.db")).unwrap();
            control
                .put_notify_channel(&ChannelRecord {
                    tenant: "a".into(),
                    name: "ops".into(),
                    kind: "log".into(),
                    spec: "{}".into(),
                    dedup_window_ms,
                    rate_per_minute: 60,
                    enabled: true,
                    managed_by: Managed::Api,
                    updated_ms: 0,
                })
                .unwrap();
            let route = RouteRecord {
                name: "all".into(),
                channel: "ops".into(),
                severities: vec![],
                agents: vec![],
                log_types: vec![],
                labels: vec![],
                min_score: 0.0,
            };
            control.put_notify_route("a", &route, Managed::Api).unwrap();
            let mut store = AnomalyStore::open(&dir.path().join("anomalies.db")).unwrap();
            store.route_with(Arc::new(RouteBook::open(&dir.path().join("control.db")).unwrap()));
            Fixture { _dir: dir, control, store, last_id: 0 }
        }

        fn commit(&mut self, tenant: &str, anomalies: &[(Anomaly, Option<String>)]) -> usize {
            self.last_id += 100;
            let key = CheckpointKey { tenant, agent: "dns", log_source: "s", log_type: "dns" };
            let provenance = Provenance { agent_sha256: "x", schema_version: 1, model: None };
            self.store.commit(&key, &provenance, anomalies, self.last_id).unwrap()
        }

        fn outbox(&self, tenant: &str) -> Vec<OutboxEntry> {
            self.store.outbox(tenant, &OutboxFilter { limit: 100, ..Default::default() }).unwrap()
        }
    }

    #[test]
    fn a_routed_anomaly_is_queued_once_and_a_rerun_queues_nothing() {
        let mut f = Fixture::new(0);
        assert_eq!(f.commit("a", &[anomaly(1, "h1"), anomaly(2, "h1")]), 2);
        assert_eq!(f.commit("a", &[anomaly(1, "h1")]), 0);
        assert_eq!(f.commit("b", &[anomaly(1, "h1")]), 1);
        let queued = f.outbox("a");
        assert_eq!(queued.len(), 2, "no dedup window: one each");
        assert!(queued.iter().all(|e| e.state == OutboxState::Pending && e.kind == "anomaly"));
        assert!(f.outbox("b").is_empty(), "tenant b has no routes");
    }

    #[test]
    fn the_same_kind_within_the_window_folds_into_the_waiting_one_then_into_a_digest() {
        let mut f = Fixture::new(600_000);
        f.commit("a", &[anomaly(1, "h1"), anomaly(2, "h1"), anomaly(3, "h2")]);
        let queued = f.outbox("a");
        assert_eq!(queued.len(), 2, "{queued:?}");
        let lead = queued.iter().find(|e| e.folded == 1).expect("h1's second folded into its first");
        let claimed = f.store.claim_channel("a", "ops", crate::jobstatus::now_ms(), 10_000, 10).unwrap();
        assert_eq!(claimed.len(), 2);
        f.commit("a", &[anomaly(4, "h1"), anomaly(5, "h1")]);
        let digest: Vec<_> = f.outbox("a").into_iter().filter(|e| e.kind == "digest").collect();
        assert_eq!(digest.len(), 1);
        assert_eq!(digest[0].folded, 2);
        assert_eq!(digest[0].next_attempt_ms, lead.window_end_ms, "the digest waits for the window's end");
        assert!(f.store.claim_channel("a", "ops", crate::jobstatus::now_ms(), 10_000, 10).unwrap().is_empty());
        drop(f.control);
    }

    #[test]
    fn attempts_are_recorded_and_a_lease_that_ran_out_is_claimed_again() {
        let mut f = Fixture::new(0);
        f.commit("a", &[anomaly(1, "h1")]);
        let now = crate::jobstatus::now_ms();
        let id = f.store.claim_channel("a", "ops", now, 1_000, 10).unwrap()[0].id;
        assert!(f.store.claim_channel("a", "ops", now + 999, 1_000, 10).unwrap().is_empty(), "leased");
        let reclaimed = f.store.claim_channel("a", "ops", now + 1_000, 1_000, 10).unwrap();
        assert_eq!(reclaimed[0].id, id, "lease ran out");
        // The try whose lease ran out counts: the resend is attempt 2.
        assert_eq!(reclaimed[0].attempts, 1);
        let failed =
            Attempt { at_ms: now, status: Some(500), error: Some("HTTP 500".into()), latency_ms: 3, answer: None };
        f.store.record_attempt(id, &failed, AfterAttempt::RetryAt(now + 5_000)).unwrap();
        assert!(f.store.claim_channel("a", "ops", now + 4_999, 1_000, 10).unwrap().is_empty(), "backing off");
        f.store.claim_channel("a", "ops", now + 5_000, 1_000, 10).unwrap();
        f.store.record_attempt(id, &failed, AfterAttempt::Dead).unwrap();
        let (entry, attempts) = f.store.outbox_entry("a", id).unwrap().unwrap();
        assert_eq!((entry.state, entry.attempts, attempts.len()), (OutboxState::Dead, 3, 2));
        assert_eq!(f.store.outbox_entry("b", id).unwrap(), None, "another tenant's id");
        assert_eq!(f.store.retry_notification("b", id, now).unwrap(), AdminAction::NotFound);
        assert_eq!(f.store.retry_notification("a", id, now).unwrap(), AdminAction::Done);
        let (entry, _) = f.store.outbox_entry("a", id).unwrap().unwrap();
        assert_eq!((entry.state, entry.attempts), (OutboxState::Pending, 0));
        f.store.claim_channel("a", "ops", now + 10_000, 1_000, 10).unwrap();
        let ok = Attempt { at_ms: now, status: Some(200), error: None, latency_ms: 3, answer: Some("ok".into()) };
        f.store.record_attempt(id, &ok, AfterAttempt::Delivered).unwrap();
        assert_eq!(
            f.store.drop_notification("a", id, now).unwrap(),
            AdminAction::Refused(OutboxState::Delivered),
            "a delivered notification cannot be dropped"
        );
    }
}
