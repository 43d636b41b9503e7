"""The three bundled agents' rules, windows and model features in Python,
as the seed's design had them: one object per log type, entries one at a
time through sliding windows, model features as one numpy matrix per batch.

Each agent takes a page as parallel lists: `ids`, `times` (ms) and `fields`,
one tuple of the agent's fields per entry, in the order of its `FIELDS`.
The rules and thresholds are the Rust agents' defaults (agents-wasm/*/src).
"""

import math
from collections import deque

import numpy as np

Finding = tuple  # (log_id, label, score, severity, reason)


class Burst:
    """Events per key in a sliding window of `span_ms`: at `threshold` the
    whole window is flagged once, then each new event while it stays over.
    With `distinct` the level counts distinct tags, not events. At most
    `max_keys` keys, the stalest dropped first (sdk/src/window.rs)."""

    __slots__ = ("span_ms", "threshold", "max_keys", "distinct", "windows")

    def __init__(self, span_ms, threshold, max_keys, distinct=False):
        self.span_ms, self.threshold, self.max_keys, self.distinct = span_ms, max(threshold, 1), max_keys, distinct
        self.windows = {}

    def push(self, key, ts, entry_id, tag=None):
        window = self.windows.get(key)
        if window is None:
            if len(self.windows) >= self.max_keys:
                self._evict(ts)
            window = self.windows[key] = [deque(), {}, False]
        events, tags = window[0], window[1]
        horizon = ts - self.span_ms
        while events and events[0][0] < horizon:
            _, _, old = events.popleft()
            if self.distinct:
                left = tags[old] - 1
                if left:
                    tags[old] = left
                else:
                    del tags[old]
        events.append((ts, entry_id, tag))
        if self.distinct:
            tags[tag] = tags.get(tag, 0) + 1
        level = len(tags) if self.distinct else len(events)
        if level < self.threshold:
            window[2] = False
            return ()
        if window[2]:
            return (entry_id,)
        window[2] = True
        return [e for _, e, _ in events]

    def level(self, key):
        window = self.windows.get(key)
        if window is None:
            return 0
        return len(window[1]) if self.distinct else len(window[0])

    def _evict(self, now):
        horizon = now - self.span_ms
        self.windows = {k: w for k, w in self.windows.items() if w[0] and w[0][-1][0] >= horizon}
        if len(self.windows) >= self.max_keys:
            del self.windows[min(self.windows, key=lambda k: self.windows[k][0][-1][0])]


def entropy(text):
    """Shannon entropy in bits per byte."""
    data = text.encode()
    if not data:
        return 0.0
    n = len(data)
    return -sum(c / n * math.log2(c / n) for c in (data.count(b) for b in set(data)))


class Model:
    """An ONNX model run by onnxruntime: scores are the last output's last
    column, as the host gives them to agents; flagged at `threshold`."""

    def __init__(self, path, threshold=0.5):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.output = self.session.get_outputs()[-1].name
        self.threshold = threshold

    def flag(self, ids, features, already):
        if not ids:
            return []
        (scores,) = self.session.run([self.output], {self.input: features})
        scores = scores.reshape(len(ids), -1)[:, -1]
        hits = np.flatnonzero((scores >= self.threshold) & (scores <= 1.0))
        return [(ids[i], float(scores[i])) for i in hits if ids[i] not in already]


