"""How long the `genspot` command takes to start: `--help` and a subcommand's `--help`.

    python benchmarks/bench_startup.py [--repeats 7]

Target (issue 24): each under 1 s on this project's 2-core machine. A cold start after
installing compiles bytecode once, so the first run is dropped. Also prints `genspot models`,
which imports torch and timm, as the cost of a command that needs them. Prints medians.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def timed(args: list[str], repeats: int) -> list[float]:
    cmd = [sys.executable, "-m", "genspot.cli", *args]
    subprocess.run(cmd, capture_output=True, check=True)  # warm: bytecode, page cache
    runs = []
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        runs.append(time.perf_counter() - t)
    return runs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    for label, argv, target in (("genspot --help", ["--help"], 1.0), ("genspot data info --help", ["data", "info", "--help"], 1.0),
                                ("genspot predict --help", ["predict", "--help"], 1.0), ("genspot models", ["models"], None)):  # fmt: skip
        runs = timed(argv, args.repeats)
        med = statistics.median(runs)
        verdict = "" if target is None else ("  (target < 1 s: met)" if med < target else "  (target < 1 s: MISSED)")
        print(f"{label:28s} median {med:.2f} s  runs {[round(x, 2) for x in runs]}{verdict}")


if __name__ == "__main__":
    main()
