//! What the host keeps beside its stores: the status of jobs (runs now,
//! exports later) and cached lookups. It lives in Redis when `redis_url` is
//! set, so that every process of a deployment sees the same jobs, and in
//! this process otherwise. It is never the record: anomalies and checkpoints
//! are in the SQLite store, so losing Redis loses progress reports, not data.

mod local;
mod redis_backend;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use local::LocalCache;
pub use redis_backend::RedisCache;

use crate::retry::RetryPolicy;

/// How long a job's status is kept after its last update.
pub const JOB_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Errors of the cache. Callers treat them as warnings: nothing that must
/// not be lost is kept here.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// `context` says what failed (and after how many attempts), ending in ": ".
    #[error("Redis at {url}: {context}{source}")]
    Redis { url: String, context: String, source: Box<dyn std::error::Error + Send + Sync> },
    #[error("cached value under {key} is not readable: {source}")]
    Corrupt { key: String, source: serde_json::Error },
    #[error("in-process cache lock poisoned")]
    Poisoned,
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Running,
    Completed,
    Failed,
    Cancelled,
}

/// The status of one job, as the cache holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobStatus {
    pub id: String,
    pub tenant: String,
    /// "run", later "export".
    pub kind: String,
    pub state: JobState,
    /// What the job is over, for people (agent, log type, source).
    pub subject: String,
    /// Counters by name: entries, anomalies, quarantined, retries, faults.
    pub counters: BTreeMap<String, u64>,
    /// Why it failed, when it did.
    pub error: Option<String>,
    pub started_ms: i64,
    pub updated_ms: i64,
}

/// The cache: Redis or this process.
#[derive(Debug)]
pub enum SharedCache {
    Redis(RedisCache),
    Local(LocalCache),
}

impl SharedCache {
    /// Redis at `url` when given, else the in-process fallback. Connecting
    /// is lazy: an unreachable Redis is found (and retried) on first use,
    /// and later uses reconnect on their own once it is back.
    pub fn open(url: Option<&str>, prefix: &str, retry: RetryPolicy) -> Result<Self, CacheError> {
        match url {
            Some(url) => Ok(SharedCache::Redis(RedisCache::connect(url, prefix, retry)?)),
            None => Ok(SharedCache::Local(LocalCache::default())),
        }
    }

    /// One line for start-up: where job status lives and whether it is reachable.
    pub fn describe(&self) -> String {
        match self {
            SharedCache::Redis(redis) => match redis.ping() {
                Ok(()) => format!("job status and cache: Redis at {} (key prefix '{}')", redis.url(), redis.prefix()),
                Err(e) => format!(
                    "job status and cache: Redis configured but unreachable ({e}); runs go on, status writes are retried and then skipped"
                ),
            },
            SharedCache::Local(_) => {
                "job status and cache: in-process (no redis_url set); other processes cannot see this one's jobs".into()
            }
        }
    }

    /// Transient Redis failures retried so far.
    pub fn retries(&self) -> u64 {
        match self {
            SharedCache::Redis(redis) => redis.retries(),
            SharedCache::Local(_) => 0,
        }
    }

    /// Records a job's status and lists it under its tenant.
    pub fn put_job(&self, status: &JobStatus) -> Result<(), CacheError> {
        let key = job_key(&status.tenant, &status.id);
        let json = serde_json::to_string(status).map_err(|source| CacheError::Corrupt { key: key.clone(), source })?;
        match self {
            SharedCache::Redis(redis) => {
                redis.put_job(&key, &job_index(&status.tenant), &status.id, &json, status.started_ms)
            }
            SharedCache::Local(local) => {
                local.put_job(&key, &job_index(&status.tenant), &status.id, &json, status.started_ms)
            }
        }
    }

    /// One job of `tenant`; `None` for an unknown id or another tenant's.
    pub fn job(&self, tenant: &str, id: &str) -> Result<Option<JobStatus>, CacheError> {
        let key = job_key(tenant, id);
        let text = self.get(&key)?;
        text.map(|text| serde_json::from_str(&text).map_err(|source| CacheError::Corrupt { key, source })).transpose()
    }

    /// The jobs of `tenant` still kept, newest first.
    pub fn jobs(&self, tenant: &str) -> Result<Vec<JobStatus>, CacheError> {
        let ids = match self {
            SharedCache::Redis(redis) => redis.job_ids(&job_index(tenant))?,
            SharedCache::Local(local) => local.job_ids(&job_index(tenant))?,
        };
        let mut jobs = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(job) = self.job(tenant, &id)? {
                jobs.push(job);
            }
        }
        Ok(jobs)
    }

    /// A cached value (under the configured prefix).
    pub fn get(&self, key: &str) -> Result<Option<String>, CacheError> {
        match self {
            SharedCache::Redis(redis) => redis.get(key),
            SharedCache::Local(local) => local.get(key),
        }
    }

    /// Caches a value for `ttl`.
    pub fn put(&self, key: &str, value: &str, ttl: Duration) -> Result<(), CacheError> {
        match self {
            SharedCache::Redis(redis) => redis.put(key, value, ttl),
            SharedCache::Local(local) => local.put(key, value, ttl),
        }
    }
}

fn job_key(tenant: &str, id: &str) -> String {
    format!("job:{tenant}:{id}")
}

fn job_index(tenant: &str) -> String {
    format!("jobs:{tenant}")
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
