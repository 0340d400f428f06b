"""fp32 vs bf16 scoring of a model directory: speed and agreement, on its validation split.

    python benchmarks/bench_precision.py [--model default] [--data ../shared/data/cifake-train.zip]
                                         [--limit 0] [--repeats 3]

Scores the same already-decoded images with `Detector.load(model, precision=...)` for fp32 and
bf16 (model alone, batches of 256, config's TTA and temperature), alternating the two `--repeats`
times and quoting the median rate of each and their ratio. Then what bf16 changes: accuracy of
each, labels that flip, and the largest change of p_fake. bf16 pays only on CPUs with bf16
units (AVX512-BF16 / AMX); elsewhere it can be slower than fp32.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="default")
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cifake-train.zip"))
    ap.add_argument("--limit", type=int, default=0, help="first N validation images (0: all)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    from genspot.data import load_dataset
    from genspot.evaluate import select_indices
    from genspot.predict import Detector

    base = Detector.load(args.model)  # one model, scored both ways
    dets = {"fp32": base, "bf16": Detector(base.model, base.spec, base.name, base.device, precision="bf16")}
    ds = load_dataset(args.data, progress=False)
    idx, desc = select_indices(ds, dets["fp32"].spec, "val")
    idx = idx[: args.limit] if args.limit else idx
    x = ds.images[torch.as_tensor(idx)]
    y = ds.labels[torch.as_tensor(idx)].numpy()
    rates: dict[str, list[float]] = {p: [] for p in dets}
    scores: dict[str, np.ndarray] = {}
    for _ in range(args.repeats):
        for p, det in dets.items():
            t = time.perf_counter()
            scores[p] = np.concatenate([det.p_fake(x[i : i + 256]) for i in range(0, len(x), 256)])
            rates[p].append(len(x) / (time.perf_counter() - t))
    med = {p: statistics.median(r) for p, r in rates.items()}
    print(f"model {dets['fp32'].name} ({dets['fp32'].spec.model}, TTA {dets['fp32'].spec.tta}), "
          f"{len(x):,} images ({desc}), torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs")
    for p in dets:
        acc = float(((scores[p] >= 0.5) == (y == 1)).mean())
        print(f"{p}: model alone median {med[p]:7,.0f} img/s over {args.repeats} runs; accuracy {100 * acc:.2f}%")
    flips = int(((scores["fp32"] >= 0.5) != (scores["bf16"] >= 0.5)).sum())
    print(f"bf16 / fp32 speed: {med['bf16'] / med['fp32']:.2f}x; labels that differ: {flips} of {len(x):,}; "
          f"largest |change of p_fake|: {float(np.abs(scores['fp32'] - scores['bf16']).max()):.4f}")


if __name__ == "__main__":
    main()
