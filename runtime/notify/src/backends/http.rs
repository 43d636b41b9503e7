//! A JSON POST to a channel's URL, as the webhook and Slack backends make
//! it: the URL checked, address literals held to the policy (names are
//! checked by the client's resolver), and a bounded start of the answer.

use std::time::Duration;

use crate::guard::AddressPolicy;
use crate::send::{ANSWER_BYTES, Delivery, Failure, Outgoing, error_chain};
use crate::spec::check_url;

#[derive(Debug, Clone)]
pub struct HttpPoster {
    pub client: reqwest::Client,
    pub policy: AddressPolicy,
    pub timeout: Duration,
}

impl HttpPoster {
    /// POSTs `body` with `headers` to the channel's URL.
    pub async fn post(
        &self,
        out: &Outgoing<'_>,
        body: Vec<u8>,
        headers: &[(&str, String)],
    ) -> Result<Delivery, Failure> {
        let url = out.reveal("url", &out.spec.url)?;
        let url = check_url(out.spec.kind, &url).map_err(|e| out.fail(e.to_string()))?;
        if let Some(host) = url.host_str()
            && let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse()
        {
            self.policy.check(host, ip).map_err(|e| out.fail(e))?;
        }
        let mut request = self.client.post(url).header(reqwest::header::CONTENT_TYPE, "application/json");
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let timeout_ms = self.timeout.as_millis();
        let mut response = request.body(body).send().await.map_err(|e| {
            out.fail(if e.is_timeout() {
                format!("no answer within {timeout_ms} ms")
            } else {
                format!("cannot send: {}", error_chain(&e.without_url()))
            })
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
        let latency_ms = out.elapsed_ms();
        if status.is_success() {
            Ok(Delivery { status: Some(status.as_u16()), answer, latency_ms })
        } else {
            Err(Failure {
                status: Some(status.as_u16()),
                error: format!("the receiver answered {status}"),
                answer,
                latency_ms,
                local: false,
            })
        }
    }
}
