//! Wi-Fi controller events as a real site sees them (`Profile::Realistic`):
//! a day at a diurnal rate, access points with one BSSID per SSID and
//! radio, phones with randomised addresses, the neighbours' networks and
//! the phone hotspots that come and go, and the harmless events that look
//! like attacks to a template rule: a firmware upgrade that disconnects
//! every client of an access point at once, a radio that leaves a radar
//! channel, devices with a stale password that retry with back-off, an
//! authentication server outage, a laptop at the edge of coverage that
//! retries most frames, a microwave oven at lunch. Attacks as the tools make
//! them: broadcast, targeted and round-robin deauthentication (mdk4,
//! aireplay-ng) and a slow one that keeps one client off, password guessing
//! from one address and from a new random address per try, evil twins under
//! a new BSSID and under a real access point's own BSSID on another channel,
//! a rogue access point that clients join, and a jammer on one channel.
//!
//! What it is not: a capture. Rates and timings are plausible, not measured.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::{EPOCH_START_MS, GeneratedLog, burst_times, pick};

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;
const BROADCAST: &str = "ff:ff:ff:ff:ff:ff";

/// IEEE 802.11 reason codes the controller reports.
const REASON_LEAVING: u32 = 3;
const REASON_INACTIVE: u32 = 4;
const REASON_CLASS3_FROM_NONASSOC: u32 = 7;
const REASON_ROAMED: u32 = 8;

/// One BSSID: an SSID on one radio of an access point.
#[derive(Debug, Clone)]
struct Radio {
    bssid: String,
    ssid: &'static str,
    channel: u32,
    access_point: usize,
}

struct Client {
    mac: String,
    ssid: &'static str,
    home: usize,
    signal: i32,
}

/// What the frame says about the link.
#[derive(Clone, Copy)]
struct Link {
    signal: i32,
    retry: f64,
    status: &'static str,
    reason: u32,
}

impl Link {
    fn ok(signal: i32, retry: f64) -> Self {
        Link { signal, retry, status: "success", reason: 0 }
    }
}

fn frame(ts: i64, radio: &Radio, event: &str, client: &str, link: Link, label: Option<&'static str>) -> GeneratedLog {
    GeneratedLog {
        timestamp_ms: ts,
        source: "wlc-1".into(),
        fields: json!({
            "event": event,
            "bssid": radio.bssid,
            "ssid": radio.ssid,
            "client": client,
            "channel": radio.channel,
            "signal_dbm": link.signal,
            "retry_rate": (link.retry * 1000.0).round() / 1000.0,
            "status": link.status,
            "reason_code": link.reason,
        }),
        label,
    }
}

/// The site: 24 access points, each with a 2.4 GHz radio (corp, iot) and
/// a 5 GHz radio (corp, corp-guest, voip), some of them on radar (DFS)
/// channels.
fn site() -> Vec<Radio> {
    let five = [36u32, 40, 44, 48, 52, 56, 60, 64, 100, 104, 108, 112, 149, 153, 157, 161];
    let mut radios = Vec::new();
    for ap in 0..24usize {
        for (band, channel, ssids) in
            [(0, [1u32, 6, 11][ap % 3], &["corp", "iot"][..]), (1, five[ap % 16], &["corp", "corp-guest", "voip"][..])]
        {
            for (index, ssid) in ssids.iter().enumerate() {
                radios.push(Radio {
                    bssid: format!("00:3a:7d:{ap:02x}:{band:02x}:{index:02x}"),
                    ssid,
                    channel,
                    access_point: ap,
                });
            }
        }
    }
    radios
}

/// A phone's private address (locally administered) or a vendor's.
fn device_mac(rng: &mut ChaCha8Rng) -> String {
    let first = if rng.random_bool(0.4) {
        (rng.random::<u8>() & 0xfc) | 0x02
    } else {
        *pick(rng, &[0xa4u8, 0x3c, 0xf0, 0x8c, 0xdc, 0x70])
    };
    let rest: Vec<String> = (0..5).map(|_| format!("{:02x}", rng.random::<u8>())).collect();
    format!("{first:02x}:{}", rest.join(":"))
}

