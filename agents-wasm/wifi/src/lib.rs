//! The bundled Wi-Fi agent: deauthentication floods, authentication-failure
//! bursts, evil-twin and rogue access points, and RF jamming (retry storms
//! with weak signal).

use std::collections::{BTreeMap, BTreeSet};

use mcp_sdk::hashing::{KeyedMap, KeyedSet};
use mcp_sdk::scoring::Scorer;
use mcp_sdk::window::{Burst, Count, key_of};
use mcp_sdk::{
    Agent, AgentError, AgentInfo, Batch, Config, EntryRef, Features, Finding, Number, Severity, Text, features, finding,
};

/// The fields of one `wifi` entry that this agent reads.
#[derive(Debug, Clone, Copy)]
pub struct WifiEvent<'a> {
    event: &'a str,
    bssid: &'a str,
    ssid: &'a str,
    client: &'a str,
    signal_dbm: f64,
    retry_rate: f64,
    status: &'a str,
}

/// The columns of a batch, resolved once.
struct WifiColumns<'a> {
    event: Text<'a>,
    bssid: Text<'a>,
    ssid: Option<Text<'a>>,
    client: Option<Text<'a>>,
    signal_dbm: Option<Number<'a>>,
    retry_rate: Option<Number<'a>>,
    status: Option<Text<'a>>,
}

impl<'a> WifiColumns<'a> {
    fn of(batch: &Batch<'a>) -> Result<Self, AgentError> {
        Ok(WifiColumns {
            event: batch.text("event")?,
            bssid: batch.text("bssid")?,
            ssid: batch.text_opt("ssid"),
            client: batch.text_opt("client"),
            signal_dbm: batch.number_opt("signal_dbm"),
            retry_rate: batch.number_opt("retry_rate"),
            status: batch.text_opt("status"),
        })
    }

    /// Entry `i` with the fields the rules and the model read for its
    /// kind: the SSID for beacons and authentications, the client and the
    /// status for authentications, empty otherwise. Each text read costs
    /// bounds checks that a guest pays in full (docs/performance.md).
    fn event(&self, i: usize) -> WifiEvent<'a> {
        let text = |c: &Option<Text<'a>>| c.map_or("", |c| c.or_empty(i));
        let number = |c: &Option<Number<'a>>| c.map_or(0.0, |c| c.or_zero(i));
        let event = self.event.or_empty(i);
        let (needs_ssid, needs_client) = match event {
            "auth" => (true, true),
            "beacon" => (true, false),
            _ => (false, false),
        };
        WifiEvent {
            event,
            bssid: self.bssid.or_empty(i),
            ssid: if needs_ssid { text(&self.ssid) } else { "" },
            client: if needs_client { text(&self.client) } else { "" },
            signal_dbm: number(&self.signal_dbm),
            retry_rate: number(&self.retry_rate),
            status: if needs_client { text(&self.status) } else { "" },
        }
    }

    /// Entry `i` with every field, for a finding's explanation.
    fn described(&self, i: usize) -> WifiEvent<'a> {
        let text = |c: &Option<Text<'a>>| c.map_or("", |c| c.or_empty(i));
        WifiEvent { ssid: text(&self.ssid), client: text(&self.client), status: text(&self.status), ..self.event(i) }
    }
}

/// Per-instance state: burst windows and the access points learned so far.
#[derive(Debug)]
pub struct WifiAgent {
    deauths: Burst<u64>,
    auth_failures: Burst<u64>,
    retry_storms: Burst<u64>,
    learn_ms: i64,
    first_seen_ms: Option<i64>,
    known: KeyedMap<String, KeyedSet<String>>,
    suspect_bssids: KeyedMap<String, (&'static str, Severity, String)>,
    retry_threshold: f64,
    model: Scorer,
    recent: RecentActivity,
}

impl Default for WifiAgent {
    fn default() -> Self {
        WifiAgent {
            deauths: Burst::new(10_000, 15, Count::Entries, 4096),
            auth_failures: Burst::new(60_000, 6, Count::Entries, 16_384),
            retry_storms: Burst::new(30_000, 8, Count::Entries, 4096),
            learn_ms: 600_000,
            first_seen_ms: None,
            known: KeyedMap::default(),
            suspect_bssids: KeyedMap::default(),
            retry_threshold: 0.5,
            model: Scorer::new("wifi"),
            recent: RecentActivity::default(),
        }
    }
}

/// The model's input columns, in order: four of the entry itself, then
/// three of the window it falls in, so that the model sees a burst as the
/// rules do rather than one frame at a time.
pub const FEATURES: [&str; 7] = [
    "signal_dbm",
    "retry_rate",
    "is_deauth",
    "is_auth_failure",
    "deauths_on_bssid_10s",
    "auth_failures_by_client_60s",
    "weak_retries_on_bssid_30s",
];

/// Whether a frame counts towards the jamming window: retrying at least
/// half the time with a signal at or under -80 dBm.
fn is_weak_retry(f: &WifiEvent<'_>, retry_threshold: f64) -> bool {
    f.retry_rate >= retry_threshold && f.signal_dbm <= -80.0
}

/// The windows behind the model's last three features. They are the
/// model's own, apart from the rules' (whose spans the operator may change
/// and which do not run in `model` mode), with the spans the shipped model
/// was trained on. Each entry is counted once, in order, whether `detect`
/// or `extract-features` sees it, so training sees what serving sees.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct RecentActivity {
    deauths: Burst<u64>,
    auth_failures: Burst<u64>,
    weak_retries: Burst<u64>,
}

