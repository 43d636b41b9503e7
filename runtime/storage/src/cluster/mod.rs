//! Many nodes, one PostgreSQL: the work of a deployment cut into units
//! (one agent of one tenant over a range of one log type's ids), each
//! claimed by one node at a time under a lease that its holder keeps alive
//! by beating. A claim raises the unit's fencing token; a commit that does
//! not carry the current token is refused in the transaction that would
//! have stored its anomalies, so a node that paused past its lease (a
//! zombie) writes nothing after another took over. PostgreSQL is the only
//! coordinator: `FOR UPDATE SKIP LOCKED` hands out units, its clock judges
//! every expiry.

mod leased;
mod plan;

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use sqlx::Row;
use sqlx::postgres::PgPool;

pub use leased::LeasedStore;
pub use plan::Backfill;

use crate::retry::{GaveUp, RetryPolicy};
use crate::source::SourceError;
use crate::source::postgres::{MIGRATIONS, ServiceRuntime, connect_pool, service_runtime, transient};

/// Errors of the shared work table.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("shared store: {context}{source}")]
    Postgres { context: String, source: sqlx::Error },
    #[error(transparent)]
    Connect(#[from] SourceError),
    #[error(
        "work unit {unit}: this node's lease (token {held}) was taken over (the unit's token is now {current}); \
         its commit was refused and nothing of it was stored"
    )]
    Fenced { unit: i64, held: i64, current: i64 },
    #[error(
        "nodes share their work through PostgreSQL: set database_url in the config (or MCP_DATABASE_URL); \
         the embedded SQLite default serves one node"
    )]
    NoDatabase,
    #[error(
        "the shared tables are missing ({detail}): run `mcp db migrate`, or check database_url and database_schema"
    )]
    NotMigrated { detail: String },
    #[error(
        "a live node is already called '{node}' (it beat within its lease time): give this one another --node, \
         or stop that one first"
    )]
    NodeNameTaken { node: String },
    #[error(
        "a transaction that writes has been open for {waited_s} s: rows it may still add would fall before the \
         planned units, so planning waits for it; end it (pg_stat_activity shows it) and plan again"
    )]
    Unsettled { waited_s: u64 },
    #[error("work unit {unit} is for {expected}, not for {asked}")]
    WrongUnit { unit: i64, expected: String, asked: String },
}

fn db(context: &str) -> impl FnOnce(sqlx::Error) -> ClusterError + '_ {
    move |source| ClusterError::Postgres { context: format!("{context}: "), source }
}

/// The `up_to` of a unit that follows new rows rather than ending: no id
/// reaches it.
pub const FOLLOWS: u64 = FOLLOWS_ID.unsigned_abs();

/// [`FOLLOWS`] as PostgreSQL stores it.
pub(crate) const FOLLOWS_ID: i64 = i64::MAX;

/// Which units a claim may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitKind {
    /// Ranges of stored rows (backfills), which end.
    Range,
    /// Units that follow new rows as they arrive (continuous detection).
    Follow,
}

/// A node's hold on one unit of work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub unit: i64,
    /// The fencing token this claim got; every commit carries it.
    pub token: i64,
    pub tenant: String,
    pub agent: String,
    pub log_type: String,
    /// The unit covers the ids after this one…
    pub start_after: u64,
    /// …up to and including this one.
    pub up_to: u64,
    /// Where the unit's work stood when this claim took it.
    pub checkpoint: u64,
    /// How many claims the unit had, this one included: more than one
    /// means it was taken over.
    pub claims: i32,
}

impl Lease {
    /// Whether the unit follows new rows rather than ending.
    pub fn follows(&self) -> bool {
        self.up_to == FOLLOWS
    }
}

/// What a heartbeat found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Beat {
    /// Leases taken over while this node was silent.
    pub lost: Vec<i64>,
    /// Whether the node's row is still this process's: it is not when the
    /// node was forgotten, or another process took its name while it was
    /// silent.
    pub registered: bool,
}