/// A time in the day, weighted toward working hours.
fn diurnal(rng: &mut ChaCha8Rng) -> i64 {
    loop {
        let t = rng.random_range(0..DAY_MS);
        let weight = if (8..19).contains(&(t / HOUR_MS)) { 1.0 } else { 0.15 };
        if rng.random_bool(weight) {
            return EPOCH_START_MS + t;
        }
    }
}

/// A working-hours time, after the agents' learning hour: when attacks
/// and most harmless incidents happen.
fn working_hours(rng: &mut ChaCha8Rng) -> i64 {
    EPOCH_START_MS + rng.random_range(8 * HOUR_MS..18 * HOUR_MS)
}

struct Site {
    radios: Vec<Radio>,
    clients: Vec<Client>,
}

impl Site {
    fn new(rng: &mut ChaCha8Rng, count: usize) -> Self {
        let radios = site();
        let access_points = radios.iter().map(|r| r.access_point).max().unwrap_or(0) + 1;
        let clients = (0..(count / 20).clamp(800, 8_000))
            .map(|_| {
                let ssid = *pick(rng, &["corp", "corp", "corp", "corp", "corp-guest", "iot", "voip"]);
                Client {
                    mac: device_mac(rng),
                    ssid,
                    home: rng.random_range(0..access_points),
                    signal: rng.random_range(-72..-42),
                }
            })
            .collect();
        Site { radios, clients }
    }

    /// The BSSID serving `ssid` at access point `ap` (the 5 GHz radio
    /// where both serve it, unless `low_band`).
    fn radio(&self, ap: usize, ssid: &str, low_band: bool) -> &Radio {
        let serving = |r: &&Radio| r.access_point == ap && r.ssid == ssid;
        let mut candidates = self.radios.iter().filter(serving);
        let first = candidates.next();
        let second = candidates.next();
        match (first, second, low_band) {
            (Some(low), Some(_), true) => low,
            (Some(_), Some(high), false) => high,
            (Some(only), None, _) => only,
            _ => &self.radios[0],
        }
    }

    fn client_radio(&self, rng: &mut ChaCha8Rng, client: &Client) -> &Radio {
        // One frame in five from a neighbouring access point: people move.
        let ap = if rng.random_bool(0.2) { (client.home + 1) % 24 } else { client.home };
        self.radio(ap, client.ssid, rng.random_bool(0.3))
    }

    fn clients_of(&self, ap: usize) -> Vec<&Client> {
        self.clients.iter().filter(|c| c.home == ap).collect()
    }
}

/// How often the site's monitor reports each BSSID it hears.
fn report_interval(radios: &[Radio], count: usize) -> i64 {
    (DAY_MS * radios.len() as i64 / (count as i64 / 5).max(1)).clamp(300_000, HOUR_MS)
}

/// Every BSSID reported by the site's monitor: once in the first minutes
/// (its survey on start) and then at an interval that keeps these reports
/// to about a fifth of the day's entries, between 5 and 60 minutes.
fn monitor_reports(rng: &mut ChaCha8Rng, radios: &[Radio], count: usize, logs: &mut Vec<GeneratedLog>) {
    let interval = report_interval(radios, count);
    for radio in radios {
        let mut ts = EPOCH_START_MS + rng.random_range(0..300_000);
        while ts < EPOCH_START_MS + DAY_MS {
            logs.push(frame(
                ts,
                radio,
                "beacon",
                "",
                Link::ok(rng.random_range(-70..-40), rng.random_range(0.0..0.1)),
                None,
            ));
            ts += interval + rng.random_range(0..30_000);
        }
    }
}

