//! The log channel, the embedded default: a warning line in the server's
//! log (target `mcp::notification`); needs nothing outside.

use crate::send::{Delivery, Failure, Notifier, Outgoing};

#[derive(Debug, Clone, Copy)]
pub struct LogNotifier;

impl Notifier for LogNotifier {
    async fn send<'a>(&'a self, out: &'a Outgoing<'a>) -> Result<Delivery, Failure> {
        tracing::warn!(
            target: "mcp::notification",
            tenant = out.tenant,
            channel = out.channel,
            delivery = %out.notice.delivery_id,
            folded = out.notice.folded,
            link = out.notice.link.as_deref().unwrap_or(""),
            "{}",
            out.notice.subject()
        );
        Ok(Delivery { status: None, answer: Some("logged".into()), latency_ms: out.elapsed_ms() })
    }
}
