//! The cache in Redis, through the redis crate's connection manager, which
//! reconnects after a dropped connection. Every key carries the configured
//! prefix, so deployments (and tests) sharing a server stay apart. The host
//! is synchronous where this is used, so the cache owns a one-worker tokio
//! runtime and blocks on it, as the PostgreSQL source does.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{CacheError, JOB_TTL, MAX_JOBS_PER_TENANT};
use crate::retry::{RetryPolicy, retry};

#[derive(Debug)]
pub struct RedisCache {
    runtime: tokio::runtime::Runtime,
    manager: ConnectionManager,
    url: String,
    prefix: String,
    retry: RetryPolicy,
    retries: AtomicU64,
}

/// Failures that may pass on another try: the connection refused, dropped
/// or timed out. Anything else (a wrong type under a key, a refused
/// command) fails at once.
fn transient(error: &redis::RedisError) -> bool {
    error.is_io_error() || error.is_connection_refusal() || error.is_timeout() || error.is_connection_dropped()
}

impl RedisCache {
    /// A lazily connecting cache on `url` (`redis://host:port/db`).
    pub fn connect(url: &str, prefix: &str, retry: RetryPolicy) -> Result<Self, CacheError> {
        let fail = |source: Box<dyn std::error::Error + Send + Sync>| CacheError::Redis {
            url: crate::redact::url(url),
            context: String::new(),
            source,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("mcp-redis")
            .enable_all()
            .build()
            .map_err(|e| fail(e.into()))?;
        let client = redis::Client::open(url).map_err(|e| fail(e.into()))?;
        // Our own retry loop does the backing off (and counts it); the
        // manager tries each reconnection once, briefly.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(1)
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(2)));
        let manager = {
            let _entered = runtime.enter();
            ConnectionManager::new_lazy_with_config(client, config).map_err(|e| fail(e.into()))?
        };
        Ok(RedisCache {
            runtime,
            manager,
            url: url.to_string(),
            prefix: prefix.to_string(),
            retry,
            retries: AtomicU64::new(0),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Runs a command, retrying it while its failures are transient.
    fn call<T, F, Fut>(&self, what: &str, op: F) -> Result<T, CacheError>
    where
        F: FnMut(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        self.call_with(&self.retry, what, op)
    }

    fn call_with<T, F, Fut>(&self, policy: &RetryPolicy, what: &str, mut op: F) -> Result<T, CacheError>
    where
        F: FnMut(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let manager = &self.manager;
        self.runtime.block_on(retry(policy, &self.retries, "Redis", what, transient, || op(manager.clone()))).map_err(
            |gave_up| CacheError::Redis {
                url: crate::redact::url(&self.url),
                context: format!("{what} failed after {} attempts: ", gave_up.attempts),
                source: gave_up.error.into(),
            },
        )
    }

    /// Whether the server answers.
    pub fn ping(&self) -> Result<(), CacheError> {
        self.call("PING", |mut conn| async move { redis::cmd("PING").query_async::<String>(&mut conn).await })
            .map(|_| ())
    }

    /// Whether the server answers now, asked once: for a readiness probe,
    /// which must answer quickly either way.
    pub fn ping_once(&self) -> Result<(), CacheError> {
        let once = RetryPolicy { max_attempts: 1, ..self.retry };
        self.call_with(
            &once,
            "PING",
            |mut conn| async move { redis::cmd("PING").query_async::<String>(&mut conn).await },
        )
        .map(|_| ())
    }

    /// The server's id of the connection in use (`CLIENT ID`), which an
    /// operator or a fault test can `CLIENT KILL`.
    pub fn client_id(&self) -> Result<i64, CacheError> {
        self.call("CLIENT ID", |mut conn| async move { redis::cmd("CLIENT").arg("ID").query_async(&mut conn).await })
    }

    pub(super) fn get(&self, key: &str) -> Result<Option<String>, CacheError> {
        let key = self.key(key);
        self.call("GET", |mut conn| {
            let key = key.clone();
            async move { conn.get(key).await }
        })
    }

    pub(super) fn put(&self, key: &str, value: &str, ttl: Duration) -> Result<(), CacheError> {
        let key = self.key(key);
        let seconds = ttl.as_secs().max(1);
        self.call("SET", |mut conn| {
            let key = key.clone();
            async move { conn.set_ex(key, value, seconds).await }
        })
    }

    /// Writes a job's status and indexes it by start time, in one
    /// transaction so that a listed job always has a status.
    pub(super) fn put_job(
        &self,
        key: &str,
        index: &str,
        id: &str,
        json: &str,
        started_ms: i64,
    ) -> Result<(), CacheError> {
        let (key, index) = (self.key(key), self.key(index));
        let seconds = JOB_TTL.as_secs();
        self.call("store job status", |mut conn| {
            let mut pipe = redis::pipe();
            pipe.atomic()
                .set_ex(&key, json, seconds)
                .ignore()
                .zadd(&index, id, started_ms)
                .ignore()
                // The newest jobs only: the index of a busy tenant would
                // otherwise grow for as long as its jobs keep coming.
                .zremrangebyrank(&index, 0, -(MAX_JOBS_PER_TENANT as isize) - 1)
                .ignore()
                .expire(&index, i64::try_from(seconds).unwrap_or(i64::MAX))
                .ignore();
            async move { pipe.query_async::<()>(&mut conn).await }
        })
    }

    pub(super) fn get_many(&self, keys: &[String]) -> Result<Vec<Option<String>>, CacheError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = keys.iter().map(|k| self.key(k)).collect();
        self.call("MGET", |mut conn| {
            let keys = keys.clone();
            async move { redis::cmd("MGET").arg(keys).query_async(&mut conn).await }
        })
    }

    pub(super) fn job_ids(&self, index: &str) -> Result<Vec<String>, CacheError> {
        let index = self.key(index);
        self.call("list jobs", |mut conn| {
            let index = index.clone();
            async move { conn.zrevrange(index, 0, -1).await }
        })
    }

    /// Deletes every key under this cache's prefix (tests use one prefix each).
    pub fn clear_prefix(&self) -> Result<u64, CacheError> {
        let pattern = format!("{}*", self.prefix);
        self.call("clear prefix", |mut conn| {
            let pattern = pattern.clone();
            async move {
                let keys: Vec<String> = {
                    let mut iter = conn.scan_match::<_, String>(&pattern).await?;
                    let mut keys = Vec::new();
                    while let Some(key) = iter.next_item().await {
                        keys.push(key?);
                    }
                    keys
                };
                if keys.is_empty() {
                    return Ok(0);
                }
                conn.del(keys).await
            }
        })
    }
}
