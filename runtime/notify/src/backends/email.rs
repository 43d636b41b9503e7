//! Email over SMTP with lettre: STARTTLS (required), TLS, or none to a
//! relay on this machine; authentication when the channel has a user.

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::guard::AddressPolicy;
use crate::send::{Delivery, Failure, Notifier, Outgoing, error_chain};
use crate::spec::SmtpTls;

#[derive(Debug, Clone)]
pub struct EmailNotifier {
    pub policy: AddressPolicy,
    pub timeout: Duration,
}

impl Notifier for EmailNotifier {
    async fn send<'a>(&'a self, out: &'a Outgoing<'a>) -> Result<Delivery, Failure> {
        let spec = out.spec;
        let host = spec.host.clone().ok_or_else(|| out.fail("host is not set"))?;
        let port = spec.smtp_port();
        // lettre connects by name itself; the name is checked here first.
        self.policy.resolve(&host, port).await.map_err(|e| out.fail(e))?;
        let from: Mailbox =
            spec.from.as_deref().unwrap_or_default().parse().map_err(|e| out.fail(format!("from: {e}")))?;
        let mut message = Message::builder().from(from).subject(out.notice.subject());
        for to in &spec.to {
            message = message.to(to.parse().map_err(|e| out.fail(format!("to: {e}")))?);
        }
        let message =
            message.body(out.notice.text()).map_err(|e| out.fail(format!("cannot build the message: {e}")))?;
        let tls = match spec.tls.unwrap_or_default() {
            SmtpTls::None => Tls::None,
            mode => {
                let parameters = TlsParameters::new(host.clone()).map_err(|e| out.fail(format!("TLS: {e}")))?;
                if mode == SmtpTls::Tls { Tls::Wrapper(parameters) } else { Tls::Required(parameters) }
            }
        };
        let mut transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .tls(tls)
            .timeout(Some(self.timeout));
        if let (Some(user), Some(_)) = (&spec.username, &spec.password) {
            let password = out.reveal("password", &spec.password)?;
            transport = transport.credentials(Credentials::new(user.clone(), password));
        }
        // A slow relay takes a timeout per step; the whole exchange three.
        let whole = self.timeout.saturating_mul(3);
        match tokio::time::timeout(whole, transport.build().send(message)).await {
            Err(_) => Err(out.fail(format!("no answer within {} ms", whole.as_millis()))),
            Ok(Err(e)) => Err(Failure {
                status: e.status().and_then(|code| code.to_string().parse().ok()),
                error: format!("SMTP: {}", error_chain(&e)),
                answer: None,
                latency_ms: out.elapsed_ms(),
                local: false,
            }),
            Ok(Ok(response)) => Ok(Delivery {
                status: response.code().to_string().parse().ok(),
                answer: Some(response.message().collect::<Vec<_>>().join(" ")).filter(|a| !a.is_empty()),
                latency_ms: out.elapsed_ms(),
            }),
        }
    }
}
