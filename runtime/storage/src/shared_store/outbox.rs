//! The notification outbox on PostgreSQL: what the embedded store's
//! outbox does (`crate::notify::outbox`), for every node at once. Rows are
//! queued in the transaction that stores the anomalies they announce, and
//! claimed with `FOR UPDATE SKIP LOCKED`, so two nodes' delivery workers
//! never take the same row while its lease holds.

use std::collections::{BTreeMap, HashMap};

use mcp_columns::Anomaly;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};

use super::pages::decoded;
use super::runs::storable;
use super::{SharedStore, SharedStoreError};
use crate::notify::RouteSet;
use crate::notify::outbox::{
    AdminAction, AfterAttempt, Attempt, Claimed, ENTRY_COLUMNS, OutboxEntry, OutboxFilter, OutboxState, dedup_key,
};
use crate::notify::routing::ChannelPolicy;

fn entry(r: &PgRow) -> Result<OutboxEntry, sqlx::Error> {
    Ok(OutboxEntry {
        id: r.try_get(0)?,
        tenant: r.try_get(1)?,
        channel: r.try_get(2)?,
        kind: r.try_get(3)?,
        anomaly_id: r.try_get(4)?,
        window_end_ms: r.try_get(5)?,
        folded: r.try_get(6)?,
        state: OutboxState::parse(r.try_get(7)?),
        attempts: r.try_get(8)?,
        next_attempt_ms: r.try_get(9)?,
        last_error: r.try_get(10)?,
        created_ms: r.try_get(11)?,
        finished_ms: r.try_get(12)?,
    })
}

/// The anomalies of one commit that one channel folds together: same
/// agent, source and label, in the order they were stored.
struct Fold {
    policy: ChannelPolicy,
    anomaly_ids: Vec<i64>,
}

/// Queues the notifications of newly stored anomalies (`stored`: their ids
/// and what they are) that `routes` sends to a channel, inside the
/// commit's transaction, with the embedded store's folding: within a
/// channel's dedup window the first of a kind is sent, later ones are
/// counted into it while it waits, and into a digest once it has gone.
pub(crate) async fn enqueue(
    tx: &mut PgConnection,
    tenant: &str,
    stored: &[(i64, &Anomaly)],
    routes: &RouteSet,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    let mut each: Vec<(&str, i64, String)> = Vec::new();
    let mut folds: BTreeMap<(&str, String), Fold> = BTreeMap::new();
    for &(id, anomaly) in stored {
        for (channel, policy) in routes.channels_for(anomaly) {
            if policy.dedup_window_ms > 0 {
                folds
                    .entry((channel, dedup_key(anomaly)))
                    .or_insert_with(|| Fold { policy, anomaly_ids: Vec::new() })
                    .anomaly_ids
                    .push(id);
            } else {
                each.push((channel, id, dedup_key(anomaly)));
            }
        }
    }
    if !each.is_empty() {
        let mut insert = QueryBuilder::<Postgres>::new(
            "INSERT INTO notify_outbox (tenant, channel, kind, anomaly_id, dedup_key, window_end_ms, state, \
             next_attempt_ms, created_ms) ",
        );
        insert.push_values(&each, |mut row, (channel, id, key)| {
            row.push_bind(tenant)
                .push_bind(*channel)
                .push_bind("anomaly")
                .push_bind(*id)
                .push_bind(key)
                .push_bind(now_ms)
                .push_bind("pending")
                .push_bind(now_ms)
                .push_bind(now_ms);
        });
        insert.build().execute(&mut *tx).await?;
    }
    // Two nodes committing the same kind at once would each find no
    // notification waiting and both send one: the lock of the (tenant,
    // channel, kind) makes the second see the first's. Taken in key order
    // (a BTreeMap's), so two commits never wait on each other in a cycle.
    for ((channel, key), fold) in &folds {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 17))")
            .bind(format!("{tenant}\u{1f}{channel}\u{1f}{key}"))
            .execute(&mut *tx)
            .await?;
        fold_in(tx, tenant, channel, key, fold, now_ms).await?;
    }
    Ok(())
}

