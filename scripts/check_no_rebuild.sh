#!/usr/bin/env bash
# Runs after the tests: with nothing changed, building the tests and the
# binary again must compile nothing. A build script that watches a missing
# path, or rewrites what it produced, makes cargo rebuild everything above
# it on every command; this catches that.
set -euo pipefail
cd "$(dirname "$0")/.."
output=$( { cargo test --workspace --locked --no-run; cargo build --locked -p mcp-cli; } 2>&1 )
if grep -E '^\s+Compiling ' <<<"$output"; then
    echo "check_no_rebuild: a second build with nothing changed compiled the crates above; a build script reruns" >&2
    exit 1
fi
echo "check_no_rebuild: a second build compiled nothing"