/// A node as the shared table shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NodeView {
    pub name: String,
    pub host: String,
    pub pid: i64,
    /// Milliseconds since its last beat, by PostgreSQL's clock.
    pub heartbeat_age_ms: i64,
    pub lease_ttl_ms: i64,
    /// Whether it beat within its lease time.
    pub alive: bool,
    /// The units it holds under a lease that has not expired.
    pub leases: Vec<i64>,
}

/// A unit's status in SQL, the same for `units` and `unit_counts`:
/// `done`, `failed`, `held` (a lease in force) or `open`.
macro_rules! unit_status {
    () => {
        "CASE WHEN done_at IS NOT NULL THEN 'done' WHEN failed_at IS NOT NULL THEN 'failed' \
         WHEN holder IS NOT NULL AND expires_at > clock_timestamp() THEN 'held' ELSE 'open' END"
    };
}

/// How many units of one (tenant, agent) are in one status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitCount {
    pub tenant: String,
    pub agent: String,
    /// `open`, `held`, `done` or `failed`.
    pub status: String,
    pub units: i64,
}

/// A unit of work as the shared table shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct UnitView {
    pub id: i64,
    pub tenant: String,
    pub agent: String,
    pub log_type: String,
    pub start_after: i64,
    /// The last id it covers; [`FOLLOWS`] for a unit that follows new rows.
    pub up_to: i64,
    pub checkpoint: i64,
    /// `done`, `failed`, `held` (a lease in force) or `open`.
    pub status: String,
    pub holder: Option<String>,
    pub token: i64,
    pub claims: i32,
    pub failures: i32,
    pub last_error: Option<String>,
    pub anomalies: i64,
}

impl UnitView {
    /// Whether the unit follows new rows rather than ending.
    pub fn follows(&self) -> bool {
        self.up_to.unsigned_abs() == FOLLOWS
    }

    /// Whether nothing is left to do on it: done, failed, or following
    /// (which never ends).
    pub fn settled(&self) -> bool {
        self.status == "done" || self.status == "failed" || self.follows()
    }
}

/// One node's connection to the shared work table.
#[derive(Debug)]
pub struct Cluster {
    runtime: ServiceRuntime,
    pool: PgPool,
    node: String,
    /// This process, as its node row names it: a row of the same name
    /// with another host or pid is another process's.
    host: String,
    pid: i64,
    lease_ttl: Duration,
    retry: RetryPolicy,
    retries: AtomicU64,
    /// Where units' commits find the tenant's notification routes, when
    /// the deployment keeps its anomalies (and their outbox) here.
    routes: Option<std::sync::Arc<crate::notify::RouteBook>>,
}

impl Cluster {
    /// Connects node `node` to the shared tables at `url` (in `schema`,
    /// when given: tests keep apart that way). Leases it takes last
    /// `lease_ttl` unless it beats.
    pub fn connect(
        url: &str,
        schema: Option<&str>,
        node: &str,
        lease_ttl: Duration,
        retry: RetryPolicy,
    ) -> Result<Self, ClusterError> {
        let runtime = service_runtime("mcp-cluster").map_err(|e| SourceError::Postgres {
            context: "cannot start the cluster client: ".into(),
            source: e.into(),
        })?;
        // Beats, claims and commits of a few runs at once, each short. A
        // node stopped inside a commit (SIGSTOP, a frozen VM) would hold its
        // unit's row lock, and no other node could take the unit over when
        // the lease ends; the server ends such a transaction once it has
        // waited a lease, which the node could not have committed anyway.
        let pool = connect_pool(&runtime, url, schema, 4, Some(lease_ttl))?;
        Ok(Cluster {
            runtime,
            pool,
            node: node.to_string(),
            host: hostname(),
            pid: i64::from(std::process::id()),
            lease_ttl,
            retry,
            retries: AtomicU64::new(0),
            routes: None,
        })
    }

