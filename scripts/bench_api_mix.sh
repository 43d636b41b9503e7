#!/usr/bin/env bash
# The control plane under a noisy neighbour: tenant `noisy` (ANOMALIES
# anomalies) sends the most expensive filters it can think of from 32
# connections while tenant `quiet` (a tenth as many) pages its newest
# anomalies from 4; wrk (Debian's package) reports the quiet tenant's
# latency alone and then beside the noise. Usage:
#   bash scripts/bench_api_mix.sh [ANOMALIES] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
anomalies="${1:-1000000}"
seconds="${2:-30}"
command -v wrk >/dev/null || apt-get install -y wrk >/dev/null
work="$(mktemp -d)"
trap 'kill "${server:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
port=18090
printf 'data_dir = "%s"\ntenant = "noisy"\nlisten = "127.0.0.1:%s"\n' "$work/data" "$port" > "$work/mcp.toml"

cargo build --release --locked -p mcp-cli
mcp=target/release/mcp
run() { "$mcp" --config "$work/mcp.toml" "$@"; }
run bench --fill-anomalies "$anomalies" >/dev/null
MCP_TENANT=quiet run bench --fill-anomalies "$((anomalies / 10))" >/dev/null
noisy="$(run tokens create --tenant noisy --role read_only 2>/dev/null)"
quiet="$(run tokens create --tenant quiet --role read_only 2>/dev/null)"
# The load test measures the server, not the tenants' request budgets.
run budgets set noisy requests_per_minute 100000000 >/dev/null
run budgets set quiet requests_per_minute 100000000 >/dev/null
# Started directly (not through `run`), so that $! is the server itself.
"$mcp" --config "$work/mcp.toml" serve > "$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.2; done

# The filters the issue found scanning the table, and their worst company.
cat > "$work/noisy.lua" <<'LUA'
local paths = {
  "/v1/anomalies?source=dev-7&limit=1000",
  "/v1/anomalies?log_type=dns&limit=1000",
  "/v1/anomalies?min_score=0.99999&limit=1000",
  "/v1/anomalies?min_score=0.99999&sort=score&limit=1000",
  "/v1/anomalies?label=dga&severity=critical&source=dev-3&limit=1000",
  "/v1/anomalies?agent=wifi&severity=high&min_score=0.999&limit=1000",
  "/v1/anomalies?severity=info&source=dev-49&label=rogue_ap&sort=score&limit=1000",
  "/v1/anomalies?from_ms=0&to_ms=9999999999999&min_score=0.9999&limit=1000",
}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i % #paths) + 1])
end
LUA
quiet_url="http://127.0.0.1:$port/v1/anomalies?limit=100"
for token in "$quiet" "$noisy"; do
    status="$(curl -s -o "$work/check.json" -w '%{http_code}' -H "Authorization: Bearer $token" "$quiet_url")"
    [ "$status" = 200 ] || { echo "a page answered $status: $(cat "$work/check.json")" >&2; exit 1; }
done
echo "== quiet alone (4 connections, ${seconds}s)"
wrk --latency -t 1 -c 4 -d "${seconds}s" -H "Authorization: Bearer $quiet" "$quiet_url"
echo "== noisy alone (32 connections, ${seconds}s)"
wrk --latency -t 1 -c 32 -d "${seconds}s" -H "Authorization: Bearer $noisy" -s "$work/noisy.lua" "http://127.0.0.1:$port" | tee "$work/noisy-alone.txt"
echo "== quiet beside noisy (${seconds}s)"
wrk --latency -t 1 -c 32 -d "$((seconds + 4))s" -H "Authorization: Bearer $noisy" -s "$work/noisy.lua" "http://127.0.0.1:$port" > "$work/noisy.txt" &
noise=$!
sleep 2
wrk --latency -t 1 -c 4 -d "${seconds}s" -H "Authorization: Bearer $quiet" "$quiet_url"
wait "$noise"
echo "== noisy beside quiet"
cat "$work/noisy.txt"