impl Default for RecentActivity {
    fn default() -> Self {
        // A threshold never reached: these windows count, they never alarm.
        RecentActivity {
            deauths: Burst::new(10_000, usize::MAX, Count::Entries, 4096),
            auth_failures: Burst::new(60_000, usize::MAX, Count::Entries, 16_384),
            weak_retries: Burst::new(30_000, usize::MAX, Count::Entries, 4096),
        }
    }
}

impl RecentActivity {
    /// Takes the windows of `saved`, keeping these windows' settings (a
    /// saved copy of the rules' windows carries the rules' thresholds).
    fn take_windows(&mut self, saved: RecentActivity) {
        self.deauths.take_windows(saved.deauths);
        self.auth_failures.take_windows(saved.auth_failures);
        self.weak_retries.take_windows(saved.weak_retries);
    }

    /// Counts `f` into its window and returns the model's row for it: the
    /// window counts are those of the entry's own kind, zero for other kinds.
    fn feature_row(&mut self, entry: EntryRef, f: &WifiEvent<'_>) -> [f32; 7] {
        let count = |window: &mut Burst<u64>, key: &str| {
            let key = key_of(key);
            window.push(&key, entry.timestamp_ms, 0, entry);
            window.level(&key) as f32
        };
        let levels = WindowLevels {
            deauths: if is_deauth(f) { count(&mut self.deauths, f.bssid) } else { 0.0 },
            auth_failures: if is_auth_failure(f) { count(&mut self.auth_failures, f.client) } else { 0.0 },
            // The model's window uses the shipped default, whatever `retry_threshold` says.
            weak_retries: if is_weak_retry(f, 0.5) { count(&mut self.weak_retries, f.bssid) } else { 0.0 },
        };
        model_row(f, levels)
    }
}

/// The counts of the three windows an entry falls in, zero for the
/// windows of other kinds.
#[derive(Debug, Clone, Copy, Default)]
struct WindowLevels {
    deauths: f32,
    auth_failures: f32,
    weak_retries: f32,
}

fn is_deauth(f: &WifiEvent<'_>) -> bool {
    f.event == "deauth" || f.event == "disassoc"
}

fn is_auth_failure(f: &WifiEvent<'_>) -> bool {
    f.event == "auth" && f.status == "failure"
}

fn model_row(f: &WifiEvent<'_>, levels: WindowLevels) -> [f32; 7] {
    [
        f.signal_dbm as f32,
        f.retry_rate as f32,
        f32::from(u8::from(is_deauth(f))),
        f32::from(u8::from(is_auth_failure(f))),
        levels.deauths,
        levels.auth_failures,
        levels.weak_retries,
    ]
}

impl WifiAgent {
    fn learning(&mut self, now_ms: i64) -> bool {
        let start = *self.first_seen_ms.get_or_insert(now_ms);
        now_ms - start < self.learn_ms
    }

