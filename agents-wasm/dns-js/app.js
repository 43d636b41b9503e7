// dns-js: the DNS agent's rules in JavaScript, built with componentize-js.
//
// The same detection as the bundled Rust `dns` agent with `detection =
// rules`: tunnelling through long high-entropy labels, algorithmically
// generated names (DGA), and NXDOMAIN bursts per client. It exists to show
// that an agent in another language is a first-class agent (same protocol,
// same checks) and to compare languages on the same detector
// (docs/performance.md).

import * as mcp from "./mcp_agent.js";

const VERSION = "0.1.0";

/** The label just left of the top-level domain ("example" in "a.example.com"). */
function registeredLabel(query) {
  const labels = query.replace(/\.+$/, "").split(".");
  return labels.length >= 2 ? labels[labels.length - 2] : "";
}

const isVowel = (byte) => byte === 97 || byte === 101 || byte === 105 || byte === 111 || byte === 117;
/** `text` with ASCII letters in lower case, as Rust's to_ascii_lowercase. */
const asciiLower = (text) => text.replace(/[A-Z]+/g, (upper) => upper.toLowerCase());

/** Whether `query` is `domain` (lower case, no trailing dot) or a name
 * under it, in any ASCII letter case, with or without the trailing dot. */
function isUnder(query, domain) {
  let end = query.length;
  while (end > 0 && query.charCodeAt(end - 1) === 46) end--;
  const start = end - domain.length;
  if (start < 0 || asciiLower(query.slice(start, end)) !== domain) return false;
  return start === 0 || query.charCodeAt(start - 1) === 46;
}

const isDigit = (byte) => byte >= 48 && byte <= 57;

class DnsAgent {
  constructor() {
    this.tunnelLabelLen = 30;
    this.dgaMinLen = 10;
    this.allowed = [];
    this.nxdomains = new mcp.Burst(30_000, 15, 16_384);
  }

  info() {
    return mcp.info(
      "dns-js",
      "dns",
      VERSION,
      "Finds DNS tunnelling, NXDOMAIN bursts and generated domains; the dns agent's rules, in JavaScript.",
      ["client_ip", "query", "qtype", "rcode"],
    );
  }

  configure(config) {
    this.nxdomains = new mcp.Burst(
      config.integer("nxdomain_window_ms", 30_000),
      config.integer("nxdomain_threshold", 15),
      16_384,
    );
    this.tunnelLabelLen = config.integer("tunnel_label_len", 30);
    this.dgaMinLen = config.integer("dga_min_len", 10);
    this.allowed = config
      .list("allow_domains")
      .map((domain) => asciiLower(domain.replace(/\.+$/, "")))
      .filter((domain) => domain !== "");
  }

  detect(batch) {
    const clients = batch.text("client_ip");
    const queries = batch.text("query");
    const rcodes = batch.text("rcode");
    const qtypes = batch.text("qtype", false);
    const found = [];
    for (let i = 0; i < batch.length; i++) {
      const client = clients[i] ?? "";
      const query = queries[i] ?? "";
      const qtype = qtypes[i] ?? "";
      const entry = batch.entry(i);
      // The last of the longest labels, as Rust's max_by_key picks.
      let longest = "";
      let longestLen = 0;
      for (const part of query.split(".")) {
        const size = mcp.utf8Length(part);
        if (size >= longestLen) {
          longest = part;
          longestLen = size;
        }
      }
      const judged = !this.allowed.some((domain) => isUnder(query, domain));
      if (judged && longestLen >= this.tunnelLabelLen && mcp.entropy(longest) >= 3.5) {
        found.push(
          mcp.finding(entry, 0.9, "dns_tunnel", mcp.Severity.HIGH,
            `${client} queried ${query} (${qtype}) with a ${longestLen}-character label of entropy ` +
              `${mcp.entropy(longest).toFixed(1)} bits/char: data encoded into DNS names, typical of tunnelling ` +
              "or exfiltration. Block the domain and inspect the client."),
        );
      }
      const label = registeredLabel(query);
      const randomness = mcp.entropy(label);
      const vowels = mcp.byteShare(label, isVowel);
      const digits = mcp.byteShare(label, isDigit);
      if (judged && mcp.utf8Length(label) >= this.dgaMinLen && randomness >= 3.2 && (vowels < 0.28 || digits > 0.25)) {
        found.push(
          mcp.finding(entry, 0.8, "dga", mcp.Severity.HIGH,
            `${client} looked up ${query}: the name '${label}' reads as machine-generated ` +
              `(${randomness.toFixed(1)} bits/char, ${Math.round(vowels * 100)}% vowels), as malware does to find its ` +
              `controller. Check ${client} for infection.`),
        );
      }
      if (rcodes[i] === "NXDOMAIN") {
        const hits = this.nxdomains.push(client, entry.timestampMs, entry);
        const level = this.nxdomains.level(client);
        for (const hit of hits) {
          found.push(
            mcp.finding(hit, 0.85, "nxdomain_burst", mcp.Severity.MEDIUM,
              `${client} received ${level} NXDOMAIN answers within 30 seconds (latest for ${query}): ` +
                "random-subdomain flooding or malware probing for live domains. Inspect the client."),
          );
        }
      }
    }
    return found;
  }

  snapshot() {
    return mcp.jsonBytes(this.nxdomains.toJSON());
  }

  restore(state) {
    const saved = mcp.fromJsonBytes(state);
    if (saved) this.nxdomains.restore(saved);
  }
}

export const detector = mcp.exportAgent(DnsAgent);
