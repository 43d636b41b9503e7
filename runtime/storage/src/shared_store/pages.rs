//! Pages, single anomalies and charts of the anomaly store on PostgreSQL,
//! with the embedded store's filters, order and keyset cursors, so a client
//! pages the same way whichever store a deployment uses.

use sqlx::Row;
use sqlx::postgres::PgRow;

use super::statement::{Arg, Statement};
use super::{SharedStore, SharedStoreError};
use crate::histogram::{Histogram, HistogramGroup, Slots};
use crate::store::{
    AnomalyQuery, AnomalyRecord, AnomalySort, DRIVING_FILTERS, RECORD_COLUMNS, StoredAnomaly, equality_filter,
};

/// The WHERE conditions of `query`'s filters, the tenant first, as the
/// embedded store's `filter_sql`.
fn filters(query: &AnomalyQuery, statement: &mut Statement) -> String {
    let mut sql = format!("tenant = {}", statement.bind(Arg::Text(query.tenant.clone())));
    for column in DRIVING_FILTERS {
        if let Some(value) = equality_filter(query, column) {
            sql.push_str(&format!(" AND {column} = {}", statement.bind(Arg::Text(value.clone()))));
        }
    }
    if let Some(min) = query.min_score {
        sql.push_str(&format!(" AND score >= {}", statement.bind(Arg::Float(min))));
    }
    if let Some(from) = query.from_ms {
        sql.push_str(&format!(" AND log_ts_ms >= {}", statement.bind(Arg::Int(from))));
    }
    if let Some(to) = query.to_ms {
        sql.push_str(&format!(" AND log_ts_ms < {}", statement.bind(Arg::Int(to))));
    }
    sql
}

/// Whether `query` names a value PostgreSQL's text cannot hold (a NUL):
/// no stored anomaly has it, so the answer is empty, as the embedded
/// store's would be, without asking.
fn unmatchable(query: &AnomalyQuery) -> bool {
    DRIVING_FILTERS.iter().filter_map(|column| equality_filter(query, column)).any(|value| value.contains('\0'))
}

pub(super) fn record(r: &PgRow) -> Result<AnomalyRecord, sqlx::Error> {
    Ok(AnomalyRecord {
        id: r.try_get(0)?,
        agent: r.try_get(1)?,
        agent_sha256: r.try_get(2)?,
        log_type: r.try_get(3)?,
        log_id: r.try_get::<i64, _>(4)?.unsigned_abs(),
        source: r.try_get(5)?,
        log_ts_ms: r.try_get(6)?,
        score: r.try_get(7)?,
        label: r.try_get(8)?,
        severity: r.try_get(9)?,
        reason: r.try_get(10)?,
        detected_at_ms: r.try_get(11)?,
        schema_version: r.try_get::<i32, _>(12)?.try_into().unwrap_or(0),
        model: r.try_get(13)?,
        entry_fields: r.try_get(14)?,
    })
}

pub(super) fn decoded<T>(what: &str, result: Result<T, sqlx::Error>) -> Result<T, SharedStoreError> {
    result.map_err(|source| SharedStoreError::Postgres { context: format!("{what}: "), source })
}

/// The SQL of `query`'s page and its arguments.
fn page_sql(query: &AnomalyQuery) -> (String, Statement) {
    let mut statement = Statement::default();
    let key = match query.sort {
        AnomalySort::Time => "log_ts_ms",
        AnomalySort::Score => "score",
    };
    let mut sql = format!("SELECT {RECORD_COLUMNS} FROM anomalies WHERE {}", filters(query, &mut statement));
    if let Some((value, id)) = query.after {
        let value = match query.sort {
            AnomalySort::Time => statement.bind(Arg::Int(value as i64)),
            AnomalySort::Score => statement.bind(Arg::Float(value)),
        };
        let id = statement.bind(Arg::Int(id));
        sql.push_str(&format!(" AND ({key}, id) < ({value}, {id})"));
    }
    sql.push_str(&format!(" ORDER BY {key} DESC, id DESC LIMIT {}", query.limit));
    (sql, statement)
}

impl SharedStore {
    /// Runs `sql` with `statement`'s arguments under the page bound.
    pub(super) fn bounded_rows(
        &self,
        what: &str,
        sql: &str,
        statement: &Statement,
    ) -> Result<Vec<PgRow>, SharedStoreError> {
        let timeout_ms = self.page_timeout.as_millis().max(1);
        let rows = self.read(what, || async {
            let mut tx = self.reads.begin().await?;
            sqlx::query(&format!("SET LOCAL statement_timeout = {timeout_ms}")).execute(&mut *tx).await?;
            let rows = statement.query(sql).fetch_all(&mut *tx).await?;
            tx.rollback().await?;
            Ok(rows)
        });
        // Cancelled by the statement timeout the page ran under.
        rows.map_err(|error| match error {
            SharedStoreError::Postgres { source: sqlx::Error::Database(ref db), .. }
                if db.code().as_deref() == Some("57014") =>
            {
                SharedStoreError::TooBroad { timeout_ms }
            }
            other => other,
        })
    }

    /// One page of `query.tenant`'s anomalies, keyset-paged.
    pub fn query(&self, query: &AnomalyQuery) -> Result<Vec<AnomalyRecord>, SharedStoreError> {
        if unmatchable(query) {
            return Ok(Vec::new());
        }
        let (sql, statement) = page_sql(query);
        let rows = self.bounded_rows("read a page of anomalies", &sql, &statement)?;
        decoded("read a page of anomalies", rows.iter().map(record).collect())
    }

