//! The in-process fallback of the cache, for the embedded default: the same
//! operations over a map, with expiry, gone when the process ends.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{CacheError, JOB_TTL, MAX_JOBS_PER_TENANT};

/// A job in an index: (start time, id, status key).
type Indexed = (i64, String, String);

#[derive(Debug, Default)]
pub struct LocalCache {
    values: Mutex<HashMap<String, (String, Instant)>>,
    /// Job ids (and their status keys) per tenant index, by start time.
    indexes: Mutex<HashMap<String, BTreeSet<Indexed>>>,
}

impl LocalCache {
    pub(super) fn get(&self, key: &str) -> Result<Option<String>, CacheError> {
        let mut values = self.values.lock().map_err(|_| CacheError::Poisoned)?;
        match values.get(key) {
            Some((_, expires)) if *expires <= Instant::now() => {
                values.remove(key);
                Ok(None)
            }
            Some((value, _)) => Ok(Some(value.clone())),
            None => Ok(None),
        }
    }

    pub(super) fn put(&self, key: &str, value: &str, ttl: Duration) -> Result<(), CacheError> {
        let mut values = self.values.lock().map_err(|_| CacheError::Poisoned)?;
        values.insert(key.to_string(), (value.to_string(), Instant::now() + ttl));
        Ok(())
    }

    pub(super) fn put_job(
        &self,
        key: &str,
        index: &str,
        id: &str,
        json: &str,
        started_ms: i64,
    ) -> Result<(), CacheError> {
        self.put(key, json, JOB_TTL)?;
        let mut indexes = self.indexes.lock().map_err(|_| CacheError::Poisoned)?;
        let ids = indexes.entry(index.to_string()).or_default();
        ids.insert((started_ms, id.to_string(), key.to_string()));
        let mut dropped = Vec::new();
        while ids.len() > MAX_JOBS_PER_TENANT {
            dropped.extend(ids.pop_first().map(|(_, _, key)| key));
        }
        drop(indexes);
        let mut values = self.values.lock().map_err(|_| CacheError::Poisoned)?;
        for key in dropped {
            values.remove(&key);
        }
        Ok(())
    }

    pub(super) fn get_many(&self, keys: &[String]) -> Result<Vec<Option<String>>, CacheError> {
        keys.iter().map(|key| self.get(key)).collect()
    }

    pub(super) fn job_ids(&self, index: &str) -> Result<Vec<String>, CacheError> {
        let indexes = self.indexes.lock().map_err(|_| CacheError::Poisoned)?;
        Ok(indexes.get(index).map(|ids| ids.iter().rev().map(|(_, id, _)| id.clone()).collect()).unwrap_or_default())
    }
}
