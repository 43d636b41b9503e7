//! The bundled DNS agent: tunnelling and exfiltration through long or
//! high-entropy labels or through many short names under one domain,
//! NXDOMAIN bursts, and algorithmically generated domains (DGA). Names are
//! judged as DNS compares them: in any letter case, with or without the
//! trailing dot.

mod session;

use std::borrow::Cow;

use mcp_sdk::names::{name_surprise, registered_domain};
use mcp_sdk::scoring::Scorer;
use mcp_sdk::window::{Burst, Count, entropy, key_of};
use mcp_sdk::{
    Agent, AgentError, AgentInfo, Batch, Config, EntryRef, Features, Finding, Severity, Text, features, finding,
};

use crate::session::{Audience, SessionLevel, SessionRule, Sessions};

/// The fields of one `dns` entry that this agent reads.
#[derive(Debug, Clone)]
pub struct Lookup<'a> {
    client_ip: &'a str,
    /// The name as logged, for the reasons a person reads.
    query: &'a str,
    /// The name as DNS compares it, which every rule and feature reads.
    name: Cow<'a, str>,
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
        let query = self.query.or_empty(i);
        Lookup {
            client_ip: self.client_ip.or_empty(i),
            query,
            name: normalised(query),
            qtype: self.qtype.map_or("", |c| c.or_empty(i)),
            rcode: self.rcode.or_empty(i),
        }
    }
}

/// `query` as DNS compares names: ASCII letters in lower case, no trailing
/// dot. Borrowed when it is so already, as most logged names are.
fn normalised(query: &str) -> Cow<'_, str> {
    let trimmed = query.trim_end_matches('.');
    if trimmed.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(trimmed.to_ascii_lowercase())
    } else {
        Cow::Borrowed(trimmed)
    }
}

/// Whether names under `domain` are reverse lookups (in-addr.arpa,
/// ip6.arpa): they name addresses, not data, and a scanner's sweep makes
/// many of them, unanswered for every unused address.
fn is_reverse(domain: &str) -> bool {
    domain.ends_with("arpa")
}

/// The part of `name` left of `domain` without the joining dot, if any.
fn subdomain_of<'n>(name: &'n str, domain: &str) -> Option<&'n str> {
    name.strip_suffix(domain).and_then(|rest| rest.strip_suffix('.')).filter(|rest| !rest.is_empty())
}

/// Per-instance state: NXDOMAIN windows per client, names per client and
/// registered domain.
#[derive(Debug)]
pub struct DnsAgent {
    nxdomains: Burst<u64>,
    sessions: Sessions,
    /// The same over an hour, for domains few clients ask for: exfiltration
    /// slower than any minute's window shows.
    slow_sessions: Sessions,
    audience: Audience,
    slow_max_clients: usize,
    tunnel_label_len: usize,
    dga_min_len: usize,
    dga_min_bits: f64,
    dga_min_bits_unanswered: f64,
    /// Registered domains whose names the name rules and the model do not
    /// judge (`allow_domains`): lower case, no trailing dot.
    allowed: Vec<String>,
    model: Scorer,
}

impl Default for DnsAgent {
    fn default() -> Self {
        DnsAgent {
            nxdomains: Burst::new(30_000, 15, Count::DistinctTags, 16_384),
            sessions: Sessions::new(SessionRule::default(), SESSION_KEYS),
            slow_sessions: Sessions::new(SLOW_SESSION, SESSION_KEYS),
            audience: Audience::new(SLOW_SESSION.window_ms, SLOW_MAX_CLIENTS, SESSION_KEYS),
            slow_max_clients: SLOW_MAX_CLIENTS,
            tunnel_label_len: 30,
            dga_min_len: 10,
            dga_min_bits: DGA_MIN_BITS,
            dga_min_bits_unanswered: DGA_MIN_BITS_UNANSWERED,
            allowed: Vec::new(),
            model: Scorer::new("dns"),
        }
    }
}

