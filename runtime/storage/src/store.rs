//! The anomaly store: anomalies with their provenance and the per-agent
//! checkpoints, in one SQLite file. Anomalies and the checkpoint that covers
//! them commit in one transaction, so a crash and rerun stores each once.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

use mcp_columns::Anomaly;

use crate::notify::RouteBook;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS anomalies (
    id INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    agent TEXT NOT NULL,
    agent_sha256 TEXT NOT NULL,
    log_type TEXT NOT NULL,
    log_id INTEGER NOT NULL,
    source TEXT NOT NULL,
    log_ts_ms INTEGER NOT NULL,
    score REAL NOT NULL,
    label TEXT NOT NULL,
    severity TEXT NOT NULL,
    reason TEXT NOT NULL,
    detected_at_ms INTEGER NOT NULL,
    schema_version INTEGER NOT NULL,
    entry_fields TEXT,
    model TEXT,
    UNIQUE (tenant, agent, log_id, label)
);
DROP INDEX IF EXISTS anomalies_by_time;
DROP INDEX IF EXISTS anomalies_by_agent;
DROP INDEX IF EXISTS anomalies_by_severity;
DROP INDEX IF EXISTS anomalies_by_agent_time;
DROP INDEX IF EXISTS anomalies_by_severity_time;
DROP INDEX IF EXISTS anomalies_by_agent_page;
DROP INDEX IF EXISTS anomalies_by_severity_page;
DROP INDEX IF EXISTS anomalies_by_label;
DROP INDEX IF EXISTS anomalies_by_score;
-- Every page query walks one of these (see `page_index`): the tenant, at
-- most one equality filter, then the sort key and id in the order pages are
-- read. The sort key's partner (score or time), the severity and the agent
-- ride at the end, so a min_score, a time range, a severity or an agent is
-- checked in the index, not by reading the table's row.
CREATE INDEX IF NOT EXISTS anomalies_time ON anomalies (tenant, log_ts_ms, id, score, severity, agent);
CREATE INDEX IF NOT EXISTS anomalies_score ON anomalies (tenant, score, id, log_ts_ms, severity, agent);
CREATE INDEX IF NOT EXISTS anomalies_source_time ON anomalies (tenant, source, log_ts_ms, id, score, severity, agent);
CREATE INDEX IF NOT EXISTS anomalies_source_score ON anomalies (tenant, source, score, id, log_ts_ms, severity, agent);
CREATE INDEX IF NOT EXISTS anomalies_label_time ON anomalies (tenant, label, log_ts_ms, id, score, severity, agent);
CREATE INDEX IF NOT EXISTS anomalies_label_score ON anomalies (tenant, label, score, id, log_ts_ms, severity, agent);
CREATE INDEX IF NOT EXISTS anomalies_agent_time ON anomalies (tenant, agent, log_ts_ms, id, score, severity);
CREATE INDEX IF NOT EXISTS anomalies_agent_score ON anomalies (tenant, agent, score, id, log_ts_ms, severity);
CREATE INDEX IF NOT EXISTS anomalies_log_type_time ON anomalies (tenant, log_type, log_ts_ms, id, score, severity, agent);
CREATE INDEX IF NOT EXISTS anomalies_log_type_score ON anomalies (tenant, log_type, score, id, log_ts_ms, severity, agent);
CREATE INDEX IF NOT EXISTS anomalies_severity_time ON anomalies (tenant, severity, log_ts_ms, id, score, agent);
CREATE INDEX IF NOT EXISTS anomalies_severity_score ON anomalies (tenant, severity, score, id, log_ts_ms, agent);
-- An agent's own state (protocol 0.2.0 snapshots) as of its checkpoint,
-- written in the same transaction, so a restart resumes both together.
CREATE TABLE IF NOT EXISTS agent_states (
    tenant TEXT NOT NULL,
    agent TEXT NOT NULL,
    log_source TEXT NOT NULL,
    log_type TEXT NOT NULL,
    -- The build that took it: another build of the agent is not given it.
    agent_sha256 TEXT NOT NULL,
    state BLOB NOT NULL,
    sha256 TEXT NOT NULL,
    PRIMARY KEY (tenant, agent, log_source, log_type)
);
CREATE TABLE IF NOT EXISTS checkpoints (
    tenant TEXT NOT NULL,
    agent TEXT NOT NULL,
    log_source TEXT NOT NULL,
    log_type TEXT NOT NULL,
    last_id INTEGER NOT NULL,
    PRIMARY KEY (tenant, agent, log_source, log_type)
);
";

