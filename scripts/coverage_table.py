"""Line coverage per crate from cargo-llvm-cov's JSON summary, as a
Markdown table (the README's) and a total line (what CI prints)."""

import json
import sys
from collections import defaultdict
from pathlib import Path


def crate_of(path: Path, root: Path) -> str:
    """The crate a source file belongs to: the nearest folder above it with a Cargo.toml."""
    for folder in path.parents:
        if (folder / "Cargo.toml").is_file() and folder != root:
            return folder.relative_to(root).as_posix()
        if folder == root:
            break
    return "."


def main() -> None:
    summary = json.loads(Path(sys.argv[1]).read_text())
    root = Path.cwd().resolve()
    lines = defaultdict(lambda: [0, 0])
    for data in summary["data"]:
        for file in data["files"]:
            path = Path(file["filename"]).resolve()
            if root not in path.parents:
                continue
            counted = file["summary"]["lines"]
            crate = crate_of(path, root)
            lines[crate][0] += counted["covered"]
            lines[crate][1] += counted["count"]
    print("| crate | lines | covered |")
    print("|---|---:|---:|")
    for crate, (covered, count) in sorted(lines.items()):
        share = 100.0 * covered / count if count else 0.0
        print(f"| {crate} | {count} | {share:.1f} % |")
    covered = sum(c for c, _ in lines.values())
    count = sum(n for _, n in lines.values())
    print(f"\ncoverage: {covered} of {count} lines, {100.0 * covered / max(count, 1):.1f} %")


if __name__ == "__main__":
    main()
