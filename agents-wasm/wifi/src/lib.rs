//! The bundled Wi-Fi agent: deauthentication floods (frames that repeat,
//! not an access point letting its clients go), password guessing from one
//! address or from many, evil-twin and rogue access points, and RF jamming
//! (many clients of one access point retrying at once).

mod access_points;

use access_points::{AccessPoints, LearnedState};
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
    channel: u32,
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
    channel: Option<Number<'a>>,
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
            channel: batch.number_opt("channel"),
            signal_dbm: batch.number_opt("signal_dbm"),
            retry_rate: batch.number_opt("retry_rate"),
            status: batch.text_opt("status"),
        })
    }

    /// Entry `i` with the fields the rules and the model read for its
    /// kind: the SSID for beacons, associations and authentications, the client for
    /// frames of a client, the status for authentications, empty otherwise.
    /// Each text read costs bounds checks that a guest pays in full
    /// (docs/performance.md).
    fn event(&self, i: usize) -> WifiEvent<'a> {
        let text = |c: &Option<Text<'a>>| c.map_or("", |c| c.or_empty(i));
        let number = |c: &Option<Number<'a>>| c.map_or(0.0, |c| c.or_zero(i));
        let event = self.event.or_empty(i);
        let (needs_ssid, needs_client, needs_status) = match event {
            "auth" => (true, true, true),
            "assoc" => (true, true, false),
            "beacon" => (true, false, false),
            "probe" => (false, false, false),
            _ => (false, true, false),
        };
        WifiEvent {
            event,
            bssid: self.bssid.or_empty(i),
            ssid: if needs_ssid { text(&self.ssid) } else { "" },
            client: if needs_client { text(&self.client) } else { "" },
            // Channels are small whole numbers; anything else is no channel.
            channel: number(&self.channel).clamp(0.0, f64::from(u32::MAX)) as u32,
            signal_dbm: number(&self.signal_dbm),
            retry_rate: number(&self.retry_rate),
            status: if needs_status { text(&self.status) } else { "" },
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
    deauth_targets: Burst<u64>,
    auth_failures: Burst<u64>,
    failing_clients: Burst<u64>,
    retry_storms: Burst<u64>,
    access_points: AccessPoints,
    retry_threshold: f64,
    model: Scorer,
    recent: RecentActivity,
}

/// Keys each window tracks at most.
const KEYS: usize = 4096;
const CLIENT_KEYS: usize = 16_384;

impl Default for WifiAgent {
    fn default() -> Self {
        WifiAgent {
            deauths: Burst::new(10_000, 15, Count::Repeats, KEYS),
            deauth_targets: Burst::new(60_000, 10, Count::Entries, CLIENT_KEYS),
            auth_failures: Burst::new(60_000, 6, Count::Entries, CLIENT_KEYS),
            failing_clients: Burst::new(60_000, 10, Count::DistinctTags, KEYS),
            retry_storms: Burst::new(30_000, 5, Count::DistinctTags, KEYS),
            access_points: AccessPoints::default(),
            retry_threshold: 0.5,
            model: Scorer::new("wifi"),
            recent: RecentActivity::default(),
        }
    }
}

/// The model's input columns, in order: four of the entry itself, then
/// four of the windows it falls in (as ln(1 + n)), so that the model sees a
/// burst as the rules do rather than one frame at a time.
pub const FEATURES: [&str; 8] = [
    "signal_dbm",
    "retry_rate",
    "is_deauth",
    "is_auth_failure",
    "deauth_repeats_on_bssid_10s",
    "auth_failures_by_client_60s",
    "failing_clients_on_bssid_60s",
    "retrying_clients_on_bssid_30s",
];

/// Whether a frame counts towards the jamming window: retried at least
/// `retry_threshold` of the time. Signal is no part of it: a jammer raises
/// the noise, not the clients' signal.
fn is_retrying(f: &WifiEvent<'_>, retry_threshold: f64) -> bool {
    f.retry_rate >= retry_threshold && !f.client.is_empty()
}

