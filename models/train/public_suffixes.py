"""The ICANN section of the public suffix list, as the SDKs' `registered
domain` reads it: one comma-separated line of rules in lower case, names in
other scripts in punycode (as resolvers log them), wildcard (`*.ck`) and
exception (`!www.ck`) rules kept. The private section (`*.elb.amazonaws.com`,
`github.io`) is left out on purpose: it would make each customer's cloud
name a registered domain of its own, and a tunnel under one of them would
look like many domains.

Usage: python public_suffixes.py PUBLIC_SUFFIX_LIST.dat  (prints the line)
"""

import sys


def to_ascii(rule):
    prefix = ""
    if rule.startswith("!"):
        prefix, rule = "!", rule[1:]
    labels = []
    for label in rule.split("."):
        labels.append(label if label.isascii() else "xn--" + label.encode("punycode").decode("ascii"))
    return prefix + ".".join(labels).lower()


def icann_rules(lines):
    inside = False
    for line in lines:
        line = line.strip()
        if line == "// ===BEGIN ICANN DOMAINS===":
            inside = True
        elif line == "// ===END ICANN DOMAINS===":
            return
        elif inside and line and not line.startswith("//"):
            yield to_ascii(line.split()[0])


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        rules = sorted(set(icann_rules(f)))
    print(",".join(rules))


if __name__ == "__main__":
    main()
