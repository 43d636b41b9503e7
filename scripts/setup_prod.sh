#!/usr/bin/env bash
# Installs MCP as a service: the release binary, /etc/mcp/mcp.toml and
# mcp.env (0600), /var/lib/mcp owned by a system user `mcp`, and a hardened
# systemd unit. Idempotent: a second run changes nothing, and a config or
# env file an operator edited is never overwritten (the new one is written
# beside it as .new). docs/deployment.md walks through it.
#
#   bash scripts/setup_prod.sh [--binary PATH] [--prefix DIR] [--listen ADDR]
#                              [--memory-max SIZE] [--tasks-max N]
#   bash scripts/setup_prod.sh --uninstall [--purge] [--prefix DIR]
#
# --prefix DIR installs the whole layout under DIR (DIR/bin, DIR/etc/mcp,
# DIR/var/lib/mcp, DIR/etc/systemd/system), for packaging and tests; the
# files written there name the paths under DIR, so the staged binary runs
# as installed. Without it: /usr/local/bin, /etc/mcp, /var/lib/mcp and
# /etc/systemd/system, as root.
set -euo pipefail
called_from="$(pwd)"
cd "$(dirname "$0")/.."
source_tree="$(pwd)"
# Paths given are the caller's, not the checkout's.
absolute() { case "$1" in /*) echo "$1" ;; *) echo "$called_from/$1" ;; esac; }

prefix=""
binary=""
listen="127.0.0.1:8080"
memory_max=""
tasks_max=""
uninstall=false
purge=false
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix="$(absolute "$2")"; mkdir -p "$prefix"; prefix="$(cd "$prefix" && pwd)"; shift 2 ;;
        --binary) binary="$(absolute "$2")"; shift 2 ;;
        --listen) listen="$2"; shift 2 ;;
        --memory-max) memory_max="$2"; shift 2 ;;
        --tasks-max) tasks_max="$2"; shift 2 ;;
        --uninstall) uninstall=true; shift ;;
        --purge) purge=true; shift ;;
        -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "setup_prod.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

if [ -n "$prefix" ]; then
    bin_dir="$prefix/bin"
    etc_dir="$prefix/etc/mcp"
    data_dir="$prefix/var/lib/mcp"
    unit_dir="$prefix/etc/systemd/system"
else
    bin_dir="/usr/local/bin"
    etc_dir="/etc/mcp"
    data_dir="/var/lib/mcp"
    unit_dir="/etc/systemd/system"
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup_prod.sh: installing into /usr/local, /etc and /var/lib needs root (or --prefix DIR)" >&2
        exit 1
    fi
fi
unit="$unit_dir/mcp.service"
manifest="$etc_dir/.installed"
changes=0
said() { echo "setup_prod.sh: $*"; }

if $uninstall; then
    if [ -z "$prefix" ] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
        systemctl disable --now mcp.service || true
    fi
    # The config and environment files are the operator's (secrets among
    # them): kept unless --purge, as Debian keeps a package's conffiles.
    if [ -f "$manifest" ]; then
        while IFS= read -r path; do
            [ -n "$path" ] || continue
            case "$path" in
                "$etc_dir/mcp.toml" | "$etc_dir/mcp.env")
                    if $purge; then rm -f "$path" "$path.new" && said "removed $path"; else rm -f "$path.new"; said "kept $path (--purge removes it)"; fi ;;
                *) rm -f "$path" "$path.new" && said "removed $path" ;;
            esac
        done < "$manifest"
        if $purge; then
            rm -f "$manifest" "$etc_dir/.shipped"
        else
            grep -xF -e "$etc_dir/mcp.toml" -e "$etc_dir/mcp.env" "$manifest" > "$manifest.tmp" || true
            mv "$manifest.tmp" "$manifest"
        fi
    fi
    rmdir "$etc_dir" 2>/dev/null || true
    if [ -z "$prefix" ] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
        systemctl daemon-reload
    fi
    if $purge; then
        rm -rf "$data_dir"
        said "removed the data in $data_dir"
        if [ -z "$prefix" ] && id mcp >/dev/null 2>&1; then userdel mcp && said "removed the user mcp"; fi
    else
        said "kept the data in $data_dir (--purge removes it)"
    fi
    exit 0
fi

# Installs $2 (a file) as $1 with mode $3 unless identical. With "keep",
# a file that differs from what this script last shipped there is the
# operator's edit: it stays, and the new version goes beside it as .new.
shipped="$etc_dir/.shipped"
install_file() {
    local target="$1" source="$2" mode="$3" kept="${4:-replace}"
    mkdir -p "$(dirname "$target")"
    if [ -f "$target" ] && cmp -s "$target" "$source"; then
        return
    fi
    local edited=false
    if [ -f "$target" ] && [ "$kept" = keep ]; then
        local last now
        last="$(sed -n "s|^\([0-9a-f]*\)  $target\$|\1|p" "$shipped" 2>/dev/null)"
        now="$(sha256sum "$target" | cut -d' ' -f1)"
        [ "$last" = "$now" ] || edited=true
    fi
    if $edited; then
        if [ -f "$target.new" ] && cmp -s "$target.new" "$source"; then
            return
        fi
        install -m "$mode" "$source" "$target.new"
        said "kept your $target; the one this version ships is $target.new (compare them)"
    else
        install -m "$mode" "$source" "$target"
        rm -f "$target.new"
        said "installed $target"
        if [ "$kept" = keep ]; then
            grep -vF "  $target" "$shipped" 2>/dev/null > "$shipped.tmp" || true
            echo "$(sha256sum "$target" | cut -d' ' -f1)  $target" >> "$shipped.tmp"
            mv "$shipped.tmp" "$shipped"
        fi
    fi
    changes=$((changes + 1))
    grep -qxF "$target" "$manifest" 2>/dev/null || echo "$target" >> "$manifest"
}

mkdir -p "$etc_dir"
[ -f "$manifest" ] || : > "$manifest"

if [ -z "$binary" ]; then
    cargo build --release --locked -p mcp-cli --bin mcp
    binary="$source_tree/target/release/mcp"
fi
[ -x "$binary" ] || { echo "setup_prod.sh: $binary is not an executable" >&2; exit 1; }
install_file "$bin_dir/mcp" "$binary" 0755

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# The annotated example config, with the service's data directory and address.
sed -e "s|^data_dir = .*|data_dir = \"$data_dir\"|" \
    -e "s|^listen = .*|listen = \"$listen\"|" \
    "$source_tree/config/mcp.toml" > "$work/mcp.toml"
install_file "$etc_dir/mcp.toml" "$work/mcp.toml" 0644 keep
install_file "$etc_dir/mcp.env" "$source_tree/config/mcp.env.example" 0600 keep

# The limits of the unit follow the configuration's sandbox ceilings.
limits="$("$bin_dir/mcp" --config "$etc_dir/mcp.toml" config limits)"
[ -n "$memory_max" ] || memory_max="$(sed -n 's/^MemoryMax=//p' <<< "$limits")"
[ -n "$tasks_max" ] || tasks_max="$(sed -n 's/^TasksMax=//p' <<< "$limits")"

cat > "$work/mcp.service" <<EOF
# Installed by scripts/setup_prod.sh; edit a drop-in (systemctl edit mcp), not this file.
[Unit]
Description=MCP, a WebAssembly sandbox for log-anomaly agents
# Local PostgreSQL and Redis, when they are on this machine, start first.
After=network-online.target postgresql.service redis-server.service
Wants=network-online.target
StartLimitIntervalSec=300
StartLimitBurst=5

[Service]
Type=simple
User=mcp
Group=mcp
EnvironmentFile=$etc_dir/mcp.env
ExecStart=$bin_dir/mcp --config $etc_dir/mcp.toml serve
WorkingDirectory=$data_dir
Restart=on-failure
RestartSec=5
KillSignal=SIGTERM
TimeoutStopSec=60
MemoryMax=$memory_max
TasksMax=$tasks_max
LimitNOFILE=65536
UMask=0027
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictSUIDSGID=yes
RestrictRealtime=yes
RestrictNamespaces=yes
LockPersonality=yes
CapabilityBoundingSet=
AmbientCapabilities=
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
SystemCallArchitectures=native
ReadWritePaths=$data_dir

[Install]
WantedBy=multi-user.target
EOF
install_file "$unit" "$work/mcp.service" 0644

# The service's user, and the data directories it alone writes.
owner=""
if [ "$(id -u)" -eq 0 ] && [ -z "$prefix" ]; then
    if ! id mcp >/dev/null 2>&1; then
        useradd --system --home-dir "$data_dir" --no-create-home --shell /usr/sbin/nologin mcp
        said "created the system user mcp"
        changes=$((changes + 1))
    fi
    owner="mcp:mcp"
fi
for dir in "$data_dir" "$data_dir/agents" "$data_dir/tenants" "$data_dir/exports" "$data_dir/cache"; do
    if [ ! -d "$dir" ]; then
        mkdir -p "$dir"
        chmod 0750 "$dir"
        said "created $dir"
        changes=$((changes + 1))
    fi
    if [ -n "$owner" ] && [ "$(stat -c %U:%G "$dir")" != "$owner" ]; then
        chown "$owner" "$dir"
        changes=$((changes + 1))
    fi
done

if [ -z "$prefix" ] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl enable mcp.service >/dev/null
fi

echo
if [ "$changes" -eq 0 ]; then
    said "nothing to change: the installation is as this version ships it"
else
    said "$changes change(s)"
fi
for pending in "$etc_dir/mcp.toml.new" "$etc_dir/mcp.env.new"; do
    [ -f "$pending" ] && said "waiting for you: $pending (merge it into ${pending%.new}, then remove it)"
done
cat <<EOF
  binary   $bin_dir/mcp
  config   $etc_dir/mcp.toml  (check it: $bin_dir/mcp --config $etc_dir/mcp.toml config check)
  secrets  $etc_dir/mcp.env   (database and Redis URLs with passwords go here)
  data     $data_dir
  unit     $unit  (MemoryMax=$memory_max, TasksMax=$tasks_max)
Next: start it (systemctl start mcp); its first start prints the admin tokens
once to the journal (journalctl -u mcp | grep -A1 'shown once'); then put a
TLS proxy in front of $listen (docs/deployment.md, "Production").
EOF