/// The windows behind the model's last four features. They are the
/// model's own, apart from the rules' (whose spans the operator may change
/// and which do not run in `model` mode), with the spans the shipped model
/// was trained on. Each entry is counted once, in order, whether `detect`
/// or `extract-features` sees it, so training sees what serving sees.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct RecentActivity {
    deauths: Burst<u64>,
    auth_failures: Burst<u64>,
    failing_clients: Burst<u64>,
    retrying_clients: Burst<u64>,
}

impl Default for RecentActivity {
    fn default() -> Self {
        // A threshold never reached: these windows count, they never alarm.
        RecentActivity {
            deauths: Burst::new(10_000, usize::MAX, Count::Repeats, KEYS),
            auth_failures: Burst::new(60_000, usize::MAX, Count::Entries, CLIENT_KEYS),
            failing_clients: Burst::new(60_000, usize::MAX, Count::DistinctTags, KEYS),
            retrying_clients: Burst::new(30_000, usize::MAX, Count::DistinctTags, KEYS),
        }
    }
}

impl RecentActivity {
    /// Takes the windows of `saved`, keeping these windows' settings (a
    /// saved copy of the rules' windows carries the rules' thresholds).
    fn take_windows(&mut self, saved: SavedRecent) {
        self.deauths.take_windows(saved.deauths);
        self.auth_failures.take_windows(saved.auth_failures);
        if let Some(failing) = saved.failing_clients {
            self.failing_clients.take_windows(failing);
        }
        if let Some(retrying) = saved.retrying_clients {
            self.retrying_clients.take_windows(retrying);
        }
    }

    /// Counts `f` into its windows and returns the model's row for it: the
    /// window counts are those of the entry's own kind, zero for other kinds.
    fn feature_row(&mut self, entry: EntryRef, f: &WifiEvent<'_>) -> [f32; 8] {
        let count = |window: &mut Burst<u64>, key: &str, tag: &str| {
            let key = key_of(key);
            window.push_counted(&key, entry.timestamp_ms, key_of(tag), entry).1 as f32
        };
        let mut levels = WindowLevels::default();
        if is_deauth(f) {
            levels.deauths = count(&mut self.deauths, f.bssid, f.client);
        } else if is_auth_failure(f) {
            levels.auth_failures = count(&mut self.auth_failures, f.client, "");
            levels.failing_clients = count(&mut self.failing_clients, f.bssid, f.client);
        }
        // The model's window uses the shipped default, whatever `retry_threshold` says.
        if is_retrying(f, 0.5) {
            levels.retrying_clients = count(&mut self.retrying_clients, f.bssid, f.client);
        }
        model_row(f, levels)
    }
}

/// The counts of the windows an entry falls in, zero for the windows of
/// other kinds.
#[derive(Debug, Clone, Copy, Default)]
struct WindowLevels {
    deauths: f32,
    auth_failures: f32,
    failing_clients: f32,
    retrying_clients: f32,
}

fn is_deauth(f: &WifiEvent<'_>) -> bool {
    f.event == "deauth" || f.event == "disassoc"
}

fn is_auth_failure(f: &WifiEvent<'_>) -> bool {
    f.event == "auth" && f.status == "failure"
}

fn model_row(f: &WifiEvent<'_>, levels: WindowLevels) -> [f32; 8] {
    [
        f.signal_dbm as f32,
        f.retry_rate as f32,
        f32::from(u8::from(is_deauth(f))),
        f32::from(u8::from(is_auth_failure(f))),
        // Counts as ln(1 + n): a flood's hundreds and a busy minute's few
        // would otherwise make the distance a count of frames.
        levels.deauths.ln_1p(),
        levels.auth_failures.ln_1p(),
        levels.failing_clients.ln_1p(),
        levels.retrying_clients.ln_1p(),
    ]
}

