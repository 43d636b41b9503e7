// The MCP agent SDK for JavaScript: write a log-anomaly agent as a class and
// build it into a WebAssembly component of the `mcp:agent@0.2.0` world with
// componentize-js (`componentize-js --wit wit/0.2.0 -n agent -d stdio random
// clocks http fetch-event app.js`).
//
//     import * as mcp from "./mcp_agent.js";
//
//     class Quiet {
//       info() { return mcp.info("quiet", "dns", "0.1.0", "finds nothing", ["query"]); }
//       detect(batch) { return []; }
//     }
//
//     export const detector = mcp.exportAgent(Quiet);
//
// What this module gives, as the Rust and Python SDKs do: typed access to a
// batch's columns, findings built and packed into the protocol's columns,
// windows per key (`Burst`), settings (`Config`), logging (`log`) and the
// model import (`Model`). An exception an agent throws becomes an `internal`
// agent error, so a bug fails the call with its message: componentize-js
// traps the instance on an exception it is not given as an error payload.

import { get as configGet } from "mcp:agent/config@0.2.0";
import { log as hostLog } from "mcp:agent/log@0.2.0";
import { LoadedModel } from "mcp:agent/model@0.2.0";

export const PROTOCOL_VERSION = "0.2.0";

export const Severity = Object.freeze({
  INFO: "info",
  LOW: "low",
  MEDIUM: "medium",
  HIGH: "high",
  CRITICAL: "critical",
});

const ERROR_KINDS = new Set(["config", "unsupported-log-type", "model-unavailable", "internal"]);

/** An error the host is told about: `kind` is `config`,
 * `unsupported-log-type`, `model-unavailable` or `internal`. */
export class AgentError extends Error {
  constructor(kind, message) {
    super(message);
    this.kind = ERROR_KINDS.has(kind) ? kind : "internal";
    // componentize-js lowers an exception's `payload` as the `err` value.
    this.payload = { tag: this.kind, val: String(message) };
  }
}

// --- text columns ----------------------------------------------------------

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Bytes of `text` in UTF-8, without encoding it. */
export function utf8Length(text) {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) bytes += 1;
    else if (unit < 0x800) bytes += 2;
    else if (unit >= 0xd800 && unit < 0xdc00 && i + 1 < text.length) {
      bytes += 4; // a surrogate pair is one code point of four bytes
      i++;
    } else bytes += 3;
  }
  return bytes;
}

/** The texts of a `{data, ends}` column: entry i is the UTF-8 bytes
 * `data[ends[i-1]..ends[i]]`. */
export function decodeTexts(column) {
  const { data, ends } = column;
  const count = ends.length;
  const texts = new Array(count);
  const total = count ? ends[count - 1] : 0;
  let start = 0;
  if (data.length === total) {
    // As many UTF-16 units as bytes: all ASCII, so byte offsets index the string.
    for (let i = 0; i < count; i++) {
      texts[i] = data.slice(start, ends[i]);
      start = ends[i];
    }
    return texts;
  }
  const bytes = encoder.encode(data);
  for (let i = 0; i < count; i++) {
    texts[i] = decoder.decode(bytes.subarray(start, ends[i]));
    start = ends[i];
  }
  return texts;
}

/** A text column of `texts`. */
export function encodeTexts(texts) {
  const ends = new Uint32Array(texts.length);
  let total = 0;
  texts.forEach((text, i) => {
    total += utf8Length(text);
    ends[i] = total;
  });
  return { data: texts.join(""), ends };
}

// --- batches ---------------------------------------------------------------

/** One batch as the host sent it: entries in id order, columns by name. A
 * value an entry lacks is `null`. Integers come as numbers (exact up to
 * 2^53); `bigints(name)` gives them exactly. */
export class Batch {
  constructor(raw) {
    this.raw = raw;
    this.logType = raw.logType;
    this.schemaVersion = raw.schemaVersion;
    this.ids = raw.ids;
    this.timestampsMs = raw.timestampsMs;
    this.length = raw.ids.length;
    this.sources = decodeTexts(raw.sources);
    this.columns = new Map(raw.columns.map((column) => [column.name, column]));
  }