    /// Queues a notification for each new anomaly a unit finds that
    /// `routes` sends to a channel, in the transaction that stores it.
    pub fn route_with(&mut self, routes: std::sync::Arc<crate::notify::RouteBook>) {
        self.routes = Some(routes);
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// How long a lease lasts without a beat.
    pub fn lease_ttl(&self) -> Duration {
        self.lease_ttl
    }

    fn ttl_seconds(&self) -> f64 {
        self.lease_ttl.as_secs_f64()
    }

    /// Creates or updates the shared tables (the same migrations as the
    /// PostgreSQL log source's).
    pub fn migrate(&self) -> Result<(), ClusterError> {
        self.runtime.block_on(MIGRATIONS.run(&self.pool)).map_err(|e| ClusterError::Postgres {
            context: "migrate: ".into(),
            source: sqlx::Error::Migrate(Box::new(e)),
        })
    }

    /// Runs `op` until it succeeds or fails for good, retrying transient
    /// failures (a restarted server, a terminated backend) as the policy
    /// says. Every statement sent this way must be safe to repeat.
    fn with_retry<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T, ClusterError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
    {
        self.runtime
            .block_on(crate::retry::retry(&self.retry, &self.retries, "PostgreSQL", what, transient, &mut op))
            .map_err(|GaveUp { error, attempts, .. }| match &error {
                // Undefined table: the schema was never migrated.
                sqlx::Error::Database(db) if db.code().as_deref() == Some("42P01") => {
                    ClusterError::NotMigrated { detail: db.message().to_string() }
                }
                _ => ClusterError::Postgres { context: format!("{what} (after {attempts} attempts): "), source: error },
            })
    }

    /// Announces this node (or announces it again after a restart).
    pub fn join(&self) -> Result<(), ClusterError> {
        let (host, pid) = (&self.host, self.pid);
        let ttl_ms = i64::try_from(self.lease_ttl.as_millis()).unwrap_or(i64::MAX);
        // A name is taken again only from a node that stopped beating (or
        // by the same process): two live nodes of one name would give
        // each other's units back when either left.
        let joined = self.with_retry("join", || {
            sqlx::query(
                "INSERT INTO nodes (name, host, pid, started_at, heartbeat_at, lease_ttl_ms)
                 VALUES ($1, $2, $3, clock_timestamp(), clock_timestamp(), $4)
                 ON CONFLICT (name) DO UPDATE SET host = excluded.host, pid = excluded.pid,
                     started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at,
                     lease_ttl_ms = excluded.lease_ttl_ms
                 WHERE nodes.heartbeat_at + nodes.lease_ttl_ms * INTERVAL '1 millisecond' < clock_timestamp()
                    OR (nodes.host = excluded.host AND nodes.pid = excluded.pid)",
            )
            .bind(&self.node)
            .bind(host)
            .bind(pid)
            .bind(ttl_ms)
            .execute(&self.pool)
        })?;
        if joined.rows_affected() == 0 {
            return Err(ClusterError::NodeNameTaken { node: self.node.clone() });
        }
        // Nodes silent for a day that hold nothing are gone for good.
        self.with_retry("forget old nodes", || {
            sqlx::query(
                "DELETE FROM nodes n WHERE n.heartbeat_at < clock_timestamp() - INTERVAL '1 day'
                   AND NOT EXISTS (SELECT 1 FROM work_units u WHERE u.holder = n.name AND u.done_at IS NULL
                                     AND u.expires_at > clock_timestamp())",
            )
            .execute(&self.pool)
        })?;
        tracing::info!(node = %self.node, %host, pid, "joined the cluster");
        Ok(())
    }

    /// Leaves: the node's row goes and its leases are given back at once,
    /// so others need not wait for them to expire.
    pub fn leave(&self) -> Result<(), ClusterError> {
        self.with_retry("leave", || async {
            let mut tx = self.pool.begin().await?;
            // Only while the name is still this process's: if another took
            // it (this one was silent), the units of that name are its.
            let mine = sqlx::query("DELETE FROM nodes WHERE name = $1 AND host = $2 AND pid = $3")
                .bind(&self.node)
                .bind(&self.host)
                .bind(self.pid)
                .execute(&mut *tx)
                .await?;
            if mine.rows_affected() > 0 {
                sqlx::query(
                    "UPDATE work_units SET holder = NULL, expires_at = NULL WHERE holder = $1 AND done_at IS NULL",
                )
                .bind(&self.node)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await
        })
    }

    /// Forgets node `name`: its row goes and the units it holds are free
    /// at once. For a node known dead whose leases would otherwise run
    /// their time; a node that was not dead is refused at its next commit
    /// (its tokens are superseded by the next claims) and stops. Refused
    /// for a node that beat within its lease time unless `even_alive`.
    /// Returns the units freed, or `None` when there is no such node.
    pub fn forget_node(&self, name: &str, even_alive: bool) -> Result<Option<u64>, ClusterError> {
        self.with_retry("forget a node", || async {
            let mut tx = self.pool.begin().await?;
            let gone = sqlx::query(
                "DELETE FROM nodes WHERE name = $1
                   AND ($2 OR heartbeat_at + lease_ttl_ms * INTERVAL '1 millisecond' < clock_timestamp())",
            )
            .bind(name)
            .bind(even_alive)
            .execute(&mut *tx)
            .await?;
            if gone.rows_affected() == 0 {
                tx.rollback().await?;
                return Ok(None);
            }
            let freed = sqlx::query(
                "UPDATE work_units SET holder = NULL, expires_at = NULL WHERE holder = $1 AND done_at IS NULL",
            )
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            Ok(Some(freed))
        })
    }

    /// Beats: the node's heartbeat, and each of `leases` extended by the
    /// lease time if this node still holds it under the same token.
    pub fn beat(&self, leases: &[Lease]) -> Result<Beat, ClusterError> {
        let ttl = self.ttl_seconds();
        self.with_retry("beat", || async {
            let mut tx = self.pool.begin().await?;
            let registered = sqlx::query(
                "UPDATE nodes SET heartbeat_at = clock_timestamp() WHERE name = $1 AND host = $2 AND pid = $3",
            )
            .bind(&self.node)
            .bind(&self.host)
            .bind(self.pid)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0;
            let mut lost = Vec::new();
            for lease in leases {
                let kept = sqlx::query(
                    "UPDATE work_units SET expires_at = clock_timestamp() + make_interval(secs => $4)
                     WHERE id = $1 AND holder = $2 AND token = $3 AND done_at IS NULL",
                )
                .bind(lease.unit)
                .bind(&self.node)
                .bind(lease.token)
                .bind(ttl)
                .execute(&mut *tx)
                .await?;
                if kept.rows_affected() == 0 {
                    lost.push(lease.unit);
                }
            }
            tx.commit().await?;
            Ok(Beat { lost, registered })
        })
    }

    /// Claims an open unit of `kind` for one of `agents` (those this node
    /// can run) that nobody holds under a lease in force, raising its
    /// fencing token; `None` when there is none. Units with progress that a
    /// lost holder left come first, then the others in the order planned.
    pub fn claim(&self, kind: UnitKind, agents: &[String]) -> Result<Option<Lease>, ClusterError> {
        let ttl = self.ttl_seconds();
        // Not retried: a claim whose answer was lost would leave a lease
        // this node does not know it has; it expires like a dead node's.
        let row = self
            .runtime
            .block_on(
                sqlx::query(
                    "UPDATE work_units SET holder = $1, token = token + 1, claims = claims + 1,
                         expires_at = clock_timestamp() + make_interval(secs => $2)
                     WHERE id = (
                         SELECT id FROM work_units w
                         WHERE done_at IS NULL AND failed_at IS NULL
                           AND (holder IS NULL OR expires_at IS NULL OR expires_at < clock_timestamp())
                           AND (up_to = $3) = $4
                           AND agent = ANY($5)
                           -- A following unit starts where the history
                           -- before it ends, with that unit's agent state.
                           AND NOT ($4 AND EXISTS (
                               SELECT 1 FROM work_units e
                               WHERE e.tenant = w.tenant AND e.agent = w.agent AND e.log_type = w.log_type
                                 AND e.start_after < w.start_after AND e.done_at IS NULL AND e.failed_at IS NULL))
                         -- A unit a lost node left half done goes first:
                         -- the units after it wait for its final state.
                         ORDER BY checkpoint > start_after DESC, id LIMIT 1 FOR UPDATE SKIP LOCKED)
                     RETURNING id, token, tenant, agent, log_type, start_after, up_to, checkpoint, claims",
                )
                .bind(&self.node)
                .bind(ttl)
                .bind(FOLLOWS_ID)
                .bind(kind == UnitKind::Follow)
                .bind(agents)
                .fetch_optional(&self.pool),
            )
            .map_err(db("claim a unit"))?;
        let Some(row) = row else { return Ok(None) };
        let lease = lease_of(&row).map_err(db("read a claimed unit"))?;
        tracing::info!(
            node = %self.node,
            unit = lease.unit,
            token = lease.token,
            tenant = %lease.tenant,
            agent = %lease.agent,
            checkpoint = lease.checkpoint,
            up_to = lease.up_to,
            claims = lease.claims,
            "claimed a unit"
        );
        Ok(Some(lease))
    }

    /// Marks the unit done, if this node still holds it.
    pub fn finish(&self, lease: &Lease) -> Result<(), ClusterError> {
        let done = self.with_retry("finish a unit", || {
            sqlx::query(
                // The state stays: the unit after this one starts from it.
                "UPDATE work_units SET done_at = clock_timestamp(), holder = NULL, expires_at = NULL
                 WHERE id = $1 AND token = $2 AND done_at IS NULL",
            )
            .bind(lease.unit)
            .bind(lease.token)
            .execute(&self.pool)
        })?;
        if done.rows_affected() == 0 {
            return Err(self.fenced(lease));
        }
        Ok(())
    }

    /// Gives the unit back after its run failed with `error`: another claim
    /// (here or on another node) tries it again from its checkpoint, until
    /// it has failed `max_failures` times and is marked failed.
    pub fn give_up(&self, lease: &Lease, error: &str, max_failures: i32) -> Result<(), ClusterError> {
        self.with_retry("give a unit back", || {
            sqlx::query(
                "UPDATE work_units SET holder = NULL, expires_at = NULL, failures = failures + 1, last_error = $3,
                     failed_at = CASE WHEN failures + 1 >= $4 THEN clock_timestamp() END
                 WHERE id = $1 AND token = $2 AND done_at IS NULL",
            )
            .bind(lease.unit)
            .bind(lease.token)
            .bind(error)
            .bind(max_failures)
            .execute(&self.pool)
        })?;
        Ok(())
    }

    /// Gives a following unit back without counting a failure, for a node
    /// with more than its share (another takes it from its checkpoint).
    pub fn release(&self, lease: &Lease) -> Result<(), ClusterError> {
        self.with_retry("give a unit back", || {
            sqlx::query("UPDATE work_units SET holder = NULL, expires_at = NULL WHERE id = $1 AND token = $2")
                .bind(lease.unit)
                .bind(lease.token)
                .execute(&self.pool)
        })?;
        Ok(())
    }

    /// How many following units this node holds, and its fair share of
    /// them: all of them spread over the nodes alive now, rounded up.
    pub fn follow_share(&self) -> Result<(u64, u64), ClusterError> {
        let row = self.with_retry("count following units", || {
            sqlx::query(
                "SELECT
                    (SELECT COUNT(*) FROM work_units WHERE up_to = $2 AND done_at IS NULL AND failed_at IS NULL),
                    (SELECT COUNT(*) FROM nodes
                       WHERE heartbeat_at + lease_ttl_ms * INTERVAL '1 millisecond' > clock_timestamp()),
                    (SELECT COUNT(*) FROM work_units
                       WHERE up_to = $2 AND holder = $1 AND expires_at > clock_timestamp() AND done_at IS NULL)",
            )
            .bind(&self.node)
            .bind(FOLLOWS_ID)
            .fetch_one(&self.pool)
        })?;
        let read =
            || -> Result<(i64, i64, i64), sqlx::Error> { Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)) };
        let (following, alive, mine) = read().map_err(db("count following units"))?;
        let share = following.unsigned_abs().div_ceil(alive.unsigned_abs().max(1));
        Ok((mine.unsigned_abs(), share))
    }

