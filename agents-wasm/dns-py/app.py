"""dns-py: the DNS agent's rules in Python, built with componentize-py.

The same detection as the bundled Rust `dns` agent with `detection = rules`:
tunnelling through long high-entropy labels, algorithmically generated
names (DGA), and NXDOMAIN bursts per client. It exists to show that an agent
in another language is a first-class agent (same protocol, same checks) and
to compare languages on the same detector (docs/performance.md).
"""

import json

import mcp_agent as mcp

VERSION = "0.1.0"


def registered_label(query):
    """The label just left of the top-level domain ("example" in "a.example.com")."""
    labels = query.rstrip(".").split(".")
    return labels[-2] if len(labels) >= 2 else ""


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
        self.allowed = []
        self.nxdomains = mcp.Burst(30_000, 15, 16_384)

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
            config.integer("nxdomain_window_ms", 30_000), config.integer("nxdomain_threshold", 15), 16_384
        )
        self.tunnel_label_len = config.integer("tunnel_label_len", 30)
        self.dga_min_len = config.integer("dga_min_len", 10)
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
            # The last of the longest labels, as Rust's max_by_key picks.
            longest, longest_len = "", 0
            for part in query.split("."):
                size = len(part.encode("utf-8"))
                if size >= longest_len:
                    longest, longest_len = part, size
            judged = not any(is_under(query, domain) for domain in self.allowed)
            if judged and longest_len >= self.tunnel_label_len and mcp.entropy(longest) >= 3.5:
                found.append(mcp.finding(entry, 0.9, "dns_tunnel", mcp.Severity.HIGH, (
                    f"{client} queried {query} ({qtype}) with a {longest_len}-character label of entropy "
                    f"{mcp.entropy(longest):.1f} bits/char: data encoded into DNS names, typical of tunnelling "
                    "or exfiltration. Block the domain and inspect the client.")))
            label = registered_label(query)
            randomness, vowels = mcp.entropy(label), ratio(label, VOWELS.__contains__)
            digits = ratio(label, lambda b: 48 <= b <= 57)
            if judged and len(label.encode("utf-8")) >= self.dga_min_len and randomness >= 3.2 and (vowels < 0.28 or digits > 0.25):
                found.append(mcp.finding(entry, 0.8, "dga", mcp.Severity.HIGH, (
                    f"{client} looked up {query}: the name '{label}' reads as machine-generated "
                    f"({randomness:.1f} bits/char, {vowels * 100:.0f}% vowels), as malware does to find its "
                    f"controller. Check {client} for infection.")))
            if rcode == "NXDOMAIN":
                hits = self.nxdomains.push(client, entry[1], entry)
                if hits:
                    level = self.nxdomains.level(client)
                    for hit in hits:
                        found.append(mcp.finding(hit, 0.85, "nxdomain_burst", mcp.Severity.MEDIUM, (
                            f"{client} received {level} NXDOMAIN answers within 30 seconds (latest for {query}): "
                            "random-subdomain flooding or malware probing for live domains. Inspect the client.")))
        return found

    def snapshot(self):
        windows = {key: [list(events), alarmed] for key, (events, alarmed) in self.nxdomains.windows.items()}
        return json.dumps(windows).encode("utf-8")

    def restore(self, state):
        if not state:
            return
        from collections import deque

        saved = json.loads(state.decode("utf-8"))
        self.nxdomains.windows = {
            key: [deque((ts, tuple(entry)) for ts, entry in events), alarmed] for key, (events, alarmed) in saved.items()
        }


Detector = mcp.export(DnsAgent)
