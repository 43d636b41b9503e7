//! The bundled firewall agent: port scans fast and slow, sweeps of one
//! port across the site, denied-connection bursts, password guessing the
//! firewall lets through, connections to ports that command-and-control
//! tooling favours, and exfiltration in one transfer or in stages.

mod uploads;

use mcp_sdk::scoring::Scorer;
use mcp_sdk::window::{Burst, Count, key_of};
use mcp_sdk::{
    Agent, AgentError, AgentInfo, Batch, Config, EntryRef, Features, Finding, Severity, Text, Values, features, finding,
};

use crate::uploads::Uploads;

/// The columns of a batch this agent reads, resolved once.
struct FirewallColumns<'a> {
    src_ip: Text<'a>,
    dst_ip: Text<'a>,
    dst_port: Values<'a, i64>,
    action: Text<'a>,
    bytes_out: Option<Values<'a, i64>>,
}

impl<'a> FirewallColumns<'a> {
    fn of(batch: &Batch<'a>) -> Result<Self, AgentError> {
        Ok(FirewallColumns {
            src_ip: batch.text("src_ip")?,
            dst_ip: batch.text("dst_ip")?,
            dst_port: batch.integer("dst_port")?,
            action: batch.text("action")?,
            bytes_out: batch.integer_opt("bytes_out"),
        })
    }

    fn event(&self, i: usize) -> Connection<'a> {
        Connection {
            src_ip: self.src_ip.or_empty(i),
            dst_ip: self.dst_ip.or_empty(i),
            dst_port: u16::try_from(self.dst_port.or_default(i)).unwrap_or(0),
            action: self.action.or_empty(i),
            // Clamped at 2^48 (256 TB), so that an hour's sums cannot wrap.
            bytes_out: self.bytes_out.map_or(0, |c| c.or_default(i)).clamp(0, 1 << 48).unsigned_abs(),
        }
    }
}

/// The fields of one `firewall` entry that this agent reads.
#[derive(Debug, Clone, Copy)]
pub struct Connection<'a> {
    src_ip: &'a str,
    dst_ip: &'a str,
    dst_port: u16,
    action: &'a str,
    bytes_out: u64,
}

const DEFAULT_SUSPICIOUS_PORTS: &[u16] = &[23, 1337, 2323, 4444, 5555, 6667, 12345, 31337];

/// A set of ports as one bit each: every entry asks it, twice with the
/// model, and a bit test costs nothing beside a hash lookup in a guest.
#[derive(Debug, Clone)]
struct PortSet(Box<[u64; 1024]>);

impl PortSet {
    fn contains(&self, port: u16) -> bool {
        self.0[usize::from(port / 64)] & (1 << (port % 64)) != 0
    }
}

impl FromIterator<u16> for PortSet {
    fn from_iter<I: IntoIterator<Item = u16>>(ports: I) -> Self {
        let mut bits = Box::new([0u64; 1024]);
        for port in ports {
            bits[usize::from(port / 64)] |= 1 << (port % 64);
        }
        PortSet(bits)
    }
}

/// Ports where a login is tried: a source trying one of them again and
/// again from outside is guessing passwords. Mail (110, 143, 993) is left
/// out: many mail clients behind one address poll it all day.
const LOGIN_PORTS: &[u16] = &[21, 22, 23, 445, 1433, 3306, 3389, 5432, 5900];

/// Per-instance state: windows per source, per (source, destination) and
/// per (source, port).
#[derive(Debug)]
pub struct FirewallAgent {
    scans: Burst<u64>,
    slow_scans: Burst<u64>,
    sweeps: Burst<u64>,
    denies: Burst<u64>,
    guesses: Burst<u64>,
    uploads: Uploads,
    suspicious_ports: PortSet,
    login_ports: PortSet,
    exfil_bytes: u64,
    /// Bytes under which an allowed connection is a probe, not a use.
    probe_bytes: u64,
    model: Scorer,
}

const KEYS: usize = 16_384;

