"""How far do simple, hand-made features get? A linear floor under the trained detectors.

    python scripts/feature_baselines.py --data ../shared/data/faces256-train.zip --image-size 256 [--json FILE]

Each feature set feeds an L2-regularised logistic regression (fixed strength, nothing tuned)
trained on the seeded training split and scored on the validation split that `genspot train`
carves with the same --seed / --val-fraction, so its accuracy sits beside the models' on the
same images:

- thumbnail: the image resized to 16x16 (colour and layout: content, not traces)
- colour histogram: 32 bins per channel
- spectrum: the azimuthally averaged log power spectrum of the grey image (Durall et al.,
  CVPR 2020: up-sampling layers leave a high-frequency signature it reads)
- NPR residual: mean |x - nearest-up(nearest-down(x))| and its spread per channel, the signal
  `npr` (Tan et al., CVPR 2024) is built on

If the spectrum and the residual stay at chance while the thumbnail does better, the pixel-level
traces are gone from the data and what separates the classes is content.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
import torch.nn.functional as F

from genspot.data import load_dataset, make_splits
from genspot.evaluate import bootstrap_ci
from genspot.models.npr import npr_residual
from stack_members import fit_logistic  # the scripts folder is on the path when this runs as a script


def thumbnail(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=(16, 16), mode="area").flatten(1)


def colour_histogram(x: torch.Tensor) -> torch.Tensor:
    bins = (x * 32).clamp(max=31).long()  # x in [0, 1]
    return torch.stack([torch.stack([torch.bincount(b[c].flatten(), minlength=32) for c in range(3)]).flatten()
                        for b in bins]).float() / (x.shape[-1] * x.shape[-2])  # fmt: skip


def spectrum(x: torch.Tensor) -> torch.Tensor:
    g = x.mean(1)
    g = g - g.mean((1, 2), keepdim=True)
    p = torch.log(torch.fft.fftshift(torch.fft.fft2(g), dim=(-2, -1)).abs() ** 2 + 1e-8)
    h, w = g.shape[-2:]
    yy, xx = torch.meshgrid(torch.arange(h) - h // 2, torch.arange(w) - w // 2, indexing="ij")
    r = torch.sqrt((yy**2 + xx**2).float()).long().flatten()
    n = min(h, w) // 2
    counts = torch.bincount(r, minlength=r.max() + 1).float()
    prof = torch.stack([torch.bincount(r, weights=pi.flatten(), minlength=r.max() + 1) for pi in p]) / counts
    return prof[:, :n]


def npr_residual_stats(x: torch.Tensor) -> torch.Tensor:
    d = npr_residual(x)
    return torch.cat([d.abs().mean((2, 3)), d.std((2, 3))], 1)


FEATURES = {"thumbnail 16x16": thumbnail, "colour histogram": colour_histogram, "spectrum": spectrum, "NPR residual": npr_residual_stats}


def features(images: torch.Tensor, fn, batch: int = 256) -> torch.Tensor:
    return torch.cat([fn(images[i : i + batch].float() / 255) for i in range(0, len(images), batch)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--policy", default=None, help="resize | crop (default: as genspot train picks for the size)")
    ap.add_argument("--val-fraction", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=0, help="the split seed (genspot train --split-seed, default 0)")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--json", default=None, help="also write the results here")
    a = ap.parse_args()
    policy = a.policy or ("resize" if a.image_size == 32 else "crop")
    ds = load_dataset(a.data, size=a.image_size, policy=policy, progress=False)
    s = make_splits(ds, "full", seed=a.seed, val_fraction=a.val_fraction, limit=a.limit)
    y = ds.labels
    rows = []
    print(f"{a.data}: train {len(s.train):,} / val {len(s.val):,} images at {a.image_size} px ({policy})")
    print(f"{'features':<18} {'dims':>5}  validation accuracy [95% CI]")
    for name, fn in FEATURES.items():
        torch.manual_seed(0)
        xtr, xva = features(ds.images[s.train], fn), features(ds.images[s.val], fn)
        mu, sd = xtr.mean(0), xtr.std(0).clamp(min=1e-6)  # standardised, so one penalty suits every feature
        w = fit_logistic(((xtr - mu) / sd).numpy(), y[s.train].numpy().astype(np.float64), l2=0.02)
        correct = ((((xva - mu) / sd).numpy() @ w[:-1] + w[-1] > 0) == (y[s.val].numpy() == 1))
        lo, hi = bootstrap_ci(correct)
        rows.append({"features": name, "dims": int(xtr.shape[1]), "accuracy": float(correct.mean()), "accuracy_ci95": [lo, hi]})
        print(f"{name:<18} {xtr.shape[1]:>5}  {100 * correct.mean():.2f}% [{100 * lo:.2f}, {100 * hi:.2f}]")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"data": a.data, "image_size": a.image_size, "policy": policy, "val_fraction": a.val_fraction,
                       "seed": a.seed, "n_train": len(s.train), "n_val": len(s.val), "results": rows}, f, indent=2)  # fmt: skip


if __name__ == "__main__":
    main()