/// `state` if it passes its checksum and was taken by the build
/// `agent_sha256`; the log says why one is not given back.
pub(crate) fn usable_state(
    key: &CheckpointKey<'_>,
    state: Vec<u8>,
    sha256: &str,
    taken_by: &str,
    agent_sha256: &str,
) -> Option<Vec<u8>> {
    if sha256_hex(&state) != sha256 {
        tracing::warn!(tenant = key.tenant, agent = key.agent, "stored agent state fails its checksum; ignored");
        None
    } else if taken_by != agent_sha256 {
        tracing::info!(tenant = key.tenant, agent = key.agent, "stored agent state is another build's; ignored");
        None
    } else {
        Some(state)
    }
}

/// An anomaly with the fields of the entry it names, as stored together.
pub type AnomalyWithEntry = (Anomaly, Option<String>);

/// Errors of the anomaly store.
#[derive(Debug, thiserror::Error)]
#[error("anomaly store {path}: {source}")]
pub struct StoreError {
    pub(crate) path: String,
    pub(crate) source: rusqlite::Error,
}

impl StoreError {
    /// Whether a page query was stopped for doing more work than
    /// [`PAGE_QUERY_STEPS`] allows.
    pub fn too_broad(&self) -> bool {
        self.source.sqlite_error_code() == Some(rusqlite::ErrorCode::OperationInterrupted)
    }
}

/// The most work one page query may do, in SQLite virtual machine steps
/// (about a quarter of a million index entries walked): a page whose
/// filters match too few of the entries its index walk passes is refused
/// rather than left to hold a connection that other tenants' pages wait for.
pub const PAGE_QUERY_STEPS: u64 = 20_000_000;

/// Steps between two looks at the budget.
const STEPS_PER_CHECK: i32 = 10_000;

/// The equality filters, in the order one is chosen to drive the index
/// walk: the one likely to match fewest entries first.
pub(crate) const DRIVING_FILTERS: [&str; 5] = ["source", "label", "agent", "log_type", "severity"];

/// Which progress a checkpoint records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointKey<'a> {
    pub tenant: &'a str,
    pub agent: &'a str,
    pub log_source: &'a str,
    pub log_type: &'a str,
}

/// Where an anomaly came from, beyond what the agent said.
#[derive(Debug, Clone)]
pub struct Provenance<'a> {
    pub agent_sha256: &'a str,
    pub schema_version: u32,
    /// `name@version` of the model the agent used for the batch, if any.
    pub model: Option<&'a str>,
}

/// A stored anomaly, as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAnomaly {
    pub agent: String,
    pub log_id: u64,
    pub label: String,
    pub severity: String,
    pub score: f64,
    pub reason: String,
    pub model: Option<String>,
}

/// The SQLite anomaly store.
#[derive(Debug)]
pub struct AnomalyStore {
    path: String,
    pub(crate) conn: Connection,
    /// The work bound of one page query, in SQLite steps.
    page_query_steps: u64,
    /// Where commits find the tenant's notification routes; none routes
    /// nothing.
    routes: Option<std::sync::Arc<RouteBook>>,
}