impl Default for FirewallAgent {
    fn default() -> Self {
        FirewallAgent {
            scans: Burst::new(60_000, 20, Count::DistinctTags, KEYS),
            slow_scans: Burst::new(3_600_000, 60, Count::DistinctTags, KEYS),
            sweeps: Burst::new(60_000, 20, Count::DistinctTags, KEYS),
            denies: Burst::new(10_000, 20, Count::Entries, KEYS),
            guesses: Burst::new(60_000, 20, Count::Entries, KEYS),
            uploads: Uploads::new(3_600_000, 500_000_000, KEYS),
            suspicious_ports: DEFAULT_SUSPICIOUS_PORTS.iter().copied().collect(),
            login_ports: LOGIN_PORTS.iter().copied().collect(),
            exfil_bytes: 100_000_000,
            probe_bytes: 100,
            model: Scorer::new("firewall"),
        }
    }
}

fn is_internal(ip: &str) -> bool {
    ip.starts_with("10.") || ip.starts_with("192.168.") || ip.starts_with("172.16.")
}

/// The model's input columns, in order: the connection, then what the
/// windows hold once it is counted (ports this source probed on this
/// destination in a minute and in an hour, hosts it probed on this port in
/// a minute, its denials in ten seconds, and megabytes it sent this service
/// in an hour), each as ln(1 + n).
pub const FEATURES: [&str; 9] = [
    "dst_port",
    "denied",
    "log_bytes_out",
    "suspicious_port",
    "log_ports_probed",
    "log_ports_probed_hour",
    "log_hosts_probed",
    "log_denials",
    "log_megabytes_sent_hour",
];

/// What the windows hold after one connection is counted.
#[derive(Debug, Clone, Copy, Default)]
struct Recent {
    ports_probed: usize,
    ports_probed_hour: usize,
    hosts_probed: usize,
    denials: usize,
    bytes_sent_hour: u64,
}

fn feature_row(suspicious_ports: &PortSet, f: &Connection<'_>, recent: Recent) -> [f32; 9] {
    [
        f32::from(f.dst_port),
        f32::from(u8::from(f.action == "deny")),
        ((f.bytes_out as f32) + 1.0).ln(),
        f32::from(u8::from(suspicious_ports.contains(f.dst_port))),
        (recent.ports_probed as f32).ln_1p(),
        (recent.ports_probed_hour as f32).ln_1p(),
        (recent.hosts_probed as f32).ln_1p(),
        (recent.denials as f32).ln_1p(),
        (recent.bytes_sent_hour as f32 / 1e6).ln_1p(),
    ]
}

