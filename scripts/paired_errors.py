"""Which validation images each model gets wrong, which mistakes they share, and whether one beats another.

    python scripts/paired_errors.py MODEL MODEL [MODEL...] --data ../shared/data/cifake-train.zip

Models are scored on the same images (the first model's validation split; all must share it).
Prints each model's mistakes, the mistakes each pair shares, and for each pair the exact
McNemar test: of the images exactly one of the two gets wrong, how lopsided the split is.
"""

from __future__ import annotations

import argparse
from itertools import combinations
from math import comb

import numpy as np
import torch


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: b and c are the two kinds of discordant pairs."""
    n, k = b + c, min(b, c)
    if n == 0:
        return 1.0
    return min(1.0, 2 * sum(comb(n, i) for i in range(k + 1)) / 2**n)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+")
    ap.add_argument("--data", required=True)
    args = ap.parse_args()
    if len(args.models) < 2:
        ap.error("give at least two models")

    from genspot.data import load_dataset
    from genspot.evaluate import predict_scores, select_indices
    from genspot.models.io import load_model_dir

    ds = load_dataset(args.data, progress=False)
    wrong, idx0 = {}, None
    for name in args.models:
        model, cfg = load_model_dir(name)
        idx, desc = select_indices(ds, cfg, "val")
        if idx0 is not None and not np.array_equal(idx, idx0):
            raise SystemExit(f"error: {name} has another validation split than {args.models[0]}")
        idx0 = idx
        p = predict_scores(model, cfg, ds, idx)
        wrong[name] = (p >= 0.5) != (ds.labels[torch.as_tensor(idx)].numpy() == 1)
        print(f"{name}: {int(wrong[name].sum())} wrong of {len(idx):,} ({desc})")
    for a, b in combinations(args.models, 2):
        wa, wb = wrong[a], wrong[b]
        only_a, only_b = int((wa & ~wb).sum()), int((~wa & wb).sum())
        print(f"{a} vs {b}: both wrong {int((wa & wb).sum())}, only {a} {only_a}, only {b} {only_b}, "
              f"exact McNemar p = {mcnemar_exact(only_a, only_b):.3f}")


if __name__ == "__main__":
    main()
