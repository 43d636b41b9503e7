//! The bundled Wi-Fi agent: deauthentication floods, authentication-failure
//! bursts, evil-twin and rogue access points, and RF jamming (retry storms
//! with weak signal).

use std::collections::{HashMap, HashSet};

use std::borrow::Cow;

use mcp_sdk::window::{Burst, Count, key_of};
use mcp_sdk::{
    Agent, AgentError, AgentInfo, Anomaly, Config, Entry, Features, InferenceResult, Severity,
    anomaly,
};
use serde::Deserialize;

/// Fields of a `wifi` log entry that this agent reads.
#[derive(Debug, Deserialize)]
pub struct WifiFields<'a> {
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(borrow)]
    bssid: Cow<'a, str>,
    #[serde(default, borrow)]
    ssid: Cow<'a, str>,
    #[serde(default, borrow)]
    client: Cow<'a, str>,
    #[serde(default)]
    signal_dbm: i32,
    #[serde(default)]
    retry_rate: f32,
    #[serde(default, borrow)]
    status: Cow<'a, str>,
}

/// Per-instance state: burst windows and the access points learned so far.
#[derive(Debug)]
pub struct WifiAgent {
    deauths: Burst<u64>,
    auth_failures: Burst<u64>,
    retry_storms: Burst<u64>,
    learn_ms: i64,
    first_seen_ms: Option<i64>,
    known: HashMap<String, HashSet<String>>,
    suspect_bssids: HashMap<String, (&'static str, Severity, String)>,
    retry_threshold: f32,
}

impl Default for WifiAgent {
    fn default() -> Self {
        WifiAgent {
            deauths: Burst::new(10_000, 15, Count::Entries, 4096),
            auth_failures: Burst::new(60_000, 6, Count::Entries, 16_384),
            retry_storms: Burst::new(30_000, 8, Count::Entries, 4096),
            learn_ms: 600_000,
            first_seen_ms: None,
            known: HashMap::new(),
            suspect_bssids: HashMap::new(),
            retry_threshold: 0.5,
        }
    }
}

impl WifiAgent {
    fn learning(&mut self, now_ms: i64) -> bool {
        let start = *self.first_seen_ms.get_or_insert(now_ms);
        now_ms - start < self.learn_ms
    }

    fn check_access_point(&mut self, entry: &Entry<'_>, f: &WifiFields<'_>) -> Option<Anomaly> {
        if let Some((label, severity, reason)) = self.suspect_bssids.get(&*f.bssid) {
            return Some(anomaly(
                &entry.to_ref(),
                0.95,
                label,
                *severity,
                reason.clone(),
            ));
        }
        if f.event != "beacon" || f.bssid.is_empty() {
            return None;
        }
        if self.learning(entry.timestamp_ms) {
            self.known
                .entry(f.ssid.to_string())
                .or_default()
                .insert(f.bssid.to_string());
            return None;
        }
        let (label, severity, reason) = match self.known.get(&*f.ssid) {
            Some(bssids) if bssids.contains(&*f.bssid) => return None,
            Some(bssids) => (
                "evil_twin",
                Severity::Critical,
                format!(
                    "access point {} advertises SSID '{}' that belongs to {} known access point(s) ({}); clients may be lured onto an impostor. Locate it (signal {} dBm) and remove it.",
                    f.bssid,
                    f.ssid,
                    bssids.len(),
                    bssids
                        .iter()
                        .take(3)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", "),
                    f.signal_dbm
                ),
            ),
            None => (
                "rogue_ap",
                Severity::High,
                format!(
                    "unknown access point {} appeared with new SSID '{}' (signal {} dBm); check whether it is authorised.",
                    f.bssid, f.ssid, f.signal_dbm
                ),
            ),
        };
        self.suspect_bssids
            .insert(f.bssid.to_string(), (label, severity, reason.clone()));
        Some(anomaly(&entry.to_ref(), 0.95, label, severity, reason))
    }
}

impl Agent for WifiAgent {
    fn info() -> AgentInfo {
        mcp_sdk::info(
            "wifi",
            "wifi",
            env!("CARGO_PKG_VERSION"),
            "Finds deauthentication floods, authentication-failure bursts, evil-twin and rogue access points, and RF jamming in Wi-Fi controller logs.",
            &[
                "event",
                "bssid",
                "ssid",
                "client",
                "signal_dbm",
                "retry_rate",
                "status",
            ],
        )
    }