/// Networks that are not the site's: the neighbours', heard all day and
/// weak, and phone hotspots that appear for a while, heard through the
/// office walls or in the next room. Nobody of the site joins them.
fn other_networks(rng: &mut ChaCha8Rng, count: usize, logs: &mut Vec<GeneratedLog>) {
    let neighbours =
        ["CafeNero-Guest", "DIRECT-4A-HP OfficeJet 8010", "Vodafone-8A2C", "eduroam", "BTWifi-with-FON", "SKY7F3A1"];
    for (i, ssid) in neighbours.iter().enumerate() {
        let radio = Radio {
            bssid: format!("c8:d7:19:5e:{i:02x}:10"),
            ssid,
            channel: [1, 6, 11, 44][i % 4],
            access_point: usize::MAX,
        };
        let mut ts = EPOCH_START_MS + rng.random_range(0..300_000);
        while ts < EPOCH_START_MS + DAY_MS {
            logs.push(frame(ts, &radio, "beacon", "", Link::ok(rng.random_range(-92..-78), 0.0), None));
            ts += rng.random_range(1_800_000..3_600_000);
        }
    }
    let hotspots =
        ["iPhone de Marie", "AndroidAP_4f2a", "Galaxy S23 7781", "DIRECT-xy-Roku", "Pixel_8321", "Tom's iPhone"];
    for _ in 0..(count / 20_000).max(4) {
        let ssid = *pick(rng, &hotspots);
        let radio =
            Radio { bssid: device_mac(rng), ssid, channel: *pick(rng, &[1u32, 6, 11, 149]), access_point: usize::MAX };
        let start = diurnal(rng);
        for k in 0..rng.random_range(3..40) {
            logs.push(frame(
                start + k * 120_000,
                &radio,
                "beacon",
                "",
                Link::ok(rng.random_range(-80..-50), 0.0),
                None,
            ));
        }
    }
}

fn everyday(rng: &mut ChaCha8Rng, site: &Site, count: usize, logs: &mut Vec<GeneratedLog>) {
    for _ in 0..count {
        let ts = diurnal(rng);
        let client = pick(rng, &site.clients);
        let radio = site.client_radio(rng, client);
        let weak = rng.random_bool(0.05);
        let signal = if weak { rng.random_range(-88..-80) } else { client.signal + rng.random_range(-5..=5) };
        let retry = if weak {
            rng.random_range(0.2..0.6)
        } else if rng.random_bool(0.04) {
            rng.random_range(0.2..0.45)
        } else {
            rng.random_range(0.0..0.2)
        };
        let mut link = Link::ok(signal, retry);
        let event = match rng.random_range(0..100) {
            0..=54 => "data",
            55..=62 => "assoc",
            63..=72 => {
                if rng.random_bool(0.02) {
                    link.status = "failure";
                }
                "auth"
            }
            73..=87 => "probe",
            88..=91 => {
                link.reason = *pick(rng, &[REASON_LEAVING, REASON_INACTIVE]);
                "deauth"
            }
            _ => {
                link.reason = REASON_ROAMED;
                "disassoc"
            }
        };
        logs.push(frame(ts, radio, event, &client.mac, link, None));
    }
}

