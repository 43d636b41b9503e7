# The commands a person and CI run; README.md and .ci/run call these recipes.
set shell := ["bash", "-euo", "pipefail", "-c"]

# List the recipes.
default:
    @just --list

# Install what the build needs and is missing (the wasm32-wasip2 target).
setup:
    rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2

# Generate labelled logs, run the three bundled agents in the sandbox, score them.
demo *args: setup
    cargo run --release --locked -p mcp-cli --bin mcp -- demo {{args}}

# Formatting and clippy with warnings denied.
lint: setup
    cargo fmt --all --check
    cargo clippy --workspace --all-targets --locked -- -D warnings

# Lint, then Chromium and the HTML validator for the console's browser test, then every test of the workspace, each criterion bench once, the property-based run over the API and a check that a second
# build compiles nothing, all in one build instrumented for line coverage, whose total ends the output
# (what CI runs).
test: lint
    bash scripts/console_tools.sh
    bash scripts/coverage.sh {{just_executable()}} _test-steps

_test-steps:
    cargo test --workspace --locked
    cargo test --workspace --locked --benches
    bash tests/schemathesis.sh 50
    bash scripts/check_no_rebuild.sh

# Line coverage of the workspace's tests, per crate (the README's table) and in total; HTML in
# target/coverage/html.
coverage: setup
    bash scripts/coverage.sh

# Load-test a filtered anomaly page over a store of ANOMALIES (wrk from Debian).
bench-api anomalies="1000000" seconds="30": setup
    bash scripts/bench_api.sh {{anomalies}} {{seconds}}

# Export ROWS anomalies in each format: rows per second and peak memory (median of RUNS).
bench-export rows="1000000" runs="3": setup
    bash scripts/bench_export.sh {{rows}} {{runs}}

# Load-test one tenant's pages beside another tenant's most expensive filters (wrk from Debian).
bench-api-mix anomalies="1000000" seconds="30": setup
    bash scripts/bench_api_mix.sh {{anomalies}} {{seconds}}

# Start the REST control plane on the embedded default.
serve *args: setup
    cargo run --release --locked -p mcp-cli --bin mcp -- serve {{args}}

# The criterion benches of the hot paths (row parse, crossing, agents, tract, store commit); FILTER picks some.
bench-hot filter="": setup
    cargo bench --locked -p mcp-tests --bench hot_paths -- {{filter}}

# The Rust pipeline against the seed's design in Python (Pydantic and plain dicts) on the same
# PostgreSQL table: rows per second, ratios and F1 (benches/baseline/).
bench-baseline entries="333334": setup
    bash benches/baseline/run.sh {{entries}}

# Sandbox against native, budgets, fixed call cost, compile and instantiate times.
bench *args: setup
    cargo run --release --locked -p mcp-cli --bin mcp -- bench {{args}}

# Retrain the bundled agents' models into models/<agent>/VERSION (Python venv, pinned packages).
train version="1": setup
    bash models/train/train.sh {{version}}
