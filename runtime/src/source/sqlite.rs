//! The embedded log source: one SQLite file holding logs of every tenant and
//! type, read in id order with keyset pagination.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

use super::SourceError;
use crate::generator::GeneratedLog;
use crate::sandbox::{HostError, LogBatch, LogQuery, LogReader};
use mcp_sdk::RawRow;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS logs (
    id INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    log_type TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    source TEXT NOT NULL,
    fields TEXT NOT NULL,
    label TEXT
);
CREATE INDEX IF NOT EXISTS logs_by_type ON logs (tenant, log_type, id);
CREATE INDEX IF NOT EXISTS logs_by_time ON logs (tenant, log_type, ts_ms);
CREATE TABLE IF NOT EXISTS quarantine (
    id INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    log_type TEXT NOT NULL,
    log_id INTEGER NOT NULL UNIQUE,
    raw TEXT NOT NULL,
    reason TEXT NOT NULL
);
";

/// The schema version of rows this source serves; schema files arrive with
/// the DataService (docs/ROADMAP.md).
pub const SCHEMA_VERSION: u32 = 1;

/// A batch read from the source, with what was set aside.
#[derive(Debug)]
pub struct SourceBatch {
    pub batch: LogBatch,
    /// The raw fields of each entry of the batch, in order, to store with
    /// anomalies.
    pub raw_fields: Vec<String>,
    /// The highest id read, including quarantined rows: the next checkpoint.
    pub last_id: u64,
    pub quarantined: usize,
}

/// One stored log, as read back by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    pub log_type: String,
    pub timestamp_ms: i64,
    pub source: String,
    pub fields: String,
}

/// The embedded SQLite log source.
#[derive(Debug)]
pub struct SqliteLogSource {
    path: String,
    conn: Mutex<Connection>,
}

impl SqliteLogSource {
    /// Opens (and creates) the source at `path`.
    pub fn open(path: &Path) -> Result<Self, SourceError> {
        let name = path.display().to_string();
        let wrap = |source| SourceError::Database {
            path: name.clone(),
            source,
        };
        let conn = Connection::open(path).map_err(wrap)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(wrap)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(wrap)?;
        conn.execute_batch(SCHEMA).map_err(wrap)?;
        Ok(SqliteLogSource {
            path: name,
            conn: Mutex::new(conn),
        })
    }

    fn db<T>(&self, result: rusqlite::Result<T>) -> Result<T, SourceError> {
        result.map_err(|source| SourceError::Database {
            path: self.path.clone(),
            source,
        })
    }

