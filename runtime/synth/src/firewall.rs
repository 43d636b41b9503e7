//! Edge firewall logs: web and mail traffic, internet background noise, with
//! port scans, brute-force bursts, command-and-control ports and large
//! exfiltration transfers injected.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use super::{EPOCH_START_MS, GeneratedLog, burst_times, pick, span_ms};

const OUTBOUND_PORTS: &[(u16, f64)] =
    &[(443, 0.6), (80, 0.8), (53, 0.86), (123, 0.9), (22, 0.93), (25, 0.95), (587, 0.97), (993, 1.0)];
const INBOUND_NOISE_PORTS: &[u16] = &[22, 23, 445, 3389, 8080, 1433];

#[allow(clippy::too_many_arguments)]
pub(crate) fn entry(
    ts: i64,
    src: &str,
    dst: &str,
    src_port: u16,
    dst_port: u16,
    action: &str,
    bytes_out: u64,
    label: Option<&'static str>,
) -> GeneratedLog {
    GeneratedLog {
        timestamp_ms: ts,
        source: "fw-edge-1".into(),
        fields: json!({
            "src_ip": src,
            "dst_ip": dst,
            "src_port": src_port,
            "dst_port": dst_port,
            "protocol": if dst_port == 53 || dst_port == 123 { "udp" } else { "tcp" },
            "action": action,
            "bytes_out": bytes_out,
            "bytes_in": bytes_out.saturating_mul(3) / 2 + 60,
            "duration_ms": (bytes_out / 1000).min(600_000) + 5,
        }),
        label,
    }
}

fn internal(rng: &mut ChaCha8Rng) -> String {
    format!("10.0.{}.{}", rng.random_range(2..6), rng.random_range(2..250))
}

fn external(rng: &mut ChaCha8Rng) -> String {
    format!(
        "{}.{}.{}.{}",
        pick(rng, &[23u8, 34, 52, 93, 104, 151, 172, 185, 198]),
        rng.random_range(0..255),
        rng.random_range(0..255),
        rng.random_range(1..255)
    )
}

fn ephemeral(rng: &mut ChaCha8Rng) -> u16 {
    rng.random_range(32_768..61_000)
}

pub fn generate(rng: &mut ChaCha8Rng, count: usize) -> Vec<GeneratedLog> {
    let span = span_ms(count);
    let servers: Vec<String> = (1..21).map(|i| format!("10.0.1.{i}")).collect();
    let mut logs = Vec::with_capacity(count + count / 8);
    for _ in 0..count {
        let ts = EPOCH_START_MS + rng.random_range(0..span);
        let roll: f64 = rng.random();
        if roll < 0.80 {
            let r: f64 = rng.random();
            let port = OUTBOUND_PORTS.iter().find(|(_, p)| r < *p).map_or(443, |(port, _)| *port);
            let bytes = if rng.random_bool(0.01) {
                rng.random_range(5_000_000..50_000_000)
            } else {
                (rng.random::<f64>().powi(3) * 200_000.0) as u64 + 200
            };
            let (src, dst, sp) = (internal(rng), external(rng), ephemeral(rng));
            logs.push(entry(
                ts,
                &src,
                &dst,
                sp,
                port,
                if rng.random_bool(0.01) { "deny" } else { "allow" },
                bytes,
                None,
            ));
        } else if roll < 0.93 {
            // Internal clients to internal servers; monitoring touches a few ports.
            let server = pick(rng, &servers).clone();
            let port = *pick(rng, &[443u16, 80, 22, 445, 3306, 5432, 8080, 9100, 161, 389]);
            let (src, sp) = (internal(rng), ephemeral(rng));
            logs.push(entry(ts, &src, &server, sp, port, "allow", rng.random_range(300..80_000), None));
        } else {
            // Internet background noise: single probes, denied.
            let port = *pick(rng, INBOUND_NOISE_PORTS);
            let (src, dst, sp) = (external(rng), pick(rng, &servers).clone(), ephemeral(rng));
            logs.push(entry(ts, &src, &dst, sp, port, "deny", 0, None));
        }
    }

    let anywhere = |rng: &mut ChaCha8Rng| EPOCH_START_MS + rng.random_range(60_000..span - 300_000);
    for _ in 0..2 {
        let (src, dst) = (external(rng), pick(rng, &servers).clone());
        let start = anywhere(rng);
        let n = rng.random_range(100..400);
        let mut ports: Vec<u16> = (1..1024).collect();
        for (i, ts) in {
            let duration = rng.random_range(20_000..50_000);
            burst_times(rng, start, duration, n)
        }
        .into_iter()
        .enumerate()
        {
            let port = ports.swap_remove(rng.random_range(0..ports.len()));
            let action = if rng.random_bool(0.7) || i % 5 != 0 { "deny" } else { "allow" };
            let sp = ephemeral(rng);
            logs.push(entry(ts, &src, &dst, sp, port, action, 0, Some("port_scan")));
        }
    }
    for _ in 0..2 {
        let (src, dst) = (external(rng), pick(rng, &servers).clone());
        let port = *pick(rng, &[22u16, 3389]);
        let start = anywhere(rng);
        let n = rng.random_range(40..150);
        let duration = (n as i64) * rng.random_range(150..300);
        for ts in burst_times(rng, start, duration, n) {
            let sp = ephemeral(rng);
            logs.push(entry(ts, &src, &dst, sp, port, "deny", 0, Some("deny_burst")));
        }
    }
    for _ in 0..2 {
        let (src, dst) = (internal(rng), external(rng));
        let port = *pick(rng, &[4444u16, 6667, 31337, 1337]);
        let mut ts = anywhere(rng);
        for _ in 0..rng.random_range(10..25) {
            ts += rng.random_range(30_000..120_000);
            let sp = ephemeral(rng);
            logs.push(entry(ts, &src, &dst, sp, port, "allow", rng.random_range(200..4_000), Some("suspicious_port")));
        }
    }
    for _ in 0..2 {
        let (src, dst) = (internal(rng), external(rng));
        let mut ts = anywhere(rng);
        for _ in 0..rng.random_range(3..8) {
            ts += rng.random_range(60_000..300_000);
            let sp = ephemeral(rng);
            logs.push(entry(
                ts,
                &src,
                &dst,
                sp,
                443,
                "allow",
                rng.random_range(150_000_000..3_000_000_000),
                Some("exfiltration"),
            ));
        }
    }
    logs
}