impl FirewallAgent {
    /// Counts the connection into the windows and adds what the rules find.
    fn observe(&mut self, entry: EntryRef, f: &Connection<'_>, found: &mut Vec<Finding>) -> Recent {
        let mut recent = Recent::default();
        let (denied, allowed) = (f.action == "deny", f.action == "allow");
        let (from_site, to_site) = (is_internal(f.src_ip), is_internal(f.dst_ip));
        // A probe carries nothing: refused, or let through and left empty.
        // Media streams to many ports of one relay carry data, and are no scan.
        if denied || f.bytes_out < self.probe_bytes {
            let pair = key_of(&(f.src_ip, f.dst_ip));
            let (hits, level) = self.scans.push_counted(&pair, entry.timestamp_ms, u64::from(f.dst_port), entry);
            recent.ports_probed = level;
            for hit in hits {
                found.push(finding(&hit, 0.9, "port_scan", Severity::Medium, format!(
                    "{} probed {level} distinct ports on {} within a minute: a port scan. Block the source at the edge and check {} for exposed services.",
                    f.src_ip, f.dst_ip, f.dst_ip
                )));
            }
            // A scan the minute's count already reports is not counted again
            // over the hour: one anomaly per probe.
            let fast = level >= self.scans.threshold();
            let (hits, level) = if fast {
                (Vec::new(), self.slow_scans.level(&pair))
            } else {
                self.slow_scans.push_counted(&pair, entry.timestamp_ms, u64::from(f.dst_port), entry)
            };
            recent.ports_probed_hour = level;
            for hit in hits {
                found.push(finding(&hit, 0.8, "slow_port_scan", Severity::Medium, format!(
                    "{} probed {level} distinct ports on {} within an hour, too slowly for any minute's count: a slow port scan. Block the source and check {} for exposed services.",
                    f.src_ip, f.dst_ip, f.dst_ip
                )));
            }
            if to_site {
                let port = key_of(&(f.src_ip, f.dst_port));
                let (hits, level) = self.sweeps.push_counted(&port, entry.timestamp_ms, key_of(f.dst_ip), entry);
                recent.hosts_probed = level;
                for hit in hits {
                    found.push(finding(&hit, 0.9, "host_sweep", Severity::High, format!(
                        "{} probed port {} on {level} distinct hosts of the site within a minute: a sweep for one service, as worms and attackers mapping the network make. Isolate {} and check it.",
                        f.src_ip, f.dst_port, f.src_ip
                    )));
                }
            }
        }

        if denied {
            let (hits, level) = self.denies.push_counted(&key_of(f.src_ip), entry.timestamp_ms, 0, entry);
            recent.denials = level;
            for hit in hits {
                found.push(finding(&hit, 0.85, "deny_burst", Severity::Medium, format!(
                    "{level} connections from {} were denied within 10 seconds (latest to {}:{}): brute force or a misbehaving host. Rate-limit or block the source.",
                    f.src_ip, f.dst_ip, f.dst_port
                )));
            }
        }

        if allowed && !from_site && to_site && self.login_ports.contains(f.dst_port) {
            let key = key_of(&(f.src_ip, f.dst_ip, f.dst_port));
            let (hits, level) = self.guesses.push_counted(&key, entry.timestamp_ms, 0, entry);
            for hit in hits {
                found.push(finding(&hit, 0.85, "brute_force", Severity::High, format!(
                    "{} opened {level} connections to the login service at {}:{} within a minute, each short: password guessing the firewall lets through. Block the source and check the service's failed logins.",
                    f.src_ip, f.dst_ip, f.dst_port
                )));
            }
        }

        if allowed && self.suspicious_ports.contains(f.dst_port) {
            found.push(finding(&entry, 0.8, "suspicious_port", Severity::High, format!(
                "{} connected to {}:{}, a port used by remote-access trojans and botnet control channels; the firewall allowed it. Isolate {} and inspect its processes.",
                f.src_ip, f.dst_ip, f.dst_port, f.src_ip
            )));
        }

        if allowed && from_site && !to_site {
            if f.bytes_out >= self.exfil_bytes {
                found.push(finding(&entry, 0.9, "exfiltration", Severity::Critical, format!(
                    "{} sent {:.1} MB to external {}:{} in one connection, far above normal uploads: possible data exfiltration. Identify the process and the data.",
                    f.src_ip, f.bytes_out as f64 / 1e6, f.dst_ip, f.dst_port
                )));
            }
            // Only uploads of a megabyte and more are summed: the rest could
            // not reach the bar within the hour, and would fill the windows.
            if f.bytes_out >= 1_000_000 {
                let key = key_of(&(f.src_ip, f.dst_ip, f.dst_port));
                let (hits, sum) = self.uploads.push(key, f.bytes_out, entry);
                recent.bytes_sent_hour = sum;
                for hit in hits {
                    found.push(finding(&hit, 0.85, "staged_exfiltration", Severity::Critical, format!(
                        "{} sent {:.0} MB to external {}:{} within an hour in uploads each below the single-transfer bar: exfiltration in stages. Identify the process and the data.",
                        f.src_ip, sum as f64 / 1e6, f.dst_ip, f.dst_port
                    )));
                }
            }
        }
        recent
    }
}

impl Agent for FirewallAgent {
    fn info() -> AgentInfo {
        mcp_sdk::info(
            "firewall",
            "firewall",
            env!("CARGO_PKG_VERSION"),
            "Finds port scans, denied-connection bursts, connections to command-and-control ports and exfiltration-sized transfers in firewall logs.",
            &["src_ip", "dst_ip", "dst_port", "action", "bytes_out"],
        )
    }