    fn check_access_point(&mut self, entry: EntryRef, f: &WifiEvent<'_>) -> Option<Finding> {
        // Most of the time there is no suspect: skip hashing the BSSID then.
        if !self.suspect_bssids.is_empty()
            && let Some((label, severity, reason)) = self.suspect_bssids.get(f.bssid)
        {
            return Some(finding(&entry, 0.95, label, *severity, reason.clone()));
        }
        if f.event != "beacon" || f.bssid.is_empty() {
            return None;
        }
        if self.learning(entry.timestamp_ms) {
            let seen = self.known.get(f.ssid).is_some_and(|bssids| bssids.contains(f.bssid));
            if !seen {
                self.known.entry(f.ssid.to_string()).or_default().insert(f.bssid.to_string());
            }
            return None;
        }
        let (label, severity, reason) = match self.known.get(f.ssid) {
            Some(bssids) if bssids.contains(f.bssid) => return None,
            Some(bssids) => (
                "evil_twin",
                Severity::Critical,
                format!(
                    "access point {} advertises SSID '{}' that belongs to {} known access point(s) ({}); clients may be lured onto an impostor. Locate it (signal {} dBm) and remove it.",
                    f.bssid,
                    f.ssid,
                    bssids.len(),
                    // Sorted, so the reason is the same whatever the set's order.
                    bssids.iter().collect::<BTreeSet<_>>().into_iter().take(3).cloned().collect::<Vec<_>>().join(", "),
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
        self.suspect_bssids.insert(f.bssid.to_string(), (label, severity, reason.clone()));
        Some(finding(&entry, 0.95, label, severity, reason))
    }

    /// Runs the rules over `f` and returns the counts of the windows it
    /// fell in.
    fn observe(&mut self, entry: EntryRef, f: &WifiEvent<'_>, found: &mut Vec<Finding>) -> WindowLevels {
        let mut levels = WindowLevels::default();
        if let Some(a) = self.check_access_point(entry, f) {
            found.push(a);
        }
        if is_deauth(f) {
            let (hits, level) = self.deauths.push_counted(&key_of(f.bssid), entry.timestamp_ms, 0, entry);
            levels.deauths = level as f32;
            for hit in hits {
                found.push(finding(&hit, 0.9, "deauth_flood", Severity::High, format!(
                    "{level} deauthentication frames against access point {} within seconds: a deauthentication flood that disconnects clients, often to capture handshakes. Enable 802.11w (protected management frames) and locate the sender.",
                    f.bssid
                )));
            }
        } else if is_auth_failure(f) {
            let (hits, level) = self.auth_failures.push_counted(&key_of(f.client), entry.timestamp_ms, 0, entry);
            levels.auth_failures = level as f32;
            for hit in hits {
                found.push(finding(&hit, 0.85, "auth_bruteforce", Severity::High, format!(
                    "client {} failed authentication {level} times within a minute on SSID '{}': likely password guessing. Block the client MAC and review the credentials in use.",
                    f.client, f.ssid
                )));
            }
        }
        if is_weak_retry(f, self.retry_threshold) {
            let (hits, level) = self.retry_storms.push_counted(&key_of(f.bssid), entry.timestamp_ms, 0, entry);
            levels.weak_retries = level as f32;
            for hit in hits {
                found.push(finding(&hit, 0.8, "rf_jamming", Severity::Medium, format!(
                    "frames on access point {} show retry rates of {:.0}% with signal {} dBm in a burst: interference or deliberate jamming. Survey the channel.",
                    f.bssid, f.retry_rate * 100.0, f.signal_dbm
                )));
            }
        }
        levels
    }

    /// Whether the rules' windows count what the model's windows would:
    /// the model asked, the rules running, the shipped spans and the
    /// shipped retry threshold. Then the model's row reads the rules'
    /// counts, and the model's own windows rest; a snapshot saves the rules' windows as
    /// the model's, so they pick up from there if the settings change.
    fn rules_count_for_the_model(&self) -> bool {
        // `recent` keeps the shipped spans whatever the settings say.
        let model = &self.recent;
        self.model.uses_model()
            && self.model.uses_rules()
            && self.deauths.counts_as(&model.deauths)
            && self.auth_failures.counts_as(&model.auth_failures)
            && self.retry_storms.counts_as(&model.weak_retries)
            && self.retry_threshold == 0.5
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
        .with_schema_versions(1, 2)
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
                    self.known.entry(ssid.trim().to_string()).or_default().insert(bssid.trim().to_string());
                }
            }
        }
        self.model.configure(config)
    }

