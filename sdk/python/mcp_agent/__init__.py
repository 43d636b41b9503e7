"""The MCP agent SDK for Python: write a log-anomaly agent as a class, build
it into a WebAssembly component of the `mcp:agent@0.2.0` world with
componentize-py.

An agent is a class with `info()` and `detect(batch)`; `export(MyAgent)`
gives componentize-py the `Detector` it looks for:

    import mcp_agent as mcp

    class Quiet:
        def info(self):
            return mcp.info("quiet", "dns", "0.1.0", "finds nothing", ["query"])

        def detect(self, batch):
            return []

    Detector = mcp.export(Quiet)

What this module gives, as the Rust SDK does: typed access to a batch's
columns, findings built and packed into the protocol's columns, windows per
key (`Burst`), settings (`Config`), logging (`log`) and the model import
(`Model`). An exception an agent raises becomes an `internal` agent error,
so a bug fails the call with its message instead of trapping the instance.
"""

import json
import math
import sys
import traceback
from collections import deque

from componentize_py_types import Err
from wit_world.imports import config as _config
from wit_world.imports import log as _log
from wit_world.imports import types

PROTOCOL_VERSION = "0.2.0"

Severity = types.Severity


class AgentError(Exception):
    """An error the host is told about: `kind` is `config`,
    `unsupported_log_type`, `model_unavailable` or `internal`."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind
        self.message = message

    def to_wit(self):
        return {
            "config": types.AgentError_Config,
            "unsupported_log_type": types.AgentError_UnsupportedLogType,
            "model_unavailable": types.AgentError_ModelUnavailable,
        }.get(self.kind, types.AgentError_Internal)(self.message)


# --- text columns ----------------------------------------------------------

def decode_texts(column):
    """The texts of a `(data, ends)` column: entry i is the UTF-8 bytes
    `data[ends[i-1]:ends[i]]`."""
    data = column.data.encode("utf-8")
    texts, start = [], 0
    for end in column.ends:
        texts.append(data[start:end].decode("utf-8", errors="replace"))
        start = end
    return texts


def encode_texts(texts):
    """A text column of `texts`."""
    ends, total = [], 0
    for text in texts:
        total += len(text.encode("utf-8"))
        ends.append(total)
    return types.TextColumn("".join(texts), ends)


# --- batches ---------------------------------------------------------------

class Batch:
    """One batch as the host sent it: entries in id order, columns by name.
    A value an entry lacks is `None`."""

    def __init__(self, raw):
        self.raw = raw
        self.log_type = raw.log_type
        self.schema_version = raw.schema_version
        self.ids = list(raw.ids)
        self.timestamps_ms = list(raw.timestamps_ms)
        self.sources = decode_texts(raw.sources)
        self._columns = {column.name: column for column in raw.columns}

    def __len__(self):
        return len(self.ids)

    def has(self, name):
        return name in self._columns

    def _values(self, name, kind, required):
        column = self._columns.get(name)
        if column is None:
            if required:
                raise AgentError("internal", f"the batch has no column '{name}'")
            return [None] * len(self)
        values = column.values
        if not isinstance(values, kind):
            raise AgentError("internal", f"column '{name}' is not {kind.__name__.split('_')[-1].lower()}")
        out = decode_texts(values.value) if kind is types.ColumnValues_Text else list(values.value)
        for index in column.missing:
            if index < len(out):
                out[index] = None
        return out

    def text(self, name, required=True):
        return self._values(name, types.ColumnValues_Text, required)

    def integer(self, name, required=True):
        return self._values(name, types.ColumnValues_Integer, required)

    def real(self, name, required=True):
        return self._values(name, types.ColumnValues_Real, required)

    def boolean(self, name, required=True):
        return self._values(name, types.ColumnValues_Boolean, required)

    def entry(self, index):
        """The reference a finding carries: (log id, timestamp)."""
        return (self.ids[index], self.timestamps_ms[index])


# --- findings --------------------------------------------------------------

_SEVERITIES = {level.name.lower(): level for level in Severity}


def severity_of(value):
    """A `Severity`, from itself or its name in any case ("high")."""
    if isinstance(value, Severity):
        return value
    level = _SEVERITIES.get(str(value).lower())
    if level is None:
        raise AgentError("internal", f"severity {value!r} is not one of {', '.join(_SEVERITIES)}")
    return level


class Finding:
    """What an agent found about one entry. The score is passed on as given:
    the host refuses one outside 0..1 (or NaN), naming it."""

    __slots__ = ("log_id", "timestamp_ms", "score", "label", "severity", "reason")

    def __init__(self, entry, score, label, severity, reason):
        if not (isinstance(entry, tuple) and len(entry) == 2):
            raise AgentError("internal", f"a finding's entry is batch.entry(i), not {entry!r}")
        self.log_id, self.timestamp_ms = entry
        self.score = float(score)
        self.label = str(label)
        self.severity = severity_of(severity)
        self.reason = str(reason)


def finding(entry, score, label, severity, reason):
    return Finding(entry, score, label, severity, reason)


def pack(found):
    """Findings in the protocol's columns."""
    return types.Findings(
        [f.log_id for f in found],
        [f.score for f in found],
        [f.severity for f in found],
        encode_texts([f.label for f in found]),
        encode_texts([f.reason for f in found]),
    )


