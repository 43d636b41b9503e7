#!/usr/bin/env bash
# A development machine in one command: what scripts/dev.sh installs (just,
# the wasm32-wasip2 target), PostgreSQL and Redis from Debian's packages
# when they are missing and started when they are down, a development
# database `mcp_dev` with the log tables migrated, and a summary of what it
# did and what to run next. Idempotent: a second run changes nothing.
#
#   bash scripts/setup_dev.sh [--binary PATH] [--database NAME]
#
# --binary takes an `mcp` built elsewhere instead of building the release one.
set -euo pipefail
called_from="$(pwd)"
cd "$(dirname "$0")/.."

binary=""
database="mcp_dev"
while [ $# -gt 0 ]; do
    case "$1" in
        --binary) case "$2" in /*) binary="$2" ;; *) binary="$called_from/$2" ;; esac; shift 2 ;;
        --database) database="$2"; shift 2 ;;
        -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "setup_dev.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

done_list=()
kept_list=()
did() { done_list+=("$*"); echo "setup_dev.sh: $*"; }
kept() { kept_list+=("$*"); }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

# just and the wasm target, as scripts/dev.sh installs them.
before_target="$(rustup target list --installed | grep -x wasm32-wasip2 || true)"
dev_said="$(bash scripts/dev.sh --version 2>&1 >/dev/null)" || { echo "$dev_said" >&2; exit 1; }
if grep -q "installing just" <<< "$dev_said"; then did "installed just"; else kept "just"; fi
if [ -n "$before_target" ]; then kept "the wasm32-wasip2 target"; else did "added the wasm32-wasip2 target"; fi

# PostgreSQL: installed, running, answering on 127.0.0.1:5432.
if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    kept "PostgreSQL answers on 127.0.0.1:5432"
else
    if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
        apt_install postgresql
        did "installed PostgreSQL (Debian's postgresql)"
    fi
    version="$(ls /etc/postgresql | sort -V | tail -n 1)"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
    pg_isready -q -h 127.0.0.1 -p 5432 || { echo "setup_dev.sh: PostgreSQL $version does not answer on 127.0.0.1:5432" >&2; exit 1; }
    did "started PostgreSQL $version"
fi

# Redis: installed, running, answering on 127.0.0.1:6379.
if redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; then
    kept "Redis answers on 127.0.0.1:6379"
else
    if ! command -v redis-server >/dev/null; then
        apt_install redis-server
        did "installed Redis (Debian's redis-server)"
    fi
    redis-server --bind 127.0.0.1 --port 6379 --daemonize yes >/dev/null
    for _ in $(seq 30); do redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG && break; sleep 1; done
    redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG || { echo "setup_dev.sh: Redis does not answer on 127.0.0.1:6379" >&2; exit 1; }
    did "started Redis"
fi

# The development database, its log tables migrated.
psql_admin() { psql -h 127.0.0.1 -U postgres -d postgres -v ON_ERROR_STOP=1 -qtA "$@"; }
if [ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$database'")" = 1 ]; then
    kept "the database $database"
else
    psql_admin -c "CREATE DATABASE \"$database\""
    did "created the database $database"
fi
if [ -z "$binary" ]; then
    cargo build --release --locked -p mcp-cli --bin mcp
    binary=target/release/mcp
fi
database_url="postgres://postgres@127.0.0.1:5432/$database"
had_tables="$(psql -h 127.0.0.1 -U postgres -d "$database" -qtA -c "SELECT count(*) FROM information_schema.tables WHERE table_name IN ('logs', 'quarantine')")"
MCP_DATABASE_URL="$database_url" "$binary" db migrate >/dev/null
if [ "$had_tables" = 2 ]; then kept "the log tables of $database"; else did "migrated the log tables of $database"; fi

echo
if [ "${#done_list[@]}" -eq 0 ]; then
    echo "setup_dev.sh: nothing to change; already there:"
else
    echo "setup_dev.sh: ${#done_list[@]} change(s); already there:"
fi
for item in "${kept_list[@]}"; do echo "  - $item"; done
cat <<EOF
Next:
  bash scripts/dev.sh demo                         # the embedded default, no services needed
  bash scripts/dev.sh test                         # every test (PostgreSQL and Redis above)
  export MCP_DATABASE_URL=$database_url MCP_REDIS_URL=redis://127.0.0.1:6379/0
  $binary db load FILE.jsonl --log-type dns && $binary run
EOF
