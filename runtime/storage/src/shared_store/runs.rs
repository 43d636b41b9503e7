//! Runs that are not units of work (a run started through the API, `mcp
//! run`) committing to the anomaly store on PostgreSQL: the batch's
//! anomalies, the run's checkpoint and the agent's state in one
//! transaction, as in the embedded store, so a crash and a rerun store each
//! anomaly once. The anomalies' insert is the one a unit's commit uses too.

use std::collections::HashMap;

use mcp_columns::Anomaly;
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};

use super::outbox::{enqueue, matched};

use super::{SharedStore, SharedStoreError};
use crate::notify::RouteSet;
use crate::run_store::{RunStore, RunStoreError};
use crate::source::postgres::id_param;
use crate::store::{AnomalyWithEntry, CheckpointKey, Provenance, sha256_hex, usable_state};

/// Rows per INSERT: 16 arguments each stay far below PostgreSQL's 65,535.
const ROWS_PER_INSERT: usize = 1_000;

/// `text` as PostgreSQL's text can hold it: a NUL (which a guest may put
/// in a label or reason) becomes U+FFFD, rather than failing the commit.
pub(super) fn storable(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') { text.replace('\0', "\u{fffd}").into() } else { text.into() }
}

/// Stores `anomalies` found by `key`'s agent in `tx`, each (tenant, agent,
/// entry, label) once, with the unit that found them if any, and queues
/// the notifications `routes` sends the new ones to; returns how many were
/// new. An anomaly stored before (a rerun) was announced before.
pub(crate) async fn insert_anomalies(
    tx: &mut PgConnection,
    key: &CheckpointKey<'_>,
    provenance: &Provenance<'_>,
    anomalies: &[AnomalyWithEntry],
    unit: Option<i64>,
    routes: Option<&RouteSet>,
) -> Result<u64, sqlx::Error> {
    let routes = routes.filter(|set| !set.is_empty());
    let now = crate::jobstatus::now_ms();
    let schema_version = i32::try_from(provenance.schema_version).unwrap_or(i32::MAX);
    let mut inserted = 0;
    for chunk in anomalies.chunks(ROWS_PER_INSERT) {
        let mut insert = QueryBuilder::<Postgres>::new(
            "INSERT INTO anomalies (tenant, agent, agent_sha256, log_type, log_id, source, log_ts_ms, score, label, \
             severity, reason, detected_at_ms, schema_version, entry_fields, model, unit) ",
        );
        insert.push_values(chunk, |mut row, (anomaly, fields)| {
            row.push_bind(key.tenant)
                .push_bind(key.agent)
                .push_bind(provenance.agent_sha256)
                .push_bind(storable(&anomaly.log_type))
                .push_bind(id_param(anomaly.log_id))
                .push_bind(storable(&anomaly.source))
                .push_bind(anomaly.log_timestamp_ms)
                .push_bind(f64::from(anomaly.score))
                .push_bind(storable(&anomaly.label))
                .push_bind(anomaly.severity.name())
                .push_bind(storable(&anomaly.reason))
                .push_bind(anomaly.detected_at_ms)
                .push_bind(schema_version)
                .push_bind(fields.as_deref().map(storable))
                .push_bind(provenance.model)
                .push_bind(unit);
        });
        insert.push(" ON CONFLICT (tenant, agent, log_id, label) DO NOTHING");
        let Some(routes) = routes else {
            inserted += insert.build().execute(&mut *tx).await?.rows_affected();
            continue;
        };
        insert.push(" RETURNING id, log_id, label");
        let returned: Vec<(i64, i64, String)> = insert.build_query_as().fetch_all(&mut *tx).await?;
        inserted += u64::try_from(returned.len()).unwrap_or(u64::MAX);
        let by_key: HashMap<(i64, String), &Anomaly> = chunk
            .iter()
            .map(|(anomaly, _)| ((id_param(anomaly.log_id), storable(&anomaly.label).into_owned()), anomaly))
            .collect();
        enqueue(tx, key.tenant, &matched(&returned, &by_key), routes, now).await?;
    }
    Ok(inserted)
}

const WHERE_KEY: &str = "tenant = $1 AND agent = $2 AND log_source = $3 AND log_type = $4";

