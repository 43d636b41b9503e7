//! The generic webhook: the notice as JSON, signed (`sign.rs`), with the
//! delivery id and attempt in headers.

use super::HttpPoster;
use crate::send::{Delivery, Failure, Notifier, Outgoing};
use crate::sign;

#[derive(Debug, Clone)]
pub struct WebhookNotifier {
    pub http: HttpPoster,
}

impl Notifier for WebhookNotifier {
    async fn send<'a>(&'a self, out: &'a Outgoing<'a>) -> Result<Delivery, Failure> {
        let key = out.reveal("signing_key", &out.spec.signing_key)?;
        let body = serde_json::to_vec(out.notice).map_err(|e| out.fail(format!("cannot write the body: {e}")))?;
        let timestamp = out.notice.sent_at_ms / 1000;
        let signature = sign::signature(key.as_bytes(), timestamp, &body);
        let headers = [
            (sign::DELIVERY_HEADER, out.notice.delivery_id.clone()),
            (sign::ATTEMPT_HEADER, out.attempt.to_string()),
            (sign::TIMESTAMP_HEADER, timestamp.to_string()),
            (sign::SIGNATURE_HEADER, signature),
        ];
        self.http.post(out, body, &headers).await
    }
}