class Wifi:
    LOG_TYPE = "wifi"
    FIELDS = ("event", "bssid", "ssid", "client", "signal_dbm", "retry_rate", "status")

    def __init__(self, model):
        self.model = model
        self.deauths = Burst(10_000, 15, 4096)
        self.auth_failures = Burst(60_000, 6, 16_384)
        self.retry_storms = Burst(30_000, 8, 4096)
        self.learn_ms, self.first_seen = 600_000, None
        self.known, self.suspect = {}, {}
        # The model's windows: counts only, never flagged.
        self.recent = (Burst(10_000, 1 << 62, 4096), Burst(60_000, 1 << 62, 16_384), Burst(30_000, 1 << 62, 4096))

    def access_point(self, entry_id, ts, event, bssid, ssid, signal):
        if self.suspect and bssid in self.suspect:
            label, severity, reason = self.suspect[bssid]
            return (entry_id, label, 0.95, severity, reason)
        if event != "beacon" or not bssid:
            return None
        if self.first_seen is None:
            self.first_seen = ts
        if ts - self.first_seen < self.learn_ms:
            self.known.setdefault(ssid, set()).add(bssid)
            return None
        bssids = self.known.get(ssid)
        if bssids is not None and bssid in bssids:
            return None
        if bssids is not None:
            label, severity = "evil_twin", "critical"
            reason = (f"access point {bssid} advertises SSID '{ssid}' that belongs to {len(bssids)} known access "
                      f"point(s) ({', '.join(sorted(bssids)[:3])}); clients may be lured onto an impostor. "
                      f"Locate it (signal {signal} dBm) and remove it.")
        else:
            label, severity = "rogue_ap", "high"
            reason = (f"unknown access point {bssid} appeared with new SSID '{ssid}' (signal {signal} dBm); "
                      "check whether it is authorised.")
        self.suspect[bssid] = (label, severity, reason)
        return (entry_id, label, 0.95, severity, reason)

    def detect(self, ids, times, fields):
        found = []
        rows = np.zeros((len(ids), 7), dtype=np.float32)
        deauth_recent, auth_recent, weak_recent = self.recent
        for i, (entry_id, ts, f) in enumerate(zip(ids, times, fields)):
            event, bssid, ssid, client, signal, retry, status = f
            ap = self.access_point(entry_id, ts, event, bssid, ssid, signal)
            if ap:
                found.append(ap)
            is_deauth = event == "deauth" or event == "disassoc"
            is_auth_failure = event == "auth" and status == "failure"
            weak = retry >= 0.5 and signal <= -80
            if is_deauth:
                hits = self.deauths.push(bssid, ts, entry_id)
                if hits:
                    level = self.deauths.level(bssid)
                    reason = (f"{level} deauthentication frames against access point {bssid} within seconds: a "
                              "deauthentication flood. Enable 802.11w and locate the sender.")
                    found.extend((hit, "deauth_flood", 0.9, "high", reason) for hit in hits)
            elif is_auth_failure:
                hits = self.auth_failures.push(client, ts, entry_id)
                if hits:
                    level = self.auth_failures.level(client)
                    reason = (f"client {client} failed authentication {level} times within a minute on SSID "
                              f"'{ssid}': likely password guessing.")
                    found.extend((hit, "auth_bruteforce", 0.85, "high", reason) for hit in hits)
            if weak:
                hits = self.retry_storms.push(bssid, ts, entry_id)
                if hits:
                    reason = (f"frames on access point {bssid} show retry rates of {retry * 100:.0f}% with signal "
                              f"{signal} dBm in a burst: interference or deliberate jamming.")
                    found.extend((hit, "rf_jamming", 0.8, "medium", reason) for hit in hits)
            row = rows[i]
            row[0], row[1] = signal, retry
            if is_deauth:
                deauth_recent.push(bssid, ts, entry_id)
                row[2], row[4] = 1.0, deauth_recent.level(bssid)
            if is_auth_failure:
                auth_recent.push(client, ts, entry_id)
                row[3], row[5] = 1.0, auth_recent.level(client)
            if weak:
                weak_recent.push(bssid, ts, entry_id)
                row[6] = weak_recent.level(bssid)
        flagged = {f[0] for f in found}
        for entry_id, score in self.model.flag(ids, rows, flagged):
            found.append((entry_id, "wifi_model", score, "low",
                          f"the Wi-Fi model scores this entry at {score:.2f}, over its threshold"))
        return found


SUSPICIOUS_PORTS = frozenset([23, 1337, 2323, 4444, 5555, 6667, 12345, 31337])