    fn detect(&mut self, batch: &Batch<'_>) -> Result<Vec<Finding>, AgentError> {
        let columns = WifiColumns::of(batch)?;
        let mut found = Vec::new();
        let shared = self.rules_count_for_the_model();
        let mut shared_rows = Vec::new();
        if self.model.uses_rules() {
            for i in 0..batch.len() {
                let f = columns.event(i);
                let levels = self.observe(batch.entry(i), &f, &mut found);
                if shared {
                    shared_rows.extend(model_row(&f, levels));
                }
            }
        }
        let recent = &mut self.recent;
        let rows = || {
            if shared {
                return shared_rows;
            }
            (0..batch.len()).flat_map(|i| recent.feature_row(batch.entry(i), &columns.event(i))).collect()
        };
        let threshold = self.model.threshold();
        let scored = self.model.flag(batch, FEATURES.len(), rows, &found, |i, score, version| {
            let f = columns.described(i);
            finding(&batch.entry(i), score, "wifi_model", Severity::Low, format!(
                "the Wi-Fi model (version {version}) scores this {} of {} on {} ({} dBm, retry rate {:.2}) at {score:.2}, over its threshold {threshold:.2}: far from the links it learned as normal.",
                f.event, f.client, f.bssid, f.signal_dbm, f.retry_rate
            ))
        })?;
        found.extend(scored);
        Ok(found)
    }

    fn extract_features(&mut self, batch: &Batch<'_>, index: usize) -> Result<Features, AgentError> {
        let f = WifiColumns::of(batch)?.event(index);
        // Counted where `detect` would count it, so that an instance asked
        // both ways counts each entry once.
        let row = if self.rules_count_for_the_model() {
            model_row(&f, self.observe(batch.entry(index), &f, &mut Vec::new()))
        } else {
            self.recent.feature_row(batch.entry(index), &f)
        };
        let named: Vec<(&str, f32)> = FEATURES.iter().copied().zip(row).collect();
        Ok(features(&named))
    }

    fn snapshot(&self) -> Result<Vec<u8>, AgentError> {
        let state = SavedRef {
            learned: LearnedState::of(self),
            deauths: &self.deauths,
            auth_failures: &self.auth_failures,
            retry_storms: &self.retry_storms,
            // While the rules' windows count for the model, the model's own
            // rest: the rules' are what the model has seen.
            recent: if self.rules_count_for_the_model() {
                RecentRef {
                    deauths: &self.deauths,
                    auth_failures: &self.auth_failures,
                    weak_retries: &self.retry_storms,
                }
            } else {
                RecentRef {
                    deauths: &self.recent.deauths,
                    auth_failures: &self.recent.auth_failures,
                    weak_retries: &self.recent.weak_retries,
                }
            },
        };
        serde_json::to_vec(&state).map_err(|e| AgentError::Internal(format!("snapshot: {e}")))
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), AgentError> {
        let saved: Saved = serde_json::from_slice(state)
            .map_err(|e| AgentError::Internal(format!("restore: not a state of this agent: {e}")))?;
        let rules_were_idle =
            saved.deauths.is_empty() && saved.auth_failures.is_empty() && saved.retry_storms.is_empty();
        self.deauths.take_windows(saved.deauths);
        self.auth_failures.take_windows(saved.auth_failures);
        self.retry_storms.take_windows(saved.retry_storms);
        if let Some(recent) = saved.recent {
            // The model ran alone before (`detection = "model"`) and now
            // reads the rules' windows: they carry on from the model's.
            if rules_were_idle && self.rules_count_for_the_model() {
                self.deauths.take_windows(recent.deauths.clone());
                self.auth_failures.take_windows(recent.auth_failures.clone());
                self.retry_storms.take_windows(recent.weak_retries.clone());
            }
            self.recent.take_windows(recent);
        }
        saved.learned.apply(self)
    }
}

/// The agent's whole state, as its snapshot: the host does not replay
/// entries to an agent that gave one, so the burst windows are in it too.
#[derive(serde::Serialize)]
struct SavedRef<'a> {
    learned: LearnedState,
    deauths: &'a Burst<u64>,
    auth_failures: &'a Burst<u64>,
    retry_storms: &'a Burst<u64>,
    recent: RecentRef<'a>,
}

/// The model's windows as a snapshot holds them ([`RecentActivity`]'s
/// fields), from whichever windows counted for the model.
#[derive(serde::Serialize)]
struct RecentRef<'a> {
    deauths: &'a Burst<u64>,
    auth_failures: &'a Burst<u64>,
    weak_retries: &'a Burst<u64>,
}

/// [`SavedRef`], read back.
#[derive(serde::Deserialize)]
struct Saved {
    learned: LearnedState,
    deauths: Burst<u64>,
    auth_failures: Burst<u64>,
    retry_storms: Burst<u64>,
    /// Absent from the snapshots of versions before the windowed model.
    #[serde(default)]
    recent: Option<RecentActivity>,
}

