#!/usr/bin/env bash
# Rewrites the name tables of the three SDKs (sdk/src/names.rs and
# sdk/src/public_suffixes.rs, sdk/python/mcp_agent/__init__.py,
# sdk/js/mcp_agent.js): the character-pair costs of the DGA score
# (name_bigrams.py) and the ICANN section of the public suffix list
# (public_suffixes.py). The word lists come from npm at pinned versions (npm
# checks their integrity against the registry); the public suffix list from
# Debian's `publicsuffix` package (apt-get install publicsuffix). The shipped
# table was made from top-sites 1.1.222, an-array-of-english-words 2.0.0 and
# Debian's publicsuffix 20230209.2326-1.
# Usage: bash models/train/name_bigrams.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
psl=/usr/share/publicsuffix/public_suffix_list.dat
if [ ! -f "$psl" ]; then
    echo "name_bigrams.sh: $psl is missing: apt-get install publicsuffix" >&2
    exit 1
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent top-sites@1.1.222 an-array-of-english-words@2.0.0 >/dev/null)
for package in "$work"/*.tgz; do
    mkdir -p "${package%.tgz}"
    tar xzf "$package" -C "${package%.tgz}"
done
table="$(python3 models/train/name_bigrams.py \
    "$work"/an-array-of-english-words-2.0.0/package/index.json \
    "$work"/top-sites-1.1.222/package/top-sites.json "$psl")"
sed -i "s/^pub const PAIR_COSTS: &str = \"[0-9a-f]*\";/pub const PAIR_COSTS: \&str = \"$table\";/" sdk/src/names.rs
sed -i "s/^NAME_PAIR_COSTS = \"[0-9a-f]*\"/NAME_PAIR_COSTS = \"$table\"/" sdk/python/mcp_agent/__init__.py
sed -i "s/^const NAME_PAIR_COSTS = \"[0-9a-f]*\";/const NAME_PAIR_COSTS = \"$table\";/" sdk/js/mcp_agent.js
suffixes="$(python3 models/train/public_suffixes.py "$psl")"
sed -i "s/^pub const ICANN_SUFFIXES: &str = \"[^\"]*\";/pub const ICANN_SUFFIXES: \&str = \"$suffixes\";/" sdk/src/public_suffixes.rs
sed -i "s/^PUBLIC_SUFFIXES = \"[^\"]*\"/PUBLIC_SUFFIXES = \"$suffixes\"/" sdk/python/mcp_agent/__init__.py
sed -i "s/^const PUBLIC_SUFFIXES = \"[^\"]*\";/const PUBLIC_SUFFIXES = \"$suffixes\";/" sdk/js/mcp_agent.js
echo "name_bigrams.sh: wrote a table of ${#table} hex digits and $(tr ',' '\n' <<<"$suffixes" | wc -l) public suffix rules into the three SDKs"
