//! The delivery worker: claims due outbox rows, sends each on its channel
//! within the channel's rate limit, and records the attempt: delivered,
//! due again after an exponential backoff with jitter, or dead after the
//! last attempt allowed. A crash mid-send leaves the row claimed until its
//! lease runs out; it is then sent again with the same delivery id.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcp_engine::config::{McpConfig, NotificationsConfig};
use mcp_storage::control::{ControlError, ControlStore};
use mcp_storage::jobstatus::now_ms;
use mcp_storage::notify::Claimed;
use mcp_storage::notify::outbox::{AfterAttempt, Attempt};
use mcp_storage::store::{AnomalyStore, StoreError};

use crate::limit::RateLimits;
use crate::message::{AnomalyView, Notice, NoticeKind};
use crate::secret::{SecretError, SecretKey};
use crate::send::{Delivery, Failure, Sender};
use crate::spec::ChannelSpec;

/// Errors of the worker itself (not of a delivery, which is recorded).
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("cannot build the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    #[error("no channel '{0}'")]
    NoChannel(String),
    #[error("channel '{channel}' has unreadable settings: {message}")]
    BadChannel { channel: String, message: String },
    #[error("a delivery task stopped: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// How long a paused (disabled) channel's notifications wait before they
/// are looked at again.
const PAUSED_RETRY_MS: i64 = 60_000;

/// Counters per (tenant, channel), since the process started.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ChannelCounts {
    pub delivered: u64,
    pub retried: u64,
    pub dead_lettered: u64,
    /// Anomalies folded into delivered notifications.
    pub folded: u64,
    pub rate_limited: u64,
}

/// The worker's counters, for /metrics.
#[derive(Debug, Default)]
pub struct DeliveryMetrics {
    counts: Mutex<BTreeMap<(String, String), ChannelCounts>>,
}

impl DeliveryMetrics {
    fn add(&self, tenant: &str, channel: &str, f: impl FnOnce(&mut ChannelCounts)) {
        let mut counts = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(counts.entry((tenant.to_string(), channel.to_string())).or_default());
    }

    /// The counters of every channel, or of one tenant's.
    pub fn snapshot(&self, tenant: Option<&str>) -> Vec<((String, String), ChannelCounts)> {
        let counts = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        counts.iter().filter(|((t, _), _)| tenant.is_none_or(|want| t == want)).map(|(k, v)| (k.clone(), *v)).collect()
    }
}

/// The delay before attempt `attempts + 1`: `base` doubled per attempt
/// made, at most `max`, and from half to all of that at random, so
/// notifications that failed together do not retry together.
pub fn backoff_ms(config: &NotificationsConfig, attempts: u32) -> i64 {
    let doubled = config.backoff_base_ms.saturating_mul(1u64 << attempts.saturating_sub(1).min(30));
    let full = doubled.min(config.backoff_max_ms).max(1);
    let jittered = full / 2 + rand::random_range(0..=full / 2);
    i64::try_from(jittered).unwrap_or(i64::MAX)
}

/// Sends what the outbox holds.
#[derive(Debug)]
pub struct Deliverer {
    config: NotificationsConfig,
    sender: Sender,
    control: ControlStore,
    store: Mutex<AnomalyStore>,
    limits: RateLimits,
    metrics: DeliveryMetrics,
    link_base: String,
}

impl Deliverer {
    /// A worker over `config`'s control store and anomaly store, on
    /// connections of its own.
    pub fn open(config: &McpConfig) -> Result<Arc<Deliverer>, NotifyError> {
        Deliverer::open_at(config, &config.control_db(), &config.anomalies_db())
    }

    fn open_at(config: &McpConfig, control_db: &Path, anomalies_db: &Path) -> Result<Arc<Deliverer>, NotifyError> {
        let settings = config.notifications.clone();
        let link_base = settings
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", config.listen))
            .trim_end_matches('/')
            .to_string();
        Ok(Arc::new(Deliverer {
            sender: Sender::new(&settings, SecretKey::load(&settings)?)?,
            config: settings,
            control: ControlStore::open(control_db)?,
            store: Mutex::new(AnomalyStore::open(anomalies_db)?),
            limits: RateLimits::default(),
            metrics: DeliveryMetrics::default(),
            link_base,
        }))
    }

