//! Wi-Fi controller logs: beacons, associations, authentication, data and
//! deauthentication, with floods, brute force, impostor access points and
//! jamming injected.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use super::{EPOCH_START_MS, GeneratedLog, burst_times, mac, pick, span_ms};

const SSIDS: &[&str] = &["corp", "corp-guest", "iot", "voip"];

struct AccessPoint {
    bssid: String,
    ssid: &'static str,
    channel: u32,
}

#[allow(clippy::too_many_arguments)]
fn entry(
    ts: i64,
    ap: &AccessPoint,
    event: &str,
    client: &str,
    signal: i32,
    retry: f64,
    status: &str,
    label: Option<&'static str>,
) -> GeneratedLog {
    GeneratedLog {
        timestamp_ms: ts,
        source: "wlc-1".into(),
        fields: json!({
            "event": event,
            "bssid": ap.bssid,
            "ssid": ap.ssid,
            "client": client,
            "channel": ap.channel,
            "signal_dbm": signal,
            "retry_rate": (retry * 1000.0).round() / 1000.0,
            "status": status,
            "reason_code": if event == "deauth" || event == "disassoc" { 3 } else { 0 },
        }),
        label,
    }
}

pub fn generate(rng: &mut ChaCha8Rng, count: usize) -> Vec<GeneratedLog> {
    let span = span_ms(count);
    let aps: Vec<AccessPoint> = (0..20)
        .map(|i| AccessPoint {
            bssid: format!("00:1a:2b:00:00:{i:02x}"),
            ssid: SSIDS[i % SSIDS.len()],
            channel: [1, 6, 11, 36, 44][i % 5],
        })
        .collect();
    let clients: Vec<(String, i32)> = (0..300).map(|_| (mac(rng, "a4:5e:60"), rng.random_range(-75..-45))).collect();
    let mut logs = Vec::with_capacity(count + count / 8);

    for ap in &aps {
        let mut ts = EPOCH_START_MS + rng.random_range(0..60_000);
        while ts < EPOCH_START_MS + span {
            logs.push(entry(
                ts,
                ap,
                "beacon",
                "",
                rng.random_range(-70..-40),
                rng.random_range(0.0..0.1),
                "success",
                None,
            ));
            ts += 60_000;
        }
    }
    let normal = count.saturating_sub(logs.len());
    for _ in 0..normal {
        let ts = EPOCH_START_MS + rng.random_range(0..span);
        let ap = pick(rng, &aps);
        let (client, base) = pick(rng, &clients);
        let roll: f64 = rng.random();
        let (event, status) = match roll {
            r if r < 0.55 => ("data", "success"),
            r if r < 0.65 => ("assoc", "success"),
            r if r < 0.77 => ("auth", if rng.random_bool(0.03) { "failure" } else { "success" }),
            r if r < 0.92 => ("probe", "success"),
            r if r < 0.96 => ("deauth", "success"),
            _ => ("disassoc", "success"),
        };
        let weak = rng.random_bool(0.05);
        let signal = if weak { rng.random_range(-88..-80) } else { base + rng.random_range(-5..=5) };
        let retry = if weak {
            rng.random_range(0.2..0.55)
        } else if rng.random_bool(0.05) {
            rng.random_range(0.2..0.45)
        } else {
            rng.random_range(0.0..0.2)
        };
        logs.push(entry(ts, ap, event, client, signal, retry, status, None));
    }

    let late = |rng: &mut ChaCha8Rng| EPOCH_START_MS + rng.random_range(span / 4..span - 600_000);
    for _ in 0..2 {
        let ap = pick(rng, &aps);
        let start = late(rng);
        let n = rng.random_range(80..200);
        for ts in {
            let duration = rng.random_range(5_000..15_000);
            burst_times(rng, start, duration, n)
        } {
            logs.push(entry(
                ts,
                ap,
                "deauth",
                "ff:ff:ff:ff:ff:ff",
                rng.random_range(-60..-30),
                0.0,
                "success",
                Some("deauth_flood"),
            ));
        }
    }
    for _ in 0..3 {
        let ap = aps.iter().find(|a| a.ssid == "corp").unwrap_or(&aps[0]);
        let attacker = mac(rng, "3c:22:fb");
        let start = late(rng);
        let n = rng.random_range(20..60);
        for ts in {
            let duration = rng.random_range(30_000..120_000);
            burst_times(rng, start, duration, n)
        } {
            logs.push(entry(
                ts,
                ap,
                "auth",
                &attacker,
                rng.random_range(-70..-50),
                rng.random_range(0.0..0.1),
                "failure",
                Some("auth_bruteforce"),
            ));
        }
    }
    for i in 0..2 {
        let twin = AccessPoint { bssid: format!("de:ad:be:ef:00:{i:02x}"), ssid: "corp", channel: 6 };
        let start = late(rng);
        for k in 0..30 {
            logs.push(entry(
                start + k * 10_000,
                &twin,
                "beacon",
                "",
                rng.random_range(-45..-30),
                0.02,
                "success",
                Some("evil_twin"),
            ));
        }
        for _ in 0..rng.random_range(10..30) {
            let (client, _) = pick(rng, &clients);
            let event = *pick(rng, &["assoc", "auth", "data"]);
            logs.push(entry(
                start + rng.random_range(10_000..300_000),
                &twin,
                event,
                client,
                rng.random_range(-50..-30),
                0.05,
                "success",
                Some("evil_twin"),
            ));
        }
    }
    let rogue = AccessPoint { bssid: "66:77:88:99:aa:01".into(), ssid: "FreeWiFi", channel: 11 };
    let start = late(rng);
    for k in 0..20 {
        logs.push(entry(
            start + k * 30_000,
            &rogue,
            "beacon",
            "",
            rng.random_range(-65..-45),
            0.02,
            "success",
            Some("rogue_ap"),
        ));
    }
    for _ in 0..rng.random_range(3..10) {
        let (client, _) = pick(rng, &clients);
        logs.push(entry(
            start + rng.random_range(30_000..600_000),
            &rogue,
            "assoc",
            client,
            -55,
            0.05,
            "success",
            Some("rogue_ap"),
        ));
    }
    for _ in 0..2 {
        let ap = pick(rng, &aps);
        let start = late(rng);
        let n = rng.random_range(40..100);
        for ts in {
            let duration = rng.random_range(20_000..60_000);
            burst_times(rng, start, duration, n)
        } {
            let (client, _) = pick(rng, &clients);
            logs.push(entry(
                ts,
                ap,
                "data",
                client,
                rng.random_range(-95..-82),
                rng.random_range(0.6..0.95),
                "success",
                Some("rf_jamming"),
            ));
        }
    }
    logs
}
