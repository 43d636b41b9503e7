//! Which access points belong to the site, and which impersonate it: an
//! unknown BSSID advertising or accepting clients under a known SSID (an
//! evil twin), a known BSSID heard on two channels at once (an evil twin
//! that copied it), and an unknown network that clients join (a rogue
//! access point). Networks nobody joins (the neighbours', phone hotspots)
//! are not reported: a site hears dozens a day.

use std::collections::{BTreeMap, BTreeSet};

use mcp_sdk::hashing::{KeyedMap, KeyedSet};
use mcp_sdk::window::make_room;
use mcp_sdk::{AgentError, EntryRef, Finding, Severity, finding};

use crate::WifiEvent;

/// Unknown networks remembered at once; the longest unheard go first.
const MAX_STRANGERS: usize = 4096;
/// BSSIDs whose channels are tracked, and BSSIDs reported: forged beacons
/// under random BSSIDs must not grow them without end.
const MAX_TRACKED: usize = 16_384;
/// Entries a copy must be heard in before it is called one, so that one
/// forged frame does not make a real access point's BSSID a suspect.
const MIN_COPY_ENTRIES: usize = 3;

/// The channels a known BSSID was heard on.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Channels {
    /// Where it lives, and when it was last heard there.
    home: u32,
    home_last_ms: i64,
    /// Another channel it was heard on: a move (radar, the controller's
    /// channel plan) or a copy.
    other: Option<OtherChannel>,
}

/// Entries held on another channel until it is known whether the BSSID
/// moved there or was copied; a copy's entries are then reported too.
const MAX_HELD: usize = 256;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct OtherChannel {
    channel: u32,
    first_ms: i64,
    last_ms: i64,
    held: Vec<EntryRef>,
}

/// Why a BSSID's entries are reported.
#[derive(Debug, Clone)]
struct Suspect {
    label: &'static str,
    severity: Severity,
    reason: String,
    /// Only the entries on this channel: the real access point keeps its own.
    channel: Option<u32>,
}

#[derive(Debug)]
pub struct AccessPoints {
    learn_ms: i64,
    /// How long a BSSID heard only on a new channel takes to count as
    /// moved there, and how long both channels must both be heard within
    /// to count as a copy.
    move_ms: i64,
    first_seen_ms: Option<i64>,
    /// SSID → its BSSIDs, learned or vouched for.
    known: KeyedMap<String, KeyedSet<String>>,
    /// BSSIDs the operator vouches for: never suspects, even restored ones.
    vouched: KeyedSet<String>,
    channels: KeyedMap<String, Channels>,
    /// BSSID → (SSID, last heard) of networks that appeared after learning.
    strangers: KeyedMap<String, (String, i64)>,
    suspects: KeyedMap<String, Suspect>,
}

impl Default for AccessPoints {
    fn default() -> Self {
        AccessPoints {
            learn_ms: 600_000,
            move_ms: 3_600_000,
            first_seen_ms: None,
            known: KeyedMap::default(),
            vouched: KeyedSet::default(),
            channels: KeyedMap::default(),
            strangers: KeyedMap::default(),
            suspects: KeyedMap::default(),
        }
    }
}

impl AccessPoints {
    pub fn configure(&mut self, learn_ms: i64, move_ms: i64, vouched: Option<&str>) {
        self.learn_ms = learn_ms;
        self.move_ms = move_ms;
        // "ssid=bssid,ssid=bssid": access points the operator vouches for.
        for pair in vouched.unwrap_or_default().split(',') {
            if let Some((ssid, bssid)) = pair.split_once('=') {
                self.known.entry(ssid.trim().to_string()).or_default().insert(bssid.trim().to_string());
                self.suspects.remove(bssid.trim());
                self.vouched.insert(bssid.trim().to_string());
            }
        }
    }

    fn learning(&mut self, now_ms: i64) -> bool {
        let start = *self.first_seen_ms.get_or_insert(now_ms);
        now_ms.saturating_sub(start) < self.learn_ms
    }

    /// Adds to `found` what `f` shows about the site's access points.
    pub fn check(&mut self, entry: EntryRef, f: &WifiEvent<'_>, found: &mut Vec<Finding>) {
        if let Some(finding) = self.judge(entry, f, found) {
            found.push(finding);
        }
    }