  has(name) {
    return this.columns.has(name);
  }

  values(name, kind, required = true) {
    const column = this.columns.get(name);
    if (column === undefined) {
      if (required) throw new AgentError("internal", `the batch has no column '${name}'`);
      return new Array(this.length).fill(null);
    }
    if (column.values.tag !== kind) {
      throw new AgentError("internal", `column '${name}' is ${column.values.tag}, not ${kind}`);
    }
    const raw = column.values.val;
    let out;
    if (kind === "text") out = decodeTexts(raw);
    else if (kind === "integer") out = Array.from(raw, Number);
    else out = Array.from(raw);
    for (const index of column.missing) {
      if (index < out.length) out[index] = null;
    }
    return out;
  }

  text(name, required = true) {
    return this.values(name, "text", required);
  }

  integer(name, required = true) {
    return this.values(name, "integer", required);
  }

  bigints(name) {
    const column = this.columns.get(name);
    return column && column.values.tag === "integer" ? column.values.val : null;
  }

  real(name, required = true) {
    return this.values(name, "real", required);
  }

  boolean(name, required = true) {
    return this.values(name, "boolean", required);
  }

  /** The reference a finding carries. */
  entry(index) {
    return { id: this.ids[index], timestampMs: Number(this.timestampsMs[index]) };
  }
}

// --- findings --------------------------------------------------------------

const SEVERITIES = new Set(Object.values(Severity));

/** A severity from its name in any case ("high", "HIGH", Severity.HIGH). */
export function severityOf(value) {
  const name = String(value).toLowerCase();
  if (!SEVERITIES.has(name)) {
    throw new AgentError("internal", `severity '${value}' is not one of ${[...SEVERITIES].join(", ")}`);
  }
  return name;
}

/** What an agent found about one entry (`entry` from `batch.entry(i)`).
 * The score is passed on as given: the host refuses one outside 0..1 (or
 * NaN), naming it. */
export function finding(entry, score, label, severity, reason) {
  if (entry === null || typeof entry !== "object" || entry.id === undefined) {
    throw new AgentError("internal", `a finding's entry is batch.entry(i), not ${String(entry)}`);
  }
  return { entry, score: Number(score), label: String(label), severity: severityOf(severity), reason: String(reason) };
}

/** Findings in the protocol's columns. */
export function pack(found) {
  return {
    logIds: BigUint64Array.from(found, (f) => BigInt(f.entry.id)),
    scores: Float32Array.from(found, (f) => f.score),
    severities: found.map((f) => f.severity),
    labels: encodeTexts(found.map((f) => f.label)),
    reasons: encodeTexts(found.map((f) => f.reason)),
  };
}

/** Who the agent is and the schema versions of its log type it reads. */
export function info(name, logType, version, description, requiredFields, minVersion = 1, maxVersion = 1) {
  return {
    name,
    logType,
    agentVersion: version,
    protocolVersion: PROTOCOL_VERSION,
    description,
    schema: { logType, minVersion, maxVersion, requiredFields: encodeTexts(requiredFields) },
  };
}

// --- settings and logging --------------------------------------------------

/** The agent's settings: the operator's `[agents.<name>]` and its tenant's. */
export class Config {
  get(key, fallback = undefined) {
    const value = configGet(key);
    return value === undefined || value === null ? fallback : value;
  }

  integer(key, fallback) {
    const value = this.get(key);
    if (value === undefined) return fallback;
    if (!/^\s*[+-]?\d+\s*$/.test(value) || !Number.isSafeInteger(Number(value))) {
      throw new AgentError("config", `setting '${key}' = '${value}' is not a whole number`);
    }
    return Number(value);
  }

  real(key, fallback) {
    const value = this.get(key);
    if (value === undefined) return fallback;
    const number = value.trim() === "" ? NaN : Number(value);
    if (!Number.isFinite(number)) throw new AgentError("config", `setting '${key}' = '${value}' is not a number`);
    return number;
  }