impl WifiAgent {
    /// Runs the rules over `f` and returns the counts of the windows it
    /// fell in.
    fn observe(&mut self, entry: EntryRef, f: &WifiEvent<'_>, found: &mut Vec<Finding>) -> WindowLevels {
        let mut levels = WindowLevels::default();
        self.access_points.check(entry, f, found);
        let ts = entry.timestamp_ms;
        let retrying = is_retrying(f, self.retry_threshold);
        // A SipHash per entry would be most of a data frame's cost: only
        // the frames a client window counts need the client's key.
        let client = if retrying || is_deauth(f) || is_auth_failure(f) { key_of(f.client) } else { 0 };
        if is_deauth(f) {
            let (hits, level) = self.deauths.push_counted(&key_of(f.bssid), ts, client, entry);
            levels.deauths = level as f32;
            for hit in hits {
                found.push(finding(&hit, 0.9, "deauth_flood", Severity::High, format!(
                    "{level} deauthentication frames against access point {} within seconds repeat a target already sent one (last {}): a deauthentication flood that disconnects clients, often to capture handshakes or push them to an impostor. Enable 802.11w (protected management frames) and locate the sender.",
                    f.bssid, f.client
                )));
            }
            let target = key_of(&(f.bssid, f.client));
            let (hits, level) = self.deauth_targets.push_counted(&target, ts, 0, entry);
            for hit in hits {
                found.push(finding(&hit, 0.85, "deauth_flood", Severity::High, format!(
                    "client {} was sent {level} deauthentication frames from access point {} within a minute: someone is keeping it off the network, slowly enough to pass for normal. Enable 802.11w and locate the sender.",
                    f.client, f.bssid
                )));
            }
        } else if is_auth_failure(f) {
            let (hits, level) = self.auth_failures.push_counted(&client, ts, 0, entry);
            levels.auth_failures = level as f32;
            for hit in hits {
                found.push(finding(&hit, 0.85, "auth_bruteforce", Severity::High, format!(
                    "client {} failed authentication {level} times within a minute on SSID '{}': likely password guessing. Block the client MAC and review the credentials in use.",
                    f.client, f.ssid
                )));
            }
            let (hits, level) = self.failing_clients.push_counted(&key_of(f.bssid), ts, client, entry);
            levels.failing_clients = level as f32;
            for hit in hits {
                found.push(finding(&hit, 0.85, "auth_bruteforce", Severity::High, format!(
                    "{level} different client addresses failed authentication on access point {} (SSID '{}') within a minute: password guessing under a new address per try. Check the authentication server's log for the accounts tried.",
                    f.bssid, f.ssid
                )));
            }
        }
        if retrying {
            let (hits, level) = self.retry_storms.push_counted(&key_of(f.bssid), ts, client, entry);
            levels.retrying_clients = level as f32;
            for hit in hits {
                found.push(finding(&hit, 0.8, "rf_jamming", Severity::Medium, format!(
                    "{level} clients of access point {} (channel {}) retried {:.0}% of their frames or more within half a minute: interference or deliberate jamming. Survey the channel.",
                    f.bssid, f.channel, f.retry_rate * 100.0
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
            && self.failing_clients.counts_as(&model.failing_clients)
            && self.retry_storms.counts_as(&model.retrying_clients)
            && self.retry_threshold == 0.5
    }
}

/// `found` with each (entry, label) once: two rules may report the same
/// frame (a targeted flood trips the per-client and the per-access-point
/// windows), and the host counts a second report as a rejected finding.
fn once_per_entry_and_label(found: Vec<Finding>) -> Vec<Finding> {
    let mut seen = std::collections::HashSet::with_capacity(found.len());
    found.into_iter().filter(|f| seen.insert((f.entry.id, f.label.clone()))).collect()
}

impl Agent for WifiAgent {
    fn info() -> AgentInfo {
        mcp_sdk::info(
            "wifi",
            "wifi",
            env!("CARGO_PKG_VERSION"),
            "Finds deauthentication floods, password guessing, evil-twin and rogue access points, and RF jamming in Wi-Fi controller logs.",
            &[
                "event",
                "bssid",
                "ssid",
                "client",
                "channel",
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
            Count::Repeats,
            KEYS,
        );
        self.deauth_targets = Burst::new(
            config.parse_or("deauth_target_window_ms", 60_000)?,
            config.parse_or("deauth_target_threshold", 10)?,
            Count::Entries,
            CLIENT_KEYS,
        );
        self.auth_failures = Burst::new(
            config.parse_or("auth_failure_window_ms", 60_000)?,
            config.parse_or("auth_failure_threshold", 6)?,
            Count::Entries,
            CLIENT_KEYS,
        );
        self.failing_clients = Burst::new(
            config.parse_or("spray_window_ms", 60_000)?,
            config.parse_or("spray_clients", 10)?,
            Count::DistinctTags,
            KEYS,
        );
        self.retry_storms = Burst::new(
            config.parse_or("jam_window_ms", 30_000)?,
            config.parse_or("jam_clients", 5)?,
            Count::DistinctTags,
            KEYS,
        );
        self.retry_threshold = config.parse_or("retry_threshold", 0.5)?;
        self.access_points.configure(
            config.parse_or("learn_ms", 600_000)?,
            config.parse_or("channel_move_ms", 3_600_000)?,
            config.get("known_bssids"),
        );
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
        Ok(once_per_entry_and_label(found))
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
        // While the rules' windows count for the model, the model's own
        // rest: the rules' are what the model has seen.
        let recent = if self.rules_count_for_the_model() {
            RecentRef {
                deauths: &self.deauths,
                auth_failures: &self.auth_failures,
                failing_clients: &self.failing_clients,
                retrying_clients: &self.retry_storms,
            }
        } else {
            RecentRef {
                deauths: &self.recent.deauths,
                auth_failures: &self.recent.auth_failures,
                failing_clients: &self.recent.failing_clients,
                retrying_clients: &self.recent.retrying_clients,
            }
        };
        let state = SavedRef {
            learned: LearnedState::of(&self.access_points),
            deauths: &self.deauths,
            deauth_targets: &self.deauth_targets,
            auth_failures: &self.auth_failures,
            failing_clients: &self.failing_clients,
            retry_storms: &self.retry_storms,
            recent,
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
        if let Some(targets) = saved.deauth_targets {
            self.deauth_targets.take_windows(targets);
        }
        if let Some(failing) = saved.failing_clients {
            self.failing_clients.take_windows(failing);
        }
        if let Some(recent) = saved.recent {
            // The model ran alone before (`detection = "model"`) and now
            // reads the rules' windows: they carry on from the model's.
            if rules_were_idle && self.rules_count_for_the_model() {
                self.deauths.take_windows(recent.deauths.clone());
                self.auth_failures.take_windows(recent.auth_failures.clone());
                if let Some(failing) = &recent.failing_clients {
                    self.failing_clients.take_windows(failing.clone());
                }
                if let Some(retrying) = &recent.retrying_clients {
                    self.retry_storms.take_windows(retrying.clone());
                }
            }
            self.recent.take_windows(recent);
        }
        saved.learned.apply(&mut self.access_points)
    }
}

/// The agent's whole state, as its snapshot: the host does not replay
/// entries to an agent that gave one, so the burst windows are in it too.
#[derive(serde::Serialize)]
struct SavedRef<'a> {
    learned: LearnedState,
    deauths: &'a Burst<u64>,
    deauth_targets: &'a Burst<u64>,
    auth_failures: &'a Burst<u64>,
    failing_clients: &'a Burst<u64>,
    retry_storms: &'a Burst<u64>,
    recent: RecentRef<'a>,
}

/// The model's windows as a snapshot holds them ([`RecentActivity`]'s
/// fields), from whichever windows counted for the model.
#[derive(serde::Serialize)]
struct RecentRef<'a> {
    deauths: &'a Burst<u64>,
    auth_failures: &'a Burst<u64>,
    failing_clients: &'a Burst<u64>,
    retrying_clients: &'a Burst<u64>,
}

/// [`SavedRef`], read back. The windows added with the realistic profile
/// (agent 0.4) are absent from older snapshots and start empty.
#[derive(serde::Deserialize)]
struct Saved {
    learned: LearnedState,
    deauths: Burst<u64>,
    auth_failures: Burst<u64>,
    retry_storms: Burst<u64>,
    #[serde(default)]
    deauth_targets: Option<Burst<u64>>,
    #[serde(default)]
    failing_clients: Option<Burst<u64>>,
    /// Absent from the snapshots of versions before the windowed model.
    #[serde(default)]
    recent: Option<SavedRecent>,
}

/// [`RecentRef`], read back.
#[derive(serde::Deserialize)]
struct SavedRecent {
    deauths: Burst<u64>,
    auth_failures: Burst<u64>,
    #[serde(default)]
    failing_clients: Option<Burst<u64>>,
    #[serde(default)]
    retrying_clients: Option<Burst<u64>>,
}

#[cfg(target_arch = "wasm32")]
mcp_sdk::export_agent!(WifiAgent);

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use mcp_sdk::{Agent, AgentError, Batch, Config, LogEntry, batch_from_entries};

    use super::{WifiAgent, WifiColumns, model_row};

    fn frame(id: u64, millis: i64, event: &str, bssid: &str, client: &str, status: &str, retry: f64) -> LogEntry {
        on_channel(id, millis, event, bssid, "corp", 6, client, status, retry)
    }

    #[allow(clippy::too_many_arguments)]
    fn on_channel(
        id: u64,
        millis: i64,
        event: &str,
        bssid: &str,
        ssid: &str,
        channel: u32,
        client: &str,
        status: &str,
        retry: f64,
    ) -> LogEntry {
        let fields = serde_json::json!({
            "event": event, "bssid": bssid, "ssid": ssid, "client": client, "channel": channel,
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

    /// A deauthentication flood, guessing clients, a jammed access point
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
                    2 => frame(i, t, "data", "aa:aa:aa:aa:aa:03", &format!("cc:00:00:00:01:{:02x}", i % 8), "", 0.7),
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
            counted += usize::from(shared[4..].iter().any(|&c| c > 1f32.ln_1p()));
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
        assert_eq!(
            (read.client, read.status, read.ssid),
            ("cc:00:00:00:00:09", "", ""),
            "a data frame needs its client only"
        );
        assert_eq!((described.client, described.status, described.ssid), ("cc:00:00:00:00:09", "ok", "corp"));
        assert_eq!((read.bssid, read.retry_rate), (described.bssid, described.retry_rate));
        Ok(())
    }

    /// The ids of the entries `agent` reports under `label`, and all it reported.
    fn reported(agent: &mut WifiAgent, entries: &[LogEntry], label: &str) -> Result<BTreeSet<u64>, AgentError> {
        let raw = batch_from_entries("wifi", 1, entries)?;
        let found = agent.detect(&Batch::new(&raw)?)?;
        Ok(found.iter().filter(|f| f.label == label).map(|f| f.entry.id).collect())
    }

    fn rules_only() -> Result<WifiAgent, AgentError> {
        configured(&[("detection", "rules")])
    }

    fn client(n: u64) -> String {
        format!("cc:00:00:00:{:02x}:{:02x}", n / 256, n % 256)
    }

    #[test]
    fn an_access_point_letting_every_client_go_is_no_flood_and_repeated_frames_are() -> Result<(), AgentError> {
        // A firmware upgrade: sixty clients let go within two seconds, once each.
        let upgrade: Vec<LogEntry> =
            (0..60).map(|i| frame(i, i as i64 * 30, "deauth", "aa:aa:aa:aa:aa:01", &client(i), "", 0.0)).collect();
        assert!(reported(&mut rules_only()?, &upgrade, "deauth_flood")?.is_empty());
        // Round-robin over thirty clients, six rounds at ten frames a second:
        // the first round is reported with the rest.
        let round_robin: Vec<LogEntry> = (0..180)
            .map(|i| frame(i, i as i64 * 100, "deauth", "aa:aa:aa:aa:aa:01", &client(i % 30), "", 0.0))
            .collect();
        let flagged = reported(&mut rules_only()?, &round_robin, "deauth_flood")?;
        assert_eq!(flagged.len(), 180, "every frame of the round-robin flood");
        // Broadcast frames repeat from the second on.
        let broadcast: Vec<LogEntry> = (0..40)
            .map(|i| frame(i, i as i64 * 50, "deauth", "aa:aa:aa:aa:aa:01", "ff:ff:ff:ff:ff:ff", "", 0.0))
            .collect();
        assert_eq!(reported(&mut rules_only()?, &broadcast, "deauth_flood")?.len(), 40);
        Ok(())
    }

    #[test]
    fn a_client_kept_off_slowly_is_found() -> Result<(), AgentError> {
        // One frame every four seconds: never more than three in ten seconds.
        let slow: Vec<LogEntry> =
            (0..60).map(|i| frame(i, i as i64 * 4_000, "deauth", "aa:aa:aa:aa:aa:01", &client(7), "", 0.0)).collect();
        let flagged = reported(&mut rules_only()?, &slow, "deauth_flood")?;
        assert!(flagged.len() >= 50, "{} of 60 frames", flagged.len());
        // A client that roams away twice a minute is not.
        let roaming: Vec<LogEntry> = (0..60)
            .map(|i| frame(i, i as i64 * 30_000, "disassoc", "aa:aa:aa:aa:aa:01", &client(7), "", 0.0))
            .collect();
        assert!(reported(&mut rules_only()?, &roaming, "deauth_flood")?.is_empty());
        Ok(())
    }

    #[test]
    fn guessing_under_a_new_address_per_try_is_found_and_an_outage_is_not() -> Result<(), AgentError> {
        let spray: Vec<LogEntry> = (0..40)
            .map(|i| frame(i, i as i64 * 2_000, "auth", "aa:aa:aa:aa:aa:02", &client(100 + i), "failure", 0.0))
            .collect();
        let flagged = reported(&mut rules_only()?, &spray, "auth_bruteforce")?;
        assert!(flagged.len() >= 30, "{} of 40 tries", flagged.len());
        // An authentication server outage: every client fails three times
        // with back-off, spread over the site's access points.
        let mut outage = Vec::new();
        for c in 0..200u64 {
            let (start, bssid) = (c as i64 * 2_100, format!("aa:aa:aa:aa:ab:{:02x}", c % 24));
            for (k, pause) in [0, 10_000, 30_000].into_iter().enumerate() {
                outage.push(frame(c * 3 + k as u64, start + pause, "auth", &bssid, &client(c), "failure", 0.0));
            }
        }
        outage.sort_by_key(|e| e.timestamp_ms);
        assert!(reported(&mut rules_only()?, &outage, "auth_bruteforce")?.is_empty());
        Ok(())
    }

    #[test]
    fn many_clients_retrying_at_once_is_jamming_and_one_laptop_at_the_edge_is_not() -> Result<(), AgentError> {
        let jammed: Vec<LogEntry> =
            (0..60).map(|i| frame(i, i as i64 * 500, "data", "aa:aa:aa:aa:aa:03", &client(i % 8), "", 0.8)).collect();
        assert!(reported(&mut rules_only()?, &jammed, "rf_jamming")?.len() >= 50);
        let edge: Vec<LogEntry> =
            (0..300).map(|i| frame(i, i as i64 * 1_500, "data", "aa:aa:aa:aa:aa:03", &client(1), "", 0.8)).collect();
        assert!(reported(&mut rules_only()?, &edge, "rf_jamming")?.is_empty());
        Ok(())
    }

    /// Beacons of `bssid` every minute for `minutes`, from `start_min`.
    fn beacons(bssid: &str, ssid: &str, channel: u32, start_min: i64, minutes: i64, first_id: u64) -> Vec<LogEntry> {
        (0..minutes)
            .map(|k| {
                on_channel(first_id + k as u64, (start_min + k) * 60_000, "beacon", bssid, ssid, channel, "", "", 0.0)
            })
            .collect()
    }

    fn in_time_order(mut entries: Vec<LogEntry>) -> Vec<LogEntry> {
        entries.sort_by_key(|e| (e.timestamp_ms, e.id));
        entries
    }

    #[test]
    fn a_copy_of_a_real_bssid_on_another_channel_is_a_twin_and_a_move_is_not() -> Result<(), AgentError> {
        const REAL: &str = "00:3a:7d:00:00:00";
        // The real access point beacons on channel 6 all along; from minute
        // 30 a copy beacons on channel 11 and a client joins it.
        let mut entries = beacons(REAL, "corp", 6, 0, 60, 0);
        entries.extend(beacons(REAL, "corp", 11, 30, 20, 1_000));
        entries.push(on_channel(2_000, 35 * 60_000 + 1, "assoc", REAL, "corp", 11, &client(3), "", 0.0));
        let entries = in_time_order(entries);
        let flagged = reported(&mut rules_only()?, &entries, "evil_twin")?;
        assert!(flagged.contains(&2_000), "the client that joined the copy");
        assert!(flagged.iter().all(|&id| id >= 1_000), "only the copy's entries: {flagged:?}");
        assert_eq!(flagged.len(), 21, "the copy's entries, those before it was known too");
        // Radar moves the access point to channel 36 at minute 30.
        let mut moved = beacons(REAL, "corp", 52, 0, 30, 0);
        moved.extend(beacons(REAL, "corp", 36, 30, 30, 1_000));
        assert!(reported(&mut rules_only()?, &moved, "evil_twin")?.is_empty());
        Ok(())
    }

    #[test]
    fn networks_nobody_joins_are_not_reported_and_one_people_join_is_rogue() -> Result<(), AgentError> {
        let mut entries = beacons("00:3a:7d:00:00:00", "corp", 6, 0, 90, 0);
        // A phone hotspot and a router on a desk, both after the learning time.
        entries.extend(beacons("da:11:22:33:44:55", "iPhone de Marie", 1, 30, 30, 1_000));
        entries.extend(beacons("a0:40:a0:01:02:03", "NETGEAR47", 6, 40, 30, 2_000));
        entries.push(on_channel(
            3_000,
            45 * 60_000 + 1,
            "assoc",
            "a0:40:a0:01:02:03",
            "NETGEAR47",
            6,
            &client(9),
            "",
            0.0,
        ));
        let entries = in_time_order(entries);
        let flagged = reported(&mut rules_only()?, &entries, "rogue_ap")?;
        assert!(flagged.contains(&3_000));
        assert!(flagged.iter().all(|&id| id >= 2_000), "the hotspot is not reported: {flagged:?}");
        assert!(flagged.len() >= 25, "the router's beacons after the client joined: {flagged:?}");
        Ok(())
    }

    #[test]
    fn a_snapshot_of_the_version_before_carries_its_learned_access_points() -> Result<(), AgentError> {
        let window =
            |count| serde_json::to_value(mcp_sdk::window::Burst::<u64>::new(10_000, 15, count, 16)).unwrap_or_default();
        let entries = mcp_sdk::window::Count::Entries;
        let old = serde_json::json!({
            "learned": {
                "first_seen_ms": 1_700_000_000_000i64,
                "known": { "corp": ["00:3a:7d:00:00:00"] },
                "suspects": { "de:ad:be:ef:00:01": ["evil_twin", "critical", "an impostor"] },
            },
            "deauths": window(entries), "auth_failures": window(entries), "retry_storms": window(entries),
            "recent": { "deauths": window(entries), "auth_failures": window(entries), "weak_retries": window(entries) },
        });
        let mut agent = rules_only()?;
        agent.restore(old.to_string().as_bytes())?;
        let later = [
            on_channel(1, 3_600_000, "data", "de:ad:be:ef:00:01", "corp", 6, &client(1), "", 0.0),
            on_channel(2, 3_600_001, "beacon", "00:3a:7d:00:00:00", "corp", 6, "", "", 0.0),
        ];
        assert_eq!(reported(&mut agent, &later, "evil_twin")?, BTreeSet::from([1]));
        Ok(())
    }

    #[test]
    fn a_forged_frame_or_a_row_without_channel_makes_no_copy() -> Result<(), AgentError> {
        const REAL: &str = "00:3a:7d:00:00:00";
        let mut entries = beacons(REAL, "corp", 6, 0, 60, 0);
        // One frame under the real BSSID on channel 11, two rows with no channel.
        entries.push(on_channel(1_000, 30 * 60_000 + 1, "data", REAL, "corp", 11, &client(3), "", 0.0));
        entries.push(on_channel(1_001, 31 * 60_000 + 1, "data", REAL, "corp", 0, &client(4), "", 0.0));
        entries.push(on_channel(1_002, 32 * 60_000 + 1, "beacon", REAL, "corp", 0, "", "", 0.0));
        let entries = in_time_order(entries);
        assert!(reported(&mut rules_only()?, &entries, "evil_twin")?.is_empty());
        Ok(())
    }

    #[test]
    fn a_twin_that_never_beacons_is_found_by_the_clients_it_accepts() -> Result<(), AgentError> {
        let mut entries = beacons("00:3a:7d:00:00:00", "corp", 6, 0, 60, 0);
        entries.push(on_channel(
            1_000,
            30 * 60_000 + 1,
            "auth",
            "02:66:66:66:66:66",
            "corp",
            6,
            &client(3),
            "success",
            0.0,
        ));
        entries.push(on_channel(1_001, 30 * 60_000 + 2, "assoc", "02:66:66:66:66:66", "corp", 6, &client(3), "", 0.0));
        entries.push(on_channel(1_002, 30 * 60_000 + 3, "data", "02:66:66:66:66:66", "corp", 6, &client(3), "", 0.0));
        let entries = in_time_order(entries);
        assert_eq!(reported(&mut rules_only()?, &entries, "evil_twin")?, BTreeSet::from([1_000, 1_001, 1_002]));
        Ok(())
    }

    #[test]
    fn a_beacon_flood_of_random_networks_does_not_hide_the_next_rogue() -> Result<(), AgentError> {
        let mut entries = beacons("00:3a:7d:00:00:00", "corp", 6, 0, 30, 0);
        for k in 0..5_000u64 {
            let bssid = format!("02:00:00:00:{:02x}:{:02x}", k / 256, k % 256);
            entries.push(on_channel(
                1_000 + k,
                20 * 60_000 + k as i64,
                "beacon",
                &bssid,
                &format!("spam{k}"),
                1,
                "",
                "",
                0.0,
            ));
        }
        entries.push(on_channel(9_000, 25 * 60_000, "beacon", "a0:40:a0:01:02:03", "NETGEAR47", 6, "", "", 0.0));
        entries.push(on_channel(
            9_001,
            25 * 60_000 + 1,
            "assoc",
            "a0:40:a0:01:02:03",
            "NETGEAR47",
            6,
            &client(9),
            "",
            0.0,
        ));
        let entries = in_time_order(entries);
        assert_eq!(reported(&mut rules_only()?, &entries, "rogue_ap")?, BTreeSet::from([9_001]));
        Ok(())
    }

    #[test]
    fn a_targeted_flood_reports_each_frame_once() -> Result<(), AgentError> {
        let raw_entries: Vec<LogEntry> =
            (0..64).map(|i| frame(i, i as i64 * 15, "deauth", "aa:aa:aa:aa:aa:01", &client(7), "", 0.0)).collect();
        let raw = batch_from_entries("wifi", 1, &raw_entries)?;
        let found = rules_only()?.detect(&Batch::new(&raw)?)?;
        let ids: BTreeSet<u64> = found.iter().map(|f| f.entry.id).collect();
        assert_eq!((ids.len(), found.len()), (64, 64), "each of 64 frames once");
        Ok(())
    }

    #[test]
    fn restoring_the_version_before_watches_its_rogues_and_drops_vouched_suspects() -> Result<(), AgentError> {
        let window =
            |count| serde_json::to_value(mcp_sdk::window::Burst::<u64>::new(10_000, 15, count, 16)).unwrap_or_default();
        let entries = mcp_sdk::window::Count::Entries;
        let old = serde_json::json!({
            "learned": {
                "first_seen_ms": 1_700_000_000_000i64,
                "known": { "corp": ["00:3a:7d:00:00:00"] },
                "suspects": {
                    "da:11:22:33:44:55": ["rogue_ap", "high", "a hotspot"],
                    "00:3a:7d:00:00:09": ["evil_twin", "critical", "an access point added since"],
                },
            },
            "deauths": window(entries), "auth_failures": window(entries), "retry_storms": window(entries),
        });
        let mut agent = configured(&[("detection", "rules"), ("known_bssids", "corp=00:3a:7d:00:00:09")])?;
        agent.restore(old.to_string().as_bytes())?;
        let later = [
            on_channel(1, 3_600_000, "beacon", "da:11:22:33:44:55", "iPhone", 1, "", "", 0.0),
            on_channel(2, 3_600_001, "beacon", "00:3a:7d:00:00:09", "corp", 6, "", "", 0.0),
            on_channel(3, 3_600_002, "assoc", "da:11:22:33:44:55", "iPhone", 1, &client(1), "", 0.0),
        ];
        let raw = batch_from_entries("wifi", 1, &later)?;
        let found = agent.detect(&Batch::new(&raw)?)?;
        let reported: Vec<(u64, &str)> = found.iter().map(|f| (f.entry.id, f.label.as_str())).collect();
        assert_eq!(reported, vec![(3, "rogue_ap")], "the hotspot only once joined, the vouched one never");
        Ok(())
    }
}
