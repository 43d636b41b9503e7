"""Derives the character-pair costs that the SDKs' DGA score reads.

A name that a program generated ("xkqzvbrtplmnw") is made of letter pairs
that real names rarely use; a real one ("jwplatform", "3gppnetwork") mostly
is not, even when few of its letters are vowels. The cost of a pair is its
surprise, -log2 P(next symbol | symbol), measured on real names: the labels
of the 500 most linked sites (npm `top-sites`) and of the public suffix list,
counted ten times each because they are what the score judges, and 275,000
English words (npm `an-array-of-english-words`) for the pairs those rarely
show. Every pair is counted once more than seen, so none is impossible.

Symbols: `^` (the label's start and end), a-z, `0` (any digit: version and
region numbers are not what makes a name generated), `-`, and `_` (anything
else). Costs are in sixteenths of a bit, clamped to 255, written as two hex
digits per pair in row-major order: integers, so that the Rust, Python and
JavaScript SDKs add the same numbers and reach the same verdict.

Usage: python name_bigrams.py WORDS.json TOP_SITES.json PUBLIC_SUFFIX_LIST.dat
       (prints the table; name_bigrams.sh fetches the inputs and writes it
       into the three SDKs)
"""

import json
import math
import re
import sys

SYMBOLS = "^abcdefghijklmnopqrstuvwxyz0-_"
DOMAIN_WEIGHT = 10
UNITS_PER_BIT = 16


def symbol(char):
    if char.isdigit():
        return SYMBOLS.index("0")
    if char in SYMBOLS[1:]:
        return SYMBOLS.index(char)
    return SYMBOLS.index("_")


def pairs(label):
    codes = [0] + [symbol(c) for c in label] + [0]
    return zip(codes, codes[1:])


def domain_labels(top_sites, suffix_list):
    labels = []
    for site in top_sites:
        labels += site["rootDomain"].lower().split(".")[:-1]
    for line in suffix_list:
        line = line.strip()
        if not line or line.startswith("//"):
            continue
        labels += [l for l in line.lstrip("*.!").split(".") if re.fullmatch(r"[a-z0-9-]+", l)]
    return [l for l in labels if l != "www"]


def costs(words, labels):
    n = len(SYMBOLS)
    counts = [[1] * n for _ in range(n)]
    for word in words:
        for a, b in pairs(word.lower()):
            counts[a][b] += 1
    for label in labels:
        for a, b in pairs(label):
            counts[a][b] += DOMAIN_WEIGHT
    table = []
    for row in counts:
        total = sum(row)
        table.append([min(255, round(-math.log2(c / total) * UNITS_PER_BIT)) for c in row])
    return table


def main():
    words_path, sites_path, psl_path = sys.argv[1:4]
    with open(words_path) as f:
        words = json.load(f)
    with open(sites_path) as f:
        sites = json.load(f)
    with open(psl_path, encoding="utf-8") as f:
        labels = domain_labels(sites, f)
    table = costs(words, labels)
    print("".join(f"{cost:02x}" for row in table for cost in row))


if __name__ == "__main__":
    main()
