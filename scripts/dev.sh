#!/usr/bin/env bash
# Runs a justfile recipe on a fresh machine: installs `just` (from PyPI, or
# crates.io without pip) and the wasm32-wasip2 target when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

find_just() {
    if command -v just >/dev/null 2>&1; then
        command -v just
        return
    fi
    local scripts
    scripts=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null || true)
    for candidate in "$scripts/just" "$HOME/.local/bin/just" "$HOME/.cargo/bin/just"; do
        if [ -x "$candidate" ]; then
            echo "$candidate"
            return
        fi
    done
}

JUST=$(find_just)
if [ -z "$JUST" ]; then
    echo "dev.sh: installing just" >&2
    if ! python3 -m pip install --quiet --disable-pip-version-check rust-just==1.59.0; then
        cargo install --locked just
    fi
    JUST=$(find_just)
fi
if [ -z "$JUST" ]; then
    echo "dev.sh: could not install just; install it (pip install rust-just, or cargo install just) and run 'just $*'" >&2
    exit 1
fi

if ! rustup target list --installed | grep -qx wasm32-wasip2; then
    rustup target add wasm32-wasip2
fi

exec "$JUST" "$@"