impl AnomalyStore {
    /// Opens (and creates) the store at `path`, in WAL mode.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let name = path.display().to_string();
        let wrap = |source| StoreError { path: name.clone(), source };
        let mut conn = crate::sqlite_file::open_wal(path).map_err(wrap)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(wrap)?;
        // One process at a time creates and migrates the tables (two that
        // both saw the column missing would both add it).
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(wrap)?;
        tx.execute_batch(SCHEMA).map_err(wrap)?;
        tx.execute_batch(crate::notify::outbox::SCHEMA).map_err(wrap)?;
        // Stores made before models existed lack the model column.
        let has_model: bool = tx
            .query_row("SELECT COUNT(*) FROM pragma_table_info('anomalies') WHERE name = 'model'", [], |r| r.get(0))
            .map_err(wrap)?;
        if !has_model {
            tx.execute_batch("ALTER TABLE anomalies ADD COLUMN model TEXT").map_err(wrap)?;
        }
        tx.commit().map_err(wrap)?;
        let store = AnomalyStore { path: name, conn, page_query_steps: PAGE_QUERY_STEPS, routes: None };
        store.optimize()?;
        Ok(store)
    }

    /// Queues a notification for each new anomaly that `routes` sends to a
    /// channel, in the transaction that stores it.
    pub fn route_with(&mut self, routes: std::sync::Arc<RouteBook>) {
        self.routes = Some(routes);
    }

    /// Bounds each page query at `steps` SQLite steps instead of
    /// [`PAGE_QUERY_STEPS`].
    pub fn set_page_query_steps(&mut self, steps: u64) {
        self.page_query_steps = steps;
    }

    /// Whether the store answers: one cheap statement.
    pub fn ping(&self) -> Result<(), StoreError> {
        self.db(self.conn.query_row("SELECT 1", [], |_| Ok(())))
    }

    /// A page cache of 1 GiB for a connection that writes millions of
    /// anomalies at once (a benchmark's fill), so that index pages stay
    /// in memory between commits.
    pub fn tune_for_bulk_writes(&self) -> Result<(), StoreError> {
        self.db(self.conn.execute_batch("PRAGMA cache_size = -1048576;"))
    }

    /// Settings for a connection that mostly reads (the API's): the file
    /// mapped into memory instead of copied page by page, and a larger page
    /// cache.
    pub fn tune_for_reads(&self) -> Result<(), StoreError> {
        self.db(self.conn.execute_batch("PRAGMA mmap_size = 1073741824; PRAGMA cache_size = -65536;"))
    }

    /// Refreshes the planner's statistics where they are missing or stale.
    /// Without them SQLite picks the score index for a filtered page sorted
    /// by time and sorts 170,000 rows (a second per page at a million
    /// anomalies); with them it walks the right index (milliseconds). Cheap
    /// when nothing changed: `analysis_limit` bounds the rows it samples.
    pub fn optimize(&self) -> Result<(), StoreError> {
        self.db(self.conn.execute_batch("PRAGMA analysis_limit = 1000; PRAGMA optimize = 0x10002;"))
    }

    pub(crate) fn db<T>(&self, result: rusqlite::Result<T>) -> Result<T, StoreError> {
        result.map_err(|source| StoreError { path: self.path.clone(), source })
    }

    /// The last id processed for `key`, 0 when none.
    pub fn checkpoint(&self, key: &CheckpointKey<'_>) -> Result<u64, StoreError> {
        let found: Option<i64> = self.db(
            self.conn
                .query_row(
                    "SELECT last_id FROM checkpoints WHERE tenant = ?1 AND agent = ?2 AND log_source = ?3 AND log_type = ?4",
                    params![key.tenant, key.agent, key.log_source, key.log_type],
                    |r| r.get(0),
                )
                .optional(),
        )?;
        Ok(found.map_or(0, i64::unsigned_abs))
    }

    /// Stores `anomalies` and moves the checkpoint to `last_id`, atomically.
    /// Returns how many anomalies were new.
    pub fn commit(
        &mut self,
        key: &CheckpointKey<'_>,
        provenance: &Provenance<'_>,
        anomalies: &[AnomalyWithEntry],
        last_id: u64,
    ) -> Result<usize, StoreError> {
        self.commit_with_state(key, provenance, anomalies, last_id, None)
    }

    /// As [`AnomalyStore::commit`], and replaces the agent's stored state
    /// with `state` in the same transaction (an empty state removes it;
    /// `None` leaves it alone).
    pub fn commit_with_state(
        &mut self,
        key: &CheckpointKey<'_>,
        provenance: &Provenance<'_>,
        anomalies: &[AnomalyWithEntry],
        last_id: u64,
        state: Option<&[u8]>,
    ) -> Result<usize, StoreError> {
        // Read before the transaction: a change of routes applies from the
        // next batch, and the write lock is not held while reading them.
        let routes = match (&self.routes, anomalies.is_empty()) {
            (Some(book), false) => Some(book.routes(key.tenant)?).filter(|set| !set.is_empty()),
            _ => None,
        };
        let now = crate::jobstatus::now_ms();
        let path = self.path.clone();
        let wrap = |source| StoreError { path: path.clone(), source };
        let tx = self.conn.transaction().map_err(wrap)?;
        let mut inserted = 0;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO anomalies (tenant, agent, agent_sha256, log_type, log_id, source, log_ts_ms, score, label, severity, reason, detected_at_ms, schema_version, entry_fields, model)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
                )
                .map_err(wrap)?;
            for (a, fields) in anomalies {
                let new = insert
                    .execute(params![
                        key.tenant,
                        key.agent,
                        provenance.agent_sha256,
                        a.log_type,
                        i64::try_from(a.log_id).unwrap_or(i64::MAX),
                        a.source,
                        a.log_timestamp_ms,
                        f64::from(a.score),
                        a.label,
                        a.severity.name(),
                        a.reason,
                        a.detected_at_ms,
                        provenance.schema_version,
                        fields,
                        provenance.model,
                    ])
                    .map_err(wrap)?;
                inserted += new;
                // An anomaly stored before (a rerun) was announced before.
                if let (1, Some(routes)) = (new, &routes) {
                    let id = tx.last_insert_rowid();
                    for (channel, policy) in routes.channels_for(a) {
                        crate::notify::outbox::enqueue(&tx, key.tenant, id, a, channel, policy, now).map_err(wrap)?;
                    }
                }
            }
            tx.execute(
                "INSERT INTO checkpoints (tenant, agent, log_source, log_type, last_id) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (tenant, agent, log_source, log_type) DO UPDATE SET last_id = excluded.last_id",
                params![
                    key.tenant,
                    key.agent,
                    key.log_source,
                    key.log_type,
                    i64::try_from(last_id).unwrap_or(i64::MAX)
                ],
            )
            .map_err(wrap)?;
            let where_key = params![key.tenant, key.agent, key.log_source, key.log_type];
            match state {
                Some([]) => {
                    tx.execute(
                        "DELETE FROM agent_states WHERE tenant = ?1 AND agent = ?2 AND log_source = ?3 AND log_type = ?4",
                        where_key,
                    )
                    .map_err(wrap)?;
                }
                Some(bytes) => {
                    tx.execute(
                        "INSERT INTO agent_states (tenant, agent, log_source, log_type, agent_sha256, state, sha256) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                         ON CONFLICT (tenant, agent, log_source, log_type) DO UPDATE SET agent_sha256 = excluded.agent_sha256, state = excluded.state, sha256 = excluded.sha256",
                        params![key.tenant, key.agent, key.log_source, key.log_type, provenance.agent_sha256, bytes, sha256_hex(bytes)],
                    )
                    .map_err(wrap)?;
                }
                None => {}
            }
        }
        tx.commit().map_err(wrap)?;
        Ok(inserted)
    }

    /// The state the build `agent_sha256` of the agent stored with its
    /// checkpoint, if any. A state whose checksum does not match, or that
    /// another build of the agent took (its format may differ), is not given
    /// back (the agent then rebuilds from the replay), and the log says so.
    pub fn agent_state(&self, key: &CheckpointKey<'_>, agent_sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let found: Option<(Vec<u8>, String, String)> = self.db(
            self.conn
                .query_row(
                    "SELECT state, sha256, agent_sha256 FROM agent_states WHERE tenant = ?1 AND agent = ?2 AND log_source = ?3 AND log_type = ?4",
                    params![key.tenant, key.agent, key.log_source, key.log_type],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional(),
        )?;
        Ok(found.and_then(|(state, sha256, taken_by)| usable_state(key, state, &sha256, &taken_by, agent_sha256)))
    }

    /// Drops the agent's stored state (after its restore failed).
    pub fn forget_agent_state(&self, key: &CheckpointKey<'_>) -> Result<(), StoreError> {
        self.db(self.conn.execute(
            "DELETE FROM agent_states WHERE tenant = ?1 AND agent = ?2 AND log_source = ?3 AND log_type = ?4",
            params![key.tenant, key.agent, key.log_source, key.log_type],
        ))
        .map(|_| ())
    }

    /// The anomalies of `tenant` found by `agent`, by log id.
    pub fn anomalies(&self, tenant: &str, agent: &str) -> Result<Vec<StoredAnomaly>, StoreError> {
        let mut stmt = self.db(self.conn.prepare(
            "SELECT agent, log_id, label, severity, score, reason, model FROM anomalies WHERE tenant = ?1 AND agent = ?2 ORDER BY log_id, label",
        ))?;
        let rows = self.db(stmt.query_map(params![tenant, agent], |r| {
            Ok(StoredAnomaly {
                agent: r.get(0)?,
                log_id: r.get::<_, i64>(1)?.unsigned_abs(),
                label: r.get(2)?,
                severity: r.get(3)?,
                score: r.get(4)?,
                reason: r.get(5)?,
                model: r.get(6)?,
            })
        }))?;
        self.db(rows.collect())
    }
}