    fn judge(&mut self, entry: EntryRef, f: &WifiEvent<'_>, found: &mut Vec<Finding>) -> Option<Finding> {
        if f.bssid.is_empty() {
            return None;
        }
        // Most of the time there is no suspect: skip hashing the BSSID then.
        if !self.suspects.is_empty()
            && let Some(suspect) = self.suspects.get(f.bssid)
            && suspect.channel.is_none_or(|c| c == f.channel)
        {
            return Some(finding(&entry, 0.95, suspect.label, suspect.severity, suspect.reason.clone()));
        }
        if self.learning(entry.timestamp_ms) {
            self.learn(entry, f);
            return None;
        }
        // A row without a channel (0) tells nothing about channels.
        if let Some(channels) = self.channels.get_mut(f.bssid) {
            if f.channel == 0 {
                return None;
            }
            return match heard(channels, f.channel, entry, self.move_ms) {
                Heard::Copied(channel, held) => self.copied(entry, f, channel, held, found),
                Heard::Expected => None,
            };
        }
        if f.event == "beacon" {
            return self.new_beacon(entry, f);
        }
        // A client joined a BSSID that was never heard beaconing here.
        let joined = f.event == "assoc" || (f.event == "auth" && f.status == "success");
        if !joined || f.client.is_empty() {
            return None;
        }
        if let Some((ssid, _)) = self.strangers.get(f.bssid) {
            let reason = format!(
                "client {} joined unknown access point {} (SSID '{ssid}', channel {}, signal {} dBm), which appeared after the site's access points were learned: a rogue access point people use. Find it and check whether it is authorised.",
                f.client, f.bssid, f.channel, f.signal_dbm
            );
            return Some(self.suspect(entry, f.bssid, "rogue_ap", Severity::High, reason, None));
        }
        match self.known.get(f.ssid) {
            Some(bssids) if !bssids.contains(f.bssid) => self.impostor(entry, f),
            Some(_) => None,
            None if f.ssid.is_empty() => None,
            None => {
                let reason = format!(
                    "client {} joined unknown access point {} (SSID '{}', channel {}, signal {} dBm), never heard here before: a rogue access point people use. Find it and check whether it is authorised.",
                    f.client, f.bssid, f.ssid, f.channel, f.signal_dbm
                );
                Some(self.suspect(entry, f.bssid, "rogue_ap", Severity::High, reason, None))
            }
        }
    }

    fn learn(&mut self, entry: EntryRef, f: &WifiEvent<'_>) {
        if f.event == "beacon" && self.channels.len() < MAX_TRACKED {
            let seen = self.known.get(f.ssid).is_some_and(|bssids| bssids.contains(f.bssid));
            if !seen {
                self.known.entry(f.ssid.to_string()).or_default().insert(f.bssid.to_string());
            }
        }
        if f.channel == 0 {
            return;
        }
        let room = self.channels.len() < MAX_TRACKED;
        match self.channels.get_mut(f.bssid) {
            Some(channels) => {
                channels.home = f.channel;
                channels.home_last_ms = entry.timestamp_ms;
            }
            None if f.event == "beacon" && room => {
                let channels = Channels { home: f.channel, home_last_ms: entry.timestamp_ms, other: None };
                self.channels.insert(f.bssid.to_string(), channels);
            }
            None => {}
        }
    }

    /// A beacon of a BSSID not learned: an impostor if its SSID is the
    /// site's, a stranger to watch otherwise.
    fn new_beacon(&mut self, entry: EntryRef, f: &WifiEvent<'_>) -> Option<Finding> {
        let Some(bssids) = self.known.get(f.ssid) else {
            self.remember_stranger(f, entry.timestamp_ms);
            return None;
        };
        if !bssids.contains(f.bssid) {
            return self.impostor(entry, f);
        }
        // Vouched for by the operator: learn where it lives.
        if f.channel != 0 && self.channels.len() < MAX_TRACKED {
            let channels = Channels { home: f.channel, home_last_ms: entry.timestamp_ms, other: None };
            self.channels.insert(f.bssid.to_string(), channels);
        }
        None
    }

