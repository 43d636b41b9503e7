//! The delivery worker: claims due outbox rows, sends each on its channel
//! within the channel's rate limit, and records the attempt: delivered,
//! due again after an exponential backoff with jitter, or dead after the
//! last attempt allowed. A crash mid-send leaves the row claimed until its
//! lease runs out; it is then sent again with the same delivery id.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcp_engine::config::{McpConfig, NotificationsConfig, StoreKind};
use mcp_storage::control::{ControlError, ControlStore};
use mcp_storage::jobstatus::now_ms;
use mcp_storage::notify::outbox::{AfterAttempt, Attempt};
use mcp_storage::notify::{Claimed, OutboxStore};
use mcp_storage::reads::ReadError;
use mcp_storage::shared_store::{SharedStore, SharedStoreError};
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
    Outbox(#[from] ReadError),
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
    #[error("channel '{channel}' is at its rate limit; its next message may go in {wait_ms} ms")]
    RateLimited { channel: String, wait_ms: i64 },
}

/// How long a paused (disabled) channel's notifications wait before they
/// are looked at again.
const PAUSED_RETRY_MS: i64 = 60_000;

/// How long delivery waits after its store failed before it tries again.
const PAUSE_AFTER_ERROR: Duration = Duration::from_secs(1);

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

/// Where the outbox is: this node's embedded store, or PostgreSQL, shared
/// with the API's reads when the server hands its connection over, else
/// connected on first use (so a delivery worker outlives an outage at start).
#[derive(Debug)]
enum OutboxHome {
    Embedded(Mutex<AnomalyStore>),
    Shared { config: Box<McpConfig>, store: Mutex<Option<Arc<SharedStore>>> },
}

/// Sends what the outbox holds.
#[derive(Debug)]
pub struct Deliverer {
    config: NotificationsConfig,
    sender: Sender,
    control: ControlStore,
    home: OutboxHome,
    limits: RateLimits,
    metrics: DeliveryMetrics,
    link_base: String,
}