    /// The plan PostgreSQL makes for `query`'s page (`EXPLAIN`, one line a
    /// node), so that a test or an operator can see which index serves it.
    pub fn explain_page(&self, query: &AnomalyQuery) -> Result<String, SharedStoreError> {
        let (sql, statement) = page_sql(query);
        let explain = format!("EXPLAIN {sql}");
        let rows = self.read("explain a page of anomalies", || statement.query(&explain).fetch_all(&self.reads))?;
        let lines: Vec<String> = decoded("explain a page of anomalies", rows.iter().map(|r| r.try_get(0)).collect())?;
        Ok(lines.join("\n"))
    }

    /// One anomaly of `tenant` by id; `None` for another tenant's.
    pub fn get(&self, tenant: &str, id: i64) -> Result<Option<AnomalyRecord>, SharedStoreError> {
        let sql = format!("SELECT {RECORD_COLUMNS} FROM anomalies WHERE tenant = $1 AND id = $2");
        let row =
            self.read("read an anomaly", || sqlx::query(&sql).bind(tenant).bind(id).fetch_optional(&self.reads))?;
        decoded("read an anomaly", row.as_ref().map(record).transpose())
    }

    /// Whether `agent` of `tenant` has stored anomalies.
    pub fn agent_has_anomalies(&self, tenant: &str, agent: &str) -> Result<bool, SharedStoreError> {
        if agent.contains('\0') {
            return Ok(false);
        }
        let row = self.read("look for an agent's anomalies", || {
            sqlx::query("SELECT EXISTS (SELECT 1 FROM anomalies WHERE tenant = $1 AND agent = $2)")
                .bind(tenant)
                .bind(agent)
                .fetch_one(&self.reads)
        })?;
        decoded("look for an agent's anomalies", row.try_get(0))
    }

    /// The anomalies of `tenant` found by `agent`, by log id.
    pub fn anomalies(&self, tenant: &str, agent: &str) -> Result<Vec<StoredAnomaly>, SharedStoreError> {
        let rows = self.read("list an agent's anomalies", || {
            sqlx::query(
                "SELECT agent, log_id, label, severity, score, reason, model FROM anomalies
                 WHERE tenant = $1 AND agent = $2 ORDER BY log_id, label",
            )
            .bind(tenant)
            .bind(agent)
            .fetch_all(&self.reads)
        })?;
        let read = |r: &PgRow| -> Result<StoredAnomaly, sqlx::Error> {
            Ok(StoredAnomaly {
                agent: r.try_get(0)?,
                log_id: r.try_get::<i64, _>(1)?.unsigned_abs(),
                label: r.try_get(2)?,
                severity: r.try_get(3)?,
                score: r.try_get(4)?,
                reason: r.try_get(5)?,
                model: r.try_get(6)?,
            })
        };
        decoded("list an agent's anomalies", rows.iter().map(read).collect())
    }

    /// `query`'s anomalies (its sort, position and limit ignored) counted in
    /// at most `max_slots` slots of a readable length, split by `group`, as
    /// the embedded store's `histogram`.
    pub fn histogram(
        &self,
        query: &AnomalyQuery,
        group: HistogramGroup,
        max_slots: usize,
    ) -> Result<Histogram, SharedStoreError> {
        if unmatchable(query) {
            return Ok(Histogram::default());
        }
        let (from, to) = match (query.from_ms, query.to_ms) {
            (Some(from), Some(to)) => (from, to),
            (from, to) => {
                let mut statement = Statement::default();
                let sql = format!(
                    "SELECT MIN(log_ts_ms), MAX(log_ts_ms) + 1 FROM anomalies WHERE {}",
                    filters(query, &mut statement)
                );
                let rows = self.bounded_rows("read a chart's range", &sql, &statement)?;
                let range = |row: &PgRow| -> Result<(Option<i64>, Option<i64>), sqlx::Error> {
                    Ok((row.try_get(0)?, row.try_get(1)?))
                };
                let found = decoded("read a chart's range", rows.first().map(range).transpose())?;
                match found {
                    Some((Some(first), Some(end))) => (from.unwrap_or(first), to.unwrap_or(end)),
                    _ => return Ok(Histogram::default()),
                }
            }
        };
        let Some(slots) = Slots::spanning(from, to, max_slots) else { return Ok(Histogram::default()) };
        let mut statement = Statement::default();
        let conditions = filters(query, &mut statement);
        let start = statement.bind(Arg::Int(slots.start));
        let slot_ms = statement.bind(Arg::Int(slots.slot_ms));
        let column = group.column();
        let sql = format!(
            "SELECT (log_ts_ms - {start}) / {slot_ms}, {column}, COUNT(*) FROM anomalies \
             WHERE {conditions} AND log_ts_ms >= {start} GROUP BY 1, 2 ORDER BY 1, 2"
        );
        let rows = self.bounded_rows("count anomalies for a chart", &sql, &statement)?;
        let read = |r: &PgRow| -> Result<(i64, String, i64), sqlx::Error> {
            Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))
        };
        let counts = decoded("count anomalies for a chart", rows.iter().map(read).collect())?;
        Ok(slots.histogram(counts))
    }
}
