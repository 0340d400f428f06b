"""Which validation images each model gets wrong, which mistakes they share, and whether one beats another.

    python scripts/paired_errors.py MODEL MODEL [MODEL...] --data ../shared/data/cifake-train.zip [--by-class] [--montage PNG]

Models are scored on the same images (the first model's validation split; all must share it).
Prints each model's mistakes, the mistakes each pair shares, and for each pair the exact
McNemar test: of the images exactly one of the two gets wrong, how lopsided the split is.

    --by-class      also the mistakes per CIFAR-10 class (from CIFAKE's file names) and true label
    --montage PNG   a picture of the images every model gets wrong, each with its label and p_fake
"""

from __future__ import annotations

import argparse
import re
from itertools import combinations
from math import comb

import numpy as np
import torch

from genspot.data.sources import LABELS


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: b and c are the two kinds of discordant pairs."""
    n, k = b + c, min(b, c)
    if n == 0:
        return 1.0
    return min(1.0, 2 * sum(comb(n, i) for i in range(k + 1)) / 2**n)


CIFAR10 = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def cifar_class(path: str) -> str:
    """CIFAKE names its files `N.jpg` (class 1) or `N (k).jpg` (class k, 1-based)."""
    m = re.search(r"\((\d+)\)\.\w+$", path)
    k = int(m.group(1)) if m else 1
    return CIFAR10[k - 1] if 1 <= k <= len(CIFAR10) else f"class {k}"


def by_class_table(paths: list[str], labels: np.ndarray, wrong: np.ndarray) -> list[str]:
    """Markdown rows: per class, the mistakes on REAL and on FAKE images out of how many."""
    classes = np.array([cifar_class(p) for p in paths])
    rows = [f"| class | {LABELS[0]} wrong | {LABELS[1]} wrong |", "|---|---:|---:|"]
    for c in sorted(set(classes.tolist()), key=lambda c: CIFAR10.index(c) if c in CIFAR10 else 99):
        cells = []
        for y in (0, 1):
            m = (classes == c) & (labels == y)
            cells.append(f"{int((wrong & m).sum())} / {int(m.sum())}")
        rows.append(f"| {c} | {cells[0]} | {cells[1]} |")
    return rows


def save_montage(out: str, images: np.ndarray, captions: list[str], cols: int = 12) -> None:
    """Images (N, 3, H, W) uint8, drawn with nearest-neighbour interpolation so the pixels stay visible."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = max(1, -(-len(images) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.1, rows * 1.3), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, cap in zip(axes.flat, images, captions):
        ax.imshow(img.transpose(1, 2, 0), interpolation="nearest")
        ax.set_title(cap, fontsize=6)
    fig.tight_layout()
    fig.savefig(out, dpi=150)
    plt.close(fig)


def on_one_split(names: list[str], data: str):
    """(name, model, config, the data as it reads it, validation indices, split description) per
    model, loaded one at a time, each with the data decoded at its own input size and policy;
    stops with an error if a model's validation split is not the first one's."""
    from genspot.data import load_dataset
    from genspot.evaluate import select_indices
    from genspot.models.io import load_model_dir

    first, decoded = None, {}
    for name in names:
        model, cfg = load_model_dir(name)
        key = (cfg.input_size, cfg.input_policy)
        if key not in decoded:
            decoded[key] = load_dataset(data, size=key[0], policy=key[1], progress=False)
        ds = decoded[key]
        idx, desc = select_indices(ds, cfg, "val")
        if first is not None and not np.array_equal(idx, first):
            raise SystemExit(f"error: {name} has another validation split than {names[0]}")
        first = idx
        yield name, model, cfg, ds, idx, desc


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+")
    ap.add_argument("--data", required=True)
    ap.add_argument("--by-class", action="store_true", help="mistakes per CIFAR-10 class and label")
    ap.add_argument("--montage", metavar="PNG", help="save the images every model gets wrong")
    args = ap.parse_args()
    if len(args.models) < 2 and not (args.by_class or args.montage):
        ap.error("give at least two models (one is enough with --by-class or --montage)")

    from genspot.evaluate import predict_scores

    scores, idx0 = {}, None
    for name, model, cfg, ds, idx0, desc in on_one_split(args.models, args.data):
        scores[name] = predict_scores(model, cfg, ds, idx0)
        print(f"{name}: scored {len(idx0):,} images ({desc})")
    labels = ds.labels[torch.as_tensor(idx0)].numpy()
    wrong = {name: (p >= 0.5) != (labels == 1) for name, p in scores.items()}
    for name in args.models:
        print(f"{name}: {int(wrong[name].sum())} wrong of {len(idx0):,}")
    for a, b in combinations(args.models, 2):
        wa, wb = wrong[a], wrong[b]
        only_a, only_b = int((wa & ~wb).sum()), int((~wa & wb).sum())
        print(f"{a} vs {b}: both wrong {int((wa & wb).sum())}, only {a} {only_a}, only {b} {only_b}, "
              f"exact McNemar p = {mcnemar_exact(only_a, only_b):.3f}")
    paths = [ds.paths[i] for i in idx0]
    if args.by_class:
        for name in args.models:
            print(f"\n{name}: mistakes per class\n" + "\n".join(by_class_table(paths, labels, wrong[name])))
    every = np.logical_and.reduce([wrong[m] for m in args.models])
    last = args.models[-1]
    # How sure the last model is when wrong: near 0.5 is a close call, near 0 or 1 a confident miss.
    miss_conf = np.abs(scores[last][every] - 0.5) * 2
    print(f"\nwrong for every model: {int(every.sum())}; {last} sure of the wrong answer "
          f"(p_fake beyond 0.9 or below 0.1): {int((miss_conf >= 0.8).sum())}, "
          f"close calls (0.4-0.6): {int((miss_conf <= 0.2).sum())}")
    if args.by_class and len(args.models) > 1:
        print("\n".join(by_class_table(paths, labels, every)))
    if args.montage:
        sel = np.flatnonzero(every)
        caps = [f"{LABELS[labels[i]]} {cifar_class(paths[i])}\np_fake {scores[last][i]:.2f}" for i in sel]
        save_montage(args.montage, ds.images[torch.as_tensor(idx0[sel])].numpy(), caps)
        print(f"montage of {len(sel)} images: {args.montage} (p_fake from {last})")


if __name__ == "__main__":
    from genspot.errors import GenspotError

    try:
        main()
    except GenspotError as e:  # a missing model or unreadable data: one line, not a traceback
        raise SystemExit(f"error: {e}") from None
