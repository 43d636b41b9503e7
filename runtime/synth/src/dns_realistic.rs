//! Resolver logs as a real site sees them (`Profile::Realistic`): a day of
//! lookups at a diurnal rate from many clients, real services' names (CDN
//! and cloud names whose labels look random, long hyphenated hosts, reverse
//! lookups, service discovery), resolvers that log names in mixed case
//! (0x20 encoding) and with the root's dot, and harmless bursts (a scanner's
//! reverse-lookup sweep, a roaming laptop asking for its office's names, a
//! browser loading a busy page). Attacks as tools produce them: tunnels in
//! long encoded labels (iodine-like, dnscat2-like hex), in short chunks with
//! handshake names, slow exfiltration, random-letter and dictionary DGAs,
//! random-subdomain floods.
//!
//! What it is not: a capture. The names below are services everyone
//! resolves; the shapes of the attack names follow the tools' public
//! descriptions, not their code.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::dns::entry;
use super::{EPOCH_START_MS, GeneratedLog, burst_times, pick, random_label};

const DAY_MS: i64 = 86_400_000;

/// Everyday names, with the subdomains clients ask for.
const SITES: &[(&str, &[&str])] = &[
    ("google.com", &["www", "mail", "accounts", "apis", "clients4", "ssl", "drive", "docs", "meet", "play"]),
    ("googleapis.com", &["www", "storage", "fonts", "safebrowsing", "chromefeedcontentsuggestions-pa", "update"]),
    ("gstatic.com", &["ssl", "www", "fonts", "encrypted-tbn0", "connectivitycheck"]),
    ("youtube.com", &["www", "m", "music", "i"]),
    ("microsoft.com", &["www", "login", "applicationinsights", "go", "officecdn", "settings-win"]),
    ("microsoftonline.com", &["login", "device.login", "autologon"]),
    ("office.com", &["www", "outlook", "substrate"]),
    ("windowsupdate.com", &["download", "ctldl", "au.download"]),
    ("apple.com", &["www", "gs-loc", "configuration", "mesu", "gsp-ssl"]),
    ("icloud.com", &["www", "p59-caldav", "gateway", "keyvalueservice"]),
    ("amazon.com", &["www", "images", "fls-na"]),
    ("github.com", &["www", "api", "codeload", "objects", "avatars"]),
    ("githubusercontent.com", &["raw", "objects", "avatars"]),
    ("slack.com", &["app", "edgeapi", "wss-primary", "files"]),
    ("zoom.us", &["www", "us04web", "zoomgov"]),
    ("salesforce.com", &["login", "na139", "c.na139.content"]),
    ("dropbox.com", &["www", "client", "bolt", "d"]),
    ("netflix.com", &["www", "api-global", "ichnaea"]),
    ("linkedin.com", &["www", "static", "media"]),
    ("wikipedia.org", &["en", "de", "upload", "www"]),
    ("mozilla.org", &["www", "incoming.telemetry", "firefox.settings.services", "push.services"]),
    ("doubleclick.net", &["securepubads.g", "stats.g", "googleads.g", "ad"]),
    ("facebook.com", &["www", "graph", "edge-chat", "static.xx"]),
    ("whatsapp.net", &["mmg", "g", "media-frx5-1.cdn"]),
    ("3gppnetwork.org", &["epdg.epc.mnc001.mcc310.pub", "ims.mnc260.mcc310.pub"]),
    ("jwplatform.com", &["cdn", "content", "ssl"]),
    ("digicert.com", &["ocsp", "crl3", "cacerts"]),
    ("letsencrypt.org", &["r3.o", "acme-v02.api", "x1.c"]),
    ("bing.com", &["www", "th", "c"]),
    ("spotify.com", &["apresolve", "spclient.wg", "open"]),
];

/// Company names, for the site's own hosts and the dictionary DGA.
const WORDS: &[&str] = &[
    "shift", "bird", "house", "river", "stone", "light", "cloud", "green", "north", "paper", "market", "silver",
    "garden", "window", "summer", "rocket", "planet", "forest", "bright", "castle", "orange", "master", "secure",
    "update", "service", "online", "portal", "mobile", "global", "travel",
];

const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const BASE32: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
const BASE128ISH: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
const HEX: &[u8] = b"0123456789abcdef";
const CONSONANT_HEAVY: &[u8] = b"bcdfghjklmnpqrstvwxzbcdfghjklmnpqrstvwxz0123456789aeiou";
const REGIONS: &[&str] = &["us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-2"];