    /// Appends generated logs for `tenant`; returns how many were written.
    pub fn load(
        &self,
        tenant: &str,
        log_type: &str,
        logs: &[GeneratedLog],
    ) -> Result<usize, SourceError> {
        let mut conn = self.conn.lock().map_err(|_| SourceError::Poisoned)?;
        let tx = self.db(conn.transaction())?;
        {
            let mut insert = self.db(tx.prepare(
                "INSERT INTO logs (tenant, log_type, ts_ms, source, fields, label) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            ))?;
            for log in logs {
                self.db(insert.execute(params![
                    tenant,
                    log_type,
                    log.timestamp_ms,
                    log.source,
                    log.fields.to_string(),
                    log.label
                ]))?;
            }
        }
        self.db(tx.commit())?;
        Ok(logs.len())
    }

    /// Appends one raw row, as an ingest would; used to prove quarantine.
    pub fn insert_raw(
        &self,
        tenant: &str,
        log_type: &str,
        ts_ms: i64,
        source: &str,
        fields: &str,
    ) -> Result<u64, SourceError> {
        let conn = self.conn.lock().map_err(|_| SourceError::Poisoned)?;
        self.db(conn.execute(
            "INSERT INTO logs (tenant, log_type, ts_ms, source, fields) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![tenant, log_type, ts_ms, source, fields],
        ))?;
        Ok(conn.last_insert_rowid().unsigned_abs())
    }

    /// How many logs `tenant` has of `log_type`.
    pub fn count(&self, tenant: &str, log_type: &str) -> Result<u64, SourceError> {
        let conn = self.conn.lock().map_err(|_| SourceError::Poisoned)?;
        let n: i64 = self.db(conn.query_row(
            "SELECT COUNT(*) FROM logs WHERE tenant = ?1 AND log_type = ?2",
            params![tenant, log_type],
            |r| r.get(0),
        ))?;
        Ok(n.unsigned_abs())
    }

    /// The ground-truth labels of `tenant`'s logs of `log_type`, by id, for
    /// scoring detection on generated data.
    pub fn labels(
        &self,
        tenant: &str,
        log_type: &str,
    ) -> Result<Vec<(u64, Option<String>)>, SourceError> {
        let conn = self.conn.lock().map_err(|_| SourceError::Poisoned)?;
        let mut stmt = self.db(conn.prepare(
            "SELECT id, label FROM logs WHERE tenant = ?1 AND log_type = ?2 ORDER BY id",
        ))?;
        let rows = self.db(stmt.query_map(params![tenant, log_type], |r| {
            Ok((r.get::<_, i64>(0)?.unsigned_abs(), r.get(1)?))
        }))?;
        self.db(rows.collect())
    }

    /// Quarantined rows of `tenant`: (log id, log type, reason).
    pub fn quarantined(&self, tenant: &str) -> Result<Vec<(u64, String, String)>, SourceError> {
        let conn = self.conn.lock().map_err(|_| SourceError::Poisoned)?;
        let mut stmt = self.db(conn.prepare(
            "SELECT log_id, log_type, reason FROM quarantine WHERE tenant = ?1 ORDER BY log_id",
        ))?;
        let rows = self.db(stmt.query_map(params![tenant], |r| {
            Ok((r.get::<_, i64>(0)?.unsigned_abs(), r.get(1)?, r.get(2)?))
        }))?;
        self.db(rows.collect())
    }

    /// Reads up to `limit` rows after `after_id`; malformed rows go to
    /// quarantine with their reason and are counted, never passed on.
    pub fn read_batch(&self, tenant: &str, query: &LogQuery) -> Result<SourceBatch, SourceError> {
        let conn = self.conn.lock().map_err(|_| SourceError::Poisoned)?;
        let mut stmt = self.db(conn.prepare_cached(
            "SELECT id, ts_ms, source, fields FROM logs
             WHERE tenant = ?1 AND log_type = ?2 AND id > ?3
               AND (?4 IS NULL OR ts_ms >= ?4) AND (?5 IS NULL OR ts_ms < ?5) AND (?6 IS NULL OR source = ?6)
             ORDER BY id LIMIT ?7",
        ))?;
        let after = i64::try_from(query.after_id).unwrap_or(i64::MAX);
        let mut rows = self.db(stmt.query(params![
            tenant,
            query.log_type,
            after,
            query.from_ms,
            query.to_ms,
            query.source,
            query.limit
        ]))?;
        let mut fetched: Vec<(u64, i64, String, String)> = Vec::new();
        while let Some(row) = self.db(rows.next())? {
            fetched.push((
                self.db(row.get::<_, i64>(0))?.unsigned_abs(),
                self.db(row.get(1))?,
                self.db(row.get(2))?,
                self.db(row.get(3))?,
            ));
        }
        drop(rows);
        drop(stmt);
        let last_id = fetched.last().map_or(query.after_id, |row| row.0);
        let raw_rows: Vec<RawRow<'_>> = fetched
            .iter()
            .map(|(id, ts, source, fields)| RawRow {
                id: *id,
                timestamp_ms: *ts,
                source,
                fields,
            })
            .collect();
        let (batch, refused) = crate::batch::build(&query.log_type, SCHEMA_VERSION, &raw_rows);
        let refused_at: std::collections::HashSet<usize> =
            refused.iter().map(|(index, _)| *index).collect();
        let raw_fields = fetched
            .iter()
            .enumerate()
            .filter(|(index, _)| !refused_at.contains(index))
            .map(|(_, row)| row.3.clone())
            .collect();
        let rejected: Vec<(u64, &str, &str)> = refused
            .iter()
            .filter_map(|(index, reason)| {
                fetched
                    .get(*index)
                    .map(|row| (row.0, row.3.as_str(), reason.as_str()))
            })
            .collect();
        for (id, raw, reason) in &rejected {
            tracing::warn!(tenant, log_type = %query.log_type, log_id = id, "quarantined: {reason}");
            self.db(conn.execute(
                "INSERT OR IGNORE INTO quarantine (tenant, log_type, log_id, raw, reason) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![tenant, query.log_type, i64::try_from(*id).unwrap_or(i64::MAX), raw, reason],
            ))?;
        }
        Ok(SourceBatch {
            batch,
            raw_fields,
            last_id,
            quarantined: rejected.len(),
        })
    }

    /// One log of `tenant` by id, for storing with its anomaly.
    pub fn entry(&self, tenant: &str, id: u64) -> Result<Option<StoredEntry>, SourceError> {
        let conn = self.conn.lock().map_err(|_| SourceError::Poisoned)?;
        self.db(conn
            .query_row(
                "SELECT log_type, ts_ms, source, fields FROM logs WHERE tenant = ?1 AND id = ?2",
                params![tenant, i64::try_from(id).unwrap_or(i64::MAX)],
                |r| {
                    Ok(StoredEntry {
                        log_type: r.get(0)?,
                        timestamp_ms: r.get(1)?,
                        source: r.get(2)?,
                        fields: r.get(3)?,
                    })
                },
            )
            .optional())
    }
}

impl LogReader for SqliteLogSource {
    fn query(&self, tenant: &str, query: &LogQuery) -> Result<LogBatch, HostError> {
        self.read_batch(tenant, query)
            .map(|read| read.batch)
            .map_err(|e| {
                tracing::error!(tenant, "log query failed: {e}");
                HostError::Unavailable("the log source failed; the host log has details".into())
            })
    }
}
