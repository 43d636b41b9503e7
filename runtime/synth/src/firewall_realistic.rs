//! Edge firewall records as a real site sees them (`Profile::Realistic`): a
//! day of connections at a diurnal rate from many clients, transfer sizes
//! with heavy tails (most connections carry a few kilobytes, a few carry
//! hundreds of megabytes), the internet's background of single probes from
//! many addresses, calls whose media streams use a new high port each, and
//! a nightly backup to the site's recovery centre. Attacks as tools make
//! them: fast and slow port scans, a worm's sweep of one port across the
//! site's hosts, password guessing the firewall allows (the service says
//! no), a remote-access trojan's control port, and exfiltration in one large
//! upload or staged in many medium ones.
//!
//! What it is not: a capture. Rates and sizes are plausible, not measured.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::firewall::entry;
use super::{EPOCH_START_MS, GeneratedLog, burst_times, pick};

const DAY_MS: i64 = 86_400_000;

/// A time in the day, weighted toward working hours.
fn diurnal(rng: &mut ChaCha8Rng) -> i64 {
    loop {
        let t = rng.random_range(0..DAY_MS);
        let weight = if (8..19).contains(&(t / 3_600_000)) { 1.0 } else { 0.25 };
        if rng.random_bool(weight) {
            return EPOCH_START_MS + t;
        }
    }
}

fn client(rng: &mut ChaCha8Rng) -> String {
    format!("10.{}.{}.{}", rng.random_range(8..12), rng.random_range(0..16), rng.random_range(2..250))
}

fn server(rng: &mut ChaCha8Rng) -> String {
    format!("10.0.1.{}", rng.random_range(1..41))
}

fn external(rng: &mut ChaCha8Rng) -> String {
    format!(
        "{}.{}.{}.{}",
        // No 172: 172.16.0.0/12 is private.
        pick(rng, &[13u8, 20, 23, 34, 52, 54, 93, 104, 142, 151, 157, 185, 198, 203]),
        rng.random_range(0..255),
        rng.random_range(0..255),
        rng.random_range(1..255)
    )
}

fn ephemeral(rng: &mut ChaCha8Rng) -> u16 {
    rng.random_range(32_768..61_000)
}

/// Bytes a client sends in one connection: log-normal around a couple of
/// kilobytes, and one connection in two hundred a file of 5 to 80 MB (an
/// attachment, a synced photo album, a video call's recording).
fn upload_bytes(rng: &mut ChaCha8Rng) -> u64 {
    if rng.random_bool(0.005) {
        return rng.random_range(5_000_000..80_000_000);
    }
    let normal: f64 = (0..12).map(|_| rng.random::<f64>()).sum::<f64>() - 6.0;
    (7.6 + 2.0 * normal).exp().clamp(60.0, 2e9) as u64
}

fn everyday(rng: &mut ChaCha8Rng, logs: &mut Vec<GeneratedLog>, count: usize) {
    for _ in 0..count {
        let ts = diurnal(rng);
        match rng.random_range(0..100) {
            // Clients to the internet: the web, mail, time, calls' signalling.
            0..=69 => {
                let port = *pick(rng, &[443u16, 443, 443, 443, 443, 443, 80, 80, 993, 587, 123, 5222, 3478, 8801]);
                let action = if rng.random_bool(0.004) { "deny" } else { "allow" };
                let (src, dst, sp) = (client(rng), external(rng), ephemeral(rng));
                logs.push(entry(ts, &src, &dst, sp, port, action, upload_bytes(rng), None));
            }
            // Clients to the site's servers.
            70..=86 => {
                let port = *pick(rng, &[443u16, 80, 22, 445, 3306, 5432, 8080, 9100, 161, 389, 88, 636]);
                let (src, dst, sp) = (client(rng), server(rng), ephemeral(rng));
                logs.push(entry(ts, &src, &dst, sp, port, "allow", upload_bytes(rng), None));
            }
            // The internet's background: one or two probes from each of many
            // addresses, denied at the edge.
            _ => {
                let (src, dst) = (external(rng), server(rng));
                for _ in 0..rng.random_range(1..3) {
                    let port = *pick(rng, &[22u16, 23, 80, 443, 445, 1433, 3389, 5060, 5900, 8080, 8443, 2323]);
                    let sp = ephemeral(rng);
                    logs.push(entry(ts + rng.random_range(0..5_000), &src, &dst, sp, port, "deny", 0, None));
                }
            }
        }
    }
}

