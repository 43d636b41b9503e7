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

/// Jobs kept in each tenant's index, newest first; older ones drop out of
/// listings (and their status expires with [`JOB_TTL`]).
pub const MAX_JOBS_PER_TENANT: usize = 1000;

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
    /// Accepted and waiting for its turn in the run queue.
    Queued,
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
    /// When a failed or cancelled run stopped: the log id after which the
    /// batch it stopped on begins (running again resumes from its
    /// checkpoint, at or before it).
    #[serde(default)]
    pub stopped_after_id: Option<u64>,
    /// The agent a run is of.
    #[serde(default)]
    pub agent: Option<String>,
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

    /// Whether the store answers: Redis's PING (retried as configured),
    /// always for the in-process store.
    pub fn ping(&self) -> Result<(), CacheError> {
        match self {
            SharedCache::Redis(redis) => redis.ping(),
            SharedCache::Local(_) => Ok(()),
        }
    }

    /// One line for start-up: where job status lives and whether it is reachable.
    pub fn describe(&self) -> String {
        match self {
            SharedCache::Redis(redis) => match redis.ping() {
                Ok(()) => format!(
                    "job status and cache: Redis at {} (key prefix '{}')",
                    crate::redact::url(redis.url()),
                    redis.prefix()
                ),
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

    /// The ids of `tenant`'s jobs still kept, newest first (at most
    /// [`MAX_JOBS_PER_TENANT`]).
    pub fn job_ids(&self, tenant: &str) -> Result<Vec<String>, CacheError> {
        match self {
            SharedCache::Redis(redis) => redis.job_ids(&job_index(tenant)),
            SharedCache::Local(local) => local.job_ids(&job_index(tenant)),
        }
    }

    /// The statuses of `ids` of `tenant`, in one round trip; an expired one is left out.
    pub fn jobs_by_id(&self, tenant: &str, ids: &[String]) -> Result<Vec<JobStatus>, CacheError> {
        let keys: Vec<String> = ids.iter().map(|id| job_key(tenant, id)).collect();
        let texts = match self {
            SharedCache::Redis(redis) => redis.get_many(&keys)?,
            SharedCache::Local(local) => local.get_many(&keys)?,
        };
        keys.into_iter()
            .zip(texts)
            .filter_map(|(key, text)| text.map(|text| (key, text)))
            .map(|(key, text)| serde_json::from_str(&text).map_err(|source| CacheError::Corrupt { key, source }))
            .collect()
    }

    /// The jobs of `tenant` still kept, newest first.
    pub fn jobs(&self, tenant: &str) -> Result<Vec<JobStatus>, CacheError> {
        self.jobs_by_id(tenant, &self.job_ids(tenant)?)
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