/// Harmless incidents an operator sees every day, each a trap for a rule
/// that counts frames rather than what repeats.
fn noisy_but_harmless(rng: &mut ChaCha8Rng, site: &Site, count: usize, logs: &mut Vec<GeneratedLog>) {
    let scale = (count / 100_000).max(1);
    // Firmware upgrades: an access point restarts and disconnects each of
    // its clients once, within two seconds; they join a neighbour.
    for _ in 0..scale * 2 {
        let ap = rng.random_range(0..24);
        let start = diurnal(rng);
        for client in site.clients_of(ap) {
            let radio = site.radio(ap, client.ssid, false);
            let link = Link { reason: REASON_LEAVING, ..Link::ok(client.signal, 0.0) };
            logs.push(frame(start + rng.random_range(0..2_000), radio, "deauth", &client.mac, link, None));
            let neighbour = site.radio((ap + 1) % 24, client.ssid, false);
            let back = start + rng.random_range(3_000..20_000);
            logs.push(frame(back, neighbour, "auth", &client.mac, Link::ok(client.signal - 6, 0.05), None));
            logs.push(frame(back + 40, neighbour, "assoc", &client.mac, Link::ok(client.signal - 6, 0.05), None));
        }
    }
    // The guest network's sessions end at six: every guest is let go once.
    let six = EPOCH_START_MS + 18 * HOUR_MS;
    for client in site.clients.iter().filter(|c| c.ssid == "corp-guest") {
        let radio = site.radio(client.home, client.ssid, false);
        let link = Link { reason: 2, ..Link::ok(client.signal, 0.0) };
        logs.push(frame(six + rng.random_range(0..5_000), radio, "deauth", &client.mac, link, None));
    }
    // Devices left with an old password retry with wpa_supplicant's
    // back-off: 10, 20, 30, 60 seconds, then every few minutes.
    for _ in 0..scale * 3 {
        let device = pick(rng, &site.clients);
        let radio = site.radio(device.home, "iot", true);
        let mut ts = diurnal(rng);
        for pause in [10_000, 20_000, 30_000, 60_000, 120_000, 300_000, 300_000, 300_000] {
            let link = Link { status: "failure", ..Link::ok(device.signal, 0.05) };
            logs.push(frame(ts, radio, "auth", &device.mac, link, None));
            ts += pause + rng.random_range(0..2_000);
        }
    }
    // The authentication server is down for seven minutes: every client
    // that tries fails, and tries again with back-off.
    let outage = working_hours(rng);
    for _ in 0..(count / 5_000).clamp(20, 400) {
        let client = pick(rng, &site.clients);
        let radio = site.radio(client.home, "corp", false);
        let mut ts = outage + rng.random_range(0..420_000);
        for pause in [10_000, 20_000, 30_000] {
            let link = Link { status: "failure", ..Link::ok(client.signal, 0.05) };
            logs.push(frame(ts, radio, "auth", &client.mac, link, None));
            ts += pause;
        }
    }
    // A laptop in the car park: weak, retrying most frames, for twenty minutes.
    for _ in 0..scale {
        let laptop = pick(rng, &site.clients);
        let radio = site.radio(laptop.home, laptop.ssid, true);
        let mut ts = diurnal(rng);
        for _ in 0..rng.random_range(300..800) {
            let link = Link::ok(rng.random_range(-90..-83), rng.random_range(0.5..0.85));
            logs.push(frame(ts, radio, "data", &laptop.mac, link, None));
            ts += rng.random_range(1_000..3_000);
        }
    }
    // A microwave oven at lunch: the kitchen's 2.4 GHz clients retry more.
    let lunch = EPOCH_START_MS + 12 * HOUR_MS + rng.random_range(0..HOUR_MS);
    let kitchen = rng.random_range(0..24);
    for client in site.clients_of(kitchen).iter().take(30) {
        let radio = site.radio(kitchen, if client.ssid == "iot" { "iot" } else { "corp" }, true);
        for ts in burst_times(rng, lunch, 180_000, 6) {
            logs.push(frame(
                ts,
                radio,
                "data",
                &client.mac,
                Link::ok(client.signal, rng.random_range(0.2..0.45)),
                None,
            ));
        }
    }
    // A laptop carried through the building, roaming every minute.
    for _ in 0..scale {
        let walker = pick(rng, &site.clients);
        let mut ts = diurnal(rng);
        for step in 0..15 {
            let (from, to) = (
                site.radio((walker.home + step) % 24, walker.ssid, false),
                site.radio((walker.home + step + 1) % 24, walker.ssid, false),
            );
            let link = Link { reason: REASON_ROAMED, ..Link::ok(walker.signal - 10, 0.1) };
            logs.push(frame(ts, from, "disassoc", &walker.mac, link, None));
            logs.push(frame(ts + 300, to, "auth", &walker.mac, Link::ok(walker.signal, 0.05), None));
            logs.push(frame(ts + 350, to, "assoc", &walker.mac, Link::ok(walker.signal, 0.05), None));
            ts += rng.random_range(40_000..90_000);
        }
    }
}

/// Radar on a DFS channel moves a radio (all its BSSIDs) to channel 36
/// for the rest of the day; the monitor hears it there from then on.
fn leave_radar_channels(rng: &mut ChaCha8Rng, site: &Site, logs: &mut [GeneratedLog]) {
    let on_radar: Vec<usize> =
        site.radios.iter().filter(|r| (52..=144).contains(&r.channel)).map(|r| r.access_point).collect();
    for _ in 0..2 {
        let Some(&ap) = on_radar.get(rng.random_range(0..on_radar.len().max(1))) else { return };
        let at = working_hours(rng);
        let moved: Vec<&str> = site
            .radios
            .iter()
            .filter(|r| r.access_point == ap && (52..=144).contains(&r.channel))
            .map(|r| r.bssid.as_str())
            .collect();
        for log in logs.iter_mut().filter(|l| l.timestamp_ms >= at) {
            if log.fields["bssid"].as_str().is_some_and(|b| moved.contains(&b)) {
                log.fields["channel"] = Value::from(36);
            }
        }
    }
}

