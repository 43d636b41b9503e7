//! The embedded log source: one SQLite file holding logs of every tenant and
//! type, read in id order with keyset pagination.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params};

use super::{FetchedRow, LogSource, NewRow, Quarantined, SourceBatch, SourceError, StoredEntry, assemble};
use mcp_columns::LogQuery;
use std::sync::Arc;

use crate::schema::SchemaFiles;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS logs (
    id INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    log_type TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    source TEXT NOT NULL,
    fields TEXT NOT NULL,
    label TEXT,
    schema_version INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS logs_by_type ON logs (tenant, log_type, id);
CREATE INDEX IF NOT EXISTS logs_by_time ON logs (tenant, log_type, ts_ms);
CREATE INDEX IF NOT EXISTS logs_by_source ON logs (tenant, log_type, source, id);
CREATE TABLE IF NOT EXISTS quarantine (
    id INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    log_type TEXT NOT NULL,
    log_id INTEGER NOT NULL UNIQUE,
    raw TEXT NOT NULL,
    reason TEXT NOT NULL,
    schema_version INTEGER NOT NULL DEFAULT 0
);
";

/// The embedded SQLite log source.
#[derive(Debug)]
pub struct SqliteLogSource {
    path: String,
    conn: Mutex<Connection>,
    schemas: Arc<SchemaFiles>,
}

/// Adds a column that databases made by earlier builds lack.
fn ensure_column(conn: &Connection, table: &str, column: &str, declaration: &str) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare(&format!("SELECT 1 FROM pragma_table_info('{table}') WHERE name = ?1"))?;
    if !stmt.exists([column])? {
        conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {declaration}"))?;
    }
    Ok(())
}

impl SqliteLogSource {
    /// Opens (and creates) the source at `path`, checking rows against the
    /// schema files in `schemas`.
    pub fn open(path: &Path, schemas: Arc<SchemaFiles>) -> Result<Self, SourceError> {
        let name = path.display().to_string();
        let wrap = |source| SourceError::Database { path: name.clone(), source };
        let mut conn = crate::sqlite_file::open_wal(path).map_err(wrap)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(wrap)?;
        // One process at a time creates and migrates the tables (two that
        // both saw a column missing would both add it).
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(wrap)?;
        tx.execute_batch(SCHEMA).map_err(wrap)?;
        ensure_column(&tx, "logs", "schema_version", "INTEGER NOT NULL DEFAULT 0").map_err(wrap)?;
        ensure_column(&tx, "quarantine", "schema_version", "INTEGER NOT NULL DEFAULT 0").map_err(wrap)?;
        ensure_column(&tx, "logs", "load_error", "TEXT").map_err(wrap)?;
        tx.commit().map_err(wrap)?;
        Ok(SqliteLogSource { path: name, conn: Mutex::new(conn), schemas })
    }

    fn db<T>(&self, result: rusqlite::Result<T>) -> Result<T, SourceError> {
        result.map_err(|source| SourceError::Database { path: self.path.clone(), source })
    }

