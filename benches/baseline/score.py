"""Precision, recall and F1 per log type of one run's anomalies against the
generator's labels in PostgreSQL: an entry is flagged if any anomaly names
it, and an attack if its label is set.

    python score.py --dsn DSN --schema SCHEMA --tenant T --anomalies FILE [--rust]

Prints one JSON line: {log_type: {"precision", "recall", "f1"}, "all": {...}}.
"""

import argparse
import json
import sqlite3
import sys

import psycopg


def scores(flagged, attacks):
    hits = len(flagged & attacks)
    precision = hits / len(flagged) if flagged else 0.0
    recall = hits / len(attacks) if attacks else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
            "flagged": len(flagged), "attacks": len(attacks)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--schema", required=True)
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--anomalies", required=True, help="the run's SQLite anomalies file")
    parser.add_argument("--rust", action="store_true", help="the file is mcp's anomaly store (log types by column)")
    args = parser.parse_args()
    db = sqlite3.connect(args.anomalies)
    query = ("SELECT DISTINCT log_type, log_id FROM anomalies WHERE tenant = ?" if args.rust
             else "SELECT DISTINCT agent, log_id FROM anomalies WHERE ? IS NOT NULL")
    flagged = {}
    for log_type, log_id in db.execute(query, (args.tenant,)):
        flagged.setdefault(log_type, set()).add(log_id)
    attacks = {}
    with psycopg.connect(args.dsn, options=f"-c search_path={args.schema}") as pg:
        for log_type, log_id in pg.execute(
            "SELECT log_type, id FROM logs WHERE tenant = %s AND label IS NOT NULL", (args.tenant,)
        ):
            attacks.setdefault(log_type, set()).add(log_id)
    result = {t: scores(flagged.get(t, set()), attacks.get(t, set())) for t in ("wifi", "firewall", "dns")}
    every = lambda sets: {(t, i) for t, ids in sets.items() for i in ids}
    result["all"] = scores(every(flagged), every(attacks))
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