    fn remember_stranger(&mut self, f: &WifiEvent<'_>, now_ms: i64) {
        if let Some((_, last)) = self.strangers.get_mut(f.bssid) {
            *last = now_ms;
            return;
        }
        if self.strangers.len() >= MAX_STRANGERS {
            // A beacon flood of random networks must not stop the tracking of the next one.
            make_room(&mut self.strangers, MAX_STRANGERS, |(_, last)| *last, i64::MIN);
        }
        self.strangers.insert(f.bssid.to_string(), (f.ssid.to_string(), now_ms));
    }

    /// An unknown BSSID under a known SSID, beaconing or accepting a client.
    fn impostor(&mut self, entry: EntryRef, f: &WifiEvent<'_>) -> Option<Finding> {
        let bssids = self.known.get(f.ssid)?;
        let reason = format!(
            "access point {} advertises SSID '{}' that belongs to {} known access point(s) ({}); clients may be lured onto an impostor. Locate it (channel {}, signal {} dBm) and remove it.",
            f.bssid,
            f.ssid,
            bssids.len(),
            // Sorted, so the reason is the same whatever the set's order.
            bssids.iter().collect::<BTreeSet<_>>().into_iter().take(3).cloned().collect::<Vec<_>>().join(", "),
            f.channel,
            f.signal_dbm
        );
        Some(self.suspect(entry, f.bssid, "evil_twin", Severity::Critical, reason, None))
    }

    fn copied(
        &mut self,
        entry: EntryRef,
        f: &WifiEvent<'_>,
        channel: u32,
        held: Vec<EntryRef>,
        found: &mut Vec<Finding>,
    ) -> Option<Finding> {
        let home = self.channels.get(f.bssid).map_or(0, |c| c.home);
        let reason = format!(
            "access point {} is heard on channel {channel} while it carries on on its own channel {home}: an impostor copied its BSSID to lure its clients. Locate the one on channel {channel} and remove it.",
            f.bssid
        );
        let current = self.suspect(entry, f.bssid, "evil_twin", Severity::Critical, reason.clone(), Some(channel));
        found.extend(
            held.iter()
                .filter(|e| e.id != entry.id)
                .map(|e| finding(e, 0.95, "evil_twin", Severity::Critical, reason.clone())),
        );
        // The entry that showed the copy may be the real one's.
        (f.channel == channel).then_some(current)
    }

    fn suspect(
        &mut self,
        entry: EntryRef,
        bssid: &str,
        label: &'static str,
        severity: Severity,
        reason: String,
        channel: Option<u32>,
    ) -> Finding {
        let found = finding(&entry, 0.95, label, severity, reason.clone());
        // Past the bound each new impostor is still reported, on each entry it is heard in.
        if self.suspects.len() < MAX_TRACKED && !self.vouched.contains(bssid) {
            self.suspects.insert(bssid.to_string(), Suspect { label, severity, reason, channel });
        }
        found
    }
}

enum Heard {
    Expected,
    /// Heard on its own channel and on this one, each after the other
    /// appeared, within the move time; with the copy's entries held so far.
    Copied(u32, Vec<EntryRef>),
}

/// Records a known BSSID heard on `channel` in `entry`. A move leaves the
/// old channel silent; a copy does not.
fn heard(channels: &mut Channels, channel: u32, entry: EntryRef, move_ms: i64) -> Heard {
    let now_ms = entry.timestamp_ms;
    let since = |then: i64| now_ms.saturating_sub(then);
    if channel == channels.home {
        channels.home_last_ms = now_ms;
        let Some(other) = channels.other.take() else { return Heard::Expected };
        if since(other.last_ms) <= move_ms && other.first_ms < now_ms && other.held.len() >= MIN_COPY_ENTRIES {
            return Heard::Copied(other.channel, other.held);
        }
        // Not heard there for the move time: it went away. Heard there too
        // few times to tell a copy from a stray or forged frame: wait.
        if since(other.last_ms) <= move_ms {
            channels.other = Some(other);
        }
        return Heard::Expected;
    }
    match &mut channels.other {
        Some(other) if other.channel == channel => {
            other.last_ms = now_ms;
            if other.held.len() < MAX_HELD {
                other.held.push(entry);
            }
            let home_since = channels.home_last_ms > other.first_ms && since(channels.home_last_ms) <= move_ms;
            if home_since && other.held.len() >= MIN_COPY_ENTRIES {
                let held = std::mem::take(&mut other.held);
                channels.other = None;
                return Heard::Copied(channel, held);
            }
            if since(other.first_ms) > move_ms && channels.home_last_ms < other.first_ms {
                // Silent on its own channel all this time: it moved.
                *channels = Channels { home: channel, home_last_ms: now_ms, other: None };
            }
            Heard::Expected
        }
        _ => {
            channels.other = Some(OtherChannel { channel, first_ms: now_ms, last_ms: now_ms, held: vec![entry] });
            Heard::Expected
        }
    }
}

