#!/usr/bin/env bash
# Property-based run over the control plane's OpenAPI document: starts
# `mcp serve` on a scratch data folder with an admin token and lets
# schemathesis (PyPI, in a throw-away virtualenv) generate requests for
# every operation. Fails on any 5xx and on any response that does not match
# the document. Usage: bash tests/schemathesis.sh [MAX_EXAMPLES]
set -euo pipefail
cd "$(dirname "$0")/.."
examples="${1:-50}"
work="$(mktemp -d)"
trap 'kill "${server:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
port=18091
printf 'data_dir = "%s"\ntenant = "st"\nlisten = "127.0.0.1:%s"\n' "$work/data" "$port" > "$work/mcp.toml"

python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet "schemathesis==4.32.5"

# The debug binary that `cargo test` has just built: the API's contract is
# the same, and CI is spared a second, release build of the whole host.
cargo build --locked -p mcp-cli
mcp=target/debug/mcp
token="$("$mcp" --config "$work/mcp.toml" tokens create --tenant st --role admin 2>/dev/null)"
"$mcp" --config "$work/mcp.toml" serve > "$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 150); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.2; done

"$work/venv/bin/schemathesis" run "http://127.0.0.1:$port/openapi.json" \
    --header "Authorization: Bearer $token" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --max-examples "$examples" \
    --workers 2 \
    --seed "${SCHEMATHESIS_SEED:-20261124}"
