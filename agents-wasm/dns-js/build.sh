#!/usr/bin/env bash
# Builds the JavaScript DNS agent into a component of the mcp:agent@0.2.0
# world: componentize-js (pinned with integrity hashes by package-lock.json,
# from npm, installed under target/) bundles StarlingMonkey, the SDK
# (sdk/js) and app.js. Usage:
#   bash agents-wasm/dns-js/build.sh OUT.wasm
# -d ...: every WASI feature of the engine off, so the component imports
# only the world's interfaces.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="${1:?usage: build.sh OUT.wasm}"
here="$root/agents-wasm/dns-js"
tools="$root/target/js-guests/dns-js"
stamp="$tools/installed.sha256"
wanted="$(cat "$here/package.json" "$here/package-lock.json" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    rm -rf "$tools"
    mkdir -p "$tools"
    cp "$here/package.json" "$here/package-lock.json" "$tools/"
    (cd "$tools" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    echo "$wanted" >"$stamp"
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$root/sdk/js/mcp_agent.js" "$here/app.js" "$work/"
# componentize-js reports a syntax error without its place; node names it.
node --check "$work/app.js"
node "$tools/node_modules/@bytecodealliance/componentize-js/src/cli.js" "$work/app.js" \
    --wit "$root/wit/0.2.0" -n agent -d stdio random clocks http fetch-event -o "$work/agent.wasm" >/dev/null
mv "$work/agent.wasm" "$out"
