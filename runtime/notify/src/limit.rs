//! Each channel's rate limit: a token bucket holding a minute's worth of
//! messages, refilled evenly, so a storm sends one minute's allowance at
//! once and then one message per interval. Kept in the delivering
//! process when the outbox is the node's embedded store; with the outbox on
//! PostgreSQL every node takes from the same bucket there
//! (`SharedStore::take_rate_token`).

use std::collections::HashMap;
use std::sync::Mutex;

/// Tokens are counted in 1/60,000ths, so a millisecond refills a whole
/// number of them (`per_minute`) and nothing is lost to rounding.
const UNITS: i64 = 60_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    units: i64,
    at_ms: i64,
}

/// The buckets of every channel a worker has sent on.
#[derive(Debug, Default)]
pub struct RateLimits {
    buckets: Mutex<HashMap<(String, String), Bucket>>,
}

impl RateLimits {
    /// Takes a token of `tenant`'s `channel` at `now_ms`: `Ok` when there
    /// was one, else `Err(ms)`, the time until there will be.
    pub fn take(&self, tenant: &str, channel: &str, per_minute: i64, now_ms: i64) -> Result<(), i64> {
        let per_minute = per_minute.max(1);
        let capacity = per_minute.saturating_mul(UNITS);
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let bucket = buckets
            .entry((tenant.to_string(), channel.to_string()))
            .or_insert(Bucket { units: capacity, at_ms: now_ms });
        let refill = (now_ms - bucket.at_ms).max(0).saturating_mul(per_minute);
        bucket.units = bucket.units.saturating_add(refill).min(capacity);
        bucket.at_ms = now_ms.max(bucket.at_ms);
        if bucket.units >= UNITS {
            bucket.units -= UNITS;
            Ok(())
        } else {
            let missing = UNITS - bucket.units;
            Err((missing + per_minute - 1) / per_minute)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minutes_allowance_then_one_per_interval() {
        let limits = RateLimits::default();
        for _ in 0..6 {
            assert_eq!(limits.take("a", "slack", 6, 0), Ok(()));
        }
        assert_eq!(limits.take("a", "slack", 6, 0), Err(10_000), "one token per ten seconds");
        assert_eq!(limits.take("b", "slack", 6, 0), Ok(()), "another tenant's bucket");
        assert_eq!(limits.take("a", "slack", 6, 9_999), Err(1));
        assert_eq!(limits.take("a", "slack", 6, 10_000), Ok(()));
    }
}