/// What the agent learned, as its snapshot holds it: ordered maps, so the
/// same state gives the same bytes. The fields after `suspects` are absent
/// from the snapshots of versions before channels were tracked.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct LearnedState {
    first_seen_ms: Option<i64>,
    known: BTreeMap<String, BTreeSet<String>>,
    /// BSSID → (label, severity, reason).
    suspects: BTreeMap<String, (String, String, String)>,
    /// BSSID → the only channel its suspect entries are on.
    #[serde(default)]
    suspect_channels: BTreeMap<String, u32>,
    #[serde(default)]
    channels: BTreeMap<String, Channels>,
    /// Absent (`None`) from the previous version's snapshots, which
    /// reported every new network at once: their `rogue_ap` suspects are
    /// read back as networks to watch.
    #[serde(default)]
    strangers: Option<BTreeMap<String, (String, i64)>>,
}

impl LearnedState {
    pub fn of(points: &AccessPoints) -> Self {
        let suspects = sorted(&points.suspects);
        LearnedState {
            first_seen_ms: points.first_seen_ms,
            known: points.known.iter().map(|(ssid, bssids)| (ssid.clone(), bssids.iter().cloned().collect())).collect(),
            suspect_channels: suspects.iter().filter_map(|(bssid, s)| s.channel.map(|c| (bssid.clone(), c))).collect(),
            suspects: suspects
                .into_iter()
                .map(|(bssid, s)| {
                    (bssid, (s.label.to_string(), severity_name(s.severity).to_string(), s.reason.clone()))
                })
                .collect(),
            channels: sorted(&points.channels).into_iter().map(|(k, v)| (k, v.clone())).collect(),
            strangers: Some(sorted(&points.strangers).into_iter().map(|(k, v)| (k, v.clone())).collect()),
        }
    }

    pub fn apply(self, points: &mut AccessPoints) -> Result<(), AgentError> {
        points.first_seen_ms = self.first_seen_ms;
        for (ssid, bssids) in self.known {
            points.known.entry(ssid).or_default().extend(bssids);
        }
        let previous_version = self.strangers.is_none();
        for (bssid, (label, severity, reason)) in self.suspects {
            let label = match label.as_str() {
                "evil_twin" => "evil_twin",
                "rogue_ap" => "rogue_ap",
                other => return Err(AgentError::Internal(format!("restore: unknown access-point label '{other}'"))),
            };
            let severity = severity_of(&severity)
                .ok_or_else(|| AgentError::Internal(format!("restore: unknown severity '{severity}'")))?;
            if points.vouched.contains(&bssid) {
                continue;
            }
            if previous_version && label == "rogue_ap" {
                // Reported on its first beacon then; now only once joined.
                let heard = self.first_seen_ms.unwrap_or_default();
                points.strangers.insert(bssid, (String::new(), heard));
                continue;
            }
            let channel = self.suspect_channels.get(&bssid).copied();
            points.suspects.insert(bssid, Suspect { label, severity, reason, channel });
        }
        points.channels.extend(self.channels.into_iter().take(MAX_TRACKED.saturating_sub(points.channels.len())));
        let room = MAX_STRANGERS.saturating_sub(points.strangers.len());
        points.strangers.extend(self.strangers.unwrap_or_default().into_iter().take(room));
        Ok(())
    }
}

/// `map` in key order, so the same state gives the same bytes.
fn sorted<V>(map: &KeyedMap<String, V>) -> BTreeMap<String, &V> {
    map.iter().map(|(k, v)| (k.clone(), v)).collect()
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
