"""One table over models from their `genspot explain-eval --localise` results.

    python scripts/localise_summary.py docs/results/localise/*/localise.json > summary.md

A row per model and method (baselines included), with the pointing game and pixel ROC-AUC and
their intervals, the mass inside and the top-k IoU; the method each model stores as its default
is marked.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(paths: list[str]) -> None:
    print("| model | method | n | pointing game | pixel ROC-AUC | mass inside | top-k IoU | x predict |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for p in paths:
        r = json.loads(Path(p).read_text())
        name = Path(p).parent.name
        best = (r.get("best") or {}).get("method")
        for m, row in r["methods"].items():
            cell = lambda k: f"{row[k]['mean']:.3f} [{row[k]['ci'][0]:.3f}, {row[k]['ci'][1]:.3f}]"  # noqa: E731
            ratio = "" if row["baseline"] else f"{row['latency_ratio']:.1f}"
            label = f"**{m}** (default)" if m == best else m
            print(f"| {name} | {label} | {row['n']} | {cell('pointing_game')} | {cell('pixel_auc')} | "
                  f"{row['mass_inside']['mean']:.3f} | {row['topk_iou']['mean']:.3f} | {ratio} |")
        for m, why in r["not_applicable"].items():
            print(f"| {name} | {m} | - | not applicable: {why} | | | | |")


if __name__ == "__main__":
    main(sys.argv[1:])
