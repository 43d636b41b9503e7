#!/usr/bin/env bash
# Retrains the bundled agents' models from generated data and writes them as
# OUT/{agent}/{version}/ (OUT defaults to models). Reproducible: the
# generator, the seeds and the Python packages are pinned, and model.onnx
# comes out byte for byte the same. Usage: bash models/train/train.sh [VERSION] [OUT]
set -euo pipefail
cd "$(dirname "$0")/../.."
version="${1:-1}"
out="${2:-models}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet -r models/train/requirements.txt

cargo build --release --locked -p mcp-cli
# Seed 42 trains, seed 7 picks each model's decision point; 9001, which
# `mcp models evaluate` uses, is seen by neither.
for agent in wifi firewall dns; do
    for seed in 42 7; do
        target/release/mcp --config /dev/null models features --agent "$agent" --seed "$seed" --entries 20000 \
            --out "$work/$agent-$seed.csv"
    done
done
"$work/venv/bin/python" models/train/train.py --features "$work" --out "$out" --version "$version"