  /** A list setting: a TOML list in the operator's config reaches the
   * agent as a JSON array; a value typed by hand may be comma-separated.
   * Items are trimmed texts, empty ones dropped; `item` converts each (for
   * example `Number`) and a NaN it returns is a config error. */
  list(key, fallback = [], item = (text) => text) {
    const value = this.get(key);
    if (value === undefined) return fallback;
    let texts;
    if (value.trimStart().startsWith("[")) {
      let raw;
      try {
        raw = JSON.parse(value);
      } catch {
        raw = null;
      }
      const scalar = (v) => ["string", "number", "boolean"].includes(typeof v);
      if (!Array.isArray(raw) || !raw.every(scalar)) {
        throw new AgentError("config", `setting '${key}' = '${value}' is not a JSON array of strings, numbers or booleans`);
      }
      texts = raw.map(String);
    } else {
      texts = value.split(",");
    }
    return texts
      .map((text) => text.trim())
      .filter((text) => text !== "")
      .map((text) => {
        const converted = item(text);
        if (typeof converted === "number" && Number.isNaN(converted)) {
          throw new AgentError("config", `setting '${key}' = '${value}' holds '${text}', which is not a number`);
        }
        return converted;
      });
  }
}

const LEVELS = new Set(["trace", "debug", "info", "warn", "error"]);

/** One line into the host's log: level is trace, debug, info, warn or error. */
export function log(level, message) {
  hostLog(LEVELS.has(level) ? level : "info", String(message));
}

// The engine is built without stdio, so console output would go nowhere:
// it goes to the host's log instead.
const consoleTo = (level) => (...parts) => log(level, parts.map((part) => String(part)).join(" "));
globalThis.console = {
  log: consoleTo("info"),
  info: consoleTo("info"),
  debug: consoleTo("debug"),
  warn: consoleTo("warn"),
  error: consoleTo("error"),
};

/** The agent's model through the host (`model.load`), scoring rows of
 * features in one call. */
export class Model {
  constructor(name, version = undefined) {
    try {
      this.model = LoadedModel.load(name, version);
    } catch (error) {
      throw new AgentError("model-unavailable", `model '${name}': ${describe(error)}`);
    }
  }

  version() {
    return this.model.version();
  }

  infer(rows, width) {
    const data = new Float32Array(rows.length * width);
    rows.forEach((row, r) => data.set(row, r * width));
    try {
      return Array.from(this.model.infer({ shape: Uint32Array.of(rows.length, width), data }).data);
    } catch (error) {
      throw new AgentError("model-unavailable", describe(error));
    }
  }
}

function describe(error) {
  const payload = error && error.payload;
  if (payload && typeof payload === "object" && "tag" in payload) return `${payload.tag}: ${payload.val}`;
  return error instanceof Error ? error.message : String(error);
}

// --- windows ---------------------------------------------------------------

/**
 * Makes room in a full Map of at most `maxKeys` windows: deletes those last
 * seen before `horizon`, then, while it is over `maxKeys` less a sixteenth,
 * those seen longest ago. Freeing a sixteenth at once means a flood of new
 * keys (spoofed sources) pays the scans once per many keys, not for each.
 */
export function makeRoom(windows, maxKeys, lastSeen, horizon) {
  for (const [key, window] of windows) {
    if (lastSeen(window) < horizon) windows.delete(key);
  }
  const excess = windows.size - (maxKeys - Math.max(Math.floor(maxKeys / 16), 1));
  if (excess > 0) {
    const byAge = [...windows].sort((a, b) => lastSeen(a[1]) - lastSeen(b[1]));
    for (const [key] of byAge.slice(0, excess)) windows.delete(key);
  }
}

/** Events per key in a sliding window of `spanMs`; at `threshold` the whole
 * window is flagged once, then each new event while it stays over. With
 * `distinct` the level is the number of distinct tags (push's `tag`, for
 * example the name looked up) rather than of events. At most `maxKeys` keys
 * are kept, the stalest dropped first. */
