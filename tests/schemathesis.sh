#!/usr/bin/env bash
# Property-based run over the control plane's OpenAPI document: starts
# `mcp serve` on a scratch data folder with an admin token and lets
# schemathesis (PyPI, in a throw-away virtualenv) generate requests for
# every operation, then the stateful phase (sequences of calls linked by the
# ids one returns and another takes), with every check schemathesis has and
# a fixed seed. Fails on any 5xx and on any response that does not match
# the document. Usage: bash tests/schemathesis.sh [MAX_EXAMPLES]
set -euo pipefail
cd "$(dirname "$0")/.."
examples="${1:-50}"
work="$(mktemp -d)"
trap 'kill "${server:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
port=18091
printf 'data_dir = "%s"\ntenant = "st"\nlisten = "127.0.0.1:%s"\n' "$work/data" "$port" > "$work/mcp.toml"

venv="${SCHEMATHESIS_VENV:-$work/venv}"
[ -x "$venv/bin/schemathesis" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install --quiet "schemathesis==4.32.5"; }

# The debug binary that `cargo test` has just built: the API's contract is
# the same, and CI is spared a second, release build of the whole host.
cargo build --locked -p mcp-cli
mcp="${CARGO_TARGET_DIR:-target}/debug/mcp"
token="$("$mcp" --config "$work/mcp.toml" tokens create --tenant st --role admin 2>/dev/null)"
deployment="$("$mcp" --config "$work/mcp.toml" tokens create --role deployment_admin 2>/dev/null)"
"$mcp" --config "$work/mcp.toml" serve > "$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 150); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.2; done

# One worker: with two, hypothesis parses lambdas' source with `ast` from two
# threads at once, and CPython 3.11 (this machine's) can then fail with
# "AST constructor recursion depth mismatch" (CPython gh-106905), which
# failed a CI run although every request had passed.
# Once as a tenant's admin over every operation, once as the deployment's
# admin over what only it may do (tenants, budgets, the bundled agents'
# models, metrics).
run() {
    "$venv/bin/schemathesis" run "http://127.0.0.1:$port/openapi.json" \
        --checks all \
        --phases examples,coverage,fuzzing,stateful \
        --max-examples "$examples" \
        --workers 1 \
        --seed "${SCHEMATHESIS_SEED:-20261124}" \
        "$@"
}
run --header "Authorization: Bearer $token"
run --header "Authorization: Bearer $deployment" --include-path-regex '^/(metrics|v1/(tenants|budgets|models))'
