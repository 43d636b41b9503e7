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

/** The first label of `name`'s registered `domain` ("example" in
 * "a.example.com" and in "a.example.co.uk"); empty for a name of one label. */
function registeredLabel(name, domain) {
  return name.includes(".") ? domain.split(".")[0] : "";
}

/** How many clients asked for names under each registered domain within a
 * window, counted up to `cap + 1`: a tunnel's domain is asked for by the one
 * client it runs on, a CDN's by many. As the Rust agent's `Audience`. */
class Audience {
  constructor(windowMs = 3_600_000, cap = 2, maxKeys = 8_192) {
    Object.assign(this, { windowMs, cap, maxKeys });
    this.domains = new Map();
  }

  push(domain, client, ts) {
    if (!this.domains.has(domain) && this.domains.size >= this.maxKeys) {
      mcp.makeRoom(this.domains, this.maxKeys, (seen) => (seen.length ? seen[0][1] : -Infinity), ts - this.windowMs);
    }
    const seen = (this.domains.get(domain) ?? []).filter(([who]) => who !== client);
    seen.unshift([client, ts]);
    seen.length = Math.min(seen.length, this.cap + 1);
    this.domains.set(domain, seen);
    const horizon = ts - this.windowMs;
    return seen.filter(([, at]) => at >= horizon).length;
  }
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

/** The name as DNS compares it: ASCII letters in lower case, no trailing dot. */
function normalised(query) {
  let end = query.length;
  while (end > 0 && query.charCodeAt(end - 1) === 46) end--;
  return asciiLower(query.slice(0, end));
}

const registeredDomain = mcp.registeredDomain;

function subdomainOf(name, domain) {
  if (!name.endsWith(domain)) return null;
  const rest = name.slice(0, name.length - domain.length);
  return rest.length > 1 && rest.endsWith(".") ? rest.slice(0, -1) : null;
}

const lastSeen = (s) => (s.events.length > s.head ? s.events[s.events.length - 1].ts : -Infinity);

/** Names per (client, registered domain) within a window: many distinct
 * names carrying data, mostly answered, make a tunnel of short chunks. */
class Sessions {
  constructor(windowMs = 60_000, minNames = 40, minBytes = 250, maxKeys = 8_192) {
    Object.assign(this, { windowMs, minNames, minBytes, maxKeys });
    this.sessions = new Map();
    this.pushes = 0;
  }

  push(client, domain, subdomain, answered, entry) {
    const key = `${client}\u0000${domain}`;
    if (!this.sessions.has(key) && this.sessions.size >= this.maxKeys) this.evict(entry.timestampMs);
    // Sessions that went quiet are swept now and then, not only when the map is full.
    if (++this.pushes % 4096 === 0) this.sweep(entry.timestampMs);
    let s = this.sessions.get(key);
    if (s === undefined) {
      s = { events: [], head: 0, names: new Map(), bytes: 0, answered: 0 };
      this.sessions.set(key, s);
    }
    const horizon = entry.timestampMs - this.windowMs;
    while (s.head < s.events.length && s.events[s.head].ts < horizon) {
      const old = s.events[s.head++];
      s.bytes -= old.size;
      s.answered -= old.answered;
      const left = s.names.get(old.name) - 1;
      if (left === 0) s.names.delete(old.name);
      else s.names.set(old.name, left);
    }
    // Expired events are dropped once they are half the array: a larger
    // slack kept every event of thousands of quiet sessions alive, and at
    // 300,000 lookups the instance outgrew its 64 MiB.
    if (s.head > 8 && s.head * 2 > s.events.length) {
      s.events = s.events.slice(s.head);
      s.head = 0;
    }
    const size = mcp.utf8Length(subdomain);
    s.events.push({ ts: entry.timestampMs, name: subdomain, size, answered: answered ? 1 : 0, entry, flagged: false });
    s.names.set(subdomain, (s.names.get(subdomain) ?? 0) + 1);
    s.bytes += size;
    s.answered += answered ? 1 : 0;
    const live = s.events.length - s.head;
    const level = { names: s.names.size, bytes: s.bytes, answeredPercent: Math.floor((s.answered * 100) / live) };
    if (!this.isTunnel(level)) {
      return [[], level];
    }
    // Never one entry twice: a window that falls below the bar and rises
    // again reports only what it has not.
    const hits = [];
    for (let k = s.head; k < s.events.length; k++) {
      if (!s.events[k].flagged) {
        s.events[k].flagged = true;
        hits.push(s.events[k].entry);
      }
    }
    return [hits, level];
  }

  /** Whether a window at `level` is a tunnel. */
  isTunnel(level) {
    return level.names >= this.minNames && level.bytes >= this.minBytes && level.answeredPercent >= 50;
  }

  /** Whether the window of (client, domain) holds `subdomain` now. */
  holds(client, domain, subdomain) {
    const s = this.sessions.get(`${client}\u0000${domain}`);
    return s !== undefined && s.names.has(subdomain);
  }

  sweep(nowMs) {
    const horizon = nowMs - this.windowMs;
    for (const [key, s] of this.sessions) if (lastSeen(s) < horizon) this.sessions.delete(key);
  }

