//! Sending one notice on one channel, and what the receiver answered. Each
//! kind of channel is a [`Notifier`] (`backends/`); [`Sender`] holds one of
//! each and picks by the channel's kind. Errors never carry a secret:
//! reqwest's URL is stripped from its errors, and secrets are revealed only
//! into the request itself.

use std::time::{Duration, Instant};

use crate::backends::{EmailNotifier, HttpPoster, LogNotifier, SlackNotifier, WebhookNotifier};
use crate::guard::{AddressPolicy, http_client};
use crate::message::Notice;
use crate::secret::{Secret, SecretKey};
use crate::spec::{ChannelSpec, Kind, secret_context};
use mcp_engine::config::NotificationsConfig;

/// How much of a receiver's answer is kept with an attempt.
pub const ANSWER_BYTES: usize = 512;

/// A message the receiver took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// HTTP status, or SMTP reply code.
    pub status: Option<u16>,
    pub answer: Option<String>,
    pub latency_ms: i64,
}

/// A message that did not get through; it is tried again later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub status: Option<u16>,
    pub error: String,
    pub answer: Option<String>,
    pub latency_ms: i64,
    /// The sending node could not even try: a secret it cannot reveal (an
    /// environment variable it lacks, a sealed value its key cannot open).
    /// Another node, or this one once fixed, can send it, so it costs the
    /// notification no attempt.
    pub local: bool,
}

/// One notice on its way: what every backend is given.
pub struct Outgoing<'a> {
    pub tenant: &'a str,
    pub channel: &'a str,
    pub spec: &'a ChannelSpec,
    pub notice: &'a Notice,
    /// Counted from 1.
    pub attempt: i64,
    started: Instant,
    key: &'a SecretKey,
}

impl Outgoing<'_> {
    pub fn elapsed_ms(&self) -> i64 {
        i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    /// A failure with no answer from a receiver.
    pub fn fail(&self, error: impl Into<String>) -> Failure {
        Failure { status: None, error: error.into(), answer: None, latency_ms: self.elapsed_ms(), local: false }
    }

    /// The value of the channel's secret `field`.
    pub fn reveal(&self, field: &str, secret: &Option<Secret>) -> Result<String, Failure> {
        let secret = secret.as_ref().ok_or_else(|| self.fail(format!("{field} is not set")))?;
        self.key
            .reveal(secret, &secret_context(self.tenant, self.channel, field))
            .map_err(|e| Failure { local: true, ..self.fail(format!("{field}: {e}")) })
    }
}

/// A kind of channel: how a notice goes out on it. A new kind is a
/// `Kind` variant, its checks in `spec.rs`, a backend implementing this,
/// and one arm in [`Sender::send`].
pub trait Notifier: Send + Sync {
    fn send<'a>(
        &'a self,
        out: &'a Outgoing<'a>,
    ) -> impl std::future::Future<Output = Result<Delivery, Failure>> + Send + 'a;
}

/// Sends notices with one HTTP client (connections reused) under the
/// deployment's address policy and timeout.
#[derive(Debug, Clone)]
pub struct Sender {
    key: SecretKey,
    webhook: WebhookNotifier,
    slack: SlackNotifier,
    email: EmailNotifier,
    log: LogNotifier,
}

impl Sender {
    /// The key secrets are sealed and opened with.
    pub fn key(&self) -> &SecretKey {
        &self.key
    }

    pub fn new(config: &NotificationsConfig, key: SecretKey) -> Result<Sender, reqwest::Error> {
        let policy = AddressPolicy { allow_private: config.allow_private_targets };
        let timeout = Duration::from_millis(config.timeout_ms.max(1));
        let http = HttpPoster { client: http_client(policy, timeout)?, policy, timeout };
        Ok(Sender {
            key,
            webhook: WebhookNotifier { http: http.clone() },
            slack: SlackNotifier { http },
            email: EmailNotifier { policy, timeout },
            log: LogNotifier,
        })
    }

    /// Sends `notice` on `tenant`'s channel `name` set up as `spec`;
    /// `attempt` counts from 1.
    pub async fn send(
        &self,
        tenant: &str,
        name: &str,
        spec: &ChannelSpec,
        notice: &Notice,
        attempt: i64,
    ) -> Result<Delivery, Failure> {
        let out = Outgoing { tenant, channel: name, spec, notice, attempt, started: Instant::now(), key: &self.key };
        match spec.kind {
            Kind::Webhook => self.webhook.send(&out).await,
            Kind::Slack => self.slack.send(&out).await,
            Kind::Email => self.email.send(&out).await,
            Kind::Log => self.log.send(&out).await,
        }
    }
}

/// An error with its causes, on one line.
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
