#!/usr/bin/env bash
# Rewrites the ICANN section of the public suffix list in the three SDKs
# (sdk/src/public_suffixes.rs, sdk/python/mcp_agent/__init__.py,
# sdk/js/mcp_agent.js), from Debian's `publicsuffix` package (apt-get
# install publicsuffix). The shipped line was made from publicsuffix
# 20230209.2326-1.
# Usage: bash models/train/public_suffixes.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
psl=/usr/share/publicsuffix/public_suffix_list.dat
if [ ! -f "$psl" ]; then
    echo "public_suffixes.sh: $psl is missing: apt-get install publicsuffix" >&2
    exit 1
fi
line="$(python3 models/train/public_suffixes.py "$psl")"
sed -i "s/^pub const ICANN_SUFFIXES: &str = \"[^\"]*\";/pub const ICANN_SUFFIXES: \&str = \"$line\";/" sdk/src/public_suffixes.rs
sed -i "s/^PUBLIC_SUFFIXES = \"[^\"]*\"/PUBLIC_SUFFIXES = \"$line\"/" sdk/python/mcp_agent/__init__.py
sed -i "s/^const PUBLIC_SUFFIXES = \"[^\"]*\";/const PUBLIC_SUFFIXES = \"$line\";/" sdk/js/mcp_agent.js
echo "public_suffixes.sh: wrote $(tr ',' '\n' <<<"$line" | wc -l) rules into the three SDKs"
