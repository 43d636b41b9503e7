//! The bundled DNS agent: tunnelling and exfiltration through long or
//! high-entropy labels, NXDOMAIN bursts, and algorithmically generated
//! domains (DGA).

use mcp_sdk::scoring::Scorer;
use mcp_sdk::window::{Burst, Count, entropy, key_of};
use mcp_sdk::{
    Agent, AgentError, AgentInfo, Batch, Config, EntryRef, Features, Finding, Severity, Text, features, finding,
};

/// The fields of one `dns` entry that this agent reads.
#[derive(Debug, Clone, Copy)]
pub struct Lookup<'a> {
    client_ip: &'a str,
    query: &'a str,
    qtype: &'a str,
    rcode: &'a str,
}

/// The columns of a batch this agent reads, resolved once.
struct DnsColumns<'a> {
    client_ip: Text<'a>,
    query: Text<'a>,
    qtype: Option<Text<'a>>,
    rcode: Text<'a>,
}

impl<'a> DnsColumns<'a> {
    fn of(batch: &Batch<'a>) -> Result<Self, AgentError> {
        Ok(DnsColumns {
            client_ip: batch.text("client_ip")?,
            query: batch.text("query")?,
            qtype: batch.text_opt("qtype"),
            rcode: batch.text("rcode")?,
        })
    }

    fn lookup(&self, i: usize) -> Lookup<'a> {
        Lookup {
            client_ip: self.client_ip.or_empty(i),
            query: self.query.or_empty(i),
            qtype: self.qtype.map_or("", |c| c.or_empty(i)),
            rcode: self.rcode.or_empty(i),
        }
    }
}

/// Per-instance state: NXDOMAIN windows per client.
#[derive(Debug)]
pub struct DnsAgent {
    nxdomains: Burst<u64>,
    tunnel_label_len: usize,
    dga_min_len: usize,
    /// Registered domains whose names the name rules and the model do not
    /// judge (`allow_domains`): lower case, no trailing dot.
    allowed: Vec<String>,
    model: Scorer,
}

impl Default for DnsAgent {
    fn default() -> Self {
        DnsAgent {
            nxdomains: Burst::new(30_000, 15, Count::Entries, 16_384),
            tunnel_label_len: 30,
            dga_min_len: 10,
            allowed: Vec::new(),
            model: Scorer::new("dns"),
        }
    }
}

/// The model's input columns, in order.
pub const FEATURES: [&str; 5] = ["query_len", "longest_label", "label_entropy", "vowel_ratio", "nxdomain"];

fn feature_row(f: &Lookup<'_>) -> [f32; 5] {
    let label = registered_label(f.query);
    let longest = f.query.split('.').map(str::len).max().unwrap_or(0);
    [
        f.query.len() as f32,
        longest as f32,
        entropy(label),
        vowel_ratio(label),
        f32::from(u8::from(f.rcode == "NXDOMAIN")),
    ]
}

/// The label just left of the top-level domain ("example" in "a.example.com").
fn registered_label(query: &str) -> &str {
    let mut labels = query.trim_end_matches('.').rsplit('.');
    labels.next();
    labels.next().unwrap_or("")
}

fn vowel_ratio(label: &str) -> f32 {
    if label.is_empty() {
        return 0.0;
    }
    let vowels = label.bytes().filter(|b| b"aeiou".contains(b)).count();
    vowels as f32 / label.len() as f32
}

fn digit_ratio(label: &str) -> f32 {
    if label.is_empty() {
        return 0.0;
    }
    label.bytes().filter(u8::is_ascii_digit).count() as f32 / label.len() as f32
}

/// Whether `query` is `domain` or a name under it, in any letter case and
/// with or without the trailing dot. Compared as bytes: a query is guest
/// input and need not be ASCII.
fn is_under(query: &str, domain: &str) -> bool {
    let name = query.trim_end_matches('.').as_bytes();
    let domain = domain.as_bytes();
    let Some(start) = name.len().checked_sub(domain.len()) else { return false };
    name[start..].eq_ignore_ascii_case(domain) && (start == 0 || name[start - 1] == b'.')
}

impl DnsAgent {
    fn is_allowed(&self, query: &str) -> bool {
        self.allowed.iter().any(|domain| is_under(query, domain))
    }

    fn tunnel(&self, entry: EntryRef, f: &Lookup<'_>) -> Option<Finding> {
        let longest = f.query.split('.').max_by_key(|l| l.len()).unwrap_or("");
        if longest.len() < self.tunnel_label_len || entropy(longest) < 3.5 {
            return None;
        }
        Some(finding(
            &entry,
            0.9,
            "dns_tunnel",
            Severity::High,
            format!(
                "{} queried {} ({}) with a {}-character label of entropy {:.1} bits/char: data encoded into DNS names, typical of tunnelling or exfiltration. Block the domain and inspect the client.",
                f.client_ip,
                f.query,
                f.qtype,
                longest.len(),
                entropy(longest)
            ),
        ))
    }