export class Burst {
  constructor(spanMs, threshold, maxKeys = 16384, distinct = false) {
    this.spanMs = spanMs;
    this.threshold = Math.max(threshold, 1);
    this.maxKeys = Math.max(maxKeys, 1);
    this.distinct = distinct;
    this.windows = new Map();
  }

  push(key, timestampMs, entry, tag = null) {
    if (!this.windows.has(key) && this.windows.size >= this.maxKeys) this.evict(timestampMs);
    let window = this.windows.get(key);
    if (window === undefined) {
      window = { events: [], alarmed: false, tags: new Map() };
      this.windows.set(key, window);
    }
    const horizon = timestampMs - this.spanMs;
    let stale = 0;
    while (stale < window.events.length && window.events[stale][0] < horizon) {
      if (this.distinct) {
        const old = window.events[stale][2];
        const left = window.tags.get(old) - 1;
        if (left === 0) window.tags.delete(old);
        else window.tags.set(old, left);
      }
      stale++;
    }
    if (stale) window.events.splice(0, stale);
    window.events.push([timestampMs, entry, tag]);
    if (this.distinct) window.tags.set(tag, (window.tags.get(tag) ?? 0) + 1);
    if (this.level(key) < this.threshold) {
      window.alarmed = false;
      return [];
    }
    if (window.alarmed) return [entry];
    window.alarmed = true;
    return window.events.map(([, e]) => e);
  }

  level(key) {
    const window = this.windows.get(key);
    if (!window) return 0;
    return this.distinct ? window.tags.size : window.events.length;
  }

  evict(nowMs) {
    const last = (window) => (window.events.length ? window.events[window.events.length - 1][0] : -Infinity);
    makeRoom(this.windows, this.maxKeys, last, nowMs - this.spanMs);
  }

  /** The windows as JSON-ready values, for `snapshot`. */
  toJSON() {
    const out = {};
    for (const [key, { events, alarmed }] of this.windows) {
      out[key] = [events.map(([ts, e, tag]) => [ts, String(e.id), e.timestampMs, tag]), alarmed];
    }
    return out;
  }

  /** Takes back what `toJSON` gave. */
  restore(saved) {
    this.windows = new Map();
    for (const [key, [events, alarmed]] of Object.entries(saved)) {
      const window = { events: [], alarmed, tags: new Map() };
      for (const [ts, id, at, tag = null] of events) {
        window.events.push([ts, { id: BigInt(id), timestampMs: at }, tag]);
        window.tags.set(tag, (window.tags.get(tag) ?? 0) + 1);
      }
      this.windows.set(key, window);
    }
  }
}

const byteCounts = new Uint32Array(256);
const bytesSeen = new Uint8Array(256);

/** The UTF-8 bytes of `text`; for ASCII text (most log fields) the string
 * itself, whose char codes are its bytes, with no copy. */
export function utf8Bytes(text) {
  return utf8Length(text) === text.length ? text : encoder.encode(text);
}

/** Shannon entropy of a string's UTF-8 bytes, in bits per byte. */
export function entropy(text) {
  const bytes = utf8Bytes(text);
  const length = bytes.length;
  let distinct = 0;
  const ascii = typeof bytes === "string";
  for (let i = 0; i < length; i++) {
    const byte = ascii ? bytes.charCodeAt(i) : bytes[i];
    if (byteCounts[byte]++ === 0) bytesSeen[distinct++] = byte;
  }
  // Summed in order of first appearance, and the counts cleared for the
  // next call: a walk over the distinct bytes, not all 256.
  let bits = 0;
  for (let k = 0; k < distinct; k++) {
    const p = byteCounts[bytesSeen[k]] / length;
    byteCounts[bytesSeen[k]] = 0;
    bits -= p * Math.log2(p);
  }
  return bits;
}

/** The share of `text`'s UTF-8 bytes that `keep(byte)` accepts. */
export function byteShare(text, keep) {
  const bytes = utf8Bytes(text);
  if (bytes.length === 0) return 0;
  let kept = 0;
  if (typeof bytes === "string") {
    for (let i = 0; i < bytes.length; i++) if (keep(bytes.charCodeAt(i))) kept++;
  } else {
    for (let i = 0; i < bytes.length; i++) if (keep(bytes[i])) kept++;
  }
  return kept / bytes.length;
}