/// Surprise per letter pair (`mcp_sdk::names`) from which a registered
/// label reads as generated: English words reach 4.8 at most one time in a
/// thousand, random consonants and digits fall under 6 one time in a hundred.
const DGA_MIN_BITS: f64 = 6.0;
/// The same for a name that does not exist.
const DGA_MIN_BITS_UNANSWERED: f64 = 5.25;

/// A slow tunnel: 50 distinct names carrying 400 bytes within an hour (one
/// a minute and more) under a domain at most two clients ask for.
const SLOW_SESSION: SessionRule = SessionRule { window_ms: 3_600_000, min_names: 50, min_bytes: 400 };
const SLOW_MAX_CLIENTS: usize = 2;

/// Most (client, registered domain) windows kept at once.
const SESSION_KEYS: usize = 8_192;

/// The model's input columns, in order: what the name is, then what the
/// windows hold once it is counted (the client's names under its registered
/// domain, and the client's unanswered names when this one is unanswered).
pub const FEATURES: [&str; 8] = [
    "query_len",
    "longest_label",
    "longest_entropy",
    "label_surprise",
    "nxdomain",
    "log_session_names",
    "log_session_bytes",
    "log_client_nxdomains",
];

/// What the windows hold after one entry is counted.
#[derive(Debug, Clone, Copy, Default)]
struct Recent {
    /// The client's window under the entry's registered domain.
    session: SessionLevel,
    client_nxdomains: usize,
}

/// What both the rules and the model read of a name, worked out once per
/// entry: the longest label and its entropy, the registered domain, its
/// first label and how generated that reads.
struct NameStats<'n> {
    longest: &'n str,
    longest_entropy: f32,
    domain: &'n str,
    label: &'n str,
    label_surprise: f64,
}

impl<'n> NameStats<'n> {
    fn of(name: &'n str) -> Self {
        let domain = registered_domain(name);
        let label = registered_label(name, domain);
        let longest = name.split('.').max_by_key(|l| l.len()).unwrap_or("");
        NameStats { longest, longest_entropy: entropy(longest), domain, label, label_surprise: name_surprise(label) }
    }
}

fn feature_row(f: &Lookup<'_>, stats: &NameStats<'_>, recent: Recent) -> [f32; 8] {
    [
        f.name.len() as f32,
        stats.longest.len() as f32,
        stats.longest_entropy,
        stats.label_surprise as f32,
        f32::from(u8::from(f.rcode == "NXDOMAIN")),
        // Counts grow without bound where a linear model wants a scale: a
        // tunnel's 200 names are not 100 times a browser's two.
        (recent.session.names as f32).ln_1p(),
        (recent.session.bytes as f32).ln_1p(),
        (recent.client_nxdomains as f32).ln_1p(),
    ]
}

/// The first label of `name`'s registered `domain` ("example" in
/// "a.example.com" and in "a.example.co.uk"); empty for a name of one label.
fn registered_label<'n>(name: &str, domain: &'n str) -> &'n str {
    if !name.contains('.') {
        return "";
    }
    domain.split('.').next().unwrap_or("")
}