    fn configure(&mut self, config: &Config) -> Result<(), AgentError> {
        self.scans = Burst::new(
            config.parse_or("scan_window_ms", 60_000)?,
            config.parse_or("scan_distinct_ports", 20)?,
            Count::DistinctTags,
            KEYS,
        );
        self.denies = Burst::new(
            config.parse_or("deny_window_ms", 10_000)?,
            config.parse_or("deny_threshold", 20)?,
            Count::Entries,
            KEYS,
        );
        self.slow_scans = Burst::new(
            config.parse_or("slow_scan_window_ms", 3_600_000)?,
            config.parse_or("slow_scan_distinct_ports", 60)?,
            Count::DistinctTags,
            KEYS,
        );
        self.sweeps = Burst::new(
            config.parse_or("sweep_window_ms", 60_000)?,
            config.parse_or("sweep_distinct_hosts", 20)?,
            Count::DistinctTags,
            KEYS,
        );
        self.guesses = Burst::new(
            config.parse_or("login_window_ms", 60_000)?,
            config.parse_or("login_threshold", 20)?,
            Count::Entries,
            KEYS,
        );
        self.uploads = Uploads::new(
            config.parse_or("staged_exfil_window_ms", 3_600_000)?,
            config.parse_or("staged_exfil_bytes", 500_000_000)?,
            KEYS,
        );
        self.probe_bytes = config.parse_or("probe_bytes", 100)?;
        self.exfil_bytes = config.parse_or("exfil_bytes", 100_000_000)?;
        if let Some(ports) = config.get("suspicious_ports") {
            self.suspicious_ports = ports
                .split(',')
                .map(|p| {
                    p.trim().parse().map_err(|_| AgentError::Config(format!("suspicious_ports: '{p}' is not a port")))
                })
                .collect::<Result<_, _>>()?;
        }
        self.model.configure(config)
    }

    fn detect(&mut self, batch: &Batch<'_>) -> Result<Vec<Finding>, AgentError> {
        let columns = FirewallColumns::of(batch)?;
        let mut found = Vec::new();
        // The windows count every connection whichever way the agent
        // detects: the model reads them too.
        let with_rows = self.model.uses_model();
        let mut rows = Vec::with_capacity(if with_rows { batch.len() * FEATURES.len() } else { 0 });
        for i in 0..batch.len() {
            let connection = columns.event(i);
            let recent = self.observe(batch.entry(i), &connection, &mut found);
            if with_rows {
                rows.extend(feature_row(&self.suspicious_ports, &connection, recent));
            }
        }
        if !self.model.uses_rules() {
            found.clear();
        }
        let threshold = self.model.threshold();
        let scored = self.model.flag(batch, FEATURES.len(), || rows, &found, |i, score, version| {
            let f = columns.event(i);
            finding(&batch.entry(i), score, "firewall_model", Severity::Medium, format!(
                "the firewall model (version {version}) scores {} -> {}:{} ({}, {} bytes out) at {score:.2}, over its threshold {threshold:.2}: the connection and what its source did around it are unlike normal traffic. Check both hosts.",
                f.src_ip, f.dst_ip, f.dst_port, f.action, f.bytes_out
            ))
        })?;
        found.extend(scored);
        Ok(found)
    }

    fn extract_features(&mut self, batch: &Batch<'_>, index: usize) -> Result<Features, AgentError> {
        let connection = FirewallColumns::of(batch)?.event(index);
        // Counted into the windows as `detect` counts it: an instance asked
        // for features is fed the stream in order, as one asked to detect.
        let recent = self.observe(batch.entry(index), &connection, &mut Vec::new());
        let row = feature_row(&self.suspicious_ports, &connection, recent);
        let named: Vec<(&str, f32)> = FEATURES.iter().copied().zip(row).collect();
        Ok(features(&named))
    }
}