def is_internal(ip):
    return ip.startswith("10.") or ip.startswith("192.168.") or ip.startswith("172.16.")


class Firewall:
    LOG_TYPE = "firewall"
    FIELDS = ("src_ip", "dst_ip", "dst_port", "action", "bytes_out")

    def __init__(self, model):
        self.model = model
        self.scans = Burst(60_000, 20, 16_384, distinct=True)
        self.denies = Burst(10_000, 20, 16_384)
        self.exfil_bytes = 100_000_000

    def detect(self, ids, times, fields):
        found = []
        rows = np.zeros((len(ids), 4), dtype=np.float32)
        for i, (entry_id, ts, f) in enumerate(zip(ids, times, fields)):
            src, dst, port, action, bytes_out = f
            hits = self.scans.push((src, dst), ts, entry_id, port)
            if hits:
                level = self.scans.level((src, dst))
                reason = f"{src} probed {level} distinct ports on {dst} within a minute: a port scan."
                found.extend((hit, "port_scan", 0.9, "medium", reason) for hit in hits)
            deny = action == "deny"
            if deny:
                hits = self.denies.push(src, ts, entry_id)
                if hits:
                    level = self.denies.level(src)
                    reason = f"{level} connections from {src} were denied within 10 seconds (latest to {dst}:{port})."
                    found.extend((hit, "deny_burst", 0.85, "medium", reason) for hit in hits)
            suspicious = port in SUSPICIOUS_PORTS
            if action == "allow" and suspicious:
                found.append((entry_id, "suspicious_port", 0.8, "high",
                              f"{src} connected to {dst}:{port}, a port used by remote-access trojans."))
            if action == "allow" and bytes_out >= self.exfil_bytes and is_internal(src) and not is_internal(dst):
                found.append((entry_id, "exfiltration", 0.9, "critical",
                              f"{src} sent {bytes_out / 1e6:.1f} MB to external {dst}:{port} in one connection."))
            rows[i] = (port, deny, math.log(max(bytes_out, 0) + 1.0), suspicious)
        flagged = {f[0] for f in found}
        for entry_id, score in self.model.flag(ids, rows, flagged):
            found.append((entry_id, "firewall_model", score, "medium",
                          f"the firewall model scores this connection at {score:.2f}, over its threshold"))
        return found


SECOND_LEVELS = frozenset(["co", "com", "net", "org", "gov", "edu", "ac", "ne", "or"])
VOWELS = frozenset(b"aeiou")
DIGITS = frozenset(b"0123456789")


def registered_domain(name):
    parts = name.rsplit(".", 3)
    if len(parts) < 3:
        return name
    if len(parts[-1].encode()) == 2 and parts[-2] in SECOND_LEVELS:
        return ".".join(parts[-3:]) if len(parts) == 4 else name
    return ".".join(parts[-2:])


def ratio(text, members):
    data = text.encode()
    return sum(1 for b in data if b in members) / len(data) if data else 0.0


