//! Slack incoming webhooks: a readable one-line message (`Notice::slack`).

use super::HttpPoster;
use crate::send::{Delivery, Failure, Notifier, Outgoing};
use crate::sign;

#[derive(Debug, Clone)]
pub struct SlackNotifier {
    pub http: HttpPoster,
}

impl Notifier for SlackNotifier {
    async fn send<'a>(&'a self, out: &'a Outgoing<'a>) -> Result<Delivery, Failure> {
        let body =
            serde_json::to_vec(&out.notice.slack()).map_err(|e| out.fail(format!("cannot write the body: {e}")))?;
        let headers =
            [(sign::DELIVERY_HEADER, out.notice.delivery_id.clone()), (sign::ATTEMPT_HEADER, out.attempt.to_string())];
        self.http.post(out, body, &headers).await
    }
}