def info(name, log_type, version, description, required_fields, min_version=1, max_version=1):
    """Who the agent is and the schema versions of its log type it reads."""
    return types.AgentInfo(
        name,
        log_type,
        version,
        PROTOCOL_VERSION,
        description,
        types.SchemaSupport(log_type, min_version, max_version, encode_texts(list(required_fields))),
    )


# --- settings and logging --------------------------------------------------

class Config:
    """The agent's settings: the operator's `[agents.<name>]` and its tenant's."""

    def get(self, key, default=None):
        value = _config.get(key)
        return default if value is None else value

    def integer(self, key, default):
        value = self.get(key)
        if value is None:
            return default
        try:
            return int(value.strip())
        except ValueError:
            raise AgentError("config", f"setting '{key}' = '{value}' is not a whole number")

    def real(self, key, default):
        value = self.get(key)
        if value is None:
            return default
        try:
            number = float(value.strip())
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise AgentError("config", f"setting '{key}' = '{value}' is not a number")
        return number

    def list(self, key, default=None, item=str):
        """A list setting: a TOML list in the operator's config reaches the
        agent as a JSON array; a value typed by hand may be comma-separated.
        Items are trimmed, empty ones dropped, each converted by `item`."""
        value = self.get(key)
        if value is None:
            return [] if default is None else default
        if value.lstrip().startswith("["):
            try:
                raw = json.loads(value)
            except ValueError:
                raw = None
            if not isinstance(raw, list) or any(isinstance(v, (list, dict)) or v is None for v in raw):
                raise AgentError("config", f"setting '{key}' = '{value}' is not a JSON array of strings, numbers or booleans")
            texts = [json.dumps(v) if isinstance(v, bool) else str(v) for v in raw]
        else:
            texts = value.split(",")
        out = []
        for text in (t.strip() for t in texts):
            if not text:
                continue
            try:
                out.append(item(text))
            except ValueError:
                raise AgentError("config", f"setting '{key}' = '{value}' holds '{text}', which is not a valid {item.__name__}")
        return out


def log(level, message):
    """One line into the host's log: level is trace, debug, info, warn or error."""
    _log.log(getattr(_log.Level, level.upper(), _log.Level.INFO), str(message))


class _HostLogWriter:
    """`sys.stdout` and `sys.stderr`: a component built with --stub-wasi has
    no stdout, and a write to it would trap the instance; lines go to the
    host's log instead."""

    def __init__(self, level):
        self.level = level
        self.pending = ""

    def write(self, text):
        self.pending += str(text)
        while "\n" in self.pending or len(self.pending) > 4096:
            line, _, self.pending = self.pending.partition("\n") if "\n" in self.pending else (self.pending, "", "")
            if line:
                _log.log(self.level, line)
        return len(text)

    def flush(self):
        if self.pending:
            _log.log(self.level, self.pending)
            self.pending = ""

    def isatty(self):
        return False


sys.stdout = _HostLogWriter(_log.Level.INFO)
sys.stderr = _HostLogWriter(_log.Level.WARN)


class Model:
    """The agent's model through the host (`model.load`), scoring rows of
    features in one call."""

    def __init__(self, name, version=None):
        from wit_world.imports import model as _model

        try:
            self._model = _model.LoadedModel.load(name, version)
        except Err as error:
            raise AgentError("model_unavailable", f"model '{name}': {error.value}")

    def version(self):
        return self._model.version()

    def infer(self, rows, width):
        flat = [float(v) for row in rows for v in row]
        out = self._model.infer(types.Tensor([len(rows), width], flat))
        return list(out.data)


# --- windows ---------------------------------------------------------------

