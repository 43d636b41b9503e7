//! Resolver logs: everyday lookups with the odd typo, with tunnelling,
//! random-subdomain floods and algorithmically generated domains injected.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use super::{EPOCH_START_MS, GeneratedLog, burst_times, pick, random_label, span_ms};

const DOMAINS: &[&str] = &[
    "google.com",
    "youtube.com",
    "facebook.com",
    "microsoft.com",
    "office.com",
    "outlook.com",
    "live.com",
    "apple.com",
    "icloud.com",
    "amazon.com",
    "amazonaws.com",
    "cloudflare.com",
    "github.com",
    "gitlab.com",
    "wikipedia.org",
    "slack.com",
    "zoom.us",
    "salesforce.com",
    "dropbox.com",
    "netflix.com",
    "linkedin.com",
    "twitter.com",
    "instagram.com",
    "reddit.com",
    "stackoverflow.com",
    "ubuntu.com",
    "debian.org",
    "python.org",
    "npmjs.org",
    "docker.com",
    "atlassian.net",
    "okta.com",
    "adobe.com",
    "spotify.com",
    "cnn.com",
    "bbc.co.uk",
    "nytimes.com",
    "example-bank.com",
    "corp.internal",
    "akamaihd.net",
    "cloudfront.net",
    "fastly.net",
    "windowsupdate.com",
    "digicert.com",
    "letsencrypt.org",
    "mozilla.org",
    "gstatic.com",
    "doubleclick.net",
];
const SUBDOMAINS: &[&str] =
    &["www", "mail", "api", "cdn", "login", "static", "img", "docs", "drive", "update", "time", "auth", "app", "m"];
const TYPOS: &[&str] = &[
    "gogle.com",
    "wikipedai.org",
    "micosoft.com",
    "githib.com",
    "amazn.com",
    "slakc.com",
    "printer.corp.internal",
    "wpad.corp.internal",
];
const BASE32: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const CONSONANT_HEAVY: &[u8] = b"bcdfghjklmnpqrstvwxzbcdfghjklmnpqrstvwxz0123456789aeiou";
const HEX: &[u8] = b"0123456789abcdef";

#[allow(clippy::too_many_arguments)]
pub(super) fn entry(
    ts: i64,
    client: &str,
    query: &str,
    qtype: &str,
    rcode: &str,
    answers: u32,
    label: Option<&'static str>,
) -> GeneratedLog {
    GeneratedLog {
        timestamp_ms: ts,
        source: "resolver-1".into(),
        fields: json!({
            "client_ip": client,
            "query": query,
            "qtype": qtype,
            "rcode": rcode,
            "answers": answers,
            "response_bytes": 60 + query.len() as u32 + answers * 16,
        }),
        label,
    }
}

fn client(rng: &mut ChaCha8Rng) -> String {
    format!("10.0.{}.{}", rng.random_range(2..6), rng.random_range(2..250))
}

pub fn generate(rng: &mut ChaCha8Rng, count: usize) -> Vec<GeneratedLog> {
    let span = span_ms(count);
    let mut logs = Vec::with_capacity(count + count / 8);
    for _ in 0..count {
        let ts = EPOCH_START_MS + rng.random_range(0..span);
        let who = client(rng);
        let qtype = *pick(rng, &["A", "A", "A", "A", "A", "A", "AAAA", "AAAA", "HTTPS", "MX", "TXT", "CNAME", "SRV"]);
        if rng.random_bool(0.02) {
            logs.push(entry(ts, &who, pick::<&str>(rng, TYPOS), qtype, "NXDOMAIN", 0, None));
            continue;
        }
        let domain = *pick(rng, DOMAINS);
        let query = match rng.random_range(0..10) {
            0..=2 => domain.to_string(),
            3 if domain.ends_with("cloudfront.net") || domain.ends_with("akamaihd.net") => {
                format!("{}.{domain}", random_label(rng, HEX, 8..16))
            }
            _ => format!("{}.{domain}", pick(rng, SUBDOMAINS)),
        };
        logs.push(entry(ts, &who, &query, qtype, "NOERROR", rng.random_range(1..5), None));
    }

    let anywhere = |rng: &mut ChaCha8Rng| EPOCH_START_MS + rng.random_range(60_000..span - 400_000);
    for k in 0..2 {
        let who = client(rng);
        let start = anywhere(rng);
        let n = rng.random_range(100..300);
        for (seq, ts) in {
            let duration = rng.random_range(120_000..300_000);
            burst_times(rng, start, duration, n)
        }
        .into_iter()
        .enumerate()
        {
            let chunk = random_label(rng, BASE32, 40..63);
            let query = format!("{chunk}.{seq}.t.sync-updates{k}.com");
            logs.push(entry(
                ts,
                &who,
                &query,
                pick::<&str>(rng, &["TXT", "A", "NULL"]),
                "NOERROR",
                1,
                Some("dns_tunnel"),
            ));
        }
    }
    for _ in 0..2 {
        let who = client(rng);
        let victim = *pick(rng, &["example-bank.com", "corp.internal", "github.com"]);
        let start = anywhere(rng);
        let n = rng.random_range(40..150);
        for ts in {
            let duration = rng.random_range(10_000..30_000);
            burst_times(rng, start, duration, n)
        } {
            let query = format!("{}.{victim}", random_label(rng, ALNUM, 6..12));
            logs.push(entry(ts, &who, &query, "A", "NXDOMAIN", 0, Some("nxdomain_burst")));
        }
    }
    for _ in 0..2 {
        let who = client(rng);
        let start = anywhere(rng);
        let n = rng.random_range(40..120);
        for ts in {
            let duration = rng.random_range(30_000..120_000);
            burst_times(rng, start, duration, n)
        } {
            let name = random_label(rng, CONSONANT_HEAVY, 12..20);
            let tld = *pick(rng, &["com", "net", "biz", "info", "ru", "top"]);
            let rcode = if rng.random_bool(0.9) { "NXDOMAIN" } else { "NOERROR" };
            logs.push(entry(
                ts,
                &who,
                &format!("{name}.{tld}"),
                "A",
                rcode,
                u32::from(rcode == "NOERROR"),
                Some("dga"),
            ));
        }
    }
    logs
}