    fn configure(&mut self, config: &Config) -> Result<(), AgentError> {
        self.deauths = Burst::new(
            config.parse_or("deauth_window_ms", 10_000)?,
            config.parse_or("deauth_threshold", 15)?,
            Count::Entries,
            4096,
        );
        self.auth_failures = Burst::new(
            config.parse_or("auth_failure_window_ms", 60_000)?,
            config.parse_or("auth_failure_threshold", 6)?,
            Count::Entries,
            16_384,
        );
        self.learn_ms = config.parse_or("learn_ms", 600_000)?;
        self.retry_threshold = config.parse_or("retry_threshold", 0.5)?;
        if let Some(known) = config.get("known_bssids") {
            // "ssid=bssid,ssid=bssid": access points the operator vouches for.
            for pair in known.split(',') {
                if let Some((ssid, bssid)) = pair.split_once('=') {
                    self.known
                        .entry(ssid.trim().to_string())
                        .or_default()
                        .insert(bssid.trim().to_string());
                }
            }
        }
        Ok(())
    }

    fn detect(&mut self, entry: &Entry<'_>) -> Result<Vec<Anomaly>, AgentError> {
        let f: WifiFields<'_> = entry.parse()?;
        let mut found = Vec::new();
        if let Some(a) = self.check_access_point(entry, &f) {
            found.push(a);
        }
        match &*f.event {
            "deauth" | "disassoc" => {
                let hits =
                    self.deauths
                        .push(&key_of(&*f.bssid), entry.timestamp_ms, 0, entry.to_ref());
                let level = self.deauths.level(&key_of(&*f.bssid));
                for hit in hits {
                    found.push(anomaly(&hit, 0.9, "deauth_flood", Severity::High, format!(
                        "{level} deauthentication frames against access point {} within seconds: a deauthentication flood that disconnects clients, often to capture handshakes. Enable 802.11w (protected management frames) and locate the sender.",
                        f.bssid
                    )));
                }
            }
            "auth" if f.status == "failure" => {
                let hits = self.auth_failures.push(
                    &key_of(&*f.client),
                    entry.timestamp_ms,
                    0,
                    entry.to_ref(),
                );
                let level = self.auth_failures.level(&key_of(&*f.client));
                for hit in hits {
                    found.push(anomaly(&hit, 0.85, "auth_bruteforce", Severity::High, format!(
                        "client {} failed authentication {level} times within a minute on SSID '{}': likely password guessing. Block the client MAC and review the credentials in use.",
                        f.client, f.ssid
                    )));
                }
            }
            _ => {}
        }
        if f.retry_rate >= self.retry_threshold && f.signal_dbm <= -80 {
            let hits =
                self.retry_storms
                    .push(&key_of(&*f.bssid), entry.timestamp_ms, 0, entry.to_ref());
            for hit in hits {
                found.push(anomaly(&hit, 0.8, "rf_jamming", Severity::Medium, format!(
                    "frames on access point {} show retry rates of {:.0}% with signal {} dBm in a burst: interference or deliberate jamming. Survey the channel.",
                    f.bssid, f.retry_rate * 100.0, f.signal_dbm
                )));
            }
        }
        Ok(found)
    }

    fn extract_features(&mut self, entry: &Entry<'_>) -> Result<Features, AgentError> {
        let f: WifiFields<'_> = entry.parse()?;
        Ok(Features {
            names: vec![
                "signal_dbm".into(),
                "retry_rate".into(),
                "is_deauth".into(),
                "is_auth_failure".into(),
            ],
            values: vec![
                f.signal_dbm as f32,
                f.retry_rate,
                f32::from(u8::from(f.event == "deauth" || f.event == "disassoc")),
                f32::from(u8::from(f.event == "auth" && f.status == "failure")),
            ],
        })
    }

    fn infer(&mut self, features: &Features) -> Result<InferenceResult, AgentError> {
        // Without a model, score how far the entry sits from a healthy link.
        let value = |i: usize| features.values.get(i).copied().unwrap_or(0.0);
        let weak = ((-value(0) - 70.0) / 30.0).clamp(0.0, 1.0);
        let score = (0.5 * value(1) + 0.3 * weak + 0.2 * value(2).max(value(3))).clamp(0.0, 1.0);
        let label = if score >= 0.5 { "suspicious" } else { "normal" };
        Ok(InferenceResult {
            score,
            label: label.into(),
            raw: vec![score],
        })
    }
}

#[cfg(target_arch = "wasm32")]
mcp_sdk::export_agent!(WifiAgent);
