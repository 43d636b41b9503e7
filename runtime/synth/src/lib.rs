//! Synthetic labelled logs and their scoring: a deterministic generator of
//! Wi-Fi, firewall and DNS logs with injected attacks, for the demo, the
//! benchmarks, training data and the conformance check's samples, and
//! precision, recall and F1 per entry against the labels.
//!
//! No production library (sandbox, storage, engine, API) depends on this
//! crate; the `mcp` binary uses it for `demo`, `bench`, `agents check` and
//! `models features`, and the tests use it.
//!
//! The same seed always yields the same entries (ChaCha8 under a pinned
//! `rand_chacha` in Cargo.lock). Each attack entry carries its attack kind as
//! its label; normal entries carry none.

pub mod author;
mod dns;
mod dns_realistic;
mod firewall;
mod firewall_realistic;
mod samples;
pub mod scoring;
mod wifi;
mod wifi_realistic;

pub use samples::{GeneratedSamples, to_entries, to_rows};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

/// 2026-01-01T00:00:00Z, the start of every generated timeline.
pub const EPOCH_START_MS: i64 = 1_767_225_600_000;

/// The log types the generator knows.
pub const LOG_TYPES: &[&str] = &["wifi", "firewall", "dns"];

/// One generated log line.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedLog {
    pub timestamp_ms: i64,
    pub source: String,
    pub fields: Value,
    /// The attack kind this entry belongs to; `None` for normal traffic.
    pub label: Option<&'static str>,
}

/// Errors of the generator.
#[derive(Debug, thiserror::Error)]
pub enum GeneratorError {
    #[error("unknown log type '{0}'; the generator knows wifi, firewall and dns")]
    UnknownLogType(String),
}

/// Which traffic the generator makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Profile {
    /// Templates the bundled rules were written for: what the tests, the
    /// benchmarks and the shipped models use.
    #[default]
    Easy,
    /// Traffic as a real site sees it, and attacks as tools produce them.
    Realistic,
}

impl Profile {
    pub fn name(self) -> &'static str {
        match self {
            Profile::Easy => "easy",
            Profile::Realistic => "realistic",
        }
    }
}

impl std::str::FromStr for Profile {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "easy" => Ok(Profile::Easy),
            "realistic" => Ok(Profile::Realistic),
            other => Err(format!("unknown profile '{other}'; use easy or realistic")),
        }
    }
}

/// Generates about `count` normal entries of `log_type` plus injected attacks,
/// sorted by time, with the easy profile.
pub fn generate(log_type: &str, seed: u64, count: usize) -> Result<Vec<GeneratedLog>, GeneratorError> {
    generate_with(log_type, seed, count, Profile::Easy)
}

/// As [`generate`], with `profile`'s traffic where it has its own.
pub fn generate_with(
    log_type: &str,
    seed: u64,
    count: usize,
    profile: Profile,
) -> Result<Vec<GeneratedLog>, GeneratorError> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ type_salt(log_type));
    let mut logs = match log_type {
        "wifi" if profile == Profile::Realistic => wifi_realistic::generate(&mut rng, count),
        "wifi" => wifi::generate(&mut rng, count),
        "firewall" if profile == Profile::Realistic => firewall_realistic::generate(&mut rng, count),
        "firewall" => firewall::generate(&mut rng, count),
        "dns" if profile == Profile::Realistic => dns_realistic::generate(&mut rng, count),
        "dns" => dns::generate(&mut rng, count),
        other => return Err(GeneratorError::UnknownLogType(other.to_string())),
    };
    logs.sort_by_key(|l| l.timestamp_ms);
    Ok(logs)
}