/// Harmless patterns an operator sees every day.
fn noisy_but_harmless(rng: &mut ChaCha8Rng, logs: &mut Vec<GeneratedLog>, count: usize) {
    for _ in 0..(count / 5_000).max(1) {
        // A video call: each media stream to the conferencing relay on a
        // new high port, every one carrying data.
        let (caller, relay) = (client(rng), external(rng));
        let start = diurnal(rng);
        for ts in burst_times(rng, start, 60_000, 40) {
            let port = rng.random_range(50_000..50_060);
            let sp = ephemeral(rng);
            logs.push(entry(ts, &caller, &relay, sp, port, "allow", rng.random_range(200_000..4_000_000), None));
        }
        // A browser loading a busy page: many connections to one CDN host.
        let (browser, cdn) = (client(rng), external(rng));
        let start = diurnal(rng);
        for ts in burst_times(rng, start, 20_000, 30) {
            let sp = ephemeral(rng);
            logs.push(entry(ts, &browser, &cdn, sp, 443, "allow", upload_bytes(rng).min(50_000), None));
        }
    }
    // The nightly backup to the recovery centre, over the site-to-site link.
    let night = EPOCH_START_MS + 2 * 3_600_000;
    for k in 0..12 {
        let sp = ephemeral(rng);
        let bytes = rng.random_range(200_000_000..900_000_000);
        logs.push(entry(night + k * 300_000, "10.0.1.50", "10.200.0.10", sp, 873, "allow", bytes, None));
    }
}

fn attacks(rng: &mut ChaCha8Rng, logs: &mut Vec<GeneratedLog>) {
    // A fast scan of a server's ports from the internet, most refused.
    let (src, dst) = (external(rng), server(rng));
    let mut ports: Vec<u16> = (1..1024).collect();
    let start = diurnal(rng);
    for ts in burst_times(rng, start, 30_000, 300) {
        let port = ports.swap_remove(rng.random_range(0..ports.len()));
        let action = if rng.random_bool(0.9) { "deny" } else { "allow" };
        logs.push(entry(ts, &src, &dst, ephemeral(rng), port, action, 0, Some("port_scan")));
    }
    // A slow scan: one port every 40 seconds for two hours, under any
    // minute's threshold.
    let (src, dst) = (external(rng), server(rng));
    let start = diurnal(rng);
    let mut ports: Vec<u16> = (1..10_000).collect();
    for k in 0..180 {
        let port = ports.swap_remove(rng.random_range(0..ports.len()));
        let action = if rng.random_bool(0.9) { "deny" } else { "allow" };
        let ts = start + k * 40_000 + rng.random_range(0..5_000);
        logs.push(entry(ts, &src, &dst, ephemeral(rng), port, action, 0, Some("port_scan")));
    }
    // A worm on a client sweeping the site for file sharing: one port, many hosts.
    let worm = client(rng);
    let start = diurnal(rng);
    for ts in burst_times(rng, start, 90_000, 150) {
        let dst = format!("10.{}.{}.{}", rng.random_range(8..12), rng.random_range(0..16), rng.random_range(2..250));
        let action = if rng.random_bool(0.3) { "deny" } else { "allow" };
        logs.push(entry(ts, &worm, &dst, ephemeral(rng), 445, action, 0, Some("host_sweep")));
    }
    // Password guessing against the bastion's SSH: allowed by the firewall,
    // refused by the service, one try every couple of seconds.
    let (src, bastion) = (external(rng), server(rng));
    let start = diurnal(rng);
    for ts in burst_times(rng, start, 240_000, 120) {
        let bytes = rng.random_range(2_000..5_000);
        logs.push(entry(ts, &src, &bastion, ephemeral(rng), 22, "allow", bytes, Some("brute_force")));
    }
    // A remote-access trojan calling its controller every minute or two.
    let (src, dst) = (client(rng), external(rng));
    let mut ts = diurnal(rng);
    for _ in 0..20 {
        ts += rng.random_range(60_000..120_000);
        let port = *pick(rng, &[4444u16, 1337]);
        logs.push(entry(
            ts,
            &src,
            &dst,
            ephemeral(rng),
            port,
            "allow",
            rng.random_range(300..3_000),
            Some("suspicious_port"),
        ));
    }
    // Exfiltration in a few large uploads, and staged in medium ones.
    let (src, dst) = (client(rng), external(rng));
    let mut ts = diurnal(rng);
    for _ in 0..4 {
        ts += rng.random_range(60_000..300_000);
        let bytes = rng.random_range(150_000_000..2_000_000_000);
        logs.push(entry(ts, &src, &dst, ephemeral(rng), 443, "allow", bytes, Some("exfiltration")));
    }
    let (src, dst) = (client(rng), external(rng));
    let mut ts = diurnal(rng);
    for _ in 0..30 {
        ts += rng.random_range(20_000..90_000);
        let bytes = rng.random_range(20_000_000..40_000_000);
        logs.push(entry(ts, &src, &dst, ephemeral(rng), 443, "allow", bytes, Some("exfiltration")));
    }
}

pub fn generate(rng: &mut ChaCha8Rng, count: usize) -> Vec<GeneratedLog> {
    let mut logs = Vec::with_capacity(count + count / 4);
    everyday(rng, &mut logs, count);
    noisy_but_harmless(rng, &mut logs, count);
    attacks(rng, &mut logs);
    logs
}
