//! The bundled firewall agent: port scans, denied-connection bursts,
//! connections to ports that command-and-control tooling favours, and
//! exfiltration-sized transfers.

use mcp_sdk::scoring::Scorer;
use mcp_sdk::window::{Burst, Count, key_of};
use mcp_sdk::{
    Agent, AgentError, AgentInfo, Batch, Config, EntryRef, Features, Finding, Severity, Text, Values, features, finding,
};

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
            bytes_out: self.bytes_out.map_or(0, |c| c.or_default(i)).max(0).unsigned_abs(),
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

/// Per-instance state: scan and deny windows per source.
#[derive(Debug)]
pub struct FirewallAgent {
    scans: Burst<u64>,
    denies: Burst<u64>,
    suspicious_ports: PortSet,
    exfil_bytes: u64,
    model: Scorer,
}

impl Default for FirewallAgent {
    fn default() -> Self {
        FirewallAgent {
            scans: Burst::new(60_000, 20, Count::DistinctTags, 16_384),
            denies: Burst::new(10_000, 20, Count::Entries, 16_384),
            suspicious_ports: DEFAULT_SUSPICIOUS_PORTS.iter().copied().collect(),
            exfil_bytes: 100_000_000,
            model: Scorer::new("firewall"),
        }
    }
}

fn is_internal(ip: &str) -> bool {
    ip.starts_with("10.") || ip.starts_with("192.168.") || ip.starts_with("172.16.")
}

/// The model's input columns, in order.
pub const FEATURES: [&str; 4] = ["dst_port", "denied", "log_bytes_out", "suspicious_port"];

fn feature_row(suspicious_ports: &PortSet, f: &Connection<'_>) -> [f32; 4] {
    [
        f32::from(f.dst_port),
        f32::from(u8::from(f.action == "deny")),
        ((f.bytes_out as f32) + 1.0).ln(),
        f32::from(u8::from(suspicious_ports.contains(f.dst_port))),
    ]
}

impl FirewallAgent {
    fn observe(&mut self, entry: EntryRef, f: &Connection<'_>, found: &mut Vec<Finding>) {
        let scan_key = key_of(&(f.src_ip, f.dst_ip));
        let hits = self.scans.push(&scan_key, entry.timestamp_ms, u64::from(f.dst_port), entry);
        if !hits.is_empty() {
            let level = self.scans.level(&scan_key);
            for hit in hits {
                found.push(finding(&hit, 0.9, "port_scan", Severity::Medium, format!(
                    "{} probed {level} distinct ports on {} within a minute: a port scan. Block the source at the edge and check {} for exposed services.",
                    f.src_ip, f.dst_ip, f.dst_ip
                )));
            }
        }

        if f.action == "deny" {
            let hits = self.denies.push(&key_of(f.src_ip), entry.timestamp_ms, 0, entry);
            if !hits.is_empty() {
                let level = self.denies.level(&key_of(f.src_ip));
                for hit in hits {
                    found.push(finding(&hit, 0.85, "deny_burst", Severity::Medium, format!(
                        "{level} connections from {} were denied within 10 seconds (latest to {}:{}): brute force or a misbehaving host. Rate-limit or block the source.",
                        f.src_ip, f.dst_ip, f.dst_port
                    )));
                }
            }
        }

        if f.action == "allow" && self.suspicious_ports.contains(f.dst_port) {
            found.push(finding(&entry, 0.8, "suspicious_port", Severity::High, format!(
                "{} connected to {}:{}, a port used by remote-access trojans and botnet control channels; the firewall allowed it. Isolate {} and inspect its processes.",
                f.src_ip, f.dst_ip, f.dst_port, f.src_ip
            )));
        }

        if f.action == "allow" && f.bytes_out >= self.exfil_bytes && is_internal(f.src_ip) && !is_internal(f.dst_ip) {
            found.push(finding(&entry, 0.9, "exfiltration", Severity::Critical, format!(
                "{} sent {:.1} MB to external {}:{} in one connection, far above normal uploads: possible data exfiltration. Identify the process and the data.",
                f.src_ip, f.bytes_out as f64 / 1e6, f.dst_ip, f.dst_port
            )));
        }
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
            16_384,
        );
        self.denies = Burst::new(
            config.parse_or("deny_window_ms", 10_000)?,
            config.parse_or("deny_threshold", 20)?,
            Count::Entries,
            16_384,
        );
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
        if self.model.uses_rules() {
            for i in 0..batch.len() {
                self.observe(batch.entry(i), &columns.event(i), &mut found);
            }
        }
        let suspicious = &self.suspicious_ports;
        let rows = || (0..batch.len()).flat_map(|i| feature_row(suspicious, &columns.event(i))).collect();
        let threshold = self.model.threshold();
        let scored = self.model.flag(batch, FEATURES.len(), rows, &found, |i, score, version| {
            let f = columns.event(i);
            finding(&batch.entry(i), score, "firewall_model", Severity::Medium, format!(
                "the firewall model (version {version}) scores {} -> {}:{} ({}, {} bytes out) at {score:.2}, over its threshold {threshold:.2}: port and volume unlike normal traffic. Check both hosts.",
                f.src_ip, f.dst_ip, f.dst_port, f.action, f.bytes_out
            ))
        })?;
        found.extend(scored);
        Ok(found)
    }

    fn extract_features(&mut self, batch: &Batch<'_>, index: usize) -> Result<Features, AgentError> {
        let row = feature_row(&self.suspicious_ports, &FirewallColumns::of(batch)?.event(index));
        let named: Vec<(&str, f32)> = FEATURES.iter().copied().zip(row).collect();
        Ok(features(&named))
    }
}

#[cfg(target_arch = "wasm32")]
mcp_sdk::export_agent!(FirewallAgent);

#[cfg(test)]
mod tests {
    use super::*;

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