fn deauthentication(rng: &mut ChaCha8Rng, site: &Site, logs: &mut Vec<GeneratedLog>) {
    let attack = |signal: i32| Link { reason: REASON_CLASS3_FROM_NONASSOC, ..Link::ok(signal, 0.0) };
    // mdk4: broadcast deauthentication at a few dozen frames a second.
    let radio = pick(rng, &site.radios);
    let start = working_hours(rng);
    let (duration, frames) = (rng.random_range(5_000..20_000), rng.random_range(150..400));
    for ts in burst_times(rng, start, duration, frames) {
        logs.push(frame(ts, radio, "deauth", BROADCAST, attack(rng.random_range(-60..-35)), Some("deauth_flood")));
    }
    // aireplay-ng --deauth 5 against one client: five bursts of 64 frames.
    let ap = rng.random_range(0..24);
    let victim = pick(rng, &site.clients);
    let radio = site.radio(ap, victim.ssid, false);
    let mut ts = working_hours(rng);
    for _ in 0..5 {
        for k in 0..64 {
            logs.push(frame(ts + k * 15, radio, "deauth", &victim.mac, attack(-50), Some("deauth_flood")));
        }
        ts += rng.random_range(800..1_500);
    }
    // Round-robin over an access point's clients, ten frames a second.
    let ap = rng.random_range(0..24);
    let targets = site.clients_of(ap);
    let mut ts = working_hours(rng);
    for _ in 0..6 {
        for client in targets.iter().take(30) {
            let radio = site.radio(ap, client.ssid, false);
            logs.push(frame(ts, radio, "deauth", &client.mac, attack(-55), Some("deauth_flood")));
            ts += 100;
        }
    }
    // Keeping one client off: a frame every few seconds for ten minutes,
    // never more than five in any ten seconds.
    let victim = pick(rng, &site.clients);
    let radio = site.radio(victim.home, victim.ssid, false);
    let mut ts = working_hours(rng);
    for _ in 0..rng.random_range(120..200) {
        logs.push(frame(ts, radio, "deauth", &victim.mac, attack(-58), Some("deauth_flood")));
        ts += rng.random_range(2_000..5_000);
    }
}

fn password_guessing(rng: &mut ChaCha8Rng, site: &Site, logs: &mut Vec<GeneratedLog>) {
    let failure = |signal: i32| Link { status: "failure", ..Link::ok(signal, 0.05) };
    // From one address, a try every one to four seconds.
    for _ in 0..2 {
        let radio = site.radio(rng.random_range(0..24), "corp", false);
        let attacker = device_mac(rng);
        let start = working_hours(rng);
        let (duration, tries) = (rng.random_range(60_000..240_000), rng.random_range(30..80));
        for ts in burst_times(rng, start, duration, tries) {
            logs.push(frame(ts, radio, "auth", &attacker, failure(-62), Some("auth_bruteforce")));
        }
    }
    // A new random address for every try, so no address fails twice.
    let radio = site.radio(rng.random_range(0..24), "corp", false);
    let mut ts = working_hours(rng);
    for _ in 0..rng.random_range(60..150) {
        let attacker = device_mac(rng);
        logs.push(frame(ts, radio, "auth", &attacker, failure(-60), Some("auth_bruteforce")));
        ts += rng.random_range(1_000..3_000);
    }
}

/// Clients lured onto `twin`: they join and carry on.
fn lured(
    rng: &mut ChaCha8Rng,
    site: &Site,
    twin: &Radio,
    start: i64,
    label: &'static str,
    logs: &mut Vec<GeneratedLog>,
) {
    for client in site.clients_of(twin.access_point % 24).iter().take(rng.random_range(8..20)) {
        let mut ts = start + rng.random_range(20_000..240_000);
        logs.push(frame(ts, twin, "auth", &client.mac, Link::ok(-40, 0.02), Some(label)));
        logs.push(frame(ts + 50, twin, "assoc", &client.mac, Link::ok(-40, 0.02), Some(label)));
        for _ in 0..rng.random_range(2..10) {
            ts += rng.random_range(5_000..60_000);
            logs.push(frame(ts, twin, "data", &client.mac, Link::ok(-42, 0.03), Some(label)));
        }
    }
}

