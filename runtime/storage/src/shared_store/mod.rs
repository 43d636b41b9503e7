//! The anomaly store on PostgreSQL (`anomaly_store = "postgres"`): the
//! anomalies every node stores, in the table the nodes' units commit to,
//! read by the API, the console and `mcp anomalies` as the embedded store's
//! are; and the checkpoints and agent states of runs that are not units
//! (a run started through the API, `mcp run`). With it, what any node finds
//! is served by every node.

mod exports;
mod pages;
mod runs;
mod statement;

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use sqlx::postgres::PgPool;

pub(crate) use runs::insert_anomalies;

use crate::retry::{GaveUp, RetryPolicy};
use crate::source::SourceError;
use crate::source::postgres::{MIGRATIONS, connect_pool, service_runtime, transient};

/// Errors of the anomaly store on PostgreSQL.
#[derive(Debug, thiserror::Error)]
pub enum SharedStoreError {
    #[error("anomaly store on PostgreSQL: {context}{source}")]
    Postgres { context: String, source: sqlx::Error },
    #[error(transparent)]
    Connect(#[from] SourceError),
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

/// A connection pool to the anomaly store on PostgreSQL.
#[derive(Debug)]
pub struct SharedStore {
    runtime: tokio::runtime::Runtime,
    pool: PgPool,
    retry: RetryPolicy,
    retries: AtomicU64,
    /// The longest one page query (or chart) may run; PostgreSQL cancels
    /// it past that, as the embedded store stops a page past its steps.
    page_timeout: Duration,
}

impl SharedStore {
    /// Connects to the store at `url` (in `schema` when given) with at most
    /// `connections` connections.
    pub fn connect(
        url: &str,
        schema: Option<&str>,
        connections: u32,
        retry: RetryPolicy,
        page_timeout: Duration,
    ) -> Result<Self, SharedStoreError> {
        let runtime = service_runtime("mcp-anomalies").map_err(|e| SourceError::Postgres {
            context: "cannot start the anomaly store's client: ".into(),
            source: e.into(),
        })?;
        // A run's commit holds row locks only for its own statements; an
        // idle transaction past a minute is a client that froze.
        let pool = connect_pool(&runtime, url, schema, connections, Some(Duration::from_secs(60)))?;
        Ok(SharedStore { runtime, pool, retry, retries: AtomicU64::new(0), page_timeout })
    }

    /// Creates or updates the tables (the same migrations as the PostgreSQL
    /// log source's and the work table's).
    pub fn migrate(&self) -> Result<(), SharedStoreError> {
        self.runtime.block_on(MIGRATIONS.run(&self.pool)).map_err(|e| SharedStoreError::Postgres {
            context: "migrate: ".into(),
            source: sqlx::Error::Migrate(Box::new(e)),
        })
    }

    /// Whether the store answers and its tables exist.
    pub fn ping(&self) -> Result<(), SharedStoreError> {
        self.with_retry("ping", || sqlx::query("SELECT 1 FROM anomalies LIMIT 1").fetch_optional(&self.pool))?;
        Ok(())
    }

    /// Runs `op` until it succeeds or fails for good, retrying transient
    /// failures as the policy says. Every statement sent this way must be
    /// safe to repeat.
    fn with_retry<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T, SharedStoreError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
    {
        self.runtime
            .block_on(crate::retry::retry(&self.retry, &self.retries, "PostgreSQL", what, transient, &mut op))
            .map_err(|GaveUp { error, attempts, .. }| match &error {
                sqlx::Error::Database(db) if db.code().as_deref() == Some("42P01") => {
                    SharedStoreError::NotMigrated { detail: db.message().to_string() }
                }
                // Cancelled by the statement timeout a page query runs under.
                sqlx::Error::Database(db) if db.code().as_deref() == Some("57014") => {
                    SharedStoreError::TooBroad { timeout_ms: self.page_timeout.as_millis() }
                }
                _ => SharedStoreError::Postgres {
                    context: format!("{what} (after {attempts} attempts): "),
                    source: error,
                },
            })
    }
}