class Sessions:
    """Distinct names and bytes per (client, registered domain) in a window:
    a tunnel of short chunks (agents-wasm/dns/src/session.rs)."""

    def __init__(self, window_ms=60_000, min_names=40, min_bytes=250, max_keys=8_192):
        self.window_ms, self.min_names, self.min_bytes, self.max_keys = window_ms, min_names, min_bytes, max_keys
        self.sessions = {}

    def push(self, client, domain, subdomain, answered, entry_id, ts):
        key = (client, domain)
        s = self.sessions.get(key)
        if s is None:
            if len(self.sessions) >= self.max_keys:
                horizon = ts - self.window_ms
                self.sessions = {k: v for k, v in self.sessions.items() if v[0] and v[0][-1][0] >= horizon}
                if len(self.sessions) >= self.max_keys:
                    del self.sessions[min(self.sessions, key=lambda k: self.sessions[k][0][-1][0])]
            s = self.sessions[key] = [deque(), {}, 0, 0]
        events, names = s[0], s[1]
        horizon = ts - self.window_ms
        while events and events[0][0] < horizon:
            _, old_name, old_bytes, old_answered, _, _ = events.popleft()
            s[2] -= old_bytes
            s[3] -= old_answered
            left = names[old_name] - 1
            if left:
                names[old_name] = left
            else:
                del names[old_name]
        size = len(subdomain.encode())
        events.append([ts, subdomain, size, int(answered), entry_id, False])
        names[subdomain] = names.get(subdomain, 0) + 1
        s[2] += size
        s[3] += int(answered)
        level = (len(names), s[2], s[3] * 100 // len(events))
        if not (level[0] >= self.min_names and level[1] >= self.min_bytes and level[2] >= 50):
            return (), level
        hits = [event[4] for event in events if not event[5]]
        for event in events:
            event[5] = True
        return hits, level


class Dns:
    LOG_TYPE = "dns"
    FIELDS = ("client_ip", "query", "qtype", "rcode")

    def __init__(self, model):
        self.model = model
        self.tunnel_label_len, self.dga_min_len = 30, 10
        self.sessions = Sessions()
        self.nxdomains = Burst(30_000, 15, 16_384, distinct=True)

    def detect(self, ids, times, fields):
        found = []
        rows = np.zeros((len(ids), 5), dtype=np.float32)
        for i, (entry_id, ts, f) in enumerate(zip(ids, times, fields)):
            client, query, qtype, rcode = f
            name = query.rstrip(".").lower()
            labels = name.split(".")
            longest = max(reversed(labels), key=len)
            longest_len = len(longest)
            if longest_len >= self.tunnel_label_len:
                longest_entropy = entropy(longest)
                if longest_entropy >= 3.5 and ratio(longest, VOWELS) < 0.3:
                    found.append((entry_id, "dns_tunnel", 0.9, "high",
                                  f"{client} queried {query} ({qtype}) with a {longest_len}-character label of "
                                  f"entropy {longest_entropy:.1f} bits/char: data encoded into DNS names."))
            label = labels[-2] if len(labels) >= 2 else ""
            randomness, vowels = entropy(label), ratio(label, VOWELS)
            if len(label) >= self.dga_min_len and randomness >= 3.2 and (vowels < 0.28 or ratio(label, DIGITS) > 0.25):
                found.append((entry_id, "dga", 0.8, "high",
                              f"{client} looked up {query}: the name '{label}' reads as machine-generated "
                              f"({randomness:.1f} bits/char, {vowels * 100:.0f}% vowels)."))
            domain = registered_domain(name)
            reverse = domain.endswith("arpa")
            if not reverse and name.endswith(domain):
                rest = name[: -len(domain)]
                if len(rest) > 1 and rest.endswith("."):
                    hits, (names, size, answered) = self.sessions.push(
                        client, domain, rest[:-1], rcode == "NOERROR", entry_id, ts)
                    if hits:
                        reason = (f"{client} sent {names} distinct names carrying {size} bytes under {domain} "
                                  f"within a window ({answered}% answered; latest {query}): a DNS tunnel in short chunks.")
                        found.extend((hit, "dns_tunnel_session", 0.85, "high", reason) for hit in hits)
            nxdomain = rcode == "NXDOMAIN"
            if nxdomain and not reverse:
                hits = self.nxdomains.push(client, ts, entry_id, name)
                if hits:
                    level = self.nxdomains.level(client)
                    reason = f"{client} received NXDOMAIN for {level} distinct names within 30 seconds (latest {query})."
                    found.extend((hit, "nxdomain_burst", 0.85, "medium", reason) for hit in hits)
            rows[i] = (len(name), longest_len, randomness, vowels, nxdomain)
        flagged = {f[0] for f in found}
        for entry_id, score in self.model.flag(ids, rows, flagged):
            found.append((entry_id, "dns_model", score, "medium",
                          f"the DNS model scores this lookup at {score:.2f}, over its threshold"))
        return found


AGENTS = {agent.LOG_TYPE: agent for agent in (Wifi, Firewall, Dns)}