/// One stored anomaly with its provenance, as the API serves it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AnomalyRecord {
    pub id: i64,
    pub agent: String,
    pub agent_sha256: String,
    pub log_type: String,
    pub log_id: u64,
    pub source: String,
    pub log_ts_ms: i64,
    pub score: f64,
    pub label: String,
    pub severity: String,
    pub reason: String,
    pub detected_at_ms: i64,
    pub schema_version: u32,
    /// `name@version` of the model that scored the batch, if one did.
    pub model: Option<String>,
    /// The entry's fields as stored with the anomaly (JSON text).
    pub entry_fields: Option<String>,
}

/// How a page of anomalies is ordered: newest first, or highest score first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnomalySort {
    Time,
    Score,
}

/// Filters and position of one page of anomalies, always within one tenant.
#[derive(Debug, Clone)]
pub struct AnomalyQuery {
    pub tenant: String,
    pub agent: Option<String>,
    pub log_type: Option<String>,
    pub label: Option<String>,
    pub severity: Option<String>,
    pub source: Option<String>,
    pub min_score: Option<f64>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub sort: AnomalySort,
    /// The sort key and id of the last anomaly of the previous page.
    pub after: Option<(f64, i64)>,
    pub limit: u32,
}

pub(crate) const RECORD_COLUMNS: &str = "id, agent, agent_sha256, log_type, log_id, source, log_ts_ms, score, label, severity, reason, detected_at_ms, schema_version, model, entry_fields";