/// Impostors live 20 to 40 minutes; the monitor reports their beacons at
/// its own interval (from a random point in it), so a short-lived one may
/// never be reported beaconing: its clients are what shows it.
fn impostors(rng: &mut ChaCha8Rng, site: &Site, interval: i64, logs: &mut Vec<GeneratedLog>) {
    let beacons =
        |rng: &mut ChaCha8Rng, radio: &Radio, start: i64, label: &'static str, logs: &mut Vec<GeneratedLog>| {
            let end = start + rng.random_range(1_200_000..2_400_000);
            let mut ts = start + rng.random_range(0..interval);
            while ts < end {
                logs.push(frame(ts, radio, "beacon", "", Link::ok(rng.random_range(-45..-30), 0.02), Some(label)));
                ts += interval;
            }
        };
    // hostapd under a BSSID of its own, advertising the corporate SSID.
    let near = rng.random_range(0..24);
    let twin = Radio {
        bssid: device_mac(rng),
        ssid: "corp",
        channel: site.radio(near, "corp", false).channel,
        access_point: near,
    };
    let start = working_hours(rng);
    beacons(rng, &twin, start, "evil_twin", logs);
    lured(rng, site, &twin, start, "evil_twin", logs);
    // airbase-ng under a real access point's BSSID, on another channel,
    // while the real one carries on.
    let near = rng.random_range(0..24);
    let real = site.radio(near, "corp", true);
    let twin = Radio { channel: if real.channel == 11 { 1 } else { 11 }, ..real.clone() };
    let start = working_hours(rng);
    beacons(rng, &twin, start, "evil_twin", logs);
    lured(rng, site, &twin, start, "evil_twin", logs);
    // A home router plugged into a desk port: its own SSID, and people join it.
    let near = rng.random_range(0..24);
    let rogue = Radio {
        bssid: format!("a0:40:a0:{:02x}:{:02x}:{:02x}", rng.random::<u8>(), rng.random::<u8>(), rng.random::<u8>()),
        ssid: "NETGEAR47",
        channel: 6,
        access_point: near,
    };
    let start = working_hours(rng);
    beacons(rng, &rogue, start, "rogue_ap", logs);
    lured(rng, site, &rogue, start + 30_000, "rogue_ap", logs);
}

/// A jammer on one 2.4 GHz channel for a few minutes: the clients of the
/// access points nearby retry nearly every frame, whatever their signal.
fn jamming(rng: &mut ChaCha8Rng, site: &Site, logs: &mut Vec<GeneratedLog>) {
    let start = working_hours(rng);
    let duration = rng.random_range(60_000..240_000);
    let centre = rng.random_range(0..24);
    for ap in [centre, (centre + 3) % 24] {
        for client in site.clients_of(ap).iter().take(rng.random_range(6..16)) {
            let radio = site.radio(ap, if client.ssid == "iot" { "iot" } else { "corp" }, true);
            let mut ts = start + rng.random_range(0..5_000);
            while ts < start + duration {
                let link = Link::ok(client.signal + rng.random_range(-3..=3), rng.random_range(0.6..0.95));
                logs.push(frame(ts, radio, "data", &client.mac, link, Some("rf_jamming")));
                ts += rng.random_range(2_000..8_000);
            }
        }
    }
}

pub fn generate(rng: &mut ChaCha8Rng, count: usize) -> Vec<GeneratedLog> {
    let site = Site::new(rng, count);
    let mut logs = Vec::with_capacity(count + count / 4);
    monitor_reports(rng, &site.radios, count, &mut logs);
    other_networks(rng, count, &mut logs);
    let reports = logs.len();
    everyday(rng, &site, count.saturating_sub(reports), &mut logs);
    noisy_but_harmless(rng, &site, count, &mut logs);
    leave_radar_channels(rng, &site, &mut logs);
    deauthentication(rng, &site, &mut logs);
    password_guessing(rng, &site, &mut logs);
    impostors(rng, &site, report_interval(&site.radios, count), &mut logs);
    jamming(rng, &site, &mut logs);
    logs
}