/// Folds one kind's anomalies of a commit into the channel's outbox.
async fn fold_in(
    tx: &mut PgConnection,
    tenant: &str,
    channel: &str,
    key: &str,
    fold: &Fold,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    let Some((&first, rest)) = fold.anomaly_ids.split_first() else { return Ok(()) };
    let count = i64::try_from(fold.anomaly_ids.len()).unwrap_or(i64::MAX);
    let lead: Option<(i64, String, i64)> = sqlx::query_as(
        "SELECT id, state, window_end_ms FROM notify_outbox
         WHERE tenant = $1 AND channel = $2 AND dedup_key = $3 AND window_end_ms > $4 AND kind = 'anomaly'
         ORDER BY window_end_ms DESC LIMIT 1",
    )
    .bind(tenant)
    .bind(channel)
    .bind(key)
    .bind(now_ms)
    .fetch_optional(&mut *tx)
    .await?;
    match lead {
        None => {
            // The first of its kind goes now; the rest of the commit's
            // wait folded into it.
            sqlx::query(
                "INSERT INTO notify_outbox (tenant, channel, kind, anomaly_id, dedup_key, window_end_ms, folded, state, \
                 next_attempt_ms, created_ms) VALUES ($1, $2, 'anomaly', $3, $4, $5, $6, 'pending', $7, $7)",
            )
            .bind(tenant)
            .bind(channel)
            .bind(first)
            .bind(key)
            .bind(now_ms.saturating_add(fold.policy.dedup_window_ms))
            .bind(i64::try_from(rest.len()).unwrap_or(i64::MAX))
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        }
        Some((lead, state, _)) if state == "pending" => {
            sqlx::query("UPDATE notify_outbox SET folded = folded + $2 WHERE id = $1")
                .bind(lead)
                .bind(count)
                .execute(&mut *tx)
                .await?;
        }
        Some((_, _, window_end_ms)) => {
            let folded = sqlx::query(
                "UPDATE notify_outbox SET folded = folded + $5
                 WHERE tenant = $1 AND channel = $2 AND dedup_key = $3 AND window_end_ms = $4
                   AND kind = 'digest' AND state = 'pending'",
            )
            .bind(tenant)
            .bind(channel)
            .bind(key)
            .bind(window_end_ms)
            .bind(count)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if folded == 0 {
                sqlx::query(
                    "INSERT INTO notify_outbox (tenant, channel, kind, anomaly_id, dedup_key, window_end_ms, folded, \
                     state, next_attempt_ms, created_ms) VALUES ($1, $2, 'digest', $3, $4, $5, $6, 'pending', $5, $7)",
                )
                .bind(tenant)
                .bind(channel)
                .bind(first)
                .bind(key)
                .bind(window_end_ms)
                .bind(count)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
            }
        }
    }
    Ok(())
}

/// The anomalies an INSERT stored, matched back by their (log id, label)
/// to what the agent found.
pub(crate) fn matched<'a>(
    returned: &[(i64, i64, String)],
    by_key: &HashMap<(i64, String), &'a Anomaly>,
) -> Vec<(i64, &'a Anomaly)> {
    let mut stored: Vec<(i64, &Anomaly)> = returned
        .iter()
        .filter_map(|(id, log_id, label)| by_key.get(&(*log_id, label.clone())).map(|a| (*id, *a)))
        .collect();
    // RETURNING promises no order; the ids are the order of storing.
    stored.sort_by_key(|(id, _)| *id);
    stored
}