/// What the agent learned: when it first saw traffic, the access points
/// learned then, and the access points it has flagged. Ordered maps, so the
/// same state gives the same bytes.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct LearnedState {
    first_seen_ms: Option<i64>,
    known: BTreeMap<String, BTreeSet<String>>,
    /// BSSID → (label, severity, reason).
    suspects: BTreeMap<String, (String, String, String)>,
}

impl LearnedState {
    fn of(agent: &WifiAgent) -> Self {
        LearnedState {
            first_seen_ms: agent.first_seen_ms,
            known: agent.known.iter().map(|(ssid, bssids)| (ssid.clone(), bssids.iter().cloned().collect())).collect(),
            suspects: agent
                .suspect_bssids
                .iter()
                .map(|(bssid, (label, severity, reason))| {
                    (bssid.clone(), (label.to_string(), severity_name(*severity).to_string(), reason.clone()))
                })
                .collect(),
        }
    }

    fn apply(self, agent: &mut WifiAgent) -> Result<(), AgentError> {
        agent.first_seen_ms = self.first_seen_ms;
        for (ssid, bssids) in self.known {
            agent.known.entry(ssid).or_default().extend(bssids);
        }
        for (bssid, (label, severity, reason)) in self.suspects {
            let label = match label.as_str() {
                "evil_twin" => "evil_twin",
                "rogue_ap" => "rogue_ap",
                other => return Err(AgentError::Internal(format!("restore: unknown access-point label '{other}'"))),
            };
            let severity = severity_of(&severity)
                .ok_or_else(|| AgentError::Internal(format!("restore: unknown severity '{severity}'")))?;
            agent.suspect_bssids.insert(bssid, (label, severity, reason));
        }
        Ok(())
    }
}

fn severity_name(severity: Severity) -> &'static str {
    match severity {
        Severity::Info => "info",
        Severity::Low => "low",
        Severity::Medium => "medium",
        Severity::High => "high",
        Severity::Critical => "critical",
    }
}

fn severity_of(name: &str) -> Option<Severity> {
    [Severity::Info, Severity::Low, Severity::Medium, Severity::High, Severity::Critical]
        .into_iter()
        .find(|s| severity_name(*s) == name)
}

#[cfg(target_arch = "wasm32")]
mcp_sdk::export_agent!(WifiAgent);

#[cfg(test)]
mod tests {
    use mcp_sdk::{Agent, AgentError, Batch, Config, LogEntry, batch_from_entries};

    use super::{WifiAgent, WifiColumns, model_row};

    fn frame(id: u64, millis: i64, event: &str, bssid: &str, client: &str, status: &str, retry: f64) -> LogEntry {
        let fields = serde_json::json!({
            "event": event, "bssid": bssid, "ssid": "corp", "client": client,
            "signal_dbm": if retry > 0.0 { -85 } else { -50 }, "retry_rate": retry, "status": status,
        });
        LogEntry {
            id,
            timestamp_ms: 1_700_000_000_000 + millis,
            source: "controller-1".into(),
            log_type: "wifi".into(),
            fields: fields.to_string(),
        }
    }

    /// A deauthentication flood, a guessing client, a jammed access point
    /// and everyday frames, interleaved over two minutes.
    fn traffic() -> Vec<LogEntry> {
        (0..600u64)
            .map(|i| {
                let t = i as i64 * 200;
                match i % 6 {
                    0 => frame(i, t, "deauth", "aa:aa:aa:aa:aa:01", "", "", 0.0),
                    1 => frame(
                        i,
                        t,
                        "auth",
                        "aa:aa:aa:aa:aa:02",
                        &format!("cc:00:00:00:00:{:02x}", i % 3),
                        "failure",
                        0.0,
                    ),
                    2 => frame(i, t, "data", "aa:aa:aa:aa:aa:03", "cc:00:00:00:00:09", "", 0.7),
                    3 => frame(i, t, "auth", "aa:aa:aa:aa:aa:02", "cc:00:00:00:00:10", "success", 0.0),
                    _ => frame(i, t, "beacon", "aa:aa:aa:aa:aa:04", "", "", 0.0),
                }
            })
            .collect()
    }

