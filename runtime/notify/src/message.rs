//! What a notification says, and how each channel puts it: a JSON body for
//! webhooks (docs/notifications.md gives its fields), a short readable
//! message for Slack and email, a line for the log.

use serde::Serialize;

use mcp_storage::store::AnomalyRecord;

/// Why a message is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NoticeKind {
    /// The first anomaly of its kind in the dedup window (and any folded
    /// into it while it waited).
    Anomaly,
    /// Anomalies of that kind folded in after the first had gone.
    Digest,
    /// `mcp notify test` or `POST …/test`.
    Test,
}

/// The anomaly a notice is about, as it crosses to a receiver.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnomalyView {
    pub id: i64,
    pub agent: String,
    pub log_type: String,
    pub log_id: u64,
    pub source: String,
    pub label: String,
    pub severity: String,
    pub score: f64,
    pub reason: String,
    pub log_ts_ms: i64,
    pub detected_at_ms: i64,
    pub model: Option<String>,
}

impl From<&AnomalyRecord> for AnomalyView {
    fn from(a: &AnomalyRecord) -> Self {
        AnomalyView {
            id: a.id,
            agent: a.agent.clone(),
            log_type: a.log_type.clone(),
            log_id: a.log_id,
            source: a.source.clone(),
            label: a.label.clone(),
            severity: a.severity.clone(),
            score: a.score,
            reason: a.reason.clone(),
            log_ts_ms: a.log_ts_ms,
            detected_at_ms: a.detected_at_ms,
            model: a.model.clone(),
        }
    }
}

/// One notification, as every channel's rendering starts from it. It is
/// also the webhook's JSON body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notice {
    /// The same on every attempt: a receiver drops a delivery it has seen.
    pub delivery_id: String,
    pub kind: NoticeKind,
    pub tenant: String,
    pub channel: String,
    pub anomaly: Option<AnomalyView>,
    /// Anomalies of the same agent, source and label folded into this one.
    pub folded: i64,
    /// Until when anomalies of this kind are folded, Unix milliseconds.
    pub window_end_ms: i64,
    /// The anomaly in the control plane (`GET /v1/anomalies/{id}`).
    pub link: Option<String>,
    pub sent_at_ms: i64,
}

/// Text from agents goes to people: keep it to one line and a bounded
/// length, so an agent cannot forge extra lines or markup in a message.
fn clean(text: &str, limit: usize) -> String {
    let one_line: String = text
        .chars()
        .filter(|c| !mcp_columns::is_invisible_format(*c))
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if one_line.chars().count() > limit {
        format!("{}…", one_line.chars().take(limit).collect::<String>())
    } else {
        one_line
    }
}