/// A name with a label that looks random, from a service everyone uses.
fn cloud_name(rng: &mut ChaCha8Rng) -> String {
    match rng.random_range(0..7) {
        0 => format!("d{}.cloudfront.net", random_label(rng, ALNUM, 13..14)),
        1 => format!(
            "{}-{}-{}.{}.elb.amazonaws.com",
            pick(rng, &["events-endpoint", "api-gw", "k8s-ingress", "prod-web"]),
            random_label(rng, LOWER, 1..2),
            rng.random_range(1_000_000_000u64..9_999_999_999),
            pick(rng, REGIONS)
        ),
        2 => format!("rr{}---sn-{}.googlevideo.com", rng.random_range(1..9), random_label(rng, ALNUM, 8..9)),
        3 => format!("e{}.{}.akamaiedge.net", rng.random_range(1000..99_999), pick(rng, &["a", "b", "dscb", "dsce"])),
        4 => format!("{}.s3.{}.amazonaws.com", random_label(rng, HEX, 16..24), pick(rng, REGIONS)),
        5 => format!("{}-{}.azurewebsites.net", pick(rng, WORDS), random_label(rng, ALNUM, 10..14)),
        _ => format!(
            "{}.{}.windows.net",
            random_label(rng, ALNUM, 20..24),
            pick(rng, &["blob.core", "queue.core", "servicebus"])
        ),
    }
}

/// The site's own names: long hyphenated hosts, service discovery.
fn corporate_name(rng: &mut ChaCha8Rng) -> String {
    match rng.random_range(0..4) {
        0 => format!(
            "{}-{}-{}-{}.corp.example",
            pick(rng, WORDS),
            pick(rng, WORDS),
            pick(rng, &["portal", "gateway", "service", "printer"]),
            pick(rng, &["prod", "staging", "dr-site"])
        ),
        1 => "_ldap._tcp.dc._msdcs.corp.example".into(),
        2 => format!("{}.corp.example", pick(rng, &["intranet", "vpn", "mail", "wiki", "jira", "fileserver01"])),
        _ => format!("_kerberos._tcp.{}.corp.example", pick(rng, &["hq", "branch-1", "branch-2"])),
    }
}

/// A resolver logs some names with each letter's case random (0x20
/// encoding) and some with the root's dot.
fn as_logged(rng: &mut ChaCha8Rng, name: &str) -> String {
    let mut out: String = if rng.random_bool(0.2) {
        name.chars().map(|c| if rng.random_bool(0.5) { c.to_ascii_uppercase() } else { c }).collect()
    } else {
        name.to_string()
    };
    if rng.random_bool(0.3) {
        out.push('.');
    }
    out
}

/// A time in the day, weighted toward working hours.
fn diurnal(rng: &mut ChaCha8Rng) -> i64 {
    loop {
        let t = rng.random_range(0..DAY_MS);
        let hour = t / 3_600_000;
        let weight = if (8..19).contains(&hour) { 1.0 } else { 0.25 };
        if rng.random_bool(weight) {
            return EPOCH_START_MS + t;
        }
    }
}

fn client(rng: &mut ChaCha8Rng) -> String {
    format!("10.{}.{}.{}", rng.random_range(8..12), rng.random_range(0..16), rng.random_range(2..250))
}

fn everyday(rng: &mut ChaCha8Rng, logs: &mut Vec<GeneratedLog>, count: usize) {
    for _ in 0..count {
        let ts = diurnal(rng);
        let who = client(rng);
        let qtype = *pick(rng, &["A", "A", "A", "A", "AAAA", "AAAA", "HTTPS", "HTTPS", "CNAME", "TXT", "MX", "SRV"]);
        let (name, rcode) = match rng.random_range(0..100) {
            0..=54 => {
                let (domain, subs) = pick(rng, SITES);
                let name =
                    if rng.random_bool(0.2) { (*domain).to_string() } else { format!("{}.{domain}", pick(rng, subs)) };
                (name, "NOERROR")
            }
            55..=74 => (cloud_name(rng), "NOERROR"),
            75..=86 => (corporate_name(rng), "NOERROR"),
            87..=92 => {
                let ip =
                    format!("{}.{}.{}.10", rng.random_range(2..250), rng.random_range(0..16), rng.random_range(8..12));
                (format!("{ip}.in-addr.arpa"), if rng.random_bool(0.3) { "NXDOMAIN" } else { "NOERROR" })
            }
            // Typos and stale names.
            _ => {
                let name = format!("{}{}.com", pick(rng, WORDS), pick(rng, &["s", "-app", "z", "ly"]));
                (name, "NXDOMAIN")
            }
        };
        let qtype = if name.ends_with("in-addr.arpa") { "PTR" } else { qtype };
        let answers = u32::from(rcode == "NOERROR") * rng.random_range(1..5);
        let logged = as_logged(rng, &name);
        logs.push(entry(ts, &who, &logged, qtype, rcode, answers, None));
    }
}

