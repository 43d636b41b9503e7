//! Sending one notice on one channel, and what the receiver answered.
//! Errors never carry a secret: reqwest's URL is stripped from its errors,
//! and secrets are revealed only into the request itself.

use std::time::{Duration, Instant};

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::guard::{AddressPolicy, http_client};
use crate::message::Notice;
use crate::secret::{Secret, SecretKey};
use crate::sign;
use crate::spec::{ChannelSpec, Kind, SmtpTls, check_url, secret_context};
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
}

/// Sends notices with one HTTP client (connections reused) under the
/// deployment's address policy and timeout.
#[derive(Debug, Clone)]
pub struct Sender {
    client: reqwest::Client,
    policy: AddressPolicy,
    key: SecretKey,
    timeout: Duration,
}

fn elapsed_ms(started: Instant) -> i64 {
    i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX)
}

impl Sender {
    pub fn new(config: &NotificationsConfig, key: SecretKey) -> Result<Sender, reqwest::Error> {
        let policy = AddressPolicy { allow_private: config.allow_private_targets };
        let timeout = Duration::from_millis(config.timeout_ms.max(1));
        Ok(Sender { client: http_client(policy, timeout)?, policy, key, timeout })
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
        let started = Instant::now();
        let fail = |error: String| Failure { status: None, error, answer: None, latency_ms: elapsed_ms(started) };
        let reveal = |field: &str, secret: &Option<Secret>| -> Result<String, Failure> {
            let secret = secret.as_ref().ok_or_else(|| fail(format!("{field} is not set")))?;
            self.key.reveal(secret, &secret_context(tenant, name, field)).map_err(|e| fail(format!("{field}: {e}")))
        };
        match spec.kind {
            Kind::Log => {
                tracing::warn!(
                    target: "mcp::notification",
                    tenant,
                    channel = name,
                    delivery = %notice.delivery_id,
                    folded = notice.folded,
                    link = notice.link.as_deref().unwrap_or(""),
                    "{}",
                    notice.subject()
                );
                Ok(Delivery { status: None, answer: Some("logged".into()), latency_ms: elapsed_ms(started) })
            }
            Kind::Webhook | Kind::Slack => {
                let url = reveal("url", &spec.url)?;
                let url = check_url(spec.kind, &url).map_err(|e| fail(e.to_string()))?;
                // Names are checked by the client's resolver; an address
                // written in the URL never reaches it.
                if let Some(host) = url.host_str()
                    && let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse()
                {
                    self.policy.check(host, ip).map_err(fail)?;
                }
                let (body, signature) = match spec.kind {
                    Kind::Slack => (serde_json::to_vec(&notice.slack()).unwrap_or_default(), None),
                    _ => {
                        let key = reveal("signing_key", &spec.signing_key)?;
                        let body = serde_json::to_vec(notice).unwrap_or_default();
                        let timestamp = notice.sent_at_ms / 1000;
                        let signature = sign::signature(key.as_bytes(), timestamp, &body);
                        (body, Some((timestamp, signature)))
                    }
                };
                let mut request = self
                    .client
                    .post(url)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .header(sign::DELIVERY_HEADER, &notice.delivery_id)
                    .header(sign::ATTEMPT_HEADER, attempt.to_string());
                if let Some((timestamp, signature)) = signature {
                    request = request
                        .header(sign::TIMESTAMP_HEADER, timestamp.to_string())
                        .header(sign::SIGNATURE_HEADER, signature);
                }
                self.answer(request.body(body), started).await
            }
            Kind::Email => self.email(tenant, name, spec, notice, started).await,
        }
    }

    async fn answer(&self, request: reqwest::RequestBuilder, started: Instant) -> Result<Delivery, Failure> {
        let timeout_ms = self.timeout.as_millis();
        let mut response = request.send().await.map_err(|e| Failure {
            status: None,
            error: if e.is_timeout() {
                format!("no answer within {timeout_ms} ms")
            } else {
                format!("cannot send: {}", error_chain(&e.without_url()))
            },
            answer: None,
            latency_ms: elapsed_ms(started),
        })?;
        let status = response.status();
        // Read a bounded start of the answer: a receiver may send without end.
        let mut answer = Vec::new();
        while answer.len() < ANSWER_BYTES {
            match tokio::time::timeout(self.timeout, response.chunk()).await {
                Ok(Ok(Some(chunk))) => answer.extend_from_slice(&chunk),
                _ => break,
            }
        }
        answer.truncate(ANSWER_BYTES);
        let answer = Some(String::from_utf8_lossy(&answer).into_owned()).filter(|a| !a.is_empty());
        let latency_ms = elapsed_ms(started);
        if status.is_success() {
            Ok(Delivery { status: Some(status.as_u16()), answer, latency_ms })
        } else {
            Err(Failure {
                status: Some(status.as_u16()),
                error: format!("the receiver answered {status}"),
                answer,
                latency_ms,
            })
        }
    }

    async fn email(
        &self,
        tenant: &str,
        name: &str,
        spec: &ChannelSpec,
        notice: &Notice,
        started: Instant,
    ) -> Result<Delivery, Failure> {
        let fail = |error: String| Failure { status: None, error, answer: None, latency_ms: elapsed_ms(started) };
        let host = spec.host.clone().ok_or_else(|| fail("host is not set".into()))?;
        let port = spec.smtp_port();
        // lettre connects by name itself; the name is checked here first.
        self.policy.resolve(&host, port).await.map_err(fail)?;
        let from: Mailbox = spec.from.as_deref().unwrap_or_default().parse().map_err(|e| fail(format!("from: {e}")))?;
        let mut message = Message::builder().from(from).subject(notice.subject());
        for to in &spec.to {
            message = message.to(to.parse().map_err(|e| fail(format!("to: {e}")))?);
        }
        let message = message.body(notice.text()).map_err(|e| fail(format!("cannot build the message: {e}")))?;
        let tls = match spec.tls.unwrap_or_default() {
            SmtpTls::None => Tls::None,
            mode => {
                let parameters = TlsParameters::new(host.clone()).map_err(|e| fail(format!("TLS: {e}")))?;
                if mode == SmtpTls::Tls { Tls::Wrapper(parameters) } else { Tls::Required(parameters) }
            }
        };
        let mut transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .tls(tls)
            .timeout(Some(self.timeout));
        if let (Some(user), Some(password)) = (&spec.username, &spec.password) {
            let password = self
                .key
                .reveal(password, &secret_context(tenant, name, "password"))
                .map_err(|e| fail(format!("password: {e}")))?;
            transport = transport.credentials(Credentials::new(user.clone(), password));
        }
        let sent = tokio::time::timeout(self.timeout.saturating_mul(3), transport.build().send(message)).await;
        match sent {
            Err(_) => Err(fail(format!("no answer within {} ms", self.timeout.saturating_mul(3).as_millis()))),
            Ok(Err(e)) => Err(Failure {
                status: e.status().and_then(|code| code.to_string().parse().ok()),
                error: format!("SMTP: {}", error_chain(&e)),
                answer: None,
                latency_ms: elapsed_ms(started),
            }),
            Ok(Ok(response)) => Ok(Delivery {
                status: response.code().to_string().parse().ok(),
                answer: Some(response.message().collect::<Vec<_>>().join(" ")).filter(|a| !a.is_empty()),
                latency_ms: elapsed_ms(started),
            }),
        }
    }
}

/// An error with its causes, on one line.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
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
