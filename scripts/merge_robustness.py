"""One robustness table from several `genspot robustness` runs, without measuring again.

    python scripts/merge_robustness.py A/robustness.json B/robustness.json --out DIR \
        [--name OLD=NEW ...] [--order NAME,NAME,...]

Use it when a model whose robustness is already measured ships under another name (the same
weights file): its rows are the measured ones, renamed. Refused unless every run used the same
data, split, seed, sample and perturbations; a model found in several runs must have identical
rows in each (a check that the runs are comparable: same images, same perturbations). Renames
apply per file, in order (`--name` given once per input, `A.json:OLD=NEW`, or for all files).
Writes robustness.json / .md / .png like `genspot robustness`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from genspot.errors import GenspotError

_SAME = ("split", "n")


def _results(m: dict[str, Any]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in m["rows"]]  # timings differ run to run


def merge(runs: list[tuple[str, dict[str, Any]]], renames: list[tuple[str | None, str, str]],
          order: list[str] | None = None) -> dict[str, Any]:
    """Merge robustness results; renames are (file or None, old name, new name)."""
    first = runs[0][1]
    merged: dict[str, dict[str, Any]] = {}
    for path, r in runs:
        if (r["data"], r["seed"]) != (first["data"], first["seed"]):
            raise GenspotError(f"{path}: other data or seed than {runs[0][0]}")
        for m in r["models"]:
            m = dict(m)
            for f, old, new in renames:
                if (f is None or f == path) and m["name"] == old:
                    m["name"] = new
                    break
            m0 = next(iter(merged.values()), m)
            if any(m[k] != m0[k] for k in _SAME) or [x["perturbation"] for x in m["rows"]] != [x["perturbation"] for x in m0["rows"]]:
                raise GenspotError(f"{path}: {m['name']} was measured on other images or perturbations")
            if m["name"] in merged:
                if _results(merged[m["name"]]) != _results(m):
                    raise GenspotError(f"{path}: {m['name']} appears twice with different results; rename one with --name")
                continue
            merged[m["name"]] = m
    names = order or list(merged)
    missing = [n for n in names if n not in merged]
    if missing:
        raise GenspotError(f"--order names {', '.join(missing)}, which no run has (it has {', '.join(merged)})")
    return {"data": first["data"], "seed": first["seed"], "models": [merged[n] for n in names],
            "merged_from": [p for p, _ in runs]}


def _parse_rename(s: str) -> tuple[str | None, str, str]:
    left, sep, new = s.partition("=")
    f, _, old = left.rpartition(":")
    if not sep or not old or not new:
        raise GenspotError(f"--name {s}: expected OLD=NEW or FILE:OLD=NEW")
    return f or None, old, new


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", help="robustness.json files")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--name", action="append", default=[], help="OLD=NEW or FILE:OLD=NEW (that file only)")
    ap.add_argument("--order", help="comma-separated model names, in table order")
    args = ap.parse_args(argv)
    try:
        runs = []
        for p in args.runs:
            try:
                runs.append((p, json.loads(Path(p).read_text())))
            except (OSError, ValueError) as e:
                raise GenspotError(f"{p}: not a readable robustness.json ({e})") from None
        r = merge(runs, [_parse_rename(s) for s in args.name], args.order.split(",") if args.order else None)
    except GenspotError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    from genspot.report.robustness_report import robustness_markdown, robustness_plot

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "robustness.json").write_text(json.dumps(r, indent=2) + "\n")
    command = "python scripts/merge_robustness.py " + " ".join(
        args.runs + [f"--name {s}" for s in args.name] + ([f"--order {args.order}"] if args.order else []) + [f"--out {args.out}"])
    (args.out / "robustness.md").write_text(robustness_markdown(r, command))
    robustness_plot(r, args.out / "robustness.png")
    print(f"{', '.join(m['name'] for m in r['models'])} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