    /// Appends one raw row written under `schema_version` (0: the current
    /// one), as an ingest would.
    pub fn insert_raw(
        &self,
        tenant: &str,
        log_type: &str,
        ts_ms: i64,
        source: &str,
        fields: &str,
        schema_version: u32,
    ) -> Result<u64, SourceError> {
        let conn = self.conn.lock().map_err(|_| SourceError::Poisoned)?;
        self.db(conn.execute(
            "INSERT INTO logs (tenant, log_type, ts_ms, source, fields, schema_version) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![tenant, log_type, ts_ms, source, fields, schema_version],
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
}

/// A page query's text and arguments, numbered as `page_filter` numbers them.
fn page_query(tenant: &str, query: &LogQuery, up_to_id: Option<u64>) -> (String, Vec<Value>) {
    let sql = format!(
        "SELECT id, ts_ms, source, fields, schema_version, load_error FROM logs WHERE {} ORDER BY id LIMIT {}",
        super::page_filter(query, up_to_id, |n| format!("?{n}")),
        query.limit
    );
    let id = |id: u64| Value::Integer(i64::try_from(id).unwrap_or(i64::MAX));
    let mut values = vec![Value::Text(tenant.to_string()), Value::Text(query.log_type.clone()), id(query.after_id)];
    values.extend(query.from_ms.map(Value::Integer));
    values.extend(query.to_ms.map(Value::Integer));
    values.extend(query.source.clone().map(Value::Text));
    values.extend(up_to_id.map(id));
    (sql, values)
}

impl SqliteLogSource {
    /// How SQLite would run the page query for `query`, one line per step.
    pub fn page_plan(&self, tenant: &str, query: &LogQuery, up_to_id: Option<u64>) -> Result<Vec<String>, SourceError> {
        let conn = self.conn.lock().map_err(|_| SourceError::Poisoned)?;
        let (sql, values) = page_query(tenant, query, up_to_id);
        let mut stmt = self.db(conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")))?;
        let rows = self.db(stmt.query_map(rusqlite::params_from_iter(values), |r| r.get::<_, String>(3)))?;
        self.db(rows.collect())
    }
}

impl LogSource for SqliteLogSource {
    fn name(&self) -> &str {
        "embedded"
    }

    fn append(&self, tenant: &str, log_type: &str, rows: &[NewRow]) -> Result<u64, SourceError> {
        let mut conn = self.conn.lock().map_err(|_| SourceError::Poisoned)?;
        let tx = self.db(conn.transaction())?;
        {
            let mut insert = self.db(tx.prepare(
                "INSERT INTO logs (tenant, log_type, ts_ms, source, fields, label, schema_version, load_error) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            ))?;
            for row in rows {
                self.db(insert.execute(params![
                    tenant,
                    log_type,
                    row.timestamp_ms,
                    row.source,
                    row.fields,
                    row.label,
                    row.schema_version,
                    row.load_error
                ]))?;
            }
        }
        self.db(tx.commit())?;
        Ok(rows.len() as u64)
    }

    /// The ground-truth labels of `tenant`'s logs of `log_type`, by id, for
    /// scoring detection on generated data.
    fn labels(&self, tenant: &str, log_type: &str) -> Result<Vec<(u64, Option<String>)>, SourceError> {
        let conn = self.conn.lock().map_err(|_| SourceError::Poisoned)?;
        let mut stmt =
            self.db(conn.prepare("SELECT id, label FROM logs WHERE tenant = ?1 AND log_type = ?2 ORDER BY id"))?;
        let rows = self
            .db(stmt.query_map(params![tenant, log_type], |r| Ok((r.get::<_, i64>(0)?.unsigned_abs(), r.get(1)?))))?;
        self.db(rows.collect())
    }

    /// Quarantined rows of `tenant`, by log id.
    fn quarantined(&self, tenant: &str) -> Result<Vec<Quarantined>, SourceError> {
        let conn = self.conn.lock().map_err(|_| SourceError::Poisoned)?;
        let mut stmt = self.db(conn.prepare(
            "SELECT log_id, log_type, schema_version, reason, raw FROM quarantine WHERE tenant = ?1 ORDER BY log_id",
        ))?;
        let rows = self.db(stmt.query_map(params![tenant], |r| {
            Ok(Quarantined {
                log_id: r.get::<_, i64>(0)?.unsigned_abs(),
                log_type: r.get(1)?,
                schema_version: r.get(2)?,
                reason: r.get(3)?,
                raw: r.get(4)?,
            })
        }))?;
        self.db(rows.collect())
    }

    /// Reads up to `limit` rows after `after_id`, normalised to the log
    /// type's schema file; rows that do not fit go to quarantine with their
    /// reason and are counted, never passed on.
    fn read_range(&self, tenant: &str, query: &LogQuery, up_to_id: Option<u64>) -> Result<SourceBatch, SourceError> {
        let shape = self.schemas.shape(&query.log_type)?;
        let conn = self.conn.lock().map_err(|_| SourceError::Poisoned)?;
        let (sql, values) = page_query(tenant, query, up_to_id);
        let mut stmt = self.db(conn.prepare_cached(&sql))?;
        let mut rows = self.db(stmt.query(rusqlite::params_from_iter(values)))?;
        let mut fetched = Vec::new();
        while let Some(row) = self.db(rows.next())? {
            fetched.push(FetchedRow {
                id: self.db(row.get::<_, i64>(0))?.unsigned_abs(),
                timestamp_ms: self.db(row.get(1))?,
                source: self.db(row.get(2))?,
                fields: self.db(row.get(3))?,
                schema_version: self.db(row.get(4))?,
                load_error: self.db(row.get(5))?,
            });
        }
        drop(rows);
        drop(stmt);
        let assembled = assemble(shape.as_deref(), query, fetched);
        for rejected in &assembled.rejected {
            self.db(conn.execute(
                "INSERT OR IGNORE INTO quarantine (tenant, log_type, log_id, raw, reason, schema_version) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![tenant, query.log_type, i64::try_from(rejected.log_id).unwrap_or(i64::MAX), rejected.raw, rejected.reason, assembled.checked_against],
            ))?;
        }
        Ok(assembled.batch)
    }

    /// One log of `tenant` by id, for storing with its anomaly.
    fn ping(&self) -> Result<(), SourceError> {
        let conn = self.conn.lock().map_err(|_| SourceError::Poisoned)?;
        self.db(conn.query_row("SELECT 1", [], |_| Ok(())))
    }

    fn entry(&self, tenant: &str, id: u64) -> Result<Option<StoredEntry>, SourceError> {
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