fn type_salt(log_type: &str) -> u64 {
    log_type.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

/// Timeline length for `count` normal entries: one entry every 300 ms on average.
fn span_ms(count: usize) -> i64 {
    (count as i64 * 300).max(3_600_000)
}

fn pick<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

fn mac(rng: &mut ChaCha8Rng, prefix: &str) -> String {
    format!("{prefix}:{:02x}:{:02x}:{:02x}", rng.random::<u8>(), rng.random::<u8>(), rng.random::<u8>())
}

fn random_label(rng: &mut ChaCha8Rng, alphabet: &[u8], len: std::ops::Range<usize>) -> String {
    let len = rng.random_range(len);
    (0..len).map(|_| char::from(*pick(rng, alphabet))).collect()
}

/// Ids of a burst of `n` events spread over `duration_ms` from `start_ms`.
fn burst_times(rng: &mut ChaCha8Rng, start_ms: i64, duration_ms: i64, n: usize) -> Vec<i64> {
    let mut times: Vec<i64> = (0..n).map(|_| start_ms + rng.random_range(0..duration_ms.max(1))).collect();
    times.sort_unstable();
    times
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_logs_other_seed_other_logs() -> Result<(), GeneratorError> {
        for log_type in LOG_TYPES {
            let a = generate(log_type, 11, 2_000)?;
            assert_eq!(a, generate(log_type, 11, 2_000)?, "{log_type} is not deterministic");
            assert_ne!(a, generate(log_type, 12, 2_000)?, "{log_type} ignores the seed");
            assert!(a.windows(2).all(|w| w[0].timestamp_ms <= w[1].timestamp_ms), "{log_type} is not in time order");
            let attacks = a.iter().filter(|l| l.label.is_some()).count();
            assert!(attacks > 50 && attacks < a.len() / 2, "{log_type}: {attacks} attack entries of {}", a.len());
        }
        Ok(())
    }

    #[test]
    fn the_realistic_dns_profile_is_deterministic_labelled_and_mixed_case() -> Result<(), GeneratorError> {
        let logs = generate_with("dns", 5, 20_000, Profile::Realistic)?;
        assert_eq!(logs, generate_with("dns", 5, 20_000, Profile::Realistic)?);
        assert_ne!(logs, generate("dns", 5, 20_000)?);
        let query = |l: &GeneratedLog| l.fields["query"].as_str().unwrap_or_default().to_string();
        let shouted = logs.iter().filter(|l| query(l).bytes().any(|b| b.is_ascii_uppercase())).count();
        let rooted = logs.iter().filter(|l| query(l).ends_with('.')).count();
        assert!(shouted > 1_000 && rooted > 1_000, "{shouted} mixed-case, {rooted} rooted names");
        for kind in ["dns_tunnel", "dga", "nxdomain_burst"] {
            assert!(logs.iter().any(|l| l.label == Some(kind)), "no {kind}");
        }
        // Tunnels in short chunks: no label of the name 12 characters or more.
        let short_labels = |l: &GeneratedLog| query(l).split('.').all(|label| label.len() < 12);
        let short = logs.iter().filter(|l| l.label == Some("dns_tunnel") && short_labels(l)).count();
        assert!(short > 100, "{short} tunnel names of short labels");
        Ok(())
    }

    #[test]
    fn the_realistic_firewall_profile_is_deterministic_and_holds_its_traps_and_attacks() -> Result<(), GeneratorError> {
        let logs = generate_with("firewall", 5, 20_000, Profile::Realistic)?;
        assert_eq!(logs, generate_with("firewall", 5, 20_000, Profile::Realistic)?);
        assert_ne!(logs, generate("firewall", 5, 20_000)?);
        for kind in ["port_scan", "host_sweep", "brute_force", "suspicious_port", "exfiltration"] {
            assert!(logs.iter().any(|l| l.label == Some(kind)), "no {kind}");
        }
        let number = |l: &GeneratedLog, field: &str| l.fields[field].as_u64().unwrap_or_default();
        // Normal media streams reach many ports of one relay, each carrying data.
        let media = logs.iter().filter(|l| l.label.is_none() && number(l, "dst_port") >= 50_000).count();
        assert!(media >= 100, "{media} media streams");
        // Exfiltration in stages: uploads each under 100 MB.
        let staged = logs.iter().filter(|l| l.label == Some("exfiltration") && number(l, "bytes_out") < 100_000_000);
        assert!(staged.count() >= 20);
        Ok(())
    }

    #[test]
    fn the_realistic_wifi_profile_is_deterministic_and_holds_its_traps_and_attacks() -> Result<(), GeneratorError> {
        let logs = generate_with("wifi", 5, 20_000, Profile::Realistic)?;
        assert_eq!(logs, generate_with("wifi", 5, 20_000, Profile::Realistic)?);
        assert_ne!(logs, generate("wifi", 5, 20_000)?);
        for kind in ["deauth_flood", "auth_bruteforce", "evil_twin", "rogue_ap", "rf_jamming"] {
            assert!(logs.iter().any(|l| l.label == Some(kind)), "no {kind}");
        }
        let text = |l: &GeneratedLog, field: &str| l.fields[field].as_str().unwrap_or_default().to_string();
        let normal = |event: &'static str| move |l: &&GeneratedLog| l.label.is_none() && l.fields["event"] == event;
        // A firmware upgrade: one access point lets many clients go within
        // two seconds, each once.
        let mut deauths = std::collections::HashMap::<String, Vec<(i64, String)>>::new();
        for l in logs.iter().filter(normal("deauth")) {
            deauths.entry(text(l, "bssid")).or_default().push((l.timestamp_ms, text(l, "client")));
        }
        let mass = deauths.values().any(|frames| {
            frames.windows(15).any(|w| {
                let clients: std::collections::HashSet<&String> = w.iter().map(|(_, c)| c).collect();
                w[14].0 - w[0].0 < 2_000 && clients.len() == 15
            })
        });
        assert!(mass, "no access point let its clients go at once");
        // One laptop retrying most frames with a weak signal, for minutes.
        let weak = logs.iter().filter(normal("data")).filter(|l| l.fields["retry_rate"].as_f64() >= Some(0.5));
        let mut per_client = std::collections::HashMap::<String, usize>::new();
        for l in weak {
            *per_client.entry(text(l, "client")).or_default() += 1;
        }
        assert!(per_client.values().any(|&n| n >= 200), "no client at the edge of coverage");
        // Guessing under a new address per try, and a twin under a real BSSID.
        let guessers: std::collections::HashSet<String> =
            logs.iter().filter(|l| l.label == Some("auth_bruteforce")).map(|l| text(l, "client")).collect();
        assert!(guessers.len() >= 60, "{} guessing addresses", guessers.len());
        let real: std::collections::HashSet<String> =
            logs.iter().filter(|l| l.label.is_none()).map(|l| text(l, "bssid")).collect();
        assert!(
            logs.iter().any(|l| l.label == Some("evil_twin") && real.contains(&text(l, "bssid"))),
            "no twin under a real BSSID"
        );
        Ok(())
    }

    #[test]
    fn unknown_log_type_is_an_error() {
        assert!(matches!(generate("netflow", 1, 10), Err(GeneratorError::UnknownLogType(t)) if t == "netflow"));
    }
}
