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
# Crates with hashed names survive a feature difference side by side, so
# the loop above cannot see one; it still costs a second build of every
# crate above it. Compare the features each build resolves.
features() { cargo tree --locked --prefix none -f '{p} [{f}]' "$@" | sort -u; }
python3 - <(features --workspace -e normal,build,dev) <(features -p mcp-cli -e normal,build) <<'PY'
import re, sys
def load(path):
    found = {}
    for line in open(path):
        m = re.match(r"(\S+ v\S+)(?: \(.*?\))? \[(.*)\]$", line.strip().replace(" (*)", ""))
        if m:
            found.setdefault(m.group(1), set()).add(m.group(2))
    return found
tests, binary = load(sys.argv[1]), load(sys.argv[2])
if not tests or not binary:
    sys.exit("check_no_rebuild: cargo tree listed no crates; its error is above")
differ = [f"{k}: tests {sorted(tests[k])}, binary {sorted(binary[k])}" for k in sorted(binary) if k in tests and tests[k] != binary[k]]
if differ:
    sys.exit("check_no_rebuild: the test build and the binary's resolve these crates' features differently "
             "(enable the test build's in runtime/cli/Cargo.toml):\n  " + "\n  ".join(differ))
PY
echo "check_no_rebuild: a second build compiled nothing, and both builds resolve the same features"
