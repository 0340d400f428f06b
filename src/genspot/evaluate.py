"""Evaluation of a model directory on a dataset: accuracy with a bootstrap interval,
per-class precision / recall / F1 (FAKE is the positive class), ROC-AUC, confusion matrix.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchmetrics.functional.classification import binary_auroc

from genspot.data import LABELS, DecodedSet, load_dataset
from genspot.data.splits import splits_from_config
from genspot.data.batches import Batches, scoring_batch
from genspot.errors import GenspotError
from genspot.models.io import load_model_dir
from genspot.models.spec import ModelSpec
from genspot.models.tta import predict_logits
from genspot.progress import progress_bar

SPLIT_CHOICES = ("auto", "test", "val", "train", "all")


@torch.inference_mode()
def predict_raw_logits(
    model: torch.nn.Module,
    spec: ModelSpec,
    ds: DecodedSet,
    idx: np.ndarray,
    batch_size: int | None = None,  # None: scoring_batch(input size)
    progress: bool = False,
) -> torch.Tensor:
    """(N, classes) float logits for ds.images[idx], in order: TTA applied, no temperature."""
    batch_size = batch_size or scoring_batch(spec.input_size)
    batches = Batches(
        ds.images, ds.labels, idx, batch_size=batch_size, mean=spec.mean, std=spec.std,
        channels_last=spec.channels_last,
    )  # fmt: skip
    device = next(model.parameters()).device
    out = []
    with progress_bar("scoring", total=len(idx), unit="img", enabled=progress) as bar:
        for x, _ in batches:
            out.append(predict_logits(model, spec.tta, x.to(device)).float().cpu())
            bar.advance(len(x))
    return torch.cat(out) if out else torch.zeros(0, len(spec.class_names))


def predict_scores(
    model: torch.nn.Module,
    spec: ModelSpec,
    ds: DecodedSet,
    idx: np.ndarray,
    batch_size: int | None = None,  # None: scoring_batch(input size)
    progress: bool = False,
) -> np.ndarray:
    """Calibrated P(FAKE) for ds.images[idx], in order."""
    logits = predict_raw_logits(model, spec, ds, idx, batch_size, progress)
    # contiguous, as before: callers save it (safetensors refuses a strided view)
    return spec.p_fake(logits).contiguous().numpy()


def bootstrap_ci(correct: np.ndarray, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of a 0/1 vector."""
    n = len(correct)
    if n == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    c = correct.astype(np.float32)
    means = []
    step = max(1, 2_000_000 // n)  # resample in chunks to bound memory
    for i in range(0, n_boot, step):
        k = min(step, n_boot - i)
        means.append(c[rng.integers(0, n, size=(k, n))].mean(1))
    m = np.concatenate(means)
    a = (1 - level) / 2
    return float(np.quantile(m, a)), float(np.quantile(m, 1 - a))


def roc_points(y: np.ndarray, p_fake: np.ndarray, max_points: int = 200) -> dict[str, list[float]] | None:
    """The ROC curve (FPR, TPR) at every distinct threshold, thinned to about `max_points` for plots."""
    y = np.asarray(y, dtype=np.int64)
    if len(np.unique(y)) < 2:
        return None
    order = np.argsort(-p_fake, kind="mergesort")
    ys, ps = y[order], p_fake[order]
    tps, fps = np.cumsum(ys), np.cumsum(1 - ys)
    last = np.r_[np.flatnonzero(np.diff(ps)), len(ys) - 1]  # the last index of each distinct score
    tpr = np.r_[0.0, tps[last] / tps[-1]]
    fpr = np.r_[0.0, fps[last] / fps[-1]]
    if len(fpr) > max_points:
        keep = np.unique(np.linspace(0, len(fpr) - 1, max_points).round().astype(int))
        fpr, tpr = fpr[keep], tpr[keep]
    return {"fpr": [round(float(v), 5) for v in fpr], "tpr": [round(float(v), 5) for v in tpr]}


FPR_POINTS = (0.01, 0.05)


def tpr_at_fpr(y: np.ndarray, p_fake: np.ndarray, fpr: float) -> float | None:
    """The share of fakes caught at the strictest score cut that calls at most `fpr` of these reals
    fake (ties counted as fake, so the cut sits just above the (k+1)-th highest real score)."""
    real, fake = np.sort(p_fake[y == 0].astype(np.float64))[::-1], p_fake[y == 1].astype(np.float64)
    if not len(real) or not len(fake):
        return None
    k = int(np.floor(fpr * len(real) + 1e-9))
    cut = -np.inf if k >= len(real) else np.nextafter(real[k], np.inf)
    return float((fake >= cut).mean())


def classification_metrics(y: np.ndarray, p_fake: np.ndarray, threshold: float = 0.5, seed: int = 0) -> dict[str, Any]:
    """The metrics block shared by evaluate, compare and the reports."""
    y = np.asarray(y, dtype=np.int64)
    pred = (p_fake >= threshold).astype(np.int64)
    cm = np.zeros((2, 2), dtype=np.int64)  # rows: true REAL, FAKE; columns: predicted
    np.add.at(cm, (y, pred), 1)
    per_class = {}
    for c, name in enumerate(LABELS):
        tp = cm[c, c]
        prec = tp / cm[:, c].sum() if cm[:, c].sum() else 0.0
        rec = tp / cm[c, :].sum() if cm[c, :].sum() else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        per_class[name] = {"precision": float(prec), "recall": float(rec), "f1": float(f1), "support": int(cm[c].sum())}
    correct = pred == y
    both = len(np.unique(y)) == 2
    auc = float(binary_auroc(torch.from_numpy(p_fake.astype(np.float32)), torch.from_numpy(y))) if both else None
    lo, hi = bootstrap_ci(correct, seed=seed)
    return {
        "n": int(len(y)),
        "accuracy": float(correct.mean()) if len(y) else float("nan"),
        "accuracy_ci95": [lo, hi],
        "precision": per_class["FAKE"]["precision"],
        "recall": per_class["FAKE"]["recall"],
        "f1": per_class["FAKE"]["f1"],
        "roc_auc": auc,
        # the rate of fakes caught when the cut is set on these very reals (an oracle's operating
        # point, as the field reports it; a shipped threshold is set on other photos)
        "tpr_at_fpr": {f"{f:g}": tpr_at_fpr(y, p_fake, f) for f in FPR_POINTS} if both else None,
        "confusion_matrix": cm.tolist(),
        "roc_curve": roc_points(y, p_fake) if both else None,
        "confusion_matrix_labels": {"rows": "true " + "/".join(LABELS), "columns": "predicted " + "/".join(LABELS)},
        "per_class": per_class,
        "threshold": threshold,
    }


def per_source_metrics(sources: np.ndarray, y: np.ndarray, p_fake: np.ndarray, threshold: float = 0.5) -> list[dict[str, Any]]:
    """One row per source: accuracy on its images; the share of its fakes called FAKE (detection
    rate) and of its photos called REAL; AP and ROC-AUC where it holds both classes."""
    from torchmetrics.functional.classification import binary_average_precision

    rows = []
    for src in sorted(set(sources.tolist())):
        m = sources == src
        ys, ps = y[m], p_fake[m]
        pred = (ps >= threshold).astype(np.int64)
        both = len(np.unique(ys)) == 2
        row = {"source": src, "n": int(m.sum()), "n_fake": int((ys == 1).sum()), "n_real": int((ys == 0).sum()),
               "accuracy": float((pred == ys).mean()),
               "fake_detected": float(pred[ys == 1].mean()) if (ys == 1).any() else None,
               "real_correct": float(1 - pred[ys == 0].mean()) if (ys == 0).any() else None,
               "ap": float(binary_average_precision(torch.from_numpy(ps.astype(np.float32)), torch.from_numpy(ys))) if both else None,
               "roc_auc": float(binary_auroc(torch.from_numpy(ps.astype(np.float32)), torch.from_numpy(ys))) if both else None,
               "note": None if both else f"only {'FAKE' if (ys == 1).all() else 'REAL'} images: no AP or ROC-AUC"}  # fmt: skip
        rows.append(row)
    return rows


def select_indices(ds: DecodedSet, spec: ModelSpec, split: str) -> tuple[np.ndarray, str]:
    """Which images to evaluate on, and a description of that choice.

    auto: the archive's test split if it has one; else, when this is the model's own
    training data, the held-out part of its split (study test, else validation); else all.
    'val' (and 'test' under the study protocol) rebuild the model's split from its config.
    """
    if split not in SPLIT_CHOICES:
        raise GenspotError(f"unknown split {split!r}; choose one of {', '.join(SPLIT_CHOICES)}")
    names = set(ds.splits.tolist())
    if split == "all":
        return np.arange(len(ds)), "all"
    if split in ("auto", "test") and "test" in names:
        return ds.indices("test"), "test"
    same_data = spec.data.fingerprint == ds.fingerprint
    if split in ("auto", "val", "test") and same_data:
        s = splits_from_config(ds, spec.data)
        if split in ("auto", "test") and s.test is not None:
            return s.test, f"{s.protocol}-protocol test (carved from training data, seed {s.seed})"
        if split in ("auto", "val"):
            return s.val, f"validation (seed {s.seed}, held out from training)"
    if split in ("train", "val") and split in names:
        return ds.indices(split), split
    if split == "auto":
        return np.arange(len(ds)), "all"
    have = ", ".join(sorted(names))
    why = "" if same_data else " (and this is not the data the model was trained on, so its split cannot be rebuilt)"
    raise GenspotError(f"the data has no {split} split{why}; it has: {have}")


def evaluate(
    model_dir: str | Path,
    data: str | Path,
    split: str = "auto",
    batch_size: int | None = None,  # None: scoring_batch(input size)
    progress: bool = True,
    workers: int | None = None,
    sample: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Evaluate a model directory on a zip or folder; returns the metrics dict.

    sample: score a seeded random sample of this many images of the chosen split (in their
    original order) instead of all of them."""
    model, spec = load_model_dir(model_dir)
    ds = load_dataset(data, size=spec.input_size, policy=spec.input_policy, workers=workers, progress=progress)
    idx, desc = select_indices(ds, spec, split)
    if len(idx) == 0:
        raise GenspotError(f"no images to evaluate in split {split!r}")
    if sample is not None and sample < len(idx):
        idx = np.sort(np.random.default_rng(seed).choice(idx, size=sample, replace=False))
        desc = f"{desc}; a seeded sample of {sample:,} (seed {seed})"
    t0 = time.perf_counter()
    p = predict_scores(model, spec, ds, idx, batch_size=batch_size, progress=progress)
    secs = time.perf_counter() - t0
    res = {"model": spec.model, "model_dir": str(model_dir), "data": str(data), "split": desc}
    res.update(classification_metrics(ds.labels.numpy()[idx], p, threshold=spec.fake_threshold))
    res["per_source"] = per_source_metrics(ds.sources[idx], ds.labels.numpy()[idx], p, threshold=spec.fake_threshold)
    res["images_per_second"] = round(len(idx) / secs, 1) if secs > 0 else None
    res["skipped"] = len(ds.skipped)
    return res
