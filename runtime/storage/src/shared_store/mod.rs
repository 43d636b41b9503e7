//! The anomaly store on PostgreSQL (`anomaly_store = "postgres"`): the
//! anomalies every node stores, in the table the nodes' units commit to,
//! read by the API, the console and `mcp anomalies` as the embedded store's
//! are; and the checkpoints and agent states of runs that are not units
//! (a run started through the API, `mcp run`). With it, what any node finds
//! is served by every node.

mod exports;
mod models;
mod outbox;
mod pages;
mod runs;
mod statement;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use sqlx::postgres::PgPool;

pub use models::ModelEvent;
pub(crate) use runs::insert_anomalies;

use crate::notify::{RouteBook, RouteSet};
use crate::retry::{GaveUp, RetryPolicy};
use crate::source::SourceError;
use crate::source::postgres::{MIGRATIONS, ServiceRuntime, connect_pool_waiting, service_runtime, transient};

/// Errors of the anomaly store on PostgreSQL.
#[derive(Debug, thiserror::Error)]
pub enum SharedStoreError {
    #[error("anomaly store on PostgreSQL: {context}{source}")]
    Postgres { context: String, source: sqlx::Error },
    #[error("anomaly store on PostgreSQL: cannot be reached: {detail}")]
    Unreachable { detail: String },
    #[error(
        "the anomaly store's tables are missing ({detail}): run `mcp db migrate`, or check database_url and database_schema"
    )]
    NotMigrated { detail: String },
    #[error(
        "anomaly_store = \"postgres\" keeps anomalies in the PostgreSQL of database_url, which is not set: \
         set it (or MCP_DATABASE_URL), or use anomaly_store = \"embedded\""
    )]
    NoDatabase,
    #[error("the page query ran past its {timeout_ms} ms bound (page_query_timeout_ms)")]
    TooBroad { timeout_ms: u128 },
}

impl SharedStoreError {
    /// Whether a page query was stopped for running past its bound.
    pub fn too_broad(&self) -> bool {
        matches!(self, SharedStoreError::TooBroad { .. })
    }
}

/// How long a read waits for a connection before it fails: a page that
/// cannot get one answers soon (503) rather than after minutes of retries,
/// and a tenant's burst cannot hold another tenant's page for long.
const READ_WAIT: Duration = Duration::from_secs(3);

/// Connection pools to the anomaly store on PostgreSQL: one for reads
/// (pages, charts, exports) and one for runs' commits, so that pages that
/// take every read connection never hold a run's commit back.
#[derive(Debug)]
pub struct SharedStore {
    runtime: ServiceRuntime,
    reads: PgPool,
    writes: PgPool,
    retry: RetryPolicy,
    retries: AtomicU64,
    /// The longest one page query (or chart) may run; PostgreSQL cancels
    /// it past that, as the embedded store stops a page past its steps.
    page_timeout: Duration,
    /// Where commits find the tenant's notification routes; none routes
    /// nothing.
    routes: Option<Arc<RouteBook>>,
}

impl SharedStore {
    /// Connects to the store at `url` (in `schema` when given) with at most
    /// `connections` connections for reads and as many for commits.
    pub fn connect(
        url: &str,
        schema: Option<&str>,
        connections: u32,
        retry: RetryPolicy,
        page_timeout: Duration,
    ) -> Result<Self, SharedStoreError> {
        let unreachable = |e: SourceError| SharedStoreError::Unreachable {
            detail: match e {
                SourceError::Postgres { context, source } => format!("{context}{source}"),
                other => other.to_string(),
            },
        };
        let runtime = service_runtime("mcp-anomalies")
            .map_err(|e| SharedStoreError::Unreachable { detail: format!("cannot start its client: {e}") })?;
        // A commit holds row locks only for its own statements; an idle
        // transaction past a minute is a client that froze.
        let idle = Some(Duration::from_secs(60));
        let reads =
            connect_pool_waiting(&runtime, url, schema, connections, idle, READ_WAIT, true).map_err(unreachable)?;
        // A commit that waits longer for a connection is retried as
        // `[retry]` says; a server that cannot be reached is known at once.
        let writes =
            connect_pool_waiting(&runtime, url, schema, connections, idle, READ_WAIT, false).map_err(unreachable)?;
        Ok(SharedStore { runtime, reads, writes, retry, retries: AtomicU64::new(0), page_timeout, routes: None })
    }

    /// Queues a notification for each new anomaly that `routes` sends to a
    /// channel, in the transaction that stores it.
    pub fn route_with(&mut self, routes: Arc<RouteBook>) {
        self.routes = Some(routes);
    }

    /// The routes of `tenant` a commit of `anomalies` queues notifications
    /// by: read before its transaction, so a change of routes applies from
    /// the next batch.
    pub(crate) fn routes_for(
        routes: Option<&RouteBook>,
        tenant: &str,
        anomalies: usize,
    ) -> Result<Option<RouteSet>, crate::store::StoreError> {
        match routes {
            Some(book) if anomalies > 0 => Ok(Some(book.routes(tenant)?).filter(|set| !set.is_empty())),
            _ => Ok(None),
        }
    }

    /// Creates or updates the tables (the same migrations as the PostgreSQL
    /// log source's and the work table's).
    pub fn migrate(&self) -> Result<(), SharedStoreError> {
        self.runtime.block_on(MIGRATIONS.run(&self.writes)).map_err(|e| SharedStoreError::Postgres {
            context: "migrate: ".into(),
            source: sqlx::Error::Migrate(Box::new(e)),
        })
    }

    /// Whether the store answers and its tables exist: one try, so a
    /// readiness probe learns of an outage within [`READ_WAIT`].
    pub fn ping(&self) -> Result<(), SharedStoreError> {
        let once = RetryPolicy { max_attempts: 1, ..self.retry };
        self.retrying(&once, "ping", || sqlx::query("SELECT 1 FROM anomalies LIMIT 1").fetch_optional(&self.reads))?;
        Ok(())
    }

    /// A read, retried once: a page is asked again by its client sooner
    /// than a run's commit, and holds the tenant's turn while it waits.
    fn read<T, F, Fut>(&self, what: &str, op: F) -> Result<T, SharedStoreError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
    {
        let twice = RetryPolicy { max_attempts: self.retry.max_attempts.min(2), ..self.retry };
        self.retrying(&twice, what, op)
    }

    /// Runs `op` until it succeeds or fails for good, retrying transient
    /// failures as the configured policy says. Every statement sent this
    /// way must be safe to repeat.
    fn with_retry<T, F, Fut>(&self, what: &str, op: F) -> Result<T, SharedStoreError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
    {
        self.retrying(&self.retry, what, op)
    }

    fn retrying<T, F, Fut>(&self, policy: &RetryPolicy, what: &str, mut op: F) -> Result<T, SharedStoreError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
    {
        self.runtime
            .block_on(crate::retry::retry(policy, &self.retries, "PostgreSQL", what, transient, &mut op))
            .map_err(|GaveUp { error, attempts, .. }| match &error {
                sqlx::Error::Database(db) if db.code().as_deref() == Some("42P01") => {
                    SharedStoreError::NotMigrated { detail: db.message().to_string() }
                }
                _ => SharedStoreError::Postgres {
                    context: format!("{what} (after {attempts} attempts): "),
                    source: error,
                },
            })
    }
}