    #[test]
    fn the_rules_windows_give_the_model_the_rows_its_own_windows_give() -> Result<(), AgentError> {
        let entries = traffic();
        let raw = batch_from_entries("wifi", 1, &entries)?;
        let batch = Batch::new(&raw)?;
        let columns = WifiColumns::of(&batch)?;
        let mut sharing = WifiAgent::default();
        sharing.configure(&Config::default())?;
        assert!(sharing.rules_count_for_the_model(), "the shipped settings count what the model counts");
        let mut own = WifiAgent::default();
        let mut found = Vec::new();
        let mut counted = 0;
        for i in 0..batch.len() {
            let f = columns.event(i);
            let shared = model_row(&f, sharing.observe(batch.entry(i), &f, &mut found));
            let separate = own.recent.feature_row(batch.entry(i), &f);
            assert_eq!(shared, separate, "entry {i}: {f:?}");
            counted += usize::from(shared[4..].iter().any(|&c| c > 1.0));
        }
        assert!(counted > 250, "the windows counted bursts: {counted} rows with a count over one");
        assert!(!found.is_empty(), "the rules found the bursts");
        Ok(())
    }

    #[test]
    fn other_spans_or_thresholds_keep_the_models_own_windows() -> Result<(), AgentError> {
        for (key, value) in
            [("deauth_window_ms", "5000"), ("auth_failure_window_ms", "120000"), ("retry_threshold", "0.3")]
        {
            let mut agent = WifiAgent::default();
            agent.configure(&Config::from_pairs([(key, value)]))?;
            assert!(!agent.rules_count_for_the_model(), "{key} = {value}");
        }
        let mut rules_off = WifiAgent::default();
        rules_off.configure(&Config::from_pairs([("detection", "model")]))?;
        assert!(!rules_off.rules_count_for_the_model(), "without the rules their windows count nothing");
        Ok(())
    }

    /// The model's rows over `entries` from `agent` as it stands, each
    /// entry counted where the agent counts it for the model.
    fn model_rows(agent: &mut WifiAgent, entries: &[LogEntry]) -> Result<Vec<Vec<f32>>, AgentError> {
        let raw = batch_from_entries("wifi", 1, entries)?;
        let batch = Batch::new(&raw)?;
        (0..batch.len()).map(|i| agent.extract_features(&batch, i).map(|f| f.values.clone())).collect()
    }

    fn configured(pairs: &[(&str, &str)]) -> Result<WifiAgent, AgentError> {
        let mut agent = WifiAgent::default();
        agent.configure(&Config::from_pairs(pairs.iter().copied()))?;
        Ok(agent)
    }

    #[test]
    fn a_snapshot_carries_the_models_windows_across_a_change_of_settings() -> Result<(), AgentError> {
        let entries = traffic();
        let (first, second) = entries.split_at(300);
        let raw = batch_from_entries("wifi", 1, first)?;
        // The model alone: it counts in its own windows throughout.
        let mut alone = configured(&[("detection", "model")])?;
        alone.detect(&Batch::new(&raw)?)?;
        let expected = model_rows(&mut alone, second)?;
        // Rules and model at the shipped settings (shared windows), then
        // other spans after a restart (the model's own windows).
        let mut shared = configured(&[])?;
        shared.detect(&Batch::new(&raw)?)?;
        let mut changed = configured(&[("deauth_window_ms", "5000")])?;
        changed.restore(&shared.snapshot()?)?;
        assert_eq!(model_rows(&mut changed, second)?, expected, "from shared windows to the model's own");
        // The model alone, then rules and model at the shipped settings.
        let mut alone_again = configured(&[("detection", "model")])?;
        alone_again.detect(&Batch::new(&raw)?)?;
        let mut both = configured(&[])?;
        both.restore(&alone_again.snapshot()?)?;
        assert_eq!(model_rows(&mut both, second)?, expected, "from the model's own windows to shared ones");
        Ok(())
    }

    #[test]
    fn an_entry_reads_the_fields_of_its_kind_and_a_finding_reads_all() -> Result<(), AgentError> {
        let entries = [frame(1, 0, "data", "aa:aa:aa:aa:aa:03", "cc:00:00:00:00:09", "ok", 0.1)];
        let raw = batch_from_entries("wifi", 1, &entries)?;
        let batch = Batch::new(&raw)?;
        let columns = WifiColumns::of(&batch)?;
        let (read, described) = (columns.event(0), columns.described(0));
        assert_eq!((read.client, read.status, read.ssid), ("", "", ""), "a data frame needs none of them");
        assert_eq!((described.client, described.status, described.ssid), ("cc:00:00:00:00:09", "ok", "corp"));
        assert_eq!((read.bssid, read.retry_rate), (described.bssid, described.retry_rate));
        Ok(())
    }
}