// Cost of each (symbol, next symbol) pair of a DNS label in sixteenths of a
// bit, two hex digits each, row-major: the table of the Rust SDK's `names`
// module (models/train/name_bigrams.sh writes all three).
const NAME_PAIR_COSTS = "df424538484d4e4e4d474757553f444d3f824b374650615d9b737f9cffff368c4f485167724c784d9955354333834f9d363e305f685b816567d482ff4c2b53757e3091737e2f72ad2d7c81338aff3452743d7a97a56892ffb1ff3d2f8c5d9039a9bb2e3dff4447a07525a49d4669434aac8caf5f92cb9cff1e3e7d825c278269802d8b965978593c88d94c47844a7d7fff5f8e7e88ff314c6850395a6c667f689d884853386a5d902a2744546b6f667995c892ff503891949c343ea68c2a71aa3780922fa5f5365c4e2fbab3f55cf5f593f51e338aad83329c575337a4c44674573998d23e42874baa92d260b1d29bff422f848b8c288d95a621ac79626e682989d4515e554fb57fcf43aeff89ff4a485d3a4d405f568e88a766464f25405d925332387a59878a7e52ddaeff5345ec8d9b42b4b4c64c9fcc8f9c9f4108eca388d248ecc6a5adecececec332479918a2d81816a299f4f597060457bfb5e41783d8977fb4d9365b5fb36317b74622978819228bf703874773375d69950594f7595c23dabde8cff2a26508d8c2d8f92a72dbc9c8155743846cf964b903b8f93a65a9bd77eff39397d48422f642d7e3c8a69767860367e957c3b3568778aa97482ba89ff36665e4f566d7147815e995341392d504aa23343463f535b756f83d093ff25378c8d9531919e383cbb923c8a7e374cff374e5452af90ff68d2a083ff4d518d6fc5ababc58a79c5c576c576838d8dc581c503c5a5c5c58dc58dc5352e665b562b7752772fa66868595e3267ac5b3c4e536c84cc589ec18eff164a8c52923492994446ad6d6a5b6d55558a9e41334f9c7bc96da78d7aff3035876c8f2a8393422696b5657d7d378cec3c4253539275b3588cc17aff424f50504c56715b935288563b35306051c235293fa5829f87867ec988ff332eab7c8714748d8f25ab9987ba734078d87781815d85f1ba83d8ab87f13d1d718b6c2c78994731a9775c764f3572ef593c73819e8bef759bb770ef283b7e44ae2f6da060289cba729275423aaa926a3750b38e78439c8d78d314356a525c527f6a87569c884a514c4048ac5a43506e997894d780fd7bfd33299885a91dad907a30a98b636f7c2f8ebfe4998c3f9b7fe45c4ce4ade40c90c7c7c781c7786878c7817178c7c778c7815a8178c765c790c72239c7d42b4a434c4a5750604b7e6f5f544d5052d45d364d5c553cd49dd42dd4d44f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f";
const NAME_SYMBOLS = 30;
const nameCosts = Uint8Array.from({ length: NAME_PAIR_COSTS.length / 2 }, (_, i) =>
  parseInt(NAME_PAIR_COSTS.slice(2 * i, 2 * i + 2), 16),
);

function nameSymbol(byte) {
  if (byte >= 97 && byte <= 122) return byte - 96;
  if (byte >= 65 && byte <= 90) return byte - 64;
  if (byte >= 48 && byte <= 57) return 27;
  return byte === 45 ? 28 : 29;
}

/** Bits of surprise per character pair of a DNS label (its UTF-8 bytes, in
 * any letter case, its start and end counted as pairs) against pair
 * statistics of real names: about 3.5 to 4.5 for real names, 6 to 8 for
 * random letters and digits; 0 for an empty label. The same integers and the
 * one division of the Rust and Python SDKs, so the same value. */