impl Deliverer {
    /// A worker over `config`'s control store and anomaly store, on
    /// connections of its own.
    pub fn open(config: &McpConfig) -> Result<Arc<Deliverer>, NotifyError> {
        let anomalies_db = config.anomalies_db();

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
            control: config.control_store()?,
            home: match config.anomaly_store {
                StoreKind::Embedded => OutboxHome::Embedded(Mutex::new(AnomalyStore::open(&anomalies_db)?)),
                StoreKind::Postgres => OutboxHome::Shared { config: Box::new(config.clone()), store: Mutex::default() },
            },
            limits: RateLimits::default(),
            metrics: DeliveryMetrics::default(),
            link_base,
        }))
    }

    /// The deployment's sealing key, as read when the worker was opened.
    pub fn secret_key(&self) -> &SecretKey {
        self.sender.key()
    }

    pub fn metrics(&self) -> &DeliveryMetrics {
        &self.metrics
    }

    /// A claim outlives the slowest send (an email may take three
    /// timeouts), so another worker does not take a row still in flight.
    fn lease_ms(&self) -> i64 {
        i64::try_from(self.config.timeout_ms.saturating_mul(3).saturating_add(5_000)).unwrap_or(i64::MAX)
    }

    /// Delivers from `store`, the anomaly store on PostgreSQL the caller
    /// opened, rather than connecting a pool of its own.
    pub fn share_store(&self, shared: Arc<SharedStore>) {
        if let OutboxHome::Shared { store, .. } = &self.home {
            *store.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(shared);
        }
    }

    /// The outbox on PostgreSQL (connected now if it is not yet), or `None`
    /// when the outbox is this node's own. Blocking.
    fn shared_store(&self) -> Result<Option<Arc<SharedStore>>, ReadError> {
        let OutboxHome::Shared { config, store } = &self.home else { return Ok(None) };
        let mut held = store.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(shared) = &*held {
            return Ok(Some(shared.clone()));
        }
        let opened = Arc::new(config.shared_store()?.ok_or(SharedStoreError::NoDatabase)?);
        *held = Some(opened.clone());
        Ok(Some(opened))
    }

    /// Runs `f` on the outbox. Blocking.
    fn with_store<T>(&self, f: impl FnOnce(OutboxStore<'_>) -> Result<T, ReadError>) -> Result<T, ReadError> {
        if let Some(shared) = self.shared_store()? {
            return f(OutboxStore::Shared(&shared));
        }
        match &self.home {
            OutboxHome::Embedded(store) => {
                let mut store = store.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                f(OutboxStore::Embedded(&mut store))
            }
            OutboxHome::Shared { .. } => Err(SharedStoreError::NoDatabase.into()),
        }
    }

    /// Notifications one channel may have in flight at once, so a slow or
    /// hanging receiver holds a few of the worker's slots, never all.
    fn per_channel(&self) -> usize {
        (self.config.concurrency / 4).max(1)
    }

    /// Delivers until `stop` is set, sleeping `poll_ms` when nothing is due.
    /// A store that fails (PostgreSQL restarting) pauses delivery for
    /// [`PAUSE_AFTER_ERROR`], not for good.
    pub async fn run(self: Arc<Self>, stop: Arc<AtomicBool>) {
        if let Err(e) = self.give_up_orphans().await {
            tracing::error!("notification delivery: {e}");
        }
        while !stop.load(Ordering::Relaxed) {
            match self.pump(Some(&stop)).await {
                Ok(_) => break,
                Err(e) => {
                    tracing::error!("notification delivery paused for {PAUSE_AFTER_ERROR:?}: {e}");
                    tokio::time::sleep(PAUSE_AFTER_ERROR).await;
                }
            }
        }
    }

    /// Sends until nothing is due now; returns how many rows were handled.
    pub async fn drain(self: &Arc<Self>) -> Result<usize, NotifyError> {
        self.give_up_orphans().await?;
        self.pump(None).await
    }

    /// Dead-letters what waits for channels that no longer exist (deleted,
    /// or dropped from the operator's file), which no turn would reach.
    /// Not with the outbox on PostgreSQL: this node's control store is its
    /// own, so a channel it lacks may be another node's (made through that
    /// node's API, or in a newer file there), whose notifications that node
    /// still delivers; what no node has waits, and the tenant may drop it.
    async fn give_up_orphans(self: &Arc<Self>) -> Result<(), NotifyError> {
        if matches!(self.home, OutboxHome::Shared { .. }) {
            return Ok(());
        }
        let this = self.clone();
        tokio::task::spawn_blocking(move || -> Result<(), NotifyError> {
            let channels: std::collections::BTreeSet<(String, String)> =
                this.control.all_notify_channels()?.into_iter().collect();
            for (tenant, channel) in this.with_store(|store| store.channels_with_work())? {
                if !channels.contains(&(tenant.clone(), channel.clone())) {
                    let reason = format!("channel '{channel}' no longer exists");
                    let given_up =
                        this.with_store(|store| store.give_up_channel(&tenant, &channel, &reason, now_ms()))?;
                    tracing::warn!(tenant, channel, given_up, "notifications of a channel that is gone dead-lettered");
                }
            }
            Ok(())
        })
        .await?
    }

    /// Keeps up to `concurrency` sends going, taking channels in turn and
    /// at most [`Deliverer::per_channel`] of one channel at once, until
    /// `stop` is set, or (without one) until nothing is due or in flight.
    async fn pump(self: &Arc<Self>, stop: Option<&AtomicBool>) -> Result<usize, NotifyError> {
        let idle = Duration::from_millis(self.config.poll_ms.max(10));
        let mut flight: tokio::task::JoinSet<((String, String), Result<(), NotifyError>)> = tokio::task::JoinSet::new();
        let mut busy: std::collections::HashMap<(String, String), usize> = std::collections::HashMap::new();
        let mut turn = 0usize;
        let mut handled = 0usize;
        loop {
            if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
                break;
            }
            let free = self.config.concurrency.max(1).saturating_sub(flight.len());
            let claimed = if free > 0 { self.claim_in_turn(free, &busy, turn).await? } else { Vec::new() };
            turn = turn.wrapping_add(1);
            handled += claimed.len();
            for entry in claimed {
                let key = (entry.tenant.clone(), entry.channel.clone());
                *busy.entry(key.clone()).or_default() += 1;
                let this = self.clone();
                flight.spawn(async move { (key, this.deliver(entry).await) });
            }
            if flight.is_empty() {
                if stop.is_none() {
                    break;
                }
                tokio::time::sleep(idle).await;
                continue;
            }
            // A send that ends frees its slot at once; the idle tick brings
            // in what became due meanwhile.
            let finished = tokio::select! {
                done = flight.join_next() => done,
                _ = tokio::time::sleep(idle) => None,
            };
            if let Some(done) = finished {
                let (key, result) = done?;
                if let Some(count) = busy.get_mut(&key) {
                    *count = count.saturating_sub(1);
                }
                if let Err(e) = result {
                    tracing::error!(tenant = %key.0, channel = %key.1, "notification delivery: {e}");
                }
            }
        }
        while let Some(done) = flight.join_next().await {
            if let (key, Err(e)) = done? {
                tracing::error!(tenant = %key.0, channel = %key.1, "notification delivery: {e}");
            }
        }
        Ok(handled)
    }

    /// Claims up to `free` due notifications, asking each enabled channel
    /// in turn (starting one further each time) for what it may add to
    /// what it has in flight.
    async fn claim_in_turn(
        self: &Arc<Self>,
        free: usize,
        busy: &std::collections::HashMap<(String, String), usize>,
        turn: usize,
    ) -> Result<Vec<Claimed>, NotifyError> {
        let this = self.clone();
        let room: std::collections::HashMap<(String, String), usize> =
            busy.iter().map(|(k, n)| (k.clone(), self.per_channel().saturating_sub(*n))).collect();
        tokio::task::spawn_blocking(move || -> Result<Vec<Claimed>, NotifyError> {
            let mut channels = this.control.enabled_notify_channels()?;
            if channels.is_empty() {
                return Ok(Vec::new());
            }
            let start = turn % channels.len();
            channels.rotate_left(start);
            let now = now_ms();
            let mut claimed = Vec::new();
            for key in channels {
                let left = free - claimed.len();
                if left == 0 {
                    break;
                }
                let room = room.get(&key).copied().unwrap_or_else(|| this.per_channel()).min(left);
                if room == 0 {
                    continue;
                }
                let (tenant, channel) = &key;
                claimed.extend(
                    this.with_store(|mut store| store.claim_channel(tenant, channel, now, this.lease_ms(), room))?,
                );
            }
            Ok(claimed)
        })
        .await?
    }

    async fn deliver(self: Arc<Self>, entry: Claimed) -> Result<(), NotifyError> {
        let this = self.clone();
        let (tenant, channel_name, anomaly_id) = (entry.tenant.clone(), entry.channel.clone(), entry.anomaly_id);
        let (channel, anomaly) = tokio::task::spawn_blocking(move || -> Result<_, NotifyError> {
            let channel = this.control.notify_channel(&tenant, &channel_name)?;
            let anomaly = this.with_store(|store| store.anomalies().get(&tenant, anomaly_id))?;
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
            return self.defer(entry.id, now + PAUSED_RETRY_MS, None).await;
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
        if let Err(wait_ms) = self.take_token(&entry.tenant, &entry.channel, channel.rate_per_minute, now).await? {
            self.metrics.add(&entry.tenant, &entry.channel, |c| c.rate_limited += 1);
            return self.defer(entry.id, now + wait_ms, None).await;
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
        if let Err(failure) = &result
            && failure.local
        {
            // This node's own configuration is at fault, not the receiver:
            // the notification waits (for another node, or a fix) without
            // losing an attempt, so one misconfigured node cannot
            // dead-letter what the others would deliver.
            tracing::error!(
                tenant = %entry.tenant,
                channel = %entry.channel,
                id = entry.id,
                "this node cannot send on the channel: {}; the notification waits {} s without counting an attempt",
                failure.error,
                PAUSED_RETRY_MS / 1_000
            );
            self.metrics.add(&entry.tenant, &entry.channel, |c| c.retried += 1);
            let why = format!("not sent by this node: {}", failure.error);
            return self.defer(entry.id, now + PAUSED_RETRY_MS, Some(why)).await;
        }
        self.finish(&entry, result, false).await
    }

    /// A token of the channel's rate limit: from this process's buckets
    /// when the outbox is this node's own, else from PostgreSQL's, which
    /// every delivering node shares (so N nodes still send a channel's
    /// allowance once, not N times).
    async fn take_token(
        self: &Arc<Self>,
        tenant: &str,
        channel: &str,
        per_minute: i64,
        now: i64,
    ) -> Result<Result<(), i64>, NotifyError> {
        if matches!(self.home, OutboxHome::Embedded(_)) {
            return Ok(self.limits.take(tenant, channel, per_minute, now));
        }
        let this = self.clone();
        let (tenant, channel) = (tenant.to_string(), channel.to_string());
        let taken = tokio::task::spawn_blocking(move || -> Result<_, NotifyError> {
            match this.shared_store()? {
                Some(shared) => {
                    Ok(shared.take_rate_token(&tenant, &channel, per_minute, now).map_err(ReadError::from)?)
                }
                None => Ok(this.limits.take(&tenant, &channel, per_minute, now)),
            }
        })
        .await??;
        Ok(taken)
    }

    async fn defer(self: &Arc<Self>, id: i64, until_ms: i64, why: Option<String>) -> Result<(), NotifyError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            this.with_store(|store| store.defer_notification(id, until_ms, why.as_deref()))
        })
        .await??;
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
        tokio::task::spawn_blocking(move || this.with_store(|mut store| store.record_attempt(id, &attempt, after)))
            .await??;
        Ok(())
    }

    /// Sends a test message on `tenant`'s channel `name` now, past the
    /// outbox but within the channel's rate limit, and gives the
    /// receiver's answer.
    pub async fn test(self: &Arc<Self>, tenant: &str, name: &str) -> Result<Result<Delivery, Failure>, NotifyError> {
        let this = self.clone();
        let (t, n) = (tenant.to_string(), name.to_string());
        let channel = tokio::task::spawn_blocking(move || this.control.notify_channel(&t, &n))
            .await??
            .ok_or_else(|| NotifyError::NoChannel(name.to_string()))?;
        let spec = ChannelSpec::from_record(&channel)
            .map_err(|e| NotifyError::BadChannel { channel: name.to_string(), message: e.to_string() })?;
        // A test is a message like any other to the receiver: it takes its
        // turn in the channel's rate limit, so tests cannot flood it.
        if let Err(wait_ms) = self.take_token(tenant, name, channel.rate_per_minute, now_ms()).await? {
            self.metrics.add(tenant, name, |c| c.rate_limited += 1);
            return Err(NotifyError::RateLimited { channel: name.to_string(), wait_ms });
        }
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
    Failure { status: None, error, answer: None, latency_ms: 0, local: false }
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