    fn dga(&self, entry: EntryRef, f: &Lookup<'_>) -> Option<Finding> {
        let label = registered_label(f.query);
        let randomness = entropy(label);
        let vowels = vowel_ratio(label);
        let looks_generated =
            label.len() >= self.dga_min_len && randomness >= 3.2 && (vowels < 0.28 || digit_ratio(label) > 0.25);
        if !looks_generated {
            return None;
        }
        Some(finding(
            &entry,
            0.8,
            "dga",
            Severity::High,
            format!(
                "{} looked up {}: the name '{label}' reads as machine-generated ({:.1} bits/char, {:.0}% vowels), as malware does to find its controller. Check {} for infection.",
                f.client_ip,
                f.query,
                randomness,
                vowels * 100.0,
                f.client_ip
            ),
        ))
    }
    fn observe(&mut self, entry: EntryRef, f: &Lookup<'_>, found: &mut Vec<Finding>) {
        if !self.is_allowed(f.query) {
            found.extend(self.tunnel(entry, f));
            found.extend(self.dga(entry, f));
        }
        if f.rcode == "NXDOMAIN" {
            let hits = self.nxdomains.push(&key_of(f.client_ip), entry.timestamp_ms, 0, entry);
            if !hits.is_empty() {
                let level = self.nxdomains.level(&key_of(f.client_ip));
                for hit in hits {
                    found.push(finding(&hit, 0.85, "nxdomain_burst", Severity::Medium, format!(
                        "{} received {level} NXDOMAIN answers within 30 seconds (latest for {}): random-subdomain flooding or malware probing for live domains. Inspect the client.",
                        f.client_ip, f.query
                    )));
                }
            }
        }
    }
}

impl Agent for DnsAgent {
    fn info() -> AgentInfo {
        mcp_sdk::info(
            "dns",
            "dns",
            env!("CARGO_PKG_VERSION"),
            "Finds DNS tunnelling and exfiltration, NXDOMAIN bursts and algorithmically generated domains in resolver logs.",
            &["client_ip", "query", "qtype", "rcode"],
        )
    }

    fn configure(&mut self, config: &Config) -> Result<(), AgentError> {
        self.nxdomains = Burst::new(
            config.parse_or("nxdomain_window_ms", 30_000)?,
            config.parse_or("nxdomain_threshold", 15)?,
            Count::Entries,
            16_384,
        );
        self.tunnel_label_len = config.parse_or("tunnel_label_len", 30)?;
        self.dga_min_len = config.parse_or("dga_min_len", 10)?;
        self.allowed = config
            .list_or::<String>("allow_domains", Vec::new())?
            .into_iter()
            .map(|domain| domain.trim_end_matches('.').to_ascii_lowercase())
            .filter(|domain| !domain.is_empty())
            .collect();
        self.model.configure(config)
    }

    fn detect(&mut self, batch: &Batch<'_>) -> Result<Vec<Finding>, AgentError> {
        let columns = DnsColumns::of(batch)?;
        let mut found = Vec::new();
        if self.model.uses_rules() {
            for i in 0..batch.len() {
                self.observe(batch.entry(i), &columns.lookup(i), &mut found);
            }
        }
        let rows = || (0..batch.len()).flat_map(|i| feature_row(&columns.lookup(i))).collect();
        let threshold = self.model.threshold();
        let mut scored = self.model.flag(batch, FEATURES.len(), rows, &found, |i, score, version| {
            let f = columns.lookup(i);
            finding(&batch.entry(i), score, "dns_model", Severity::Medium, format!(
                "the DNS model (version {version}) scores {}'s lookup of {} at {score:.2}, over its threshold {threshold:.2}: the name's length and randomness resemble tunnelling or generated domains. Inspect the client.",
                f.client_ip, f.query
            ))
        })?;
        if !self.allowed.is_empty() {
            let allowed: std::collections::HashSet<u64> = (0..batch.len())
                .filter(|&i| self.is_allowed(columns.lookup(i).query))
                .map(|i| batch.entry(i).id)
                .collect();
            scored.retain(|f| !allowed.contains(&f.entry.id));
        }
        found.extend(scored);
        Ok(found)
    }

    fn extract_features(&mut self, batch: &Batch<'_>, index: usize) -> Result<Features, AgentError> {
        let row = feature_row(&DnsColumns::of(batch)?.lookup(index));
        let named: Vec<(&str, f32)> = FEATURES.iter().copied().zip(row).collect();
        Ok(features(&named))
    }
}

#[cfg(target_arch = "wasm32")]
mcp_sdk::export_agent!(DnsAgent);

#[cfg(test)]
mod tests {
    use super::is_under;

    #[test]
    fn names_under_a_domain_match_in_any_case_and_only_at_a_label() {
        assert!(is_under("a.b.Corp.Example.", "corp.example"));
        assert!(is_under("corp.example", "corp.example"));
        assert!(!is_under("evilcorp.example", "corp.example"));
        assert!(!is_under("example", "corp.example"));
        assert!(!is_under("é.corp.exampl\u{e9}", "corp.example"));
    }
}