class Burst:
    """Events per key in a sliding window of `span_ms`; at `threshold` the
    whole window is flagged once, then each new event while it stays over.
    With `distinct=True` the level is the number of distinct tags (push's
    `tag`, for example the name looked up) rather than of events. At most
    `max_keys` keys are kept, the stalest dropped first."""

    def __init__(self, span_ms, threshold, max_keys=16384, distinct=False):
        self.span_ms = span_ms
        self.threshold = max(threshold, 1)
        self.max_keys = max(max_keys, 1)
        self.distinct = distinct
        self.windows = {}

    def push(self, key, timestamp_ms, entry, tag=None):
        if key not in self.windows and len(self.windows) >= self.max_keys:
            self._evict(timestamp_ms)
        window = self.windows.setdefault(key, [deque(), False, {}])
        events, tags = window[0], window[2]
        horizon = timestamp_ms - self.span_ms
        while events and events[0][0] < horizon:
            _, _, old = events.popleft()
            if self.distinct:
                tags[old] -= 1
                if not tags[old]:
                    del tags[old]
        events.append((timestamp_ms, entry, tag))
        if self.distinct:
            tags[tag] = tags.get(tag, 0) + 1
        if self.level(key) < self.threshold:
            window[1] = False
            return []
        if window[1]:
            return [entry]
        window[1] = True
        return [e for _, e, _ in events]

    def level(self, key):
        window = self.windows.get(key)
        if not window:
            return 0
        return len(window[2]) if self.distinct else len(window[0])

    def state(self):
        """The windows as JSON-ready values, for `snapshot`:
        `json.dumps(self.burst.state()).encode()`."""
        return {str(key): [[[ts, list(entry), tag] for ts, entry, tag in events], alarmed]
                for key, (events, alarmed, _) in self.windows.items()}

    def restore_state(self, saved):
        """Takes back what `state` gave (keys come back as text)."""
        self.windows = {}
        for key, (events, alarmed) in saved.items():
            # Events saved before tags were kept have none.
            window = [deque((ts, tuple(entry), tag[0] if tag else None) for ts, entry, *tag in events), alarmed, {}]
            for _, _, tag in window[0]:
                window[2][tag] = window[2].get(tag, 0) + 1
            self.windows[key] = window

    def _evict(self, now_ms):
        self.windows = make_room(
            self.windows, self.max_keys, lambda w: w[0][-1][0] if w[0] else -math.inf, now_ms - self.span_ms
        )