  evict(nowMs) {
    mcp.makeRoom(this.sessions, this.maxKeys, lastSeen, nowMs - this.windowMs);
  }
}

class DnsAgent {
  constructor() {
    this.tunnelLabelLen = 30;
    this.dgaMinLen = 10;
    this.dgaMinBits = 6.0;
    this.dgaMinBitsUnanswered = 5.25;
    this.allowed = [];
    this.sessions = new Sessions();
    this.slowSessions = new Sessions(3_600_000, 50, 400);
    this.slowMaxClients = 2;
    this.audience = new Audience();
    this.nxdomains = new mcp.Burst(30_000, 15, 16_384, true);
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
      true,
    );
    this.tunnelLabelLen = config.integer("tunnel_label_len", 30);
    this.dgaMinLen = config.integer("dga_min_len", 10);
    this.dgaMinBits = config.real("dga_min_bits", 6.0);
    this.dgaMinBitsUnanswered = config.real("dga_min_bits_unanswered", 5.25);
    this.sessions = new Sessions(
      config.integer("session_window_ms", 60_000),
      config.integer("session_min_names", 40),
      config.integer("session_min_bytes", 250),
    );
    const slowWindowMs = config.integer("slow_session_window_ms", 3_600_000);
    this.slowSessions = new Sessions(
      slowWindowMs,
      config.integer("slow_session_min_names", 50),
      config.integer("slow_session_min_bytes", 400),
    );
    this.slowMaxClients = config.integer("slow_session_max_clients", 2);
    this.audience = new Audience(slowWindowMs, this.slowMaxClients);
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
      const name = normalised(query);
      // The last of the longest labels, as Rust's max_by_key picks.
      let longest = "";
      let longestLen = 0;
      for (const part of name.split(".")) {
        const size = mcp.utf8Length(part);
        if (size >= longestLen) {
          longest = part;
          longestLen = size;
        }
      }
      const judged = !this.allowed.some((domain) => isUnder(name, domain));
      // Encoded data has few vowels; a long label of words about a third.
      const encoded = mcp.byteShare(longest, isVowel) < 0.3;
      if (judged && longestLen >= this.tunnelLabelLen && mcp.entropy(longest) >= 3.5 && encoded) {
        found.push(
          mcp.finding(entry, 0.9, "dns_tunnel", mcp.Severity.HIGH,
            `${client} queried ${query} (${qtype}) with a ${longestLen}-character label of entropy ` +
              `${mcp.entropy(longest).toFixed(1)} bits/char: data encoded into DNS names, typical of tunnelling ` +
              "or exfiltration. Block the domain and inspect the client."),
        );
      }
      const domain = registeredDomain(name);
      const label = registeredLabel(name, domain);
      const surprise = mcp.nameSurprise(label);
      // A name that does not exist needs less: real names resolve.
      const bar = rcodes[i] === "NXDOMAIN" ? this.dgaMinBitsUnanswered : this.dgaMinBits;
      if (judged && mcp.utf8Length(label) >= this.dgaMinLen && surprise >= bar) {
        found.push(
          mcp.finding(entry, 0.8, "dga", mcp.Severity.HIGH,
            `${client} looked up ${query}: the name '${label}' reads as machine-generated ` +
              `(${surprise.toFixed(1)} bits of surprise per letter pair, where real names score about 4), as ` +
              `malware does to find its controller. Check ${client} for infection.`),
        );
      }
      // Reverse lookups name addresses, not data; a scanner's sweep makes
      // many of them, unanswered for every unused address.
      const reverse = domain.endsWith("arpa");
      const subdomain = judged && !reverse ? subdomainOf(name, domain) : null;
      if (subdomain) {
        const [hits, level] = this.sessions.push(client, domain, subdomain, rcodes[i] === "NOERROR", entry);
        for (const hit of hits) {
          found.push(
            mcp.finding(hit, 0.85, "dns_tunnel_session", mcp.Severity.HIGH,
              `${client} sent ${level.names} distinct names carrying ${level.bytes} bytes under ${domain} within a ` +
                `window (${level.answeredPercent}% answered; latest ${query}): a DNS tunnel in short chunks, each name ` +
                `harmless alone. Block ${domain} and inspect the client.`),
          );
        }
        // A tunnel the minute's window reports is not counted again over
        // the hour: one anomaly per name.
        // A name asked for again adds nothing to an hour's count of distinct
        // names, and a client polling one would keep 3,600.
        if (
          !this.sessions.isTunnel(level) &&
          this.audience.push(domain, client, entry.timestampMs) <= this.slowMaxClients &&
          !this.slowSessions.holds(client, domain, subdomain)
        ) {
          const [slowHits, slow] = this.slowSessions.push(client, domain, subdomain, rcodes[i] === "NOERROR", entry);
          for (const hit of slowHits) {
            found.push(
              mcp.finding(hit, 0.8, "dns_slow_tunnel", mcp.Severity.HIGH,
                `${client} sent ${slow.names} distinct names carrying ${slow.bytes} bytes under ${domain} within an ` +
                  `hour, a domain at most ${this.slowMaxClients} clients asked for (${slow.answeredPercent}% ` +
                  `answered; latest ${query}): slow exfiltration through DNS, under any minute's threshold. Block ` +
                  `${domain} and inspect the client.`),
            );
          }
        }
      }
      if (rcodes[i] === "NXDOMAIN" && !reverse) {
        const hits = this.nxdomains.push(client, entry.timestampMs, entry, name);
        const level = this.nxdomains.level(client);
        for (const hit of hits) {
          found.push(
            mcp.finding(hit, 0.85, "nxdomain_burst", mcp.Severity.MEDIUM,
              `${client} received NXDOMAIN for ${level} distinct names within 30 seconds (latest ${query}): ` +
                "random-subdomain flooding or malware probing for live domains. Inspect the client."),
          );
        }
      }
    }
    return found;
  }

  // No snapshot, as the Rust DNS agent: the host's replay (15 minutes by
  // default) gives the NXDOMAIN bursts and the minute's tunnel sessions back
  // after a restart; a snapshot would stop the replay and bring back only
  // what it held (and cost a JSON copy of the windows every batch). The
  // hour-long slow sessions start nearly afresh after a restart
  // (docs/ROADMAP.md).
}

export const detector = mcp.exportAgent(DnsAgent);