#[cfg(target_arch = "wasm32")]
mcp_sdk::export_agent!(FirewallAgent);

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::BTreeMap;

    use mcp_sdk::{LogEntry, batch_from_entries, run_batch};

    fn connection(id: u64, seconds: i64, src: &str, dst: &str, port: u16, action: &str, bytes: u64) -> LogEntry {
        let fields = serde_json::json!({
            "src_ip": src, "dst_ip": dst, "dst_port": port, "action": action, "bytes_out": bytes,
        });
        LogEntry {
            id,
            timestamp_ms: 1_700_000_000_000 + seconds * 1000,
            source: "fw-1".into(),
            log_type: "firewall".into(),
            fields: fields.to_string(),
        }
    }

    /// The labels the rules give each flagged entry.
    fn verdicts(mut entries: Vec<LogEntry>) -> Result<BTreeMap<u64, Vec<String>>, AgentError> {
        entries.sort_by_key(|e| (e.timestamp_ms, e.id));
        let mut agent = FirewallAgent::default();
        agent.configure(&Config::from_pairs([("detection", "rules")]))?;
        let mut out: BTreeMap<u64, Vec<String>> = BTreeMap::new();
        for found in run_batch(&mut agent, &batch_from_entries("firewall", 1, &entries)?)? {
            out.entry(found.entry.id).or_default().push(found.label);
        }
        Ok(out)
    }

    #[test]
    fn a_scan_slower_than_a_minute_is_found_over_the_hour() -> Result<(), AgentError> {
        let scan: Vec<LogEntry> = (0..70u64)
            .map(|i| connection(i + 1, i as i64 * 40, "198.51.100.7", "10.0.1.5", 1000 + i as u16, "deny", 0))
            .collect();
        let found = verdicts(scan)?;
        assert_eq!(found.len(), 70, "every probe of the slow scan: {found:?}");
        assert!(found.values().all(|labels| labels == &["slow_port_scan"]), "{found:?}");
        Ok(())
    }

    #[test]
    fn media_streams_to_many_ports_are_no_scan_and_a_sweep_of_one_port_is_found() -> Result<(), AgentError> {
        let mut entries: Vec<LogEntry> = (0..60u64)
            .map(|i| connection(i + 1, i as i64, "10.8.1.2", "203.0.113.9", 50_000 + i as u16, "allow", 2_000_000))
            .collect();
        entries.extend(
            (0..30u64)
                .map(|i| connection(100 + i, i as i64, "10.9.0.66", &format!("10.9.3.{}", i + 2), 445, "allow", 0)),
        );
        let found = verdicts(entries)?;
        assert!(found.keys().all(|id| *id >= 100), "the call was flagged: {found:?}");
        assert_eq!(found.len(), 30);
        assert!(found.values().all(|labels| labels == &["host_sweep"]), "{found:?}");
        Ok(())
    }

    #[test]
    fn password_guessing_let_through_and_exfiltration_in_stages_are_found() -> Result<(), AgentError> {
        let mut entries: Vec<LogEntry> =
            (0..40u64).map(|i| connection(i + 1, i as i64, "198.51.100.8", "10.0.1.9", 22, "allow", 3_000)).collect();
        // A browser's forty connections to one web server are no guessing.
        entries
            .extend((0..40u64).map(|i| connection(100 + i, i as i64, "198.51.100.9", "10.0.1.9", 443, "allow", 3_000)));
        // Twenty uploads of 30 MB to one service, each under the 100 MB bar.
        entries.extend(
            (0..20u64)
                .map(|i| connection(200 + i, i as i64 * 60, "10.8.1.3", "203.0.113.10", 443, "allow", 30_000_000)),
        );
        let found = verdicts(entries)?;
        let labelled = |label: &str| found.iter().filter(|(_, l)| l.iter().any(|x| x == label)).count();
        assert_eq!(labelled("brute_force"), 40, "the window once it holds twenty tries, then each: {found:?}");
        assert_eq!(labelled("staged_exfiltration"), 20, "every upload, once the sum passes 500 MB: {found:?}");
        assert!(found.keys().all(|id| !(100..140).contains(id)), "{found:?}");
        Ok(())
    }

    #[test]
    fn a_port_set_holds_exactly_its_ports_at_both_ends_of_the_range() {
        let set: PortSet = [0, 23, 63, 64, 31337, 65535].into_iter().collect();
        for port in [0, 23, 63, 64, 31337, 65535] {
            assert!(set.contains(port), "{port} was put in");
        }
        for port in [1, 22, 24, 62, 65, 31336, 65534] {
            assert!(!set.contains(port), "{port} was not put in");
        }
    }
}
