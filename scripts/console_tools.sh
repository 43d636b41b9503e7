#!/usr/bin/env bash
# What the console's browser test needs beside the workspace: Chromium and
# its WebDriver from Debian's packages, and the HTML validator pinned by
# tests/console/package-lock.json, installed into target/console-tools
# (again only when the lock changes). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v chromedriver >/dev/null || ! command -v chromium >/dev/null; then
    echo "console_tools.sh: installing chromium and chromium-driver from Debian" >&2
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq chromium chromium-driver fonts-dejavu-core >/dev/null
fi

tools=target/console-tools
if ! cmp -s tests/console/package-lock.json "$tools/package-lock.json" || [ ! -x "$tools/node_modules/.bin/html-validate" ]; then
    echo "console_tools.sh: installing the HTML validator (npm ci)" >&2
    mkdir -p "$tools"
    cp tests/console/package.json tests/console/package-lock.json tests/console/.htmlvalidate.json "$tools/"
    npm ci --prefix "$tools" --no-audit --no-fund --loglevel=error >/dev/null
fi
cp tests/console/.htmlvalidate.json "$tools/"