pub(crate) fn record(r: &rusqlite::Row<'_>) -> rusqlite::Result<AnomalyRecord> {
    Ok(AnomalyRecord {
        id: r.get(0)?,
        agent: r.get(1)?,
        agent_sha256: r.get(2)?,
        log_type: r.get(3)?,
        log_id: r.get::<_, i64>(4)?.unsigned_abs(),
        source: r.get(5)?,
        log_ts_ms: r.get(6)?,
        score: r.get(7)?,
        label: r.get(8)?,
        severity: r.get(9)?,
        reason: r.get(10)?,
        detected_at_ms: r.get(11)?,
        schema_version: r.get::<_, i64>(12)?.try_into().unwrap_or(0),
        model: r.get(13)?,
        entry_fields: r.get(14)?,
    })
}

impl AnomalyStore {
    /// One page of `query.tenant`'s anomalies; keyset-paged, so a page
    /// costs the same however deep it is.
    pub fn query(&self, query: &AnomalyQuery) -> Result<Vec<AnomalyRecord>, StoreError> {
        let (sql, args) = page_sql(query);
        let mut statement = self.db(self.conn.prepare_cached(&sql))?;
        // SQLite times the progress handler by the statement's step count,
        // which a cached statement carries over from its earlier runs:
        // start it at zero so the same page meets the bound the same way.
        statement.reset_status(rusqlite::StatementStatus::VmStep);
        let rows = self.bounded(|| {
            statement
                .query_map(rusqlite::params_from_iter(args), record)
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        });
        self.db(rows)
    }