fn key_query<'q>(
    sql: &'q str,
    key: &CheckpointKey<'q>,
) -> sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments> {
    sqlx::query(sql).bind(key.tenant).bind(key.agent).bind(key.log_source).bind(key.log_type)
}

fn decoded<T>(what: &str, result: Result<T, sqlx::Error>) -> Result<T, RunStoreError> {
    Ok(result.map_err(|source| SharedStoreError::Postgres { context: format!("{what}: "), source })?)
}

/// By reference: every run of the process shares the one pool.
impl RunStore for &SharedStore {
    fn checkpoint(&self, key: &CheckpointKey<'_>) -> Result<u64, RunStoreError> {
        let sql = format!("SELECT last_id FROM run_checkpoints WHERE {WHERE_KEY}");
        let row = self.with_retry("read a run's checkpoint", || key_query(&sql, key).fetch_optional(&self.writes))?;
        let last: Option<i64> = decoded("read a run's checkpoint", row.map(|r| r.try_get(0)).transpose())?;
        Ok(last.unwrap_or(0).unsigned_abs())
    }

    fn agent_state(&self, key: &CheckpointKey<'_>, agent_sha256: &str) -> Result<Option<Vec<u8>>, RunStoreError> {
        let sql = format!(
            "SELECT state, state_sha256, agent_sha256 FROM run_checkpoints WHERE {WHERE_KEY} AND state IS NOT NULL"
        );
        let row = self.with_retry("read an agent's state", || key_query(&sql, key).fetch_optional(&self.writes))?;
        let Some(row) = row else { return Ok(None) };
        let read = || -> Result<(Vec<u8>, String, String), sqlx::Error> {
            Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))
        };
        let (state, sha256, taken_by) = decoded("read an agent's state", read())?;
        Ok(usable_state(key, state, &sha256, &taken_by, agent_sha256))
    }

    fn forget_agent_state(&self, key: &CheckpointKey<'_>) -> Result<(), RunStoreError> {
        let sql = format!(
            "UPDATE run_checkpoints SET state = NULL, state_sha256 = NULL, agent_sha256 = NULL WHERE {WHERE_KEY}"
        );
        self.with_retry("forget an agent's state", || key_query(&sql, key).execute(&self.writes))?;
        Ok(())
    }

    fn commit_with_state(
        &mut self,
        key: &CheckpointKey<'_>,
        provenance: &Provenance<'_>,
        anomalies: &[AnomalyWithEntry],
        last_id: u64,
        state: Option<&[u8]>,
    ) -> Result<usize, RunStoreError> {
        let state_sha256 = state.filter(|bytes| !bytes.is_empty()).map(sha256_hex);
        let keep_state = state.is_none();
        let routes = SharedStore::routes_for(self.routes.as_deref(), key.tenant, anomalies.len())?;
        // Safe to repeat after a lost answer: the absolute checkpoint and
        // the unique key make a second attempt store nothing more (and
        // queue nothing more).
        let inserted = self.with_retry("commit a batch", || async {
            let mut tx = self.writes.begin().await?;
            let inserted = insert_anomalies(&mut tx, key, provenance, anomalies, None, routes.as_ref()).await?;
            sqlx::query(
                "INSERT INTO run_checkpoints (tenant, agent, log_source, log_type, last_id, agent_sha256, state, state_sha256)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (tenant, agent, log_source, log_type) DO UPDATE SET last_id = excluded.last_id,
                     agent_sha256 = CASE WHEN $9 THEN run_checkpoints.agent_sha256 ELSE excluded.agent_sha256 END,
                     state = CASE WHEN $9 THEN run_checkpoints.state ELSE excluded.state END,
                     state_sha256 = CASE WHEN $9 THEN run_checkpoints.state_sha256 ELSE excluded.state_sha256 END",
            )
            .bind(key.tenant)
            .bind(key.agent)
            .bind(key.log_source)
            .bind(key.log_type)
            .bind(id_param(last_id))
            .bind(state_sha256.as_ref().map(|_| provenance.agent_sha256))
            .bind(state.filter(|bytes| !bytes.is_empty()))
            .bind(state_sha256.as_deref())
            .bind(keep_state)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(inserted)
        })?;
        Ok(usize::try_from(inserted).unwrap_or(usize::MAX))
    }
}
