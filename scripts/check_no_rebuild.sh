#!/usr/bin/env bash
# Runs after the tests and the property-based run, which built the tests and
# the binary: with nothing changed, building each again, in turn, must
# compile nothing. A build script that watches a missing path, or rewrites
# what it produced, makes cargo rebuild everything above it on every
# command; so does a dependency whose features differ between the test
# build and the binary's (runtime/cli/Cargo.toml enables the test build's
# extra features for that reason). This catches both.
set -euo pipefail
cd "$(dirname "$0")/.."
for command in "cargo test --workspace --locked --no-run" "cargo build --locked -p mcp-cli" \
    "cargo test --workspace --locked --no-run"; do
    output=$($command 2>&1)
    if grep -E '^\s+Compiling ' <<<"$output"; then
        echo "check_no_rebuild: '$command' compiled the crates above with nothing changed: a build script reruns, or the test build and the binary's resolve a dependency's features differently (compare 'cargo tree -e features' of both)" >&2
        exit 1
    fi
done
echo "check_no_rebuild: a second build compiled nothing"
