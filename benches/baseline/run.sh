#!/usr/bin/env bash
# The Rust pipeline against the design it replaces, side by side on the same
# PostgreSQL table (issue 18): `mcp run` with its default configuration (the
# three bundled agents with their models) and the seed's pipeline in Python
# (baseline.py), once with Pydantic models and once with plain dicts. Each
# reads the same generated, labelled rows and writes its anomalies to
# SQLite; wall time of each whole command, rows per second, the ratios, and
# F1 against the generator's labels.
# Usage: bash benches/baseline/run.sh [NORMAL_ENTRIES_PER_TYPE]   (= just bench-baseline)
# Needs PostgreSQL at MCP_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test).
set -euo pipefail
cd "$(dirname "$0")/../.."
per_type="${1:-333334}"
url="${MCP_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
schema="mcp_baseline_$$"
work="$(mktemp -d)"

# The Python side's packages, pinned, in a virtual environment kept beside
# the build (reinstalled when the requirements change).
venv=target/baseline-venv
if ! cmp -s benches/baseline/requirements.txt "$venv/requirements.txt" 2>/dev/null; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r benches/baseline/requirements.txt
    cp benches/baseline/requirements.txt "$venv/requirements.txt"
fi
py="$venv/bin/python"

cleanup() {
    "$py" -c "import psycopg, sys; psycopg.connect(sys.argv[1], autocommit=True).execute('DROP SCHEMA IF EXISTS $schema CASCADE')" "$url" || true
    rm -rf "$work"
}
trap cleanup EXIT
if ! "$py" -c "import psycopg, sys; psycopg.connect(sys.argv[1]).close()" "$url" 2>/dev/null; then
    echo "bench-baseline: PostgreSQL does not answer at $url; start it (pg_ctlcluster --skip-systemctl-redirect \$(ls /etc/postgresql) main start)" >&2
    exit 1
fi

cargo build --release --locked -p mcp-cli --bin mcp
mcp="$PWD/target/release/mcp"
export MCP_DATABASE_URL="$url" MCP_DATABASE_SCHEMA="$schema" MCP_DATA_DIR="$work/mcp" MCP_TENANT=baseline
"$mcp" --config /dev/null db migrate >/dev/null
"$mcp" --config /dev/null db generate --entries "$per_type" --seed 42 >/dev/null
# Compiles the agents into the cache first, as a deployment's first start
# does, over a tenant with no logs.
MCP_TENANT=warm-up "$mcp" --config /dev/null run >/dev/null

now() { date +%s%N; }
started=$(now)
"$mcp" --config /dev/null run >"$work/rust.txt"
rust_nanos=$(( $(now) - started ))
for variant in pydantic dict; do
    started=$(now)
    (cd benches/baseline && "$OLDPWD/$py" baseline.py --dsn "$url" --schema "$schema" --tenant baseline \
        --variant "$variant" --models "$OLDPWD/models" --out "$work/$variant.db") >"$work/$variant.json"
    echo $(( $(now) - started )) >"$work/$variant.nanos"
done
score() { "$py" benches/baseline/score.py --dsn "$url" --schema "$schema" --tenant baseline "$@"; }
score --anomalies "$work/mcp/anomalies.db" --rust >"$work/rust.f1"
score --anomalies "$work/pydantic.db" >"$work/pydantic.f1"
score --anomalies "$work/dict.db" >"$work/dict.f1"
rows=$("$py" -c "import psycopg, sys; print(psycopg.connect(sys.argv[1], options='-c search_path=$schema').execute('SELECT count(*) FROM logs').fetchone()[0])" "$url")

"$py" - "$work" "$rows" "$rust_nanos" <<'PY'
import json, sys
work, rows, rust_seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) / 1e9
def load(name):
    return json.load(open(f"{work}/{name}.f1"))
runs = [("mcp run (Rust, sandboxed, models)", rust_seconds, load("rust"))]
for variant in ("pydantic", "dict"):
    runs.append((f"Python, {'Pydantic v2' if variant == 'pydantic' else 'plain dicts'}",
                 int(open(f"{work}/{variant}.nanos").read()) / 1e9, load(variant)))
print(f"{rows} rows in PostgreSQL (wifi, firewall, dns); wall time of each whole command")
print(f"{'pipeline':<36} {'seconds':>8} {'rows/s':>10} {'time/Rust':>9} {'F1 all':>7} {'wifi':>6} {'fw':>6} {'dns':>6}")
for name, seconds, f1 in runs:
    print(f"{name:<36} {seconds:>8.1f} {rows / seconds:>10.0f} {seconds / rust_seconds:>8.1f}x "
          f"{f1['all']['f1']:>7.3f} {f1['wifi']['f1']:>6.3f} {f1['firewall']['f1']:>6.3f} {f1['dns']['f1']:>6.3f}")
PY
