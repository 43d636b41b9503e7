//! The PostgreSQL log source: a pooled sqlx connection, keyset reads by
//! tenant, log type and id, bulk loads with COPY, migrations embedded in the
//! binary. The rest of the host is synchronous, so the source owns a small
//! tokio runtime and blocks on it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::Row;
use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::ahead::{PageKey, PagesAhead};
use super::{FetchedRow, LogSource, NewRow, Quarantined, RetryPolicy, SourceBatch, SourceError, StoredEntry, assemble};
use crate::retry::GaveUp;
use crate::schema::SchemaFiles;
use mcp_columns::LogQuery;

pub(crate) static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The PostgreSQL log source.
#[derive(Debug)]
pub struct PgLogSource {
    runtime: ServiceRuntime,
    pool: PgPool,
    schemas: Arc<SchemaFiles>,
    namespace: Option<String>,
    retry: RetryPolicy,
    retries: AtomicU64,
    ahead: PagesAhead,
}

/// Whether an error may pass if the same statement is tried again: lost or
/// refused connections, a server shutting a backend down (also for a
/// transaction left idle too long, 25P03), serialization failures and
/// deadlocks. Anything else (bad SQL, missing tables, wrong credentials)
/// fails at once.
pub(crate) fn transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Protocol(message) => message.contains("closed") || message.contains("reset"),
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08") || code.starts_with("57P") || code == "25P03" || code == "40001" || code == "40P01"
        }),
        _ => false,
    }
}

/// A runtime for a synchronous service client: one worker drives the
/// connections, and every caller's thread blocks on it at once, which a
/// current-thread runtime would serialise.
pub(crate) fn service_runtime(name: &str) -> std::io::Result<ServiceRuntime> {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).thread_name(name).enable_all().build()?;
    Ok(ServiceRuntime { handle: runtime.handle().clone(), runtime: Some(runtime) })
}

