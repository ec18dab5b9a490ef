"""`unflat bench`: run the benchmark scripts of a source checkout (benchmarks/bench_*.py).

Each script prints one JSON line and appends it to benchmarks/results/history.json, from which BENCHMARKS.md is
regenerated (see benchmarks/common.py and benchmarks/write_benchmarks_md.py).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from unflat.errors import UserError

BENCHMARK_DIR = Path(__file__).resolve().parents[2] / "benchmarks"


def available() -> dict[str, Path]:
    if not BENCHMARK_DIR.is_dir():
        return {}
    return {p.stem.removeprefix("bench_"): p for p in sorted(BENCHMARK_DIR.glob("bench_*.py"))}


def main(args: list[str]) -> int:
    scripts = available()
    if not args or args[0] in ("-h", "--help"):
        print("usage: unflat bench NAME [script options]   (unflat bench NAME --help for a script's options)\n")
        if not scripts:
            print(f"no benchmarks found: they ship with the source checkout ({BENCHMARK_DIR})")
        for name, path in scripts.items():
            doc = path.read_text().split('"""')[1].strip().splitlines()[0] if '"""' in path.read_text() else ""
            print(f"  {name:<14} {doc}")
        return 0
    if args[0] not in scripts:
        raise UserError(f"no benchmark '{args[0]}' (available: {', '.join(scripts) or 'none; use a source checkout'})")
    return subprocess.call([sys.executable, str(scripts[args[0]]), *args[1:]])
