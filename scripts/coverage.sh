#!/usr/bin/env bash
# Runs COMMAND (default: the workspace's tests) with line coverage and
# prints it per crate and in total. cargo-llvm-cov instruments the
# workspace's own crates only, in a target folder of its own
# (target/coverage), so every build COMMAND makes shares that one build;
# the HTML report lands in target/coverage/html.
# Usage: bash scripts/coverage.sh [COMMAND ...]
set -euo pipefail
cd "$(dirname "$0")/.."
version=0.9.1
rustup component list --installed | grep -q '^llvm-tools' || rustup component add llvm-tools-preview
if ! cargo llvm-cov --version 2>/dev/null | grep -qF "$version"; then
    cargo install --locked cargo-llvm-cov --version "$version"
fi
[ $# -gt 0 ] || set -- cargo test --workspace --locked

export CARGO_TARGET_DIR="$PWD/target/coverage"
# One build from scratch: incremental state would only cost time and disk.
export CARGO_INCREMENTAL=0
eval "$(cargo llvm-cov show-env --sh 2>/dev/null)"
# This run's counters only.
find "$CARGO_TARGET_DIR" -maxdepth 1 -name '*.profraw' -delete 2>/dev/null || true
"$@"
cargo llvm-cov report --json --summary-only --output-path "$CARGO_TARGET_DIR/summary.json"
cargo llvm-cov report --html --output-dir "$CARGO_TARGET_DIR" >/dev/null
python3 scripts/coverage_table.py "$CARGO_TARGET_DIR/summary.json"
