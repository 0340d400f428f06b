"""Would weighting the members of an ensemble, instead of averaging them, make fewer mistakes?

    python scripts/stack_members.py MODEL MODEL [MODEL...] --data ../shared/data/cifake-train.zip [--folds 10] [--seed 0]

Every model is scored on the same validation images (all must share the first one's split),
each giving its raw logit difference z = logit(FAKE) - logit(REAL) (test-time augmentation as
its config says, no temperature). Two combiners of those z are compared, image by image:

- the mean of the z, which is what `genspot ensemble` ships (one decision: the sign);
- a logistic regression on the z (one weight per member and a bias, lightly L2-penalised),
  cross-fitted: the validation images are cut into seeded folds and every image is scored by
  weights fitted on the other folds only, so its mistakes count are an honest estimate of what
  weights fitted on validation would do on new images, not a fit to the very images scored.

Prints each member's mistakes, both combiners' mistakes with the exact McNemar test between
them, and the weights fitted on all of validation (what a weighted ensemble would ship).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paired_errors import mcnemar_exact, on_one_split  # noqa: E402


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-3, iters: int = 50) -> np.ndarray:
    """Weights (features..., bias) of an L2-penalised logistic regression, by Newton's method
    (a handful of features: the Hessian is tiny). The bias is not penalised."""
    xb = np.hstack([x, np.ones((len(x), 1))]).astype(np.float64)
    w = np.zeros(xb.shape[1])
    pen = np.full(xb.shape[1], l2 * len(x))
    pen[-1] = 0.0
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(xb @ w, -50, 50)))
        grad = xb.T @ (p - y) + pen * w
        hess = (xb * (p * (1 - p))[:, None]).T @ xb + np.diag(pen) + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    return w


def cross_fitted_scores(x: np.ndarray, y: np.ndarray, folds: int = 10, seed: int = 0, l2: float = 1e-3) -> np.ndarray:
    """Each row's logistic score from weights fitted on the other folds only (seeded folds)."""
    order = np.random.default_rng(seed).permutation(len(x))
    out = np.empty(len(x))
    for part in np.array_split(order, folds):
        rest = np.setdiff1d(order, part, assume_unique=True)
        w = fit_logistic(x[rest], y[rest], l2)
        out[part] = x[part] @ w[:-1] + w[-1]
    return out


def raw_logit_differences(model, spec, ds, idx: np.ndarray) -> np.ndarray:
    """logit(FAKE) - logit(REAL) per image, with the model's TTA and without its temperature."""
    from genspot.evaluate import predict_raw_logits

    logits, pos = predict_raw_logits(model, spec, ds, idx), spec.positive
    return (logits[:, pos] - logits[:, 1 - pos]).numpy().astype(np.float64)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+")
    ap.add_argument("--data", required=True)
    ap.add_argument("--folds", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--l2", type=float, default=1e-3, help="penalty per image on the member weights")
    args = ap.parse_args()
    if len(args.models) < 2:
        ap.error("give at least two models")

    import torch

    zs, idx0 = [], None
    for name, model, cfg, ds, idx0, desc in on_one_split(args.models, args.data):
        zs.append(raw_logit_differences(model, cfg, ds, idx0))
        print(f"{name}: scored {len(idx0):,} images ({desc})", flush=True)
    x = np.stack(zs, 1)
    y = (ds.labels[torch.as_tensor(idx0)].numpy() == 1).astype(np.float64)
    for name, z in zip(args.models, zs):
        print(f"{name}: {int(((z > 0) != (y == 1)).sum())} wrong")
    mean_wrong = (x.mean(1) > 0) != (y == 1)
    stack_wrong = (cross_fitted_scores(x, y, args.folds, args.seed, args.l2) > 0) != (y == 1)
    only_m, only_s = int((mean_wrong & ~stack_wrong).sum()), int((~mean_wrong & stack_wrong).sum())
    print(f"mean of the {len(zs)} members: {int(mean_wrong.sum())} wrong of {len(y):,}")
    print(f"weighted ({args.folds}-fold cross-fitted logistic regression): {int(stack_wrong.sum())} wrong; "
          f"only the mean wrong {only_m}, only the weighted {only_s}, exact McNemar p = {mcnemar_exact(only_m, only_s):.3f}")
    w = fit_logistic(x, y, args.l2)
    print("weights fitted on all validation images: "
          + ", ".join(f"{n} {v:.3f}" for n, v in zip(args.models, w[:-1])) + f", bias {w[-1]:.3f}")


if __name__ == "__main__":
    from genspot.errors import GenspotError

    try:
        main()
    except GenspotError as e:  # a missing model or unreadable data: one line, not a traceback
        raise SystemExit(f"error: {e}") from None