export function nameSurprise(label) {
  const bytes = utf8Bytes(label);
  const length = bytes.length;
  if (length === 0) return 0;
  const ascii = typeof bytes === "string";
  let previous = 0;
  let total = 0;
  for (let i = 0; i < length; i++) {
    const symbol = nameSymbol(ascii ? bytes.charCodeAt(i) : bytes[i]);
    total += nameCosts[previous * NAME_SYMBOLS + symbol];
    previous = symbol;
  }
  total += nameCosts[previous * NAME_SYMBOLS];
  return total / ((length + 1) * 16);
}

// --- the export ------------------------------------------------------------

function asAgentError(error) {
  if (error instanceof AgentError) return error;
  try {
    const name = error && error.name ? String(error.name) : "Error";
    const message = error && error.message !== undefined ? String(error.message) : String(error);
    // SpiderMonkey tells where an Error was made.
    const file = error && typeof error.fileName === "string" ? error.fileName.split("/").pop() : "";
    const where = file && error.lineNumber ? ` (at ${file} line ${error.lineNumber})` : "";
    return new AgentError("internal", `${name}: ${message}${where}`);
  } catch {
    // A value with no prototype, or whose getters throw.
    return new AgentError("internal", "the agent threw a value that cannot be described");
  }
}

/** A snapshot as bytes: a Uint8Array or an array of bytes as they are, a
 * string as its UTF-8 (a natural mistake is to return JSON text). */
function stateBytes(state) {
  if (state instanceof Uint8Array) return state;
  if (typeof state === "string") return encoder.encode(state);
  if (Array.isArray(state) && state.every((b) => Number.isInteger(b) && b >= 0 && b < 256)) return Uint8Array.from(state);
  throw new AgentError("internal", "snapshot() must return a Uint8Array (mcp.jsonBytes(value)) or a string");
}

function guard(call) {
  try {
    return call();
  } catch (error) {
    throw asAgentError(error);
  }
}

/** The `detector` export, around one instance of `AgentClass` made on first
 * use (its `configure(new Config())`, if any, runs then). `detect(batch)`
 * returns a list of findings; `features(batch)`, if defined, a
 * `[names, rows]` pair; `snapshot()`/`restore(bytes)`, if defined, its
 * state as a Uint8Array. */
export function exportAgent(AgentClass) {
  let agent = null;
  const instance = () => {
    if (agent === null) {
      const made = new AgentClass();
      if (typeof made.configure === "function") made.configure(new Config());
      agent = made;
    }
    return agent;
  };
  return {
    info() {
      return new AgentClass().info();
    },
    detectBatch(raw) {
      return guard(() => {
        const current = instance();
        const expected = current.info().logType;
        if (raw.logType !== expected) {
          throw new AgentError(
            "unsupported-log-type",
            `agent ${current.info().name} handles '${expected}' logs, not '${raw.logType}'`,
          );
        }
        return pack(current.detect(new Batch(raw)));
      });
    },
    extractFeatures(raw) {
      return guard(() => {
        const current = instance();
        const batch = new Batch(raw);
        if (typeof current.features !== "function") {
          return { names: encodeTexts([]), rows: batch.length, values: new Float32Array(0) };
        }
        const [names, rows] = current.features(batch);
        const width = names.length;
        const values = new Float32Array(rows.length * width);
        rows.forEach((row, r) => values.set(row, r * width));
        return { names: encodeTexts(names), rows: rows.length, values };
      });
    },
    snapshot() {
      return guard(() => {
        const current = instance();
        return typeof current.snapshot === "function" ? stateBytes(current.snapshot()) : new Uint8Array(0);
      });
    },
    restore(state) {
      return guard(() => {
        const current = instance();
        if (typeof current.restore === "function") current.restore(state);
      });
    },
  };
}

/** JSON of `value` as UTF-8 bytes (a snapshot), and back. */
export function jsonBytes(value) {
  return encoder.encode(JSON.stringify(value));
}

export function fromJsonBytes(bytes) {
  return bytes.length ? JSON.parse(decoder.decode(bytes)) : null;
}
