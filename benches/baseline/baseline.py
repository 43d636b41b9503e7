"""The seed's pipeline in Python, the design MCP replaces, as a good Python
engineer would write it: psycopg reads pages of one log type by keyset
from the same PostgreSQL table `mcp` reads; each page is validated (with
Pydantic v2 models, a whole page at a time from one JSON array, or as
plain dicts from orjson); the per-type agent of agents.py runs its rules
and windows entry by entry and its ONNX model (onnxruntime) once per page;
the page's anomalies and the checkpoint commit together in SQLite.

    python baseline.py --dsn DSN --schema SCHEMA --tenant T --variant pydantic|dict \
        --models DIR --out anomalies.db

Prints one JSON line: rows, seconds, anomalies and quarantined per log type.
"""

import argparse
import json
import sqlite3
import sys
import time
from pathlib import Path

import orjson
import psycopg
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from agents import AGENTS, Model

# The schema files' fields (config/log_schemas), with their defaults.
class WifiEntry(BaseModel):
    model_config = ConfigDict(extra="ignore")
    event: str
    bssid: str
    ssid: str = ""
    client: str = ""
    channel: int | None = None
    signal_dbm: int
    retry_rate: float = 0.0
    status: str = "success"
    reason_code: int = 0


class FirewallEntry(BaseModel):
    model_config = ConfigDict(extra="ignore")
    src_ip: str
    dst_ip: str
    src_port: int | None = None
    dst_port: int
    protocol: str = "tcp"
    action: str
    bytes_out: int = 0
    bytes_in: int = 0
    duration_ms: int = 0


class DnsEntry(BaseModel):
    model_config = ConfigDict(extra="ignore")
    client_ip: str
    query: str
    qtype: str = "A"
    rcode: str
    answers: int = 0
    response_bytes: int = 0


MODELS = {"wifi": WifiEntry, "firewall": FirewallEntry, "dns": DnsEntry}


class PydanticPages:
    """A page validated at once: one JSON array, one call into
    pydantic-core; a page with a bad row is validated row by row so that
    only that row is set aside."""

    def __init__(self, log_type, fields):
        self.model = MODELS[log_type]
        self.page = TypeAdapter(list[self.model])
        self.fields = fields

    def parse(self, raws):
        try:
            entries = self.page.validate_json(b"[" + b",".join(raws) + b"]")
            bad = []
        except ValidationError:
            entries, bad = [], []
            for position, raw in enumerate(raws):
                try:
                    entries.append(self.model.model_validate_json(raw))
                except ValidationError as error:
                    entries.append(None)
                    bad.append((position, str(error).splitlines()[0]))
        fields = self.fields
        return [None if e is None else tuple(getattr(e, name) for name in fields) for e in entries], bad


class DictPages:
    """Rows as plain dicts from orjson: required fields checked, defaults
    filled, nothing typed."""

    def __init__(self, log_type, fields):
        model = MODELS[log_type]
        self.required = [n for n, f in model.model_fields.items() if f.is_required()]
        self.defaults = {n: f.default for n, f in model.model_fields.items() if not f.is_required()}
        self.fields = fields

    def parse(self, raws):
        out, bad = [], []
        required, defaults, fields = self.required, self.defaults, self.fields
        for position, raw in enumerate(raws):
            try:
                row = orjson.loads(raw)
            except orjson.JSONDecodeError as error:
                out.append(None)
                bad.append((position, f"not JSON: {error}"))
                continue
            missing = [name for name in required if name not in row]
            if missing:
                out.append(None)
                bad.append((position, f"missing {', '.join(missing)}"))
                continue
            out.append(tuple(row[name] if name in row else defaults[name] for name in fields))
        return out, bad


SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS anomalies (
    id INTEGER PRIMARY KEY, agent TEXT NOT NULL, log_id INTEGER NOT NULL, label TEXT NOT NULL,
    score REAL NOT NULL, severity TEXT NOT NULL, reason TEXT NOT NULL, entry_fields TEXT,
    UNIQUE (agent, log_id, label));
CREATE TABLE IF NOT EXISTS checkpoints (agent TEXT PRIMARY KEY, after_id INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS quarantine (log_id INTEGER PRIMARY KEY, reason TEXT NOT NULL, raw TEXT NOT NULL);
"""


def latest_model(models_dir, agent):
    versions = sorted((p for p in (Path(models_dir) / agent).iterdir() if (p / "model.onnx").exists()),
                      key=lambda p: int(p.name))
    return versions[-1] / "model.onnx"


def run_type(pg, db, args, log_type):
    agent_type = AGENTS[log_type]
    agent = agent_type(Model(latest_model(args.models, log_type)))
    pages = (PydanticPages if args.variant == "pydantic" else DictPages)(log_type, agent_type.FIELDS)
    row = db.execute("SELECT after_id FROM checkpoints WHERE agent = ?", (log_type,)).fetchone()
    after_id = row[0] if row else 0
    rows = anomalies = quarantined = 0
    started = time.perf_counter()
    with pg.cursor() as cursor:
        while True:
            cursor.execute(
                "SELECT id, ts_ms, fields FROM logs WHERE tenant = %s AND log_type = %s AND id > %s "
                "ORDER BY id LIMIT %s",
                (args.tenant, log_type, after_id, args.batch),
            )
            page = cursor.fetchall()
            if not page:
                break
            raws = [r[2].encode() for r in page]
            fields, bad = pages.parse(raws)
            bad_at = {position for position, _ in bad}
            ids = [r[0] for i, r in enumerate(page) if i not in bad_at]
            times = [r[1] for i, r in enumerate(page) if i not in bad_at]
            fields = [f for f in fields if f is not None]
            found = agent.detect(ids, times, fields)
            raw_of = {r[0]: r[2] for r in page}
            last_id = page[-1][0]
            with db:
                db.executemany(
                    "INSERT OR IGNORE INTO anomalies (agent, log_id, label, score, severity, reason, entry_fields) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(log_type, log_id, label, score, severity, reason, raw_of.get(log_id))
                     for log_id, label, score, severity, reason in found],
                )
                db.executemany("INSERT OR IGNORE INTO quarantine VALUES (?, ?, ?)",
                               [(page[p][0], reason, page[p][2]) for p, reason in bad])
                db.execute("INSERT INTO checkpoints VALUES (?, ?) ON CONFLICT (agent) DO UPDATE SET after_id = ?",
                           (log_type, last_id, last_id))
            rows += len(ids)
            anomalies += len(found)
            quarantined += len(bad)
            after_id = last_id
    return {"log_type": log_type, "rows": rows, "anomalies": anomalies, "quarantined": quarantined,
            "seconds": time.perf_counter() - started}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--schema", required=True, help="the PostgreSQL schema holding the logs table")
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--variant", choices=["pydantic", "dict"], required=True)
    parser.add_argument("--models", required=True, help="the models folder (models/<agent>/<version>/model.onnx)")
    parser.add_argument("--out", required=True, help="the SQLite file for anomalies and checkpoints")
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    db = sqlite3.connect(args.out, isolation_level="DEFERRED")
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.executescript(SQLITE_SCHEMA)
    started = time.perf_counter()
    with psycopg.connect(args.dsn, options=f"-c search_path={args.schema}") as pg:
        results = [run_type(pg, db, args, log_type) for log_type in ("wifi", "firewall", "dns")]
    elapsed = time.perf_counter() - started
    json.dump({"variant": args.variant, "seconds": elapsed, "types": results}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