def make_room(windows, max_keys, last_seen, horizon):
    """Makes room in a full dict of at most `max_keys` windows: drops those
    last seen before `horizon`, then, while it is over `max_keys` less a
    sixteenth, those seen longest ago. Freeing a sixteenth at once means a
    flood of new keys (spoofed sources) pays the scans once per many keys,
    not for each. Returns the dict to keep."""
    windows = {k: w for k, w in windows.items() if last_seen(w) >= horizon}
    excess = len(windows) - (max_keys - max(max_keys // 16, 1))
    if excess > 0:
        for key in sorted(windows, key=lambda k: last_seen(windows[k]))[:excess]:
            del windows[key]
    return windows


def entropy(text):
    """Shannon entropy of a string's UTF-8 bytes, in bits per byte."""
    data = text.encode("utf-8")
    if not data:
        return 0.0
    counts = {}
    for byte in data:
        counts[byte] = counts.get(byte, 0) + 1
    total = len(data)
    return -sum((c / total) * math.log2(c / total) for c in counts.values())


# Cost of each (symbol, next symbol) pair of a DNS label in sixteenths of a
# bit, two hex digits each, row-major: the table of the Rust SDK's
# `names` module (models/train/name_bigrams.sh writes all three).
NAME_PAIR_COSTS = "df424538484d4e4e4d474757553f444d3f824b374650615d9b737f9cffff368c4f485167724c784d9955354333834f9d363e305f685b816567d482ff4c2b53757e3091737e2f72ad2d7c81338aff3452743d7a97a56892ffb1ff3d2f8c5d9039a9bb2e3dff4447a07525a49d4669434aac8caf5f92cb9cff1e3e7d825c278269802d8b965978593c88d94c47844a7d7fff5f8e7e88ff314c6850395a6c667f689d884853386a5d902a2744546b6f667995c892ff503891949c343ea68c2a71aa3780922fa5f5365c4e2fbab3f55cf5f593f51e338aad83329c575337a4c44674573998d23e42874baa92d260b1d29bff422f848b8c288d95a621ac79626e682989d4515e554fb57fcf43aeff89ff4a485d3a4d405f568e88a766464f25405d925332387a59878a7e52ddaeff5345ec8d9b42b4b4c64c9fcc8f9c9f4108eca388d248ecc6a5adecececec332479918a2d81816a299f4f597060457bfb5e41783d8977fb4d9365b5fb36317b74622978819228bf703874773375d69950594f7595c23dabde8cff2a26508d8c2d8f92a72dbc9c8155743846cf964b903b8f93a65a9bd77eff39397d48422f642d7e3c8a69767860367e957c3b3568778aa97482ba89ff36665e4f566d7147815e995341392d504aa23343463f535b756f83d093ff25378c8d9531919e383cbb923c8a7e374cff374e5452af90ff68d2a083ff4d518d6fc5ababc58a79c5c576c576838d8dc581c503c5a5c5c58dc58dc5352e665b562b7752772fa66868595e3267ac5b3c4e536c84cc589ec18eff164a8c52923492994446ad6d6a5b6d55558a9e41334f9c7bc96da78d7aff3035876c8f2a8393422696b5657d7d378cec3c4253539275b3588cc17aff424f50504c56715b935288563b35306051c235293fa5829f87867ec988ff332eab7c8714748d8f25ab9987ba734078d87781815d85f1ba83d8ab87f13d1d718b6c2c78994731a9775c764f3572ef593c73819e8bef759bb770ef283b7e44ae2f6da060289cba729275423aaa926a3750b38e78439c8d78d314356a525c527f6a87569c884a514c4048ac5a43506e997894d780fd7bfd33299885a91dad907a30a98b636f7c2f8ebfe4998c3f9b7fe45c4ce4ade40c90c7c7c781c7786878c7817178c7c778c7815a8178c765c790c72239c7d42b4a434c4a5750604b7e6f5f544d5052d45d364d5c553cd49dd42dd4d44f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f"
_NAME_SYMBOLS = 30
_NAME_COSTS = bytes.fromhex(NAME_PAIR_COSTS)


def _name_symbol(byte):
    if 97 <= byte <= 122:
        return byte - 96
    if 65 <= byte <= 90:
        return byte - 64
    if 48 <= byte <= 57:
        return 27
    return 28 if byte == 45 else 29


def name_surprise(label):
    """Bits of surprise per character pair of a DNS label (its UTF-8 bytes,
    in any letter case, its start and end counted as pairs) against pair
    statistics of real names: about 3.5 to 4.5 for real names, 6 to 8 for
    random letters and digits; 0 for an empty label. The same integers and
    the one division of the Rust and JavaScript SDKs, so the same value."""
    data = label.encode("utf-8")
    if not data:
        return 0.0
    previous = 0
    total = 0
    for byte in data:
        symbol = _name_symbol(byte)
        total += _NAME_COSTS[previous * _NAME_SYMBOLS + symbol]
        previous = symbol
    total += _NAME_COSTS[previous * _NAME_SYMBOLS]
    return total / ((len(data) + 1) * 16)


# --- the export ------------------------------------------------------------

def _describe(error):
    """An exception as one line, even one whose `__str__` fails."""
    try:
        return f"{type(error).__name__}: {error}{_where(error)}"
    except BaseException:
        return f"{type(error).__name__} (its message cannot be shown){_where(error)}"


def _where(error):
    """Where an exception was raised: the innermost frame of the agent's code."""
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return ""
    frame = frames[-1]
    return f" (at {frame.filename.rsplit('/', 1)[-1]} line {frame.lineno}, in {frame.name})"


def export(agent_class):
    """The `Detector` componentize-py exports, around one instance of
    `agent_class` made on first use (its `configure(Config())`, if any, runs
    then). `detect(batch)` returns a list of findings; `features(batch)`,
    if defined, a (names, rows) pair; `snapshot()`/`restore(bytes)`, if
    defined, its state."""

    class Detector:
        _agent = None

        @classmethod
        def _instance(cls):
            if Detector._agent is None:
                agent = agent_class()
                if hasattr(agent, "configure"):
                    agent.configure(Config())
                Detector._agent = agent
            return Detector._agent

        def info(self):
            return agent_class().info()

        def _guard(self, call):
            try:
                return call()
            except AgentError as error:
                raise Err(error.to_wit())
            except Err:
                raise
            except BaseException as error:  # a bug fails the call, not the instance
                raise Err(types.AgentError_Internal(_describe(error)))
            finally:
                sys.stdout.flush()
                sys.stderr.flush()

        def detect_batch(self, batch):
            def call():
                agent = self._instance()
                expected = agent.info().log_type
                if batch.log_type != expected:
                    raise AgentError(
                        "unsupported_log_type",
                        f"agent {agent.info().name} handles '{expected}' logs, not '{batch.log_type}'",
                    )
                return pack(agent.detect(Batch(batch)))

            return self._guard(call)

        def extract_features(self, batch):
            def call():
                agent = self._instance()
                view = Batch(batch)
                if not hasattr(agent, "features"):
                    return types.FeatureTable(encode_texts([]), len(view), [])
                names, rows = agent.features(view)
                flat = [float(v) for row in rows for v in row]
                return types.FeatureTable(encode_texts(list(names)), len(rows), flat)

            return self._guard(call)

        def snapshot(self):
            def call():
                agent = self._instance()
                return bytes(agent.snapshot()) if hasattr(agent, "snapshot") else b""

            return self._guard(call)

        def restore(self, state):
            def call():
                agent = self._instance()
                if hasattr(agent, "restore"):
                    agent.restore(bytes(state))

            return self._guard(call)

    return Detector
