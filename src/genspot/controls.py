"""Controls for detectors trained on aligned pairs: did the model learn the generator, or the
processing that came with it?

- `auc_ci`: ROC-AUC with a bootstrap interval. For the `identity` probe (a photo only decoded and
  re-encoded) against its own photos it must stay near 0.5: a re-encode is not a generator.
- `hard_negative_rates`: real photos blurred, resampled down and up, or re-compressed on their
  own, at the strengths training used as REAL hard negatives (data.pairs.AlignedAugment); the
  share called FAKE must stay low, or softness has become the cue.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from genspot.data import perturb
from genspot.data.batches import normalize
from genspot.data.pairs import AlignedAugment
from genspot.models.spec import ModelSpec
from genspot.models.tta import predict_logits


def auc(y: np.ndarray, p: np.ndarray) -> float:
    """ROC-AUC as the Mann-Whitney statistic (ties count one half)."""
    y, p = np.asarray(y), np.asarray(p, dtype=np.float64)
    n1, n0 = int((y == 1).sum()), int((y == 0).sum())
    s = np.sort(p)
    r = (np.searchsorted(s, p, "left") + np.searchsorted(s, p, "right") + 1) / 2  # average ranks, 1-based
    return float((r[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def auc_ci(y: np.ndarray, p: np.ndarray, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float, float]:
    """(AUC, low, high): a percentile bootstrap that resamples each class on its own."""
    y, p = np.asarray(y), np.asarray(p, dtype=np.float64)
    pos, neg = p[y == 1], p[y == 0]
    rng = np.random.default_rng(seed)
    stats = []
    yy = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    for _ in range(n_boot):
        stats.append(auc(yy, np.r_[pos[rng.integers(0, len(pos), len(pos))], neg[rng.integers(0, len(neg), len(neg))]]))
    a = (1 - level) / 2
    return auc(y, p), float(np.quantile(stats, a)), float(np.quantile(stats, 1 - a))


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion k / n (sound at 0 and at small n, unlike the normal one)."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return float(max(0.0, c - h)), float(min(1.0, c + h))


@torch.inference_mode()
def score_u8(model: torch.nn.Module, spec: ModelSpec, images: np.ndarray | torch.Tensor, batch_size: int = 64) -> np.ndarray:
    """Calibrated P(FAKE) of uint8 (N, 3, S, S) images that are already the model's input."""
    x = torch.as_tensor(images)
    device = next(model.parameters()).device
    out = [predict_logits(model, spec.tta, normalize(x[i : i + batch_size], spec.mean, spec.std).to(device)).float().cpu()
           for i in range(0, len(x), batch_size)]  # fmt: skip
    return spec.p_fake(torch.cat(out)).numpy() if out else np.zeros(0)


def hard_negatives(images: torch.Tensor, seed: int = 0, cfg: AlignedAugment = AlignedAugment()) -> dict[str, torch.Tensor]:
    """Each real photo blurred, resampled and re-compressed, each at a seeded strength drawn from
    the training ranges."""
    g = np.random.default_rng(seed)
    n = len(images)
    sig = g.uniform(*cfg.blur_sigma, n)
    fac = g.uniform(*cfg.hard_rescale, n)
    q = g.integers(cfg.hard_jpeg[0], cfg.hard_jpeg[1] + 1, n)
    one = lambda i: images[i : i + 1]  # noqa: E731
    return {
        "blur": torch.cat([perturb.blur(one(i), float(sig[i])) for i in range(n)]),
        "rescale": torch.cat([perturb.down_up(one(i), float(fac[i])) for i in range(n)]),
        "jpeg": torch.cat([perturb.jpeg(one(i), int(q[i])) for i in range(n)]),
    }


def hard_negative_rates(model: torch.nn.Module, spec: ModelSpec, reals: np.ndarray | torch.Tensor, seed: int = 0) -> dict[str, Any]:
    """The share of real photos called FAKE (at the model's threshold) after each hard-negative
    processing, with Wilson intervals, and pooled over the three."""
    cut = spec.fake_threshold
    out: dict[str, Any] = {}
    k_all = n_all = 0
    for name, x in hard_negatives(torch.as_tensor(reals), seed).items():
        k = int((score_u8(model, spec, x) >= cut).sum())
        out[name] = {"n": len(x), "called_fake": k / len(x), "ci95": list(wilson(k, len(x)))}
        k_all, n_all = k_all + k, n_all + len(x)
    out["all"] = {"n": n_all, "called_fake": k_all / max(1, n_all), "ci95": list(wilson(k_all, n_all))}
    return out
