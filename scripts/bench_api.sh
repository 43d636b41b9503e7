#!/usr/bin/env bash
# Load-tests the control plane: fills an anomaly store with ANOMALIES
# synthetic anomalies, starts `mcp serve` on it, and runs wrk (Debian's
# package) from a second process on loopback against a filtered page query
# of 100 anomalies. Usage: bash scripts/bench_api.sh [ANOMALIES] [SECONDS]
# With STORE=postgres the anomalies are kept in PostgreSQL
# (anomaly_store = "postgres", in a schema of their own, dropped at the end;
# DATABASE_URL, default postgres://postgres@127.0.0.1:5432/test).
set -euo pipefail
cd "$(dirname "$0")/.."
anomalies="${1:-1000000}"
seconds="${2:-30}"
command -v wrk >/dev/null || apt-get install -y wrk >/dev/null
work="$(mktemp -d)"
database_url="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
schema="bench_api_$$"
cleanup() {
    kill "${server:-0}" 2>/dev/null || true
    rm -rf "$work"
    if [ "${STORE:-embedded}" = postgres ]; then
        psql -q "$database_url" -c "DROP SCHEMA IF EXISTS \"$schema\" CASCADE" >/dev/null || true
    fi
}
trap cleanup EXIT
printf 'data_dir = "%s"\ntenant = "bench"\nlisten = "127.0.0.1:18089"\n' "$work/data" > "$work/mcp.toml"
if [ "${STORE:-embedded}" = postgres ]; then
    printf 'database_url = "%s"\ndatabase_schema = "%s"\nanomaly_store = "postgres"\n' \
        "$database_url" "$schema" >> "$work/mcp.toml"
fi

cargo build --release --locked -p mcp-cli
mcp=target/release/mcp
"$mcp" --config "$work/mcp.toml" bench --fill-anomalies "$anomalies"
if [ "${STORE:-embedded}" = postgres ]; then
    # What autovacuum would have done by the time a deployment held them.
    psql -q "$database_url" -c "ANALYZE \"$schema\".anomalies"
fi
token="$("$mcp" --config "$work/mcp.toml" tokens create --tenant bench --role read_only 2>/dev/null)"
# The load test measures the server, not the tenant's request budget.
"$mcp" --config "$work/mcp.toml" budgets set bench requests_per_minute 100000000 >/dev/null
"$mcp" --config "$work/mcp.toml" serve > "$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 100); do curl -sf http://127.0.0.1:18089/healthz >/dev/null && break; sleep 0.2; done

url='http://127.0.0.1:18089/v1/anomalies?agent=firewall&severity=high&min_score=0.5&limit=100'
echo "one page: $(curl -sf -H "Authorization: Bearer $token" "$url" | head -c 200)..."
wrk --latency -t 2 -c 32 -d "${seconds}s" -H "Authorization: Bearer $token" "$url"