/// A service client's runtime, used through its handle. Dropped, it shuts
/// down without waiting for its worker: a client dropped inside another
/// runtime (a server's state, at shutdown) would otherwise panic there, since
/// a runtime may not block to drop inside another.
#[derive(Debug)]
pub(crate) struct ServiceRuntime {
    handle: tokio::runtime::Handle,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::ops::Deref for ServiceRuntime {
    type Target = tokio::runtime::Handle;

    fn deref(&self) -> &Self::Target {
        &self.handle
    }
}

impl Drop for ServiceRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A pool of at most `connections` to `url`. With `schema`, every
/// connection works in that PostgreSQL schema (created if missing), which
/// keeps tests apart. With `idle_in_transaction`, the server ends a session
/// whose transaction waits on this client longer than that, and with it
/// the locks the transaction holds.
pub(crate) fn connect_pool(
    runtime: &tokio::runtime::Handle,
    url: &str,
    schema: Option<&str>,
    connections: u32,
    idle_in_transaction: Option<std::time::Duration>,
) -> Result<PgPool, SourceError> {
    connect_pool_waiting(runtime, url, schema, connections, idle_in_transaction, DEFAULT_ACQUIRE_WAIT, false)
}

/// How long a statement waits for a connection of the pool by default
/// (sqlx's own default).
const DEFAULT_ACQUIRE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// [`connect_pool`], with statements waiting at most `acquire_wait` for a
/// connection (a new one included, when the server is down) before they
/// fail with a timeout. With `ping_before_use`, a pooled connection is
/// checked before each use, so that after a failover or a restart (every
/// backend ended) a request gets a live connection rather than spending
/// its few attempts on dead ones: for pages, which are tried twice, not
/// for runs, whose retries count and report dropped connections.
pub(crate) fn connect_pool_waiting(
    runtime: &tokio::runtime::Handle,
    url: &str,
    schema: Option<&str>,
    connections: u32,
    idle_in_transaction: Option<std::time::Duration>,
    acquire_wait: std::time::Duration,
    ping_before_use: bool,
) -> Result<PgPool, SourceError> {
    let search_path = schema.map(|s| s.replace('"', ""));
    let pool = runtime.block_on(async {
        // The application name lets an operator (and the fault tests)
        // find this pool's backends in pg_stat_activity.
        let options = PgConnectOptions::from_str(url)?
            .application_name(&format!("mcp:{}", search_path.as_deref().unwrap_or("public")));
        // One connection alone first: a server that refuses or does not
        // answer says so at once, where a pool waits out its timeout and
        // then says only that it timed out.
        let no_answer = || {
            sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {} s", acquire_wait.as_secs_f64()),
            ))
        };
        let mut first =
            tokio::time::timeout(acquire_wait, <sqlx::PgConnection as sqlx::Connection>::connect_with(&options))
                .await
                .map_err(|_| no_answer())??;
        if let Some(schema) = &search_path {
            sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"")).execute(&mut first).await?;
        }
        sqlx::Connection::close(first).await?;
        let path = search_path.clone();
        // Without a ping before each use, a connection the server dropped
        // fails its statement, which the retry loop repeats on a fresh one
        // and counts, so a run reports it.
        PgPoolOptions::new()
            .max_connections(connections.max(1))
            .acquire_timeout(acquire_wait)
            .test_before_acquire(ping_before_use)
            .after_connect(move |conn, _| {
                let path = path.clone();
                Box::pin(async move {
                    if let Some(schema) = path {
                        sqlx::query(&format!("SET search_path TO \"{schema}\"")).execute(&mut *conn).await?;
                    }
                    if let Some(idle) = idle_in_transaction {
                        let ms = idle.as_millis().max(1);
                        sqlx::query(&format!("SET idle_in_transaction_session_timeout = {ms}"))
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
    });
    pool.map_err(|e| SourceError::Postgres {
        context: format!("cannot connect to {}: ", crate::redact::url(url)),
        source: e.into(),
    })
}

fn pg(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> SourceError {
    SourceError::Postgres { context: String::new(), source: error.into() }
}

/// A log id as PostgreSQL's BIGINT holds it.
pub(crate) fn id_param(id: u64) -> i64 {
    i64::try_from(id).unwrap_or(i64::MAX)
}

/// One CSV field for COPY: quoted, with quotes doubled.
fn csv_field(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
}

impl PgLogSource {
    /// Connects to `url`. With `schema`, every connection works in that
    /// PostgreSQL schema (created if missing), which keeps tests apart.
    pub fn connect(url: &str, schema: Option<&str>, schemas: Arc<SchemaFiles>) -> Result<Self, SourceError> {
        Self::connect_pooled(url, schema, schemas, 4)
    }

    /// As [`PgLogSource::connect`], with at most `connections` to the
    /// server. One source serves every run of a server: its pool is the
    /// server's whole share of PostgreSQL's connections.
    pub fn connect_pooled(
        url: &str,
        schema: Option<&str>,
        schemas: Arc<SchemaFiles>,
        connections: u32,
    ) -> Result<Self, SourceError> {
        let runtime = service_runtime("mcp-postgres").map_err(pg)?;
        let search_path = schema.map(|s| s.replace('"', ""));
        let pool = connect_pool(&runtime, url, search_path.as_deref(), connections, None)?;
        Ok(PgLogSource {
            runtime,
            pool,
            schemas,
            namespace: search_path,
            retry: RetryPolicy::default(),
            retries: AtomicU64::new(0),
            ahead: PagesAhead::default(),
        })
    }

    /// Retries transient failures as `policy` says.
    pub fn with_retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Runs a read, retrying it while its failures are transient.
    fn read<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T, SourceError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
    {
        self.runtime
            .block_on(crate::retry::retry(&self.retry, &self.retries, "PostgreSQL", what, transient, &mut op))
            .map_err(|gave_up| match gave_up {
                GaveUp { error, attempts, transient: true } => SourceError::Postgres {
                    context: format!("{what} still failing after {attempts} attempts: "),
                    source: error.into(),
                },
                GaveUp { error, .. } => SourceError::Postgres { context: format!("{what}: "), source: error.into() },
            })
    }

    /// The PostgreSQL schema this source works in, when it was given one.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// Drops the PostgreSQL schema this source was connected with, and
    /// everything in it (tests use one schema each).
    pub fn drop_namespace(&self) -> Result<(), SourceError> {
        let Some(namespace) = &self.namespace else { return Ok(()) };
        let statement = format!("DROP SCHEMA IF EXISTS \"{namespace}\" CASCADE");
        // Idempotent, so retried like a read.
        self.read("drop the schema", || sqlx::query(&statement).execute(&self.pool)).map(|_| ())
    }

    /// Creates or updates the tables (`mcp db migrate`).
    pub fn migrate(&self) -> Result<(), SourceError> {
        self.runtime.block_on(MIGRATIONS.run(&self.pool)).map_err(pg)
    }

    /// Appends rows with COPY; returns how many were written.
    fn copy_in(&self, tenant: &str, log_type: &str, rows: &[NewRow]) -> Result<u64, SourceError> {
        let mut csv = String::with_capacity(rows.len() * 256);
        for row in rows {
            for (i, value) in [tenant, log_type].iter().enumerate() {
                if i > 0 {
                    csv.push(',');
                }
                csv_field(&mut csv, value);
            }
            csv.push_str(&format!(",{},", row.timestamp_ms));
            csv_field(&mut csv, &row.source);
            csv.push(',');
            csv_field(&mut csv, &row.fields);
            csv.push(',');
            if let Some(label) = &row.label {
                csv_field(&mut csv, label);
            }
            csv.push_str(&format!(",{},", row.schema_version));
            if let Some(error) = &row.load_error {
                csv_field(&mut csv, error);
            }
            csv.push('\n');
        }
        self.runtime.block_on(async {
            let mut conn = self.pool.acquire().await?;
            let mut copy = conn
                .copy_in_raw("COPY logs (tenant, log_type, ts_ms, source, fields, label, schema_version, load_error) FROM STDIN WITH (FORMAT csv)")
                .await?;
            copy.send(csv.as_bytes()).await?;
            copy.finish().await
        })
        .map_err(pg)
    }
}

fn page_sql(query: &LogQuery, up_to_id: Option<u64>) -> String {
    format!(
        "SELECT id, ts_ms, source, fields, schema_version, load_error FROM logs WHERE {} ORDER BY id LIMIT {}",
        super::page_filter(query, up_to_id, |n| format!("${n}")),
        i64::from(query.limit)
    )
}

/// The rows of one page, decoded on the source's runtime.
async fn fetch_page(pool: PgPool, page: PageKey) -> Result<Vec<FetchedRow>, sqlx::Error> {
    let sql = page_sql(&page.query, page.up_to_id);
    let rows = bind_page(sqlx::query(&sql), &page.tenant, &page.query, page.up_to_id).fetch_all(&pool).await?;
    rows.iter()
        .map(|r| {
            Ok(FetchedRow {
                id: r.try_get::<i64, _>(0)?.unsigned_abs(),
                timestamp_ms: r.try_get(1)?,
                source: r.try_get(2)?,
                fields: r.try_get(3)?,
                schema_version: r.try_get::<i32, _>(4)?.unsigned_abs(),
                load_error: r.try_get(5)?,
            })
        })
        .collect()
}

/// Binds a page query's arguments in the order `page_filter` numbers them.
fn bind_page<'q>(
    mut statement: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    tenant: &'q str,
    query: &'q LogQuery,
    up_to_id: Option<u64>,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    statement = statement.bind(tenant).bind(&query.log_type).bind(id_param(query.after_id));
    if let Some(from) = query.from_ms {
        statement = statement.bind(from);
    }
    if let Some(to) = query.to_ms {
        statement = statement.bind(to);
    }
    if let Some(source) = &query.source {
        statement = statement.bind(source);
    }
    if let Some(up_to) = up_to_id {
        statement = statement.bind(id_param(up_to));
    }
    statement
}

impl PgLogSource {
    /// How PostgreSQL would run the page query for `query`, with sequential
    /// scans priced out of its choices: a `Seq Scan` left in the plan means
    /// no index serves the query.
    pub fn page_plan(&self, tenant: &str, query: &LogQuery, up_to_id: Option<u64>) -> Result<Vec<String>, SourceError> {
        let sql = format!("EXPLAIN {}", page_sql(query, up_to_id));
        self.runtime
            .block_on(async {
                let mut tx = self.pool.begin().await?;
                sqlx::query("SET LOCAL enable_seqscan = off").execute(&mut *tx).await?;
                let rows = bind_page(sqlx::query(&sql), tenant, query, up_to_id).fetch_all(&mut *tx).await?;
                tx.rollback().await?;
                rows.iter().map(|row| row.try_get::<String, _>(0)).collect::<Result<Vec<_>, _>>()
            })
            .map_err(pg)
    }
}

impl LogSource for PgLogSource {
    fn name(&self) -> &str {
        "postgres"
    }

    fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    fn ping(&self) -> Result<(), SourceError> {
        // The timer is made inside the source's own runtime: a caller on no
        // runtime (the command line's `config check`) has none to lend it.
        let answered = self.runtime.block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(2), sqlx::query("SELECT 1").execute(&self.pool)).await
        });
        match answered {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(pg(e)),
            Err(_) => Err(pg("no answer within 2 s")),
        }
    }

    fn append(&self, tenant: &str, log_type: &str, rows: &[NewRow]) -> Result<u64, SourceError> {
        self.copy_in(tenant, log_type, rows)
    }

    /// The ground-truth labels of `tenant`'s logs of `log_type`, by id.
    fn labels(&self, tenant: &str, log_type: &str) -> Result<Vec<(u64, Option<String>)>, SourceError> {
        let rows = self.read("labels", || {
            sqlx::query("SELECT id, label FROM logs WHERE tenant = $1 AND log_type = $2 ORDER BY id")
                .bind(tenant)
                .bind(log_type)
                .fetch_all(&self.pool)
        })?;
        rows.iter()
            .map(|r| Ok((r.try_get::<i64, _>(0).map_err(pg)?.unsigned_abs(), r.try_get(1).map_err(pg)?)))
            .collect()
    }

    fn read_range(&self, tenant: &str, query: &LogQuery, up_to_id: Option<u64>) -> Result<SourceBatch, SourceError> {
        let shape = self.schemas.shape(&query.log_type)?;
        let key = PageKey { tenant: tenant.to_string(), query: query.clone(), up_to_id };
        let fetched_ahead = match self.ahead.take(&key) {
            // A fetch ahead that failed is not retried in place: the read
            // below is, as any read.
            Some(fetch) => self.runtime.block_on(fetch).ok().and_then(Result::ok),
            None => None,
        };
        let fetched = match fetched_ahead {
            Some(rows) => rows,
            None => self.read("read logs", || fetch_page(self.pool.clone(), key.clone()))?,
        };
        // A full page says more may follow: ask for it now, so the server
        // works while this page's batch is built.
        if let Some(last) = fetched.last().filter(|_| fetched.len() >= query.limit as usize) {
            let next = PageKey { query: LogQuery { after_id: last.id, ..query.clone() }, ..key };
            let fetch = self.runtime.spawn(fetch_page(self.pool.clone(), next.clone()));
            self.ahead.put(next, fetch);
        }
        let assembled = assemble(shape.as_deref(), query, fetched);
        if !assembled.rejected.is_empty() {
            self.read("quarantine rows", || async {
                let mut tx = self.pool.begin().await?;
                for rejected in &assembled.rejected {
                    sqlx::query(
                        "INSERT INTO quarantine (tenant, log_type, log_id, raw, reason, schema_version)
                             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (log_id) DO NOTHING",
                    )
                    .bind(tenant)
                    .bind(&query.log_type)
                    .bind(id_param(rejected.log_id))
                    .bind(&rejected.raw)
                    .bind(&rejected.reason)
                    .bind(i32::try_from(assembled.checked_against).unwrap_or(i32::MAX))
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await
            })?;
        }
        Ok(assembled.batch)
    }

    fn entry(&self, tenant: &str, id: u64) -> Result<Option<StoredEntry>, SourceError> {
        let row = self.read("read one log", || {
            sqlx::query("SELECT log_type, ts_ms, source, fields FROM logs WHERE tenant = $1 AND id = $2")
                .bind(tenant)
                .bind(id_param(id))
                .fetch_optional(&self.pool)
        })?;
        row.map(|r| {
            Ok(StoredEntry {
                log_type: r.try_get(0).map_err(pg)?,
                timestamp_ms: r.try_get(1).map_err(pg)?,
                source: r.try_get(2).map_err(pg)?,
                fields: r.try_get(3).map_err(pg)?,
            })
        })
        .transpose()
    }

    fn quarantined(&self, tenant: &str) -> Result<Vec<Quarantined>, SourceError> {
        let rows = self.read("read quarantine", || sqlx::query(
                    "SELECT log_id, log_type, schema_version, reason, raw FROM quarantine WHERE tenant = $1 ORDER BY log_id",
                )
                .bind(tenant)
                .fetch_all(&self.pool))?;
        rows.iter()
            .map(|r| {
                Ok(Quarantined {
                    log_id: r.try_get::<i64, _>(0).map_err(pg)?.unsigned_abs(),
                    log_type: r.try_get(1).map_err(pg)?,
                    schema_version: r.try_get::<i32, _>(2).map_err(pg)?.unsigned_abs(),
                    reason: r.try_get(3).map_err(pg)?,
                    raw: r.try_get(4).map_err(pg)?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn database_url() -> String {
        std::env::var("MCP_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
    }

    /// A node stopped inside a commit holds its unit's row lock; the
    /// server must end that transaction, and the node must see a failure
    /// it retries on a fresh connection rather than one that stops it.
    #[test]
    fn a_transaction_left_idle_is_ended_with_its_locks_and_the_error_is_retried() {
        let runtime = service_runtime("mcp-test").expect("a runtime");
        let schema = format!("mcp_idle_{}", std::process::id());
        let pool = connect_pool(&runtime, &database_url(), Some(&schema), 2, Some(Duration::from_millis(300)))
            .unwrap_or_else(|e| {
                panic!("{e}\nThis test needs PostgreSQL at {} (start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start)", database_url())
            });
        let outcome = runtime.block_on(async {
            sqlx::query("CREATE TABLE IF NOT EXISTS held (id INT PRIMARY KEY)").execute(&pool).await?;
            sqlx::query("INSERT INTO held VALUES (1) ON CONFLICT DO NOTHING").execute(&pool).await?;
            let mut stopped = pool.begin().await?;
            sqlx::query("SELECT id FROM held WHERE id = 1 FOR UPDATE").execute(&mut *stopped).await?;
            tokio::time::sleep(Duration::from_millis(1_000)).await;
            // The lock is free for another node...
            let other = sqlx::query("SELECT id FROM held WHERE id = 1 FOR UPDATE NOWAIT").execute(&pool).await;
            // ...and the stopped one learns its transaction is gone.
            let resumed = sqlx::query("SELECT 1").execute(&mut *stopped).await;
            Ok::<_, sqlx::Error>((other.map(|_| ()), resumed.map(|_| ())))
        });
        let dropped = runtime.block_on(sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE")).execute(&pool));
        let (other, resumed) = outcome.expect("the statements before the pause");
        assert!(other.is_ok(), "the row stayed locked by the idle transaction: {other:?}");
        let error = resumed.expect_err("the idle transaction was not ended");
        assert!(transient(&error), "ending an idle transaction is not retried: {error:?}");
        dropped.expect("the test schema is dropped");
    }
}