/// Harmless bursts an operator sees every day.
fn noisy_but_harmless(rng: &mut ChaCha8Rng, logs: &mut Vec<GeneratedLog>, count: usize) {
    for _ in 0..(count / 5_000).max(1) {
        // The operator's scanner: a reverse-lookup sweep of a subnet.
        let scanner = "10.8.0.5";
        let start = diurnal(rng);
        let subnet = rng.random_range(0..16);
        for (host, ts) in burst_times(rng, start, 40_000, 250).into_iter().enumerate() {
            let name = format!("{}.{subnet}.9.10.in-addr.arpa", host + 2);
            let rcode = if rng.random_bool(0.6) { "NXDOMAIN" } else { "NOERROR" };
            logs.push(entry(ts, scanner, &name, "PTR", rcode, u32::from(rcode == "NOERROR"), None));
        }
        // A roaming laptop on a hotel network, asking for the office's names.
        let laptop = client(rng);
        let start = diurnal(rng);
        for ts in burst_times(rng, start, 20_000, 30) {
            let name = format!(
                "{}.corp.example",
                pick(rng, &["wpad", "isatap", "intranet", "fileserver01", "_ldap._tcp.dc._msdcs"])
            );
            logs.push(entry(ts, &laptop, &name, "A", "NXDOMAIN", 0, None));
        }
        // A browser loading a busy page: many CDN names at once.
        let browser = client(rng);
        let start = diurnal(rng);
        for ts in burst_times(rng, start, 15_000, 45) {
            let cloud = cloud_name(rng);
            let name = as_logged(rng, &cloud);
            logs.push(entry(ts, &browser, &name, "A", "NOERROR", 2, None));
        }
    }
}

fn tunnel_domain(rng: &mut ChaCha8Rng) -> String {
    format!("{}{}.{}", pick(rng, WORDS), rng.random_range(10..99), pick(rng, &["com", "net", "io", "xyz"]))
}

fn attacks(rng: &mut ChaCha8Rng, logs: &mut Vec<GeneratedLog>) {
    let label = Some("dns_tunnel");
    // Long encoded labels at a tunnel's pace (iodine-like, dnscat2-like).
    for hex in [false, true] {
        let (who, domain) = (client(rng), tunnel_domain(rng));
        let n = rng.random_range(150..300);
        let start = diurnal(rng);
        for (seq, ts) in burst_times(rng, start, 240_000, n).into_iter().enumerate() {
            let name = if hex {
                format!("{}.{}.{domain}", random_label(rng, HEX, 50..62), random_label(rng, HEX, 8..9))
            } else {
                format!("{}{seq}.{domain}", random_label(rng, BASE128ISH, 52..60))
            };
            let qtype = *pick::<&str>(rng, &["NULL", "TXT", "CNAME"]);
            logs.push(entry(ts, &who, &name, qtype, "NOERROR", 1, label));
        }
    }
    // Short chunks after handshake names, each name harmless alone.
    let (who, domain) = (client(rng), tunnel_domain(rng));
    let start = diurnal(rng);
    for ts in burst_times(rng, start, 6_000, 12) {
        let name = format!("init.{}.base64.{domain}", random_label(rng, BASE32, 20..27));
        logs.push(entry(ts, &who, &name, "TXT", "NOERROR", 1, label));
    }
    for (seq, ts) in burst_times(rng, start + 6_000, 180_000, 220).into_iter().enumerate() {
        let name = format!("{}.{}.{domain}", seq % 100, random_label(rng, BASE32, 5..7));
        logs.push(entry(ts, &who, &name, "TXT", "NOERROR", 1, label));
    }
    // Slow exfiltration: one short chunk every 20 seconds for an hour.
    let (who, domain) = (client(rng), tunnel_domain(rng));
    let start = diurnal(rng);
    for k in 0..180 {
        let name = format!("{}.{domain}", random_label(rng, BASE32, 8..12));
        logs.push(entry(start + k * 20_000, &who, &as_logged(rng, &name), "A", "NOERROR", 1, label));
    }
    // Generated domains: random letters, and words glued together.
    for dictionary in [false, true] {
        let who = client(rng);
        let start = diurnal(rng);
        for ts in burst_times(rng, start, 90_000, 80) {
            let name = if dictionary {
                format!("{}{}{}", pick(rng, WORDS), pick(rng, WORDS), pick(rng, WORDS))
            } else {
                random_label(rng, CONSONANT_HEAVY, 12..20)
            };
            let name = format!("{name}.{}", pick(rng, &["com", "net", "biz", "info", "top", "xyz"]));
            let rcode = if rng.random_bool(0.9) { "NXDOMAIN" } else { "NOERROR" };
            logs.push(entry(ts, &who, &as_logged(rng, &name), "A", rcode, u32::from(rcode == "NOERROR"), Some("dga")));
        }
    }
    // A random-subdomain flood against a victim's domain.
    let who = client(rng);
    let start = diurnal(rng);
    for ts in burst_times(rng, start, 20_000, 120) {
        let name = format!("{}.example-bank.com", random_label(rng, ALNUM, 6..12));
        logs.push(entry(ts, &who, &name, "A", "NXDOMAIN", 0, Some("nxdomain_burst")));
    }
}

pub fn generate(rng: &mut ChaCha8Rng, count: usize) -> Vec<GeneratedLog> {
    let mut logs = Vec::with_capacity(count + 2_000);
    everyday(rng, &mut logs, count);
    noisy_but_harmless(rng, &mut logs, count);
    attacks(rng, &mut logs);
    logs
}