    /// Makes a failed unit claimable again, from its checkpoint, with its
    /// failures counted from zero (after the cause was fixed). Returns
    /// whether `unit` was a failed unit.
    pub fn retry_unit(&self, unit: i64) -> Result<bool, ClusterError> {
        let reopened = self.with_retry("try a unit again", || {
            sqlx::query(
                "UPDATE work_units SET failed_at = NULL, failures = 0, holder = NULL, expires_at = NULL
                 WHERE id = $1 AND failed_at IS NOT NULL",
            )
            .bind(unit)
            .execute(&self.pool)
        })?;
        Ok(reopened.rows_affected() > 0)
    }

    /// The error for a lease that is no longer this node's.
    fn fenced(&self, lease: &Lease) -> ClusterError {
        let current = self
            .runtime
            .block_on(
                sqlx::query("SELECT token FROM work_units WHERE id = $1").bind(lease.unit).fetch_optional(&self.pool),
            )
            .ok()
            .flatten()
            .and_then(|row| row.try_get::<i64, _>(0).ok())
            .unwrap_or(-1);
        ClusterError::Fenced { unit: lease.unit, held: lease.token, current }
    }

    /// The nodes, with their heartbeats and the leases they hold.
    pub fn nodes(&self) -> Result<Vec<NodeView>, ClusterError> {
        let rows = self.with_retry("list nodes", || {
            sqlx::query(
                "SELECT n.name, n.host, n.pid,
                        (EXTRACT(EPOCH FROM clock_timestamp() - n.heartbeat_at) * 1000)::BIGINT,
                        n.lease_ttl_ms,
                        COALESCE(array_agg(u.id ORDER BY u.id) FILTER (WHERE u.id IS NOT NULL), '{}')
                 FROM nodes n
                 LEFT JOIN work_units u ON u.holder = n.name AND u.done_at IS NULL AND u.expires_at > clock_timestamp()
                 GROUP BY n.name ORDER BY n.name",
            )
            .fetch_all(&self.pool)
        })?;
        rows.iter()
            .map(|r| {
                let heartbeat_age_ms: i64 = r.try_get(3)?;
                let lease_ttl_ms: i64 = r.try_get(4)?;
                Ok(NodeView {
                    name: r.try_get(0)?,
                    host: r.try_get(1)?,
                    pid: r.try_get(2)?,
                    heartbeat_age_ms,
                    lease_ttl_ms,
                    alive: heartbeat_age_ms <= lease_ttl_ms,
                    leases: r.try_get(5)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(db("read nodes"))
    }

    /// How many units each (tenant, agent) has in each status (`open`,
    /// `held`, `done`, `failed`), for `/metrics`: a failed unit waits for
    /// `mcp backfill retry`, and an operator's alert should say so.
    pub fn unit_counts(&self) -> Result<Vec<UnitCount>, ClusterError> {
        let rows = self.with_retry("count units", || {
            sqlx::query(concat!(
                "SELECT tenant, agent, ",
                unit_status!(),
                ", COUNT(*) FROM work_units GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
            ))
            .fetch_all(&self.pool)
        })?;
        rows.iter()
            .map(|r| {
                Ok(UnitCount {
                    tenant: r.try_get(0)?,
                    agent: r.try_get(1)?,
                    status: r.try_get(2)?,
                    units: r.try_get(3)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(db("count units"))
    }

    /// Every unit, in claim order.
    pub fn units(&self) -> Result<Vec<UnitView>, ClusterError> {
        let rows = self.with_retry("list units", || {
            sqlx::query(concat!(
                "SELECT id, tenant, agent, log_type, start_after, up_to, checkpoint, ",
                unit_status!(),
                ", holder, token, claims, failures, last_error, anomalies FROM work_units ORDER BY id"
            ))
            .fetch_all(&self.pool)
        })?;
        rows.iter()
            .map(|r| {
                Ok(UnitView {
                    id: r.try_get(0)?,
                    tenant: r.try_get(1)?,
                    agent: r.try_get(2)?,
                    log_type: r.try_get(3)?,
                    start_after: r.try_get(4)?,
                    up_to: r.try_get(5)?,
                    checkpoint: r.try_get(6)?,
                    status: r.try_get(7)?,
                    holder: r.try_get(8)?,
                    token: r.try_get(9)?,
                    claims: r.try_get(10)?,
                    failures: r.try_get(11)?,
                    last_error: r.try_get(12)?,
                    anomalies: r.try_get(13)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(db("read units"))
    }

    /// `(agent, log id, label)` of every anomaly of `tenant` the nodes
    /// stored, in that order: what a comparison with another run needs.
    pub fn anomaly_keys(&self, tenant: &str) -> Result<Vec<(String, u64, String)>, ClusterError> {
        let rows = self.with_retry("list anomalies", || {
            sqlx::query("SELECT agent, log_id, label FROM anomalies WHERE tenant = $1 ORDER BY agent, log_id, label")
                .bind(tenant)
                .fetch_all(&self.pool)
        })?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get::<i64, _>(1)?.unsigned_abs(), r.try_get(2)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(db("read anomalies"))
    }

    /// The newest id of `tenant`'s rows of `log_type`, 0 when none.
    pub fn last_row(&self, tenant: &str, log_type: &str) -> Result<u64, ClusterError> {
        let last: Option<i64> = self.with_retry("find the last row", || async {
            sqlx::query("SELECT MAX(id) FROM logs WHERE tenant = $1 AND log_type = $2")
                .bind(tenant)
                .bind(log_type)
                .fetch_one(&self.pool)
                .await?
                .try_get(0)
        })?;
        Ok(last.map_or(0, i64::unsigned_abs))
    }

    /// How many of `tenant`'s rows the following units have not reached.
    pub fn follow_backlog(&self, tenant: &str) -> Result<i64, ClusterError> {
        self.with_retry("measure the backlog", || async {
            sqlx::query(
                "SELECT COALESCE(SUM((SELECT COUNT(*) FROM logs l
                     WHERE l.tenant = u.tenant AND l.log_type = u.log_type AND l.id > u.checkpoint)), 0)::BIGINT
                 FROM work_units u WHERE u.tenant = $1 AND u.up_to = $2",
            )
            .bind(tenant)
            .bind(FOLLOWS_ID)
            .fetch_one(&self.pool)
            .await?
            .try_get(0)
        })
    }

    /// The store a run of `lease`'s unit commits to.
    pub fn store<'a>(&'a self, lease: &'a Lease) -> LeasedStore<'a> {
        LeasedStore::new(self, lease)
    }
}

/// What one statement's snapshot says of `tenant`'s rows of `log_type`:
/// the oldest transaction still going (`xmin`), the first not yet begun
/// (`xmax`), and the newest id it sees. Ids come from one sequence, so a
/// row with a lower id that it does not see belongs to a transaction
/// older than `xmax`: once every such transaction ended (the current
/// `xmin` reached this `xmax`), every row up to that id is final.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Horizon {
    pub xmin: i64,
    pub xmax: i64,
    pub newest: i64,
}

pub(crate) async fn horizon<'c, E>(executor: E, tenant: &str, log_type: &str) -> Result<Horizon, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = sqlx::Postgres>,
{
    let row = sqlx::query(
        "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint,
                pg_snapshot_xmax(pg_current_snapshot())::text::bigint,
                (SELECT COALESCE(MAX(id), 0) FROM logs WHERE tenant = $1 AND log_type = $2)",
    )
    .bind(tenant)
    .bind(log_type)
    .fetch_one(executor)
    .await?;
    Ok(Horizon { xmin: row.try_get(0)?, xmax: row.try_get(1)?, newest: row.try_get(2)? })
}

fn lease_of(row: &sqlx::postgres::PgRow) -> Result<Lease, sqlx::Error> {
    Ok(Lease {
        unit: row.try_get(0)?,
        token: row.try_get(1)?,
        tenant: row.try_get(2)?,
        agent: row.try_get(3)?,
        log_type: row.try_get(4)?,
        start_after: row.try_get::<i64, _>(5)?.unsigned_abs(),
        up_to: row.try_get::<i64, _>(6)?.unsigned_abs(),
        checkpoint: row.try_get::<i64, _>(7)?.unsigned_abs(),
        claims: row.try_get(8)?,
    })
}

/// The machine's name, for `mcp nodes list`.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".into())
}