    pub fn metrics(&self) -> &DeliveryMetrics {
        &self.metrics
    }

    /// A claim outlives the slowest send (an email may take three
    /// timeouts), so another worker does not take a row still in flight.
    fn lease_ms(&self) -> i64 {
        i64::try_from(self.config.timeout_ms.saturating_mul(3).saturating_add(5_000)).unwrap_or(i64::MAX)
    }

    fn with_store<T>(&self, f: impl FnOnce(&mut AnomalyStore) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let mut store = self.store.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut store)
    }

    /// Delivers until `stop` is set, sleeping `poll_ms` when nothing is due.
    pub async fn run(self: Arc<Self>, stop: Arc<AtomicBool>) {
        let idle = Duration::from_millis(self.config.poll_ms.max(10));
        while !stop.load(Ordering::Relaxed) {
            match self.round().await {
                Ok(0) => tokio::time::sleep(idle).await,
                Ok(_) => {}
                Err(e) => {
                    tracing::error!("notification delivery: {e}");
                    tokio::time::sleep(idle).await;
                }
            }
        }
    }

    /// Claims what is due (up to `concurrency` rows), sends them at once,
    /// and records each; returns how many were claimed.
    pub async fn round(self: &Arc<Self>) -> Result<usize, NotifyError> {
        let this = self.clone();
        let limit = u32::try_from(self.config.concurrency.max(1)).unwrap_or(u32::MAX);
        let claimed = tokio::task::spawn_blocking(move || {
            this.with_store(|store| store.claim_notifications(now_ms(), this.lease_ms(), limit))
        })
        .await??;
        let count = claimed.len();
        let mut sending = tokio::task::JoinSet::new();
        for entry in claimed {
            let this = self.clone();
            sending.spawn(async move { this.deliver(entry).await });
        }
        while let Some(done) = sending.join_next().await {
            done??;
        }
        Ok(count)
    }

    /// Sends until nothing is due now; returns how many rows were handled.
    pub async fn drain(self: &Arc<Self>) -> Result<usize, NotifyError> {
        let mut total = 0;
        loop {
            match self.round().await? {
                0 => return Ok(total),
                n => total += n,
            }
        }
    }

    async fn deliver(self: Arc<Self>, entry: Claimed) -> Result<(), NotifyError> {
        let this = self.clone();
        let (tenant, channel_name, anomaly_id) = (entry.tenant.clone(), entry.channel.clone(), entry.anomaly_id);
        let (channel, anomaly) = tokio::task::spawn_blocking(move || -> Result<_, NotifyError> {
            let channel = this.control.notify_channel(&tenant, &channel_name)?;
            let anomaly = this.with_store(|store| store.get(&tenant, anomaly_id))?;
            Ok((channel, anomaly))
        })
        .await??;
        let now = now_ms();
        let Some(channel) = channel else {
            return self
                .finish(&entry, Err(give_up(format!("channel '{}' no longer exists", entry.channel))), true)
                .await;
        };
        if !channel.enabled {
            return self.defer(entry.id, now + PAUSED_RETRY_MS).await;
        }
        let spec = match ChannelSpec::from_record(&channel) {
            Ok(spec) => spec,
            Err(e) => {
                return self.finish(&entry, Err(give_up(format!("channel settings unreadable: {e}"))), true).await;
            }
        };
        let Some(anomaly) = anomaly else {
            return self
                .finish(&entry, Err(give_up(format!("anomaly {} is no longer stored", entry.anomaly_id))), true)
                .await;
        };
        if let Err(wait_ms) = self.limits.take(&entry.tenant, &entry.channel, channel.rate_per_minute, now) {
            self.metrics.add(&entry.tenant, &entry.channel, |c| c.rate_limited += 1);
            return self.defer(entry.id, now + wait_ms).await;
        }
        let notice = Notice {
            delivery_id: format!("mcp-{}", entry.id),
            kind: if entry.kind == "digest" { NoticeKind::Digest } else { NoticeKind::Anomaly },
            tenant: entry.tenant.clone(),
            channel: entry.channel.clone(),
            anomaly: Some(AnomalyView::from(&anomaly)),
            folded: entry.folded,
            window_end_ms: entry.window_end_ms,
            link: Some(format!("{}/v1/anomalies/{}", self.link_base, anomaly.id)),
            sent_at_ms: now,
        };
        let result = self.sender.send(&entry.tenant, &entry.channel, &spec, &notice, entry.attempts + 1).await;
        self.finish(&entry, result, false).await
    }

    async fn defer(self: &Arc<Self>, id: i64, until_ms: i64) -> Result<(), NotifyError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.with_store(|store| store.defer_notification(id, until_ms))).await??;
        Ok(())
    }

    /// Records the attempt and what follows it; `last` makes a failure
    /// dead at once (retrying cannot help).
    async fn finish(
        self: &Arc<Self>,
        entry: &Claimed,
        result: Result<Delivery, Failure>,
        last: bool,
    ) -> Result<(), NotifyError> {
        let now = now_ms();
        let attempts = u32::try_from(entry.attempts + 1).unwrap_or(u32::MAX);
        let (attempt, after) = match result {
            Ok(delivery) => {
                self.metrics.add(&entry.tenant, &entry.channel, |c| {
                    c.delivered += 1;
                    c.folded += entry.folded.unsigned_abs();
                });
                let attempt = Attempt {
                    at_ms: now,
                    status: delivery.status,
                    error: None,
                    latency_ms: delivery.latency_ms,
                    answer: delivery.answer,
                };
                (attempt, AfterAttempt::Delivered)
            }
            Err(failure) => {
                let after = if last || attempts >= self.config.max_attempts {
                    self.metrics.add(&entry.tenant, &entry.channel, |c| c.dead_lettered += 1);
                    tracing::warn!(tenant = %entry.tenant, channel = %entry.channel, id = entry.id, attempts, error = %failure.error, "notification dead-lettered");
                    AfterAttempt::Dead
                } else {
                    self.metrics.add(&entry.tenant, &entry.channel, |c| c.retried += 1);
                    AfterAttempt::RetryAt(now + backoff_ms(&self.config, attempts))
                };
                let attempt = Attempt {
                    at_ms: now,
                    status: failure.status,
                    error: Some(failure.error),
                    latency_ms: failure.latency_ms,
                    answer: failure.answer,
                };
                (attempt, after)
            }
        };
        let this = self.clone();
        let id = entry.id;
        tokio::task::spawn_blocking(move || this.with_store(|store| store.record_attempt(id, &attempt, after)))
            .await??;
        Ok(())
    }

    /// Sends a test message on `tenant`'s channel `name` now, past the
    /// outbox and the rate limit, and gives the receiver's answer.
    pub async fn test(self: &Arc<Self>, tenant: &str, name: &str) -> Result<Result<Delivery, Failure>, NotifyError> {
        let this = self.clone();
        let (t, n) = (tenant.to_string(), name.to_string());
        let channel = tokio::task::spawn_blocking(move || this.control.notify_channel(&t, &n))
            .await??
            .ok_or_else(|| NotifyError::NoChannel(name.to_string()))?;
        let spec = ChannelSpec::from_record(&channel)
            .map_err(|e| NotifyError::BadChannel { channel: name.to_string(), message: e.to_string() })?;
        let notice = Notice {
            delivery_id: format!("mcp-test-{:016x}", rand::random::<u64>()),
            kind: NoticeKind::Test,
            tenant: tenant.to_string(),
            channel: name.to_string(),
            anomaly: None,
            folded: 0,
            window_end_ms: 0,
            link: None,
            sent_at_ms: now_ms(),
        };
        Ok(self.sender.send(tenant, name, &spec, &notice, 1).await)
    }
}

fn give_up(error: String) -> Failure {
    Failure { status: None, error, answer: None, latency_ms: 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_its_bounds_with_jitter() {
        let config = NotificationsConfig { backoff_base_ms: 1_000, backoff_max_ms: 10_000, ..Default::default() };
        for _ in 0..100 {
            assert!((500..=1_000).contains(&backoff_ms(&config, 1)));
            assert!((2_000..=4_000).contains(&backoff_ms(&config, 3)));
            assert!((5_000..=10_000).contains(&backoff_ms(&config, 20)));
            assert!((5_000..=10_000).contains(&backoff_ms(&config, u32::MAX)));
        }
    }
}