fn vowel_ratio(label: &str) -> f32 {
    if label.is_empty() {
        return 0.0;
    }
    let vowels = label.bytes().filter(|b| b"aeiou".contains(b)).count();
    vowels as f32 / label.len() as f32
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

/// A real-valued setting that must be a finite number.
fn finite(config: &Config, key: &str, default: f64) -> Result<f64, AgentError> {
    let value: f64 = config.parse_or(key, default)?;
    if value.is_finite() {
        Ok(value)
    } else {
        Err(AgentError::Config(format!("setting '{key}' = '{value}' is not a number")))
    }
}

impl DnsAgent {
    fn is_allowed(&self, query: &str) -> bool {
        self.allowed.iter().any(|domain| is_under(query, domain))
    }

    fn tunnel(&self, entry: EntryRef, f: &Lookup<'_>, stats: &NameStats<'_>) -> Option<Finding> {
        let longest = stats.longest;
        // Encoded data has few vowels (hex 2 of 16 symbols, base32 5 of
        // 32); a long label of words ("chromefeedcontentsuggestions-pa") has
        // about a third.
        if longest.len() < self.tunnel_label_len || stats.longest_entropy < 3.5 || vowel_ratio(longest) >= 0.3 {
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
                stats.longest_entropy
            ),
        ))
    }

    fn dga(&self, entry: EntryRef, f: &Lookup<'_>, stats: &NameStats<'_>) -> Option<Finding> {
        let label = stats.label;
        // A name that does not exist needs less: real names resolve, and a
        // generator makes many names to find the few its controller has.
        let bar = if f.rcode == "NXDOMAIN" { self.dga_min_bits_unanswered } else { self.dga_min_bits };
        if label.len() < self.dga_min_len || stats.label_surprise < bar {
            return None;
        }
        Some(finding(
            &entry,
            0.8,
            "dga",
            Severity::High,
            format!(
                "{} looked up {}: the name '{label}' reads as machine-generated ({:.1} bits of surprise per letter pair, where real names score about 4), as malware does to find its controller. Check {} for infection.",
                f.client_ip, f.query, stats.label_surprise, f.client_ip
            ),
        ))
    }
    /// Many short names under `domain`: the window's entries, once it holds
    /// a tunnel's worth of them.
    fn session(&mut self, entry: EntryRef, f: &Lookup<'_>, domain: &str, found: &mut Vec<Finding>) -> SessionLevel {
        let Some(subdomain) = subdomain_of(&f.name, domain) else { return SessionLevel::default() };
        let (hits, level) = self.sessions.push(f.client_ip, domain, subdomain, f.rcode == "NOERROR", entry);
        for hit in hits {
            found.push(finding(&hit, 0.85, "dns_tunnel_session", Severity::High, format!(
                "{} sent {} distinct names carrying {} bytes under {domain} within a window ({}% answered; latest {}): a DNS tunnel in short chunks, each name harmless alone. Block {domain} and inspect the client.",
                f.client_ip, level.names, level.bytes, level.answered_percent, f.query
            )));
        }
        level
    }

    /// Many names under a domain hardly anyone else asks for, over an hour.
    fn slow_session(&mut self, entry: EntryRef, f: &Lookup<'_>, domain: &str, found: &mut Vec<Finding>) {
        let Some(subdomain) = subdomain_of(&f.name, domain) else { return };
        if self.audience.push(domain, f.client_ip, entry.timestamp_ms) > self.slow_max_clients {
            return;
        }
        // A name asked for again adds nothing to an hour's count of distinct
        // names, and a client polling one name each second would keep 3,600.
        if self.slow_sessions.holds(f.client_ip, domain, subdomain) {
            return;
        }
        let (hits, level) = self.slow_sessions.push(f.client_ip, domain, subdomain, f.rcode == "NOERROR", entry);
        for hit in hits {
            found.push(finding(&hit, 0.8, "dns_slow_tunnel", Severity::High, format!(
                "{} sent {} distinct names carrying {} bytes under {domain} within an hour, a domain at most {} clients asked for ({}% answered; latest {}): slow exfiltration through DNS, under any minute's threshold. Block {domain} and inspect the client.",
                f.client_ip, level.names, level.bytes, self.slow_max_clients, level.answered_percent, f.query
            )));
        }
    }

    /// Counts the entry into the windows and adds what the rules find.
    fn observe(&mut self, entry: EntryRef, f: &Lookup<'_>, stats: &NameStats<'_>, found: &mut Vec<Finding>) -> Recent {
        let domain = stats.domain;
        let reverse = is_reverse(domain);
        let mut recent = Recent::default();
        if !self.is_allowed(&f.name) {
            found.extend(self.tunnel(entry, f, stats));
            found.extend(self.dga(entry, f, stats));
            if !reverse {
                recent.session = self.session(entry, f, domain, found);
                // A tunnel the minute's window reports is not counted again
                // over the hour: one anomaly per name.
                if !self.sessions.is_tunnel(recent.session) {
                    self.slow_session(entry, f, domain, found);
                }
            }
        }
        if f.rcode == "NXDOMAIN" && !reverse {
            let client = key_of(f.client_ip);
            let (hits, level) = self.nxdomains.push_counted(&client, entry.timestamp_ms, key_of(&*f.name), entry);
            recent.client_nxdomains = level;
            for hit in hits {
                found.push(finding(&hit, 0.85, "nxdomain_burst", Severity::Medium, format!(
                    "{} received NXDOMAIN for {level} distinct names within 30 seconds (latest {}): random-subdomain flooding or malware probing for live domains. Inspect the client.",
                    f.client_ip, f.query
                )));
            }
        }
        recent
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
            // Distinct names: a laptop away from its office asking again and
            // again for the same few names is no probe.
            Count::DistinctTags,
            16_384,
        );
        self.tunnel_label_len = config.parse_or("tunnel_label_len", 30)?;
        self.dga_min_len = config.parse_or("dga_min_len", 10)?;
        self.dga_min_bits = finite(config, "dga_min_bits", DGA_MIN_BITS)?;
        self.dga_min_bits_unanswered = finite(config, "dga_min_bits_unanswered", DGA_MIN_BITS_UNANSWERED)?;
        let defaults = SessionRule::default();
        let rule = SessionRule {
            window_ms: config.parse_or("session_window_ms", defaults.window_ms)?,
            min_names: config.parse_or("session_min_names", defaults.min_names)?,
            min_bytes: config.parse_or("session_min_bytes", defaults.min_bytes)?,
        };
        self.sessions = Sessions::new(rule, SESSION_KEYS);
        let slow = SessionRule {
            window_ms: config.parse_or("slow_session_window_ms", SLOW_SESSION.window_ms)?,
            min_names: config.parse_or("slow_session_min_names", SLOW_SESSION.min_names)?,
            min_bytes: config.parse_or("slow_session_min_bytes", SLOW_SESSION.min_bytes)?,
        };
        self.slow_max_clients = config.parse_or("slow_session_max_clients", SLOW_MAX_CLIENTS)?;
        self.slow_sessions = Sessions::new(slow, SESSION_KEYS);
        self.audience = Audience::new(slow.window_ms, self.slow_max_clients, SESSION_KEYS);
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
        // The windows count every entry whichever way the agent detects: the
        // model reads them too. Each name is worked out once for both.
        let with_rows = self.model.uses_model();
        let mut rows = Vec::with_capacity(if with_rows { batch.len() * FEATURES.len() } else { 0 });
        for i in 0..batch.len() {
            let lookup = columns.lookup(i);
            let stats = NameStats::of(&lookup.name);
            let recent = self.observe(batch.entry(i), &lookup, &stats, &mut found);
            if with_rows {
                rows.extend(feature_row(&lookup, &stats, recent));
            }
        }
        if !self.model.uses_rules() {
            found.clear();
        }
        let threshold = self.model.threshold();
        let mut scored = self.model.flag(batch, FEATURES.len(), || rows, &found, |i, score, version| {
            let f = columns.lookup(i);
            finding(&batch.entry(i), score, "dns_model", Severity::Medium, format!(
                "the DNS model (version {version}) scores {}'s lookup of {} at {score:.2}, over its threshold {threshold:.2}: the name and what the client sent under its domain resemble tunnelling or generated domains. Inspect the client.",
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
        let lookup = DnsColumns::of(batch)?.lookup(index);
        let stats = NameStats::of(&lookup.name);
        // Counted into the windows as `detect` counts it: an instance asked
        // for features is fed the stream in order, as one asked to detect.
        let recent = self.observe(batch.entry(index), &lookup, &stats, &mut Vec::new());
        let row = feature_row(&lookup, &stats, recent);
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

    #[test]
    fn registered_domains_and_their_subdomains() {
        use super::{normalised, registered_domain, subdomain_of};
        assert_eq!(registered_domain("a.b.example.com"), "example.com");
        assert_eq!(registered_domain("a.example.co.uk"), "example.co.uk");
        assert_eq!(registered_domain("example.co.uk"), "example.co.uk");
        assert_eq!(registered_domain("co.uk"), "co.uk");
        assert_eq!(registered_domain("localhost"), "localhost");
        assert_eq!(subdomain_of("1.pjmwnf.evil.io", "evil.io"), Some("1.pjmwnf"));
        assert_eq!(subdomain_of("evil.io", "evil.io"), None);
        assert_eq!(normalised("WWW.Example.COM."), "www.example.com");
        use super::NameStats;
        assert_eq!(NameStats::of("a.xkqzvbrtplmnw.co.uk").label, "xkqzvbrtplmnw");
        assert_eq!(NameStats::of("www.example.com").label, "example");
        assert_eq!(NameStats::of("localhost").label, "");
    }

    mod rules {
        use std::collections::BTreeMap;

        use mcp_sdk::{Agent, AgentError, Config, LogEntry, batch_from_entries, run_batch};

        use crate::DnsAgent;

        fn lookup(id: u64, seconds: i64, client: &str, query: &str, rcode: &str) -> LogEntry {
            let fields = serde_json::json!({"client_ip": client, "query": query, "qtype": "A", "rcode": rcode});
            LogEntry {
                id,
                timestamp_ms: 1_700_000_000_000 + seconds * 1000,
                source: "resolver-1".into(),
                log_type: "dns".into(),
                fields: fields.to_string(),
            }
        }

        /// The labels the rules give each entry.
        fn verdicts(entries: &[LogEntry]) -> Result<BTreeMap<u64, Vec<String>>, AgentError> {
            let mut agent = DnsAgent::default();
            agent.configure(&Config::from_pairs([("detection", "rules")]))?;
            let mut out: BTreeMap<u64, Vec<String>> = entries.iter().map(|e| (e.id, Vec::new())).collect();
            for found in run_batch(&mut agent, &batch_from_entries("dns", 1, entries)?)? {
                out.entry(found.entry.id).or_default().push(found.label);
            }
            for labels in out.values_mut() {
                labels.sort();
            }
            Ok(out)
        }

        /// A base32 chunk of `len` characters from `seed`, as tunnels encode.
        fn chunk(seed: u64, len: usize) -> String {
            const BASE32: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
            let mut x = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (0..len)
                .map(|_| {
                    x ^= x >> 29;
                    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
                    BASE32[(x >> 59) as usize % 32] as char
                })
                .collect()
        }

        fn everyday(first_id: u64) -> Vec<LogEntry> {
            let names =
                ["www.google.com", "mail.google.com", "api.github.com", "cdn.example.org", "login.microsoft.com"];
            (0..200u64)
                .map(|i| {
                    lookup(first_id + i, i as i64, &format!("10.0.1.{}", i % 40), names[i as usize % 5], "NOERROR")
                })
                .collect()
        }

        #[test]
        fn names_that_differ_only_in_letter_case_get_the_same_verdict() -> Result<(), AgentError> {
            let queries = [
                format!("{}.t.sync-updates.com", chunk(1, 48)),
                "xkqzvbrtplmnw.net".to_string(),
                "www.google.com".to_string(),
                "wpad.corp.internal".to_string(),
            ];
            let lower: Vec<LogEntry> = queries
                .iter()
                .enumerate()
                .map(|(i, q)| lookup(i as u64 + 1, i as i64, "10.0.0.9", q, "NOERROR"))
                .collect();
            let shouted: Vec<LogEntry> = queries
                .iter()
                .enumerate()
                .map(|(i, q)| {
                    // Alternate case, as a resolver sees 0x20-encoded queries, and the root's dot.
                    let mixed: String = q
                        .chars()
                        .enumerate()
                        .map(|(n, c)| if n % 2 == 0 { c.to_ascii_uppercase() } else { c })
                        .collect();
                    lookup(i as u64 + 1, i as i64, "10.0.0.9", &format!("{mixed}."), "NOERROR")
                })
                .collect();
            let (as_logged, as_shouted) = (verdicts(&lower)?, verdicts(&shouted)?);
            assert_eq!(as_logged, as_shouted);
            assert!(as_logged[&1].contains(&"dns_tunnel".to_string()), "{as_logged:?}");
            assert_eq!(as_logged[&2], vec!["dga".to_string()]);
            Ok(())
        }

        #[test]
        fn a_tunnel_of_names_under_twelve_characters_is_found_whole() -> Result<(), AgentError> {
            let mut entries = everyday(10_000);
            let tunnel: Vec<LogEntry> = (0..120u64)
                .map(|i| {
                    let name = format!("{}.zq.io", chunk(i, 5));
                    assert!(name.len() < 12, "{name}");
                    lookup(1 + i, (i as i64 * 3) / 4, "10.0.7.7", &name, "NOERROR")
                })
                .collect();
            entries.extend(tunnel);
            entries.sort_by_key(|e| (e.timestamp_ms, e.id));
            let found = verdicts(&entries)?;
            let flagged: Vec<u64> = found.iter().filter(|(_, labels)| !labels.is_empty()).map(|(id, _)| *id).collect();
            assert_eq!(flagged, (1..=120).collect::<Vec<u64>>(), "every name of the tunnel, and nothing else");
            // Found within the minute, so not again over the hour.
            assert!(found.values().flatten().all(|label| label == "dns_tunnel_session"), "{found:?}");
            Ok(())
        }

        #[test]
        fn a_tunnel_slower_than_a_minute_is_found_over_the_hour_unless_many_clients_ask() -> Result<(), AgentError> {
            // One name every 30 seconds: never more than two in a minute.
            let slow = |client: &str, first_id: u64, domain: &str| -> Vec<LogEntry> {
                (0..110u64)
                    .map(|i| {
                        lookup(
                            first_id + i,
                            i as i64 * 30,
                            client,
                            &format!("{}.{domain}", chunk(first_id + i, 10)),
                            "NOERROR",
                        )
                    })
                    .collect()
            };
            let mut entries = everyday(10_000);
            entries.extend(slow("10.0.7.7", 1, "drip.io"));
            // The same pace under a domain that three clients ask for: a
            // busy service's names, not one host's tunnel.
            for (n, client) in ["10.0.8.1", "10.0.8.2", "10.0.8.3"].iter().enumerate() {
                entries.extend(slow(client, 1_000 * (n as u64 + 1), "cdn.io"));
            }
            entries.sort_by_key(|e| (e.timestamp_ms, e.id));
            let found = verdicts(&entries)?;
            let flagged: Vec<u64> = found.iter().filter(|(_, labels)| !labels.is_empty()).map(|(id, _)| *id).collect();
            assert_eq!(flagged, (1..=110).collect::<Vec<u64>>(), "every name of the slow tunnel, and nothing else");
            assert!(found.values().flatten().all(|label| label == "dns_slow_tunnel"), "{found:?}");
            Ok(())
        }

        #[test]
        fn a_flood_of_unanswered_names_is_a_burst_not_a_tunnel() -> Result<(), AgentError> {
            let flood: Vec<LogEntry> = (0..80u64)
                .map(|i| lookup(1 + i, i as i64 / 4, "10.0.7.8", &format!("{}.victim.com", chunk(i, 8)), "NXDOMAIN"))
                .collect();
            let found = verdicts(&flood)?;
            assert!(found.values().flatten().all(|label| label == "nxdomain_burst"), "{found:?}");
            Ok(())
        }

        #[test]
        fn allowed_domains_are_not_judged_by_name() -> Result<(), AgentError> {
            let entries: Vec<LogEntry> = (0..120u64)
                .map(|i| lookup(1 + i, i as i64 / 2, "10.0.7.9", &format!("{}.Sync.Example", chunk(i, 40)), "NOERROR"))
                .collect();
            let mut agent = DnsAgent::default();
            agent
                .configure(&Config::from_pairs([("detection", "rules"), ("allow_domains", r#"["sync.example."]"#)]))?;
            assert!(run_batch(&mut agent, &batch_from_entries("dns", 1, &entries)?)?.is_empty());
            assert!(verdicts(&entries)?.values().all(|labels| !labels.is_empty()));
            Ok(())
        }
    }
}
