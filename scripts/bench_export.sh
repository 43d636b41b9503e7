#!/usr/bin/env bash
# Exports ROWS synthetic anomalies in each format with `mcp export` and
# reports rows per second and peak memory (GNU time's maximum resident set
# size), the median of RUNS runs each. The store is filled once first
# (`mcp bench --fill-anomalies`). Usage: bash scripts/bench_export.sh [ROWS] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
rows="${1:-1000000}"
runs="${2:-3}"
[ -x /usr/bin/time ] || apt-get install -y time >/dev/null
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
printf 'data_dir = "%s"\ntenant = "bench"\n[exports]\nmax_rows = %s\n' "$work/data" "$((rows * 2))" > "$work/mcp.toml"

cargo build --release --locked -p mcp-cli
mcp=target/release/mcp
/usr/bin/time -f "filled in %e s" "$mcp" --config "$work/mcp.toml" bench --fill-anomalies "$rows"
echo "store: $(du -h "$work/data/anomalies.db" | cut -f1)"
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
printf '%-8s %10s %12s %10s %10s\n' format seconds rows/s "peak MiB" "file MiB"
for format in jsonl csv parquet; do
    : > "$work/times"
    for _ in $(seq "$runs"); do
        rm -f "$work/out.$format"
        /usr/bin/time -f "%e %M" -o "$work/one" \
            "$mcp" --config "$work/mcp.toml" export --format "$format" -o "$work/out.$format" > "$work/said"
        cat "$work/one" >> "$work/times"
    done
    # The fill writes whole batches: the rows exported, as the export says.
    exported="$(sed -n 's/^wrote \([0-9]*\) anomalies.*/\1/p' "$work/said")"
    seconds="$(cut -d' ' -f1 "$work/times" | median)"
    peak_kib="$(cut -d' ' -f2 "$work/times" | median)"
    size="$(stat -c %s "$work/out.$format")"
    awk -v f="$format" -v s="$seconds" -v r="$exported" -v p="$peak_kib" -v b="$size" \
        'BEGIN { printf "%-8s %10.2f %12.0f %10.1f %10.1f\n", f, s, r / s, p / 1024, b / 1048576 }'
done