impl SharedStore {
    /// Claims up to `limit` of `tenant`'s `channel`'s due notifications
    /// (and any whose worker's lease ran out), oldest due first; rows
    /// another node is claiming at this moment are skipped, not waited for.
    pub fn claim_channel(
        &self,
        tenant: &str,
        channel: &str,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<Claimed>, SharedStoreError> {
        let sql = format!(
            "UPDATE notify_outbox SET state = 'sending', claimed_until_ms = $4,
                 attempts = attempts + CASE WHEN state = 'sending' THEN 1 ELSE 0 END
             WHERE id IN (
                 SELECT id FROM notify_outbox
                 WHERE tenant = $1 AND channel = $2
                   AND ((state = 'pending' AND next_attempt_ms <= $3) OR (state = 'sending' AND claimed_until_ms <= $3))
                 ORDER BY CASE WHEN state = 'pending' THEN next_attempt_ms ELSE claimed_until_ms END, id
                 LIMIT $5 FOR UPDATE SKIP LOCKED)
             RETURNING {ENTRY_COLUMNS}"
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.with_retry("claim notifications", || {
            sqlx::query(&sql)
                .bind(tenant)
                .bind(channel)
                .bind(now_ms)
                .bind(now_ms.saturating_add(lease_ms))
                .bind(limit)
                .fetch_all(&self.writes)
        })?;
        let mut claimed: Vec<Claimed> = decoded("claim notifications", rows.iter().map(entry).collect())?;
        claimed.sort_by_key(|e| e.id);
        Ok(claimed)
    }

    /// The (tenant, channel) pairs with notifications still to send.
    pub fn channels_with_work(&self) -> Result<Vec<(String, String)>, SharedStoreError> {
        let rows = self.read("list channels with notifications to send", || {
            sqlx::query_as(
                "SELECT DISTINCT tenant, channel FROM notify_outbox WHERE state IN ('pending', 'sending') ORDER BY 1, 2",
            )
            .fetch_all(&self.reads)
        })?;
        Ok(rows)
    }

    /// Dead-letters every notification `tenant`'s `channel` still had to
    /// send (the channel is gone); returns how many.
    pub fn give_up_channel(
        &self,
        tenant: &str,
        channel: &str,
        reason: &str,
        now_ms: i64,
    ) -> Result<usize, SharedStoreError> {
        let done = self.with_retry("dead-letter a channel's notifications", || {
            sqlx::query(
                "UPDATE notify_outbox SET state = 'dead', last_error = $3, finished_ms = $4, claimed_until_ms = 0
                 WHERE tenant = $1 AND channel = $2 AND state IN ('pending', 'sending')",
            )
            .bind(tenant)
            .bind(channel)
            .bind(reason)
            .bind(now_ms)
            .execute(&self.writes)
        })?;
        Ok(usize::try_from(done.rows_affected()).unwrap_or(usize::MAX))
    }

    /// Records `attempt` on notification `id` and moves it on, in one
    /// statement, retried as `[retry]` says: a row left `sending` would be
    /// sent again when its lease ends. A retry after a commit whose answer
    /// was lost records the attempt twice (the row moves once).
    pub fn record_attempt(&self, id: i64, attempt: &Attempt, after: AfterAttempt) -> Result<(), SharedStoreError> {
        let (state, next, finished) = match after {
            AfterAttempt::Delivered => ("delivered", attempt.at_ms, Some(attempt.at_ms)),
            AfterAttempt::RetryAt(at) => ("pending", at, None),
            AfterAttempt::Dead => ("dead", attempt.at_ms, Some(attempt.at_ms)),
        };
        self.with_retry("record a delivery attempt", || {
            sqlx::query(
                "WITH attempt AS (
                     INSERT INTO notify_attempts (outbox_id, at_ms, status, error, latency_ms, answer)
                     VALUES ($1, $2, $3, $4, $5, $6))
                 UPDATE notify_outbox SET state = $7, attempts = attempts + 1, next_attempt_ms = $8,
                     claimed_until_ms = 0, last_error = $4, finished_ms = $9
                 WHERE id = $1 AND state IN ('sending', 'pending')",
            )
            .bind(id)
            .bind(attempt.at_ms)
            .bind(attempt.status.map(i32::from))
            .bind(attempt.error.as_deref().map(storable))
            .bind(attempt.latency_ms)
            .bind(attempt.answer.as_deref().map(storable))
            .bind(state)
            .bind(next)
            .bind(finished)
            .execute(&self.writes)
        })?;
        Ok(())
    }

    /// Puts a claimed notification back, due at `until_ms`, without
    /// counting an attempt: its channel's rate limit held it, or the node
    /// could not send it (`why`, kept as its last error).
    pub fn defer_notification(&self, id: i64, until_ms: i64, why: Option<&str>) -> Result<(), SharedStoreError> {
        let why = why.map(storable);
        self.with_retry("defer a notification", || {
            sqlx::query(
                "UPDATE notify_outbox SET state = 'pending', next_attempt_ms = $2, claimed_until_ms = 0,
                     last_error = COALESCE($3, last_error)
                 WHERE id = $1 AND state = 'sending'",
            )
            .bind(id)
            .bind(until_ms)
            .bind(why.as_deref())
            .execute(&self.writes)
        })?;
        Ok(())
    }

    /// Takes a token of `tenant`'s `channel`'s rate limit, shared by every
    /// node: `Ok(Ok(()))` when there was one, `Ok(Err(ms))` with the time
    /// until there will be. The bucket holds a minute's allowance and
    /// refills evenly, as the embedded deployment's in-process one does.
    pub fn take_rate_token(
        &self,
        tenant: &str,
        channel: &str,
        per_minute: i64,
        now_ms: i64,
    ) -> Result<Result<(), i64>, SharedStoreError> {
        const UNIT: i64 = 60_000;
        let per_minute = per_minute.max(1);
        let capacity = per_minute.saturating_mul(UNIT);
        // One statement: the row's lock orders two nodes' takes.
        let (units, taken): (i64, bool) = self.with_retry("take a rate-limit token", || {
            sqlx::query_as(
                "INSERT INTO notify_buckets AS b (tenant, channel, units, at_ms, taken) VALUES ($1, $2, $3 - $6, $4, true)
                 ON CONFLICT (tenant, channel) DO UPDATE SET
                     units = LEAST(b.units + GREATEST($4 - b.at_ms, 0) * $5, $3)
                           - CASE WHEN LEAST(b.units + GREATEST($4 - b.at_ms, 0) * $5, $3) >= $6 THEN $6 ELSE 0 END,
                     taken = LEAST(b.units + GREATEST($4 - b.at_ms, 0) * $5, $3) >= $6,
                     at_ms = GREATEST($4, b.at_ms)
                 RETURNING units, taken",
            )
            .bind(tenant)
            .bind(channel)
            .bind(capacity)
            .bind(now_ms)
            .bind(per_minute)
            .bind(UNIT)
            .fetch_one(&self.writes)
        })?;
        Ok(if taken { Ok(()) } else { Err((UNIT - units + per_minute - 1) / per_minute) })
    }

    /// The latency of every delivery attempt of `tenant`'s notifications,
    /// in milliseconds (for `mcp bench --notify`).
    pub fn attempt_latencies(&self, tenant: &str) -> Result<Vec<i64>, SharedStoreError> {
        let rows: Vec<(i64,)> = self.read("read delivery latencies", || {
            sqlx::query_as(
                "SELECT a.latency_ms FROM notify_attempts a JOIN notify_outbox o ON o.id = a.outbox_id
                 WHERE o.tenant = $1",
            )
            .bind(tenant)
            .fetch_all(&self.reads)
        })?;
        Ok(rows.into_iter().map(|(ms,)| ms).collect())
    }

    /// `tenant`'s notifications, newest first.
    pub fn outbox(&self, tenant: &str, filter: &OutboxFilter) -> Result<Vec<OutboxEntry>, SharedStoreError> {
        if filter.channel.as_deref().is_some_and(|c| c.contains('\0')) {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {ENTRY_COLUMNS} FROM notify_outbox
             WHERE tenant = $1 AND id < $2 AND ($3::text IS NULL OR state = $3) AND ($4::text IS NULL OR channel = $4)
             ORDER BY id DESC LIMIT $5"
        );
        let rows = self.read("list notifications", || {
            sqlx::query(&sql)
                .bind(tenant)
                .bind(filter.before.unwrap_or(i64::MAX))
                .bind(filter.state.map(OutboxState::name))
                .bind(filter.channel.as_deref())
                .bind(i64::from(filter.limit))
                .fetch_all(&self.reads)
        })?;
        decoded("list notifications", rows.iter().map(entry).collect())
    }

    /// One of `tenant`'s notifications with its attempts, oldest first.
    pub fn outbox_entry(&self, tenant: &str, id: i64) -> Result<Option<(OutboxEntry, Vec<Attempt>)>, SharedStoreError> {
        let sql = format!("SELECT {ENTRY_COLUMNS} FROM notify_outbox WHERE id = $1 AND tenant = $2");
        let row =
            self.read("read a notification", || sqlx::query(&sql).bind(id).bind(tenant).fetch_optional(&self.reads))?;
        let Some(found) = decoded("read a notification", row.as_ref().map(entry).transpose())? else {
            return Ok(None);
        };
        let rows = self.read("read a notification's attempts", || {
            sqlx::query(
                "SELECT at_ms, status, error, latency_ms, answer FROM notify_attempts WHERE outbox_id = $1 ORDER BY id",
            )
            .bind(id)
            .fetch_all(&self.reads)
        })?;
        let attempt = |r: &PgRow| -> Result<Attempt, sqlx::Error> {
            Ok(Attempt {
                at_ms: r.try_get(0)?,
                status: r.try_get::<Option<i32>, _>(1)?.and_then(|s| u16::try_from(s).ok()),
                error: r.try_get(2)?,
                latency_ms: r.try_get(3)?,
                answer: r.try_get(4)?,
            })
        };
        let attempts = decoded("read a notification's attempts", rows.iter().map(attempt).collect())?;
        Ok(Some((found, attempts)))
    }

    /// Makes a dead, dropped or waiting notification due now, with its
    /// attempts counted from zero again (those made stay on record).
    pub fn retry_notification(&self, tenant: &str, id: i64, now_ms: i64) -> Result<AdminAction, SharedStoreError> {
        self.admin_action(
            tenant,
            id,
            "UPDATE notify_outbox SET state = 'pending', attempts = 0, next_attempt_ms = $3, finished_ms = NULL
             WHERE id = $1 AND tenant = $2 AND state IN ('dead', 'dropped', 'pending')",
            now_ms,
        )
    }

    /// Gives up a notification that has not been delivered.
    pub fn drop_notification(&self, tenant: &str, id: i64, now_ms: i64) -> Result<AdminAction, SharedStoreError> {
        self.admin_action(
            tenant,
            id,
            "UPDATE notify_outbox SET state = 'dropped', finished_ms = $3
             WHERE id = $1 AND tenant = $2 AND state IN ('dead', 'pending')",
            now_ms,
        )
    }

    /// Runs `update` (guarded by the states it applies to, so a worker's
    /// claim in between is not overwritten) and says why it changed nothing.
    fn admin_action(&self, tenant: &str, id: i64, update: &str, now_ms: i64) -> Result<AdminAction, SharedStoreError> {
        let done = self.with_retry("change a notification", || {
            sqlx::query(update).bind(id).bind(tenant).bind(now_ms).execute(&self.writes)
        })?;
        if done.rows_affected() > 0 {
            return Ok(AdminAction::Done);
        }
        let state: Option<(String,)> = self.read("read a notification's state", || {
            sqlx::query_as("SELECT state FROM notify_outbox WHERE id = $1 AND tenant = $2")
                .bind(id)
                .bind(tenant)
                .fetch_optional(&self.reads)
        })?;
        Ok(state.map_or(AdminAction::NotFound, |(s,)| AdminAction::Refused(OutboxState::parse(&s))))
    }
}