    /// Runs `work` under the page query's work bound: past
    /// `page_query_steps` SQLite stops it ([`StoreError::too_broad`]).
    pub(crate) fn bounded<T>(&self, work: impl FnOnce() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
        let mut checks = 0u64;
        let allowed = self.page_query_steps / STEPS_PER_CHECK as u64;
        self.conn.progress_handler(
            STEPS_PER_CHECK,
            Some(move || {
                checks += 1;
                checks > allowed
            }),
        );
        let result = work();
        self.conn.progress_handler(0, None::<fn() -> bool>);
        result
    }

    /// How SQLite would run the page query for `query`, one line per step.
    pub fn query_plan(&self, query: &AnomalyQuery) -> Result<Vec<String>, StoreError> {
        let (sql, args) = page_sql(query);
        let mut statement = self.db(self.conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")))?;
        let rows = self.db(statement.query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(3)))?;
        self.db(rows.collect())
    }

    /// One anomaly of `tenant` by id; `None` for another tenant's.
    pub fn get(&self, tenant: &str, id: i64) -> Result<Option<AnomalyRecord>, StoreError> {
        use rusqlite::OptionalExtension;
        let sql = format!("SELECT {RECORD_COLUMNS} FROM anomalies WHERE tenant = ?1 AND id = ?2");
        self.db(self.conn.query_row(&sql, params![tenant, id], record).optional())
    }
}

/// The index a page query walks: the first of [`DRIVING_FILTERS`] the
/// query has, paired with its sort, or the tenant's own time or score index.
pub fn page_index(query: &AnomalyQuery) -> String {
    let sort = match query.sort {
        AnomalySort::Time => "time",
        AnomalySort::Score => "score",
    };
    let driving = DRIVING_FILTERS.iter().find(|column| equality_filter(query, column).is_some());
    match driving {
        Some(column) => format!("anomalies_{column}_{sort}"),
        None => format!("anomalies_{sort}"),
    }
}

pub(crate) fn equality_filter<'a>(query: &'a AnomalyQuery, column: &str) -> Option<&'a String> {
    match column {
        "agent" => query.agent.as_ref(),
        "log_type" => query.log_type.as_ref(),
        "label" => query.label.as_ref(),
        "severity" => query.severity.as_ref(),
        "source" => query.source.as_ref(),
        _ => None,
    }
}

/// The page query's text and arguments; the index is named, so the plan
/// does not depend on the planner's statistics of the day.
fn page_sql(query: &AnomalyQuery) -> (String, Vec<rusqlite::types::Value>) {
    let key = match query.sort {
        AnomalySort::Time => "log_ts_ms",
        AnomalySort::Score => "score",
    };
    let index = page_index(query);
    let (filters, mut args) = filter_sql(query);
    let mut sql = format!("SELECT {RECORD_COLUMNS} FROM anomalies INDEXED BY {index} WHERE {filters}");
    if let Some((value, id)) = query.after {
        sql.push_str(&format!(" AND ({key}, id) < (?, ?)"));
        match query.sort {
            AnomalySort::Time => args.push((value as i64).into()),
            AnomalySort::Score => args.push(value.into()),
        }
        args.push(id.into());
    }
    sql.push_str(&format!(" ORDER BY {key} DESC, id DESC LIMIT {}", query.limit));
    (sql, args)
}

/// The WHERE conditions of `query`'s filters (the tenant first), with their
/// arguments; the position and order are the caller's.
pub(crate) fn filter_sql(query: &AnomalyQuery) -> (String, Vec<rusqlite::types::Value>) {
    let mut sql = String::from("tenant = ?");
    let mut args: Vec<rusqlite::types::Value> = vec![query.tenant.clone().into()];
    for column in DRIVING_FILTERS {
        if let Some(value) = equality_filter(query, column) {
            sql.push_str(&format!(" AND {column} = ?"));
            args.push(value.clone().into());
        }
    }
    if let Some(min) = query.min_score {
        sql.push_str(" AND score >= ?");
        args.push(min.into());
    }
    if let Some(from) = query.from_ms {
        sql.push_str(" AND log_ts_ms >= ?");
        args.push(from.into());
    }
    if let Some(to) = query.to_ms {
        sql.push_str(" AND log_ts_ms < ?");
        args.push(to.into());
    }
    (sql, args)
}
