//! How transient failures of a service (PostgreSQL, Redis) are retried: one
//! policy and one loop for both, so backoff, jitter and counting agree.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

/// Exponential backoff from `base_delay_ms`, capped at `max_delay_ms`, with
/// full jitter, for at most `max_attempts` attempts in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_delay_ms: u64,
    pub max_delay_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { max_attempts: 6, base_delay_ms: 50, max_delay_ms: 2_000 }
    }
}

impl RetryPolicy {
    /// The wait before retry number `attempt` (from 1): a random time up to
    /// the exponential bound, so that many clients do not retry in step.
    pub fn delay(&self, attempt: u32) -> std::time::Duration {
        use rand::Rng;
        let bound = self.base_delay_ms.saturating_mul(1 << attempt.min(20)).min(self.max_delay_ms).max(1);
        std::time::Duration::from_millis(rand::rng().random_range(bound / 2..=bound))
    }
}

/// A call that failed for good: its last error, how many attempts it took,
/// and whether that error was transient (so the attempts ran out).
#[derive(Debug)]
pub struct GaveUp<E> {
    pub error: E,
    pub attempts: u32,
    pub transient: bool,
}

/// Runs `op` until it succeeds, fails with an error that `transient` says
/// will not pass, or `policy` runs out of attempts; each retry is counted in
/// `retries` and logged with `service` and `what`.
pub async fn retry<T, E, F, Fut>(
    policy: &RetryPolicy,
    retries: &AtomicU64,
    service: &str,
    what: &str,
    transient: impl Fn(&E) -> bool,
    mut op: F,
) -> Result<T, GaveUp<E>>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempt = 1;
    loop {
        match op().await {
            Ok(value) => return Ok(value),
            Err(error) if transient(&error) && attempt < policy.max_attempts => {
                let delay = policy.delay(attempt);
                retries.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(service, what, attempt, ?delay, "transient failure, retrying: {error}");
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            Err(error) => {
                let transient = transient(&error);
                return Err(GaveUp { error, attempts: attempt, transient });
            }
        }
    }
}
