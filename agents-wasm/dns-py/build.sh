#!/usr/bin/env bash
# Builds the Python DNS agent into a component of the mcp:agent@0.2.0 world:
# componentize-py (pinned, from PyPI, in a virtualenv kept under target/)
# bundles CPython, the SDK (sdk/python) and app.py. Usage:
#   bash agents-wasm/dns-py/build.sh OUT.wasm
# --stub-wasi: the component imports only the world's interfaces, no WASI.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="${1:?usage: build.sh OUT.wasm}"
venv="$root/target/py-guests/venv"
if [ ! -x "$venv/bin/componentize-py" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --require-hashes -r "$root/agents-wasm/dns-py/requirements.txt"
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# Copies of the sources: componentize-py's Python writes __pycache__ beside
# what it imports, and a file written into a folder cargo watches would make
# every later build run this again.
mkdir -p "$work/sdk" "$work/app"
cp -r "$root/sdk/python/mcp_agent" "$work/sdk/"
cp "$root/agents-wasm/dns-py/app.py" "$work/app/"
(cd "$work" && "$venv/bin/componentize-py" -d "$root/wit/0.2.0" -w agent componentize \
    -p "$work/sdk" -p "$work/app" app --stub-wasi -o "$work/agent.wasm" >/dev/null)
mv "$work/agent.wasm" "$out"
