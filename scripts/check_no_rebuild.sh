#!/usr/bin/env bash
# Runs after the tests: with nothing changed, building the tests and the
# binary again must compile nothing. A build script that watches a missing
# path, or rewrites what it produced, makes cargo rebuild everything above
# it on every command; this catches that.
#
# The test build and the binary's build resolve a few dependencies'
# features differently (the browser test's WebDriver client brings url's
# ICU features), and the bundled agents' native crates, whose cdylib
# outputs carry no hash in their names, are rebuilt when the build switches
# between the two. So each command runs twice, and its second run must
# compile nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
for command in "cargo test --workspace --locked --no-run" "cargo build --locked -p mcp-cli"; do
    $command >/dev/null 2>&1
    output=$($command 2>&1)
    if grep -E '^\s+Compiling ' <<<"$output"; then
        echo "check_no_rebuild: '$command' run twice with nothing changed compiled the crates above the second time; a build script reruns" >&2
        exit 1
    fi
done
echo "check_no_rebuild: a second build compiled nothing"