/// Slack's mrkdwn treats these as markup or links.
fn slack_escape(text: &str) -> String {
    clean(text, 500).replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

impl Notice {
    /// What "and N more" adds, when anything was folded.
    fn more(&self) -> String {
        match (self.kind, self.folded) {
            (_, 0) => String::new(),
            (NoticeKind::Digest, n) => format!("{n} more like it since the first was sent"),
            (_, n) => format!("and {n} more like it"),
        }
    }

    /// The email subject, and the headline of other channels.
    pub fn subject(&self) -> String {
        match (&self.anomaly, self.kind) {
            (_, NoticeKind::Test) => format!("[MCP] test message for channel {}", self.channel),
            (Some(a), NoticeKind::Digest) => format!(
                "[MCP {}] {} more: {} on {} ({})",
                a.severity,
                self.folded,
                clean(&a.label, 80),
                clean(&a.source, 80),
                clean(&a.agent, 64)
            ),
            (Some(a), _) => format!(
                "[MCP {}] {} on {} ({})",
                a.severity,
                clean(&a.label, 80),
                clean(&a.source, 80),
                clean(&a.agent, 64)
            ),
            (None, _) => format!("[MCP] notification {}", self.delivery_id),
        }
    }

    /// A plain-text body for email.
    pub fn text(&self) -> String {
        let mut out = String::new();
        match &self.anomaly {
            None => out.push_str("This is a test message from MCP. The channel works.\n"),
            Some(a) => {
                out.push_str(&format!(
                    "Severity: {}\nAgent: {}\nLog type: {}\nSource: {}\nLabel: {}\nScore: {:.3}\nReason: {}\nLog entry: {} at {} ms\nTenant: {}\n",
                    a.severity,
                    clean(&a.agent, 64),
                    clean(&a.log_type, 64),
                    clean(&a.source, 200),
                    clean(&a.label, 200),
                    a.score,
                    clean(&a.reason, 1000),
                    a.log_id,
                    a.log_ts_ms,
                    self.tenant,
                ));
                let more = self.more();
                if !more.is_empty() {
                    out.push_str(&format!("Folded: {more} (window until {} ms)\n", self.window_end_ms));
                }
            }
        }
        if let Some(link) = &self.link {
            out.push_str(&format!("\nIn the API: {link}\n"));
        }
        out.push_str(&format!("\nDelivery: {}\n", self.delivery_id));
        out
    }

    /// A Slack incoming-webhook payload.
    pub fn slack(&self) -> serde_json::Value {
        let text = match &self.anomaly {
            None => format!("MCP test message for channel `{}`: the channel works.", slack_escape(&self.channel)),
            Some(a) => {
                let mut text = format!(
                    "*{}* anomaly from `{}` on `{}`: {} (score {:.2}, label `{}`)",
                    a.severity.to_ascii_uppercase(),
                    slack_escape(&a.agent),
                    slack_escape(&a.source),
                    slack_escape(&a.reason),
                    a.score,
                    slack_escape(&a.label),
                );
                let more = self.more();
                if !more.is_empty() {
                    text.push_str(&format!(" — {more}"));
                }
                if let Some(link) = &self.link {
                    text.push_str(&format!(" <{link}|open in the API>"));
                }
                text
            }
        };
        serde_json::json!({ "text": text })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(folded: i64, kind: NoticeKind) -> Notice {
        Notice {
            delivery_id: "7".into(),
            kind,
            tenant: "acme".into(),
            channel: "soc".into(),
            anomaly: Some(AnomalyView {
                id: 42,
                agent: "dns".into(),
                log_type: "dns".into(),
                log_id: 9,
                source: "10.0.0.5".into(),
                label: "tunnel".into(),
                severity: "critical".into(),
                score: 0.97,
                reason: "long <b>names</b>\nFAKE: line\u{202e}".into(),
                log_ts_ms: 1,
                detected_at_ms: 2,
                model: None,
            }),
            folded,
            window_end_ms: 3,
            link: Some("https://mcp.example/v1/anomalies/42".into()),
            sent_at_ms: 4,
        }
    }

    #[test]
    fn messages_say_what_a_person_needs_and_nothing_an_agent_forged() {
        let slack = notice(312, NoticeKind::Anomaly).slack()["text"].as_str().unwrap().to_string();
        assert!(slack.contains("*CRITICAL*") && slack.contains("`dns`") && slack.contains("`10.0.0.5`"), "{slack}");
        assert!(slack.contains("and 312 more like it") && slack.contains("<https://mcp.example/v1/anomalies/42|"));
        assert!(slack.contains("&lt;b&gt;") && !slack.contains('\n'), "agent text escaped: {slack}");
        let text = notice(0, NoticeKind::Anomaly).text();
        assert!(text.contains("Reason: long <b>names</b> FAKE: line\n"), "{text}");
        assert!(!text.contains("Folded"));
        assert_eq!(notice(5, NoticeKind::Digest).subject(), "[MCP critical] 5 more: tunnel on 10.0.0.5 (dns)");
        let body = serde_json::to_value(notice(1, NoticeKind::Anomaly)).unwrap();
        assert_eq!(body["anomaly"]["id"], 42);
        assert_eq!(body["kind"], "anomaly");
    }
}
