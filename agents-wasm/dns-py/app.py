"""dns-py: the DNS agent's rules in Python, built with componentize-py.

The same detection as the bundled Rust `dns` agent with `detection = rules`:
tunnelling through long high-entropy labels or many short names under one
domain, algorithmically generated names (DGA), and NXDOMAIN bursts per
client; names judged in any letter case, with or without the trailing dot. It exists to show that an agent
in another language is a first-class agent (same protocol, same checks) and
to compare languages on the same detector (docs/performance.md).
"""

from collections import deque

import mcp_agent as mcp

VERSION = "0.1.0"


def normalised(query):
    """The name as DNS compares it: ASCII letters in lower case, no trailing dot."""
    return query.rstrip(".").encode("utf-8").lower().decode("utf-8")


registered_domain = mcp.registered_domain


def subdomain_of(name, domain):
    rest = name[: -len(domain)] if name.endswith(domain) else None
    return rest[:-1] if rest and rest.endswith(".") and len(rest) > 1 else None


class Sessions:
    """Names per (client, registered domain) within a window: many distinct
    names carrying data, mostly answered, make a tunnel of short chunks."""

    def __init__(self, window_ms=60_000, min_names=40, min_bytes=250, max_keys=8_192):
        self.window_ms, self.min_names, self.min_bytes, self.max_keys = window_ms, min_names, min_bytes, max_keys
        self.sessions = {}

    def push(self, client, domain, subdomain, answered, entry):
        key = (client, domain)
        if key not in self.sessions and len(self.sessions) >= self.max_keys:
            self._evict(entry[1])
        s = self.sessions.setdefault(key, {"events": deque(), "names": {}, "bytes": 0, "answered": 0})
        horizon = entry[1] - self.window_ms
        while s["events"] and s["events"][0][0] < horizon:
            _, old_name, old_bytes, old_answered, _, _ = s["events"].popleft()
            s["bytes"] -= old_bytes
            s["answered"] -= old_answered
            s["names"][old_name] -= 1
            if not s["names"][old_name]:
                del s["names"][old_name]
        size = len(subdomain.encode("utf-8"))
        s["events"].append([entry[1], subdomain, size, int(answered), entry, False])
        s["names"][subdomain] = s["names"].get(subdomain, 0) + 1
        s["bytes"] += size
        s["answered"] += int(answered)
        level = (len(s["names"]), s["bytes"], s["answered"] * 100 // len(s["events"]))
        if not self.is_tunnel(level):
            return [], level
        # Never one entry twice: a window that falls below the bar and rises
        # again reports only what it has not.
        hits = [event[4] for event in s["events"] if not event[5]]
        for event in s["events"]:
            event[5] = True
        return hits, level

    def is_tunnel(self, level):
        """Whether a window at `level` (names, bytes, answered percent) is a tunnel."""
        names, size, answered = level
        return names >= self.min_names and size >= self.min_bytes and answered >= 50

    def holds(self, client, domain, subdomain):
        """Whether the window of (client, domain) holds `subdomain` now."""
        s = self.sessions.get((client, domain))
        return s is not None and subdomain in s["names"]

    def _evict(self, now_ms):
        self.sessions = mcp.make_room(
            self.sessions,
            self.max_keys,
            lambda s: s["events"][-1][0] if s["events"] else float("-inf"),
            now_ms - self.window_ms,
        )


class Audience:
    """How many clients asked for names under each registered domain within
    a window, counted up to `cap + 1`: a tunnel's domain is asked for by the
    one client it runs on, a CDN's by many. As the Rust agent's `Audience`."""

    def __init__(self, window_ms=3_600_000, cap=2, max_keys=8_192):
        self.window_ms, self.cap, self.max_keys = window_ms, cap, max_keys
        self.domains = {}

    def push(self, domain, client, ts):
        if domain not in self.domains and len(self.domains) >= self.max_keys:
            self.domains = mcp.make_room(
                self.domains, self.max_keys, lambda seen: seen[0][1] if seen else float("-inf"), ts - self.window_ms
            )
        seen = [s for s in self.domains.get(domain, []) if s[0] != client]
        seen.insert(0, (client, ts))
        del seen[self.cap + 1 :]
        self.domains[domain] = seen
        horizon = ts - self.window_ms
        return sum(1 for _, at in seen if at >= horizon)


def registered_label(name, domain):
    """The first label of `name`'s registered `domain` ("example" in
    "a.example.com" and in "a.example.co.uk"); empty for a name of one label."""
    return domain.split(".")[0] if "." in name else ""


def ratio(text, keep):
    data = text.encode("utf-8")
    return sum(1 for b in data if keep(b)) / len(data) if data else 0.0


VOWELS = frozenset(b"aeiou")


def is_under(query, domain):
    """Whether `query` is `domain` (lower case, no trailing dot) or a name
    under it, in any ASCII letter case, with or without the trailing dot."""
    name, domain = query.rstrip(".").encode("utf-8").lower(), domain.encode("utf-8")
    start = len(name) - len(domain)
    return start >= 0 and name[start:] == domain and (start == 0 or name[start - 1 : start] == b".")


class DnsAgent:
    def __init__(self):
        self.tunnel_label_len = 30
        self.dga_min_len = 10
        self.dga_min_bits = 6.0
        self.dga_min_bits_unanswered = 5.25
        self.allowed = []
        self.sessions = Sessions()
        self.slow_sessions = Sessions(3_600_000, 50, 400)
        self.slow_max_clients = 2
        self.audience = Audience()
        self.nxdomains = mcp.Burst(30_000, 15, 16_384, distinct=True)

    def info(self):
        return mcp.info(
            "dns-py",
            "dns",
            VERSION,
            "Finds DNS tunnelling, NXDOMAIN bursts and generated domains; the dns agent's rules, in Python.",
            ["client_ip", "query", "qtype", "rcode"],
        )

    def configure(self, config):
        self.nxdomains = mcp.Burst(
            config.integer("nxdomain_window_ms", 30_000), config.integer("nxdomain_threshold", 15), 16_384, distinct=True
        )
        self.tunnel_label_len = config.integer("tunnel_label_len", 30)
        self.dga_min_len = config.integer("dga_min_len", 10)
        self.dga_min_bits = config.real("dga_min_bits", 6.0)
        self.dga_min_bits_unanswered = config.real("dga_min_bits_unanswered", 5.25)
        self.sessions = Sessions(
            config.integer("session_window_ms", 60_000),
            config.integer("session_min_names", 40),
            config.integer("session_min_bytes", 250),
        )
        slow_window_ms = config.integer("slow_session_window_ms", 3_600_000)
        self.slow_sessions = Sessions(
            slow_window_ms, config.integer("slow_session_min_names", 50), config.integer("slow_session_min_bytes", 400)
        )
        self.slow_max_clients = config.integer("slow_session_max_clients", 2)
        self.audience = Audience(slow_window_ms, self.slow_max_clients)
        allowed = (d.rstrip(".").encode("utf-8").lower().decode("utf-8") for d in config.list("allow_domains"))
        self.allowed = [d for d in allowed if d]

    def detect(self, batch):
        clients, queries, rcodes = batch.text("client_ip"), batch.text("query"), batch.text("rcode")
        qtypes = batch.text("qtype", required=False)
        found = []
        for i in range(len(batch)):
            client, query, rcode = clients[i] or "", queries[i] or "", rcodes[i] or ""
            qtype = qtypes[i] or ""
            entry = batch.entry(i)
            name = normalised(query)
            # The last of the longest labels, as Rust's max_by_key picks.
            longest, longest_len = "", 0
            for part in name.split("."):
                size = len(part.encode("utf-8"))
                if size >= longest_len:
                    longest, longest_len = part, size
            judged = not any(is_under(name, domain) for domain in self.allowed)
            # Encoded data has few vowels; a long label of words about a third.
            encoded = ratio(longest, VOWELS.__contains__) < 0.3
            if judged and longest_len >= self.tunnel_label_len and mcp.entropy(longest) >= 3.5 and encoded:
                found.append(mcp.finding(entry, 0.9, "dns_tunnel", mcp.Severity.HIGH, (
                    f"{client} queried {query} ({qtype}) with a {longest_len}-character label of entropy "
                    f"{mcp.entropy(longest):.1f} bits/char: data encoded into DNS names, typical of tunnelling "
                    "or exfiltration. Block the domain and inspect the client.")))
            domain = registered_domain(name)
            label = registered_label(name, domain)
            surprise = mcp.name_surprise(label)
            # A name that does not exist needs less: real names resolve.
            bar = self.dga_min_bits_unanswered if rcode == "NXDOMAIN" else self.dga_min_bits
            if judged and len(label.encode("utf-8")) >= self.dga_min_len and surprise >= bar:
                found.append(mcp.finding(entry, 0.8, "dga", mcp.Severity.HIGH, (
                    f"{client} looked up {query}: the name '{label}' reads as machine-generated "
                    f"({surprise:.1f} bits of surprise per letter pair, where real names score about 4), as "
                    f"malware does to find its controller. Check {client} for infection.")))
            # Reverse lookups name addresses, not data; a scanner's sweep makes
            # many of them, unanswered for every unused address.
            reverse = domain.endswith("arpa")
            subdomain = subdomain_of(name, domain) if judged and not reverse else None
            if subdomain:
                hits, level = self.sessions.push(client, domain, subdomain, rcode == "NOERROR", entry)
                names, size, answered = level
                for hit in hits:
                    found.append(mcp.finding(hit, 0.85, "dns_tunnel_session", mcp.Severity.HIGH, (
                        f"{client} sent {names} distinct names carrying {size} bytes under {domain} within a window "
                        f"({answered}% answered; latest {query}): a DNS tunnel in short chunks, each name harmless "
                        f"alone. Block {domain} and inspect the client.")))
                # A tunnel the minute's window reports is not counted again
                # over the hour: one anomaly per name.
                # A name asked for again adds nothing to an hour's count of
                # distinct names, and a client polling one would keep 3,600.
                if (
                    not self.sessions.is_tunnel(level)
                    and self.audience.push(domain, client, entry[1]) <= self.slow_max_clients
                    and not self.slow_sessions.holds(client, domain, subdomain)
                ):
                    hits, (names, size, answered) = self.slow_sessions.push(
                        client, domain, subdomain, rcode == "NOERROR", entry
                    )
                    for hit in hits:
                        found.append(mcp.finding(hit, 0.8, "dns_slow_tunnel", mcp.Severity.HIGH, (
                            f"{client} sent {names} distinct names carrying {size} bytes under {domain} within an "
                            f"hour, a domain at most {self.slow_max_clients} clients asked for ({answered}% answered; "
                            f"latest {query}): slow exfiltration through DNS, under any minute's threshold. Block "
                            f"{domain} and inspect the client.")))
            if rcode == "NXDOMAIN" and not reverse:
                hits = self.nxdomains.push(client, entry[1], entry, tag=name)
                if hits:
                    level = self.nxdomains.level(client)
                    for hit in hits:
                        found.append(mcp.finding(hit, 0.85, "nxdomain_burst", mcp.Severity.MEDIUM, (
                            f"{client} received NXDOMAIN for {level} distinct names within 30 seconds (latest {query}): "
                            "random-subdomain flooding or malware probing for live domains. Inspect the client.")))
        return found

    # No snapshot, as the Rust DNS agent: the host's replay (15 minutes by
    # default) gives the NXDOMAIN bursts and the minute's tunnel sessions
    # back after a restart; a snapshot would stop the replay and bring back
    # only what it held. The hour-long slow sessions start nearly afresh
    # after a restart (docs/ROADMAP.md).


Detector = mcp.export(DnsAgent)
