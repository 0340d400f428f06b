"""How a model's accuracy degrades under re-compression, resizing, blur, noise, crops and flips.

Each perturbation of `data.perturb.SUITE` is applied on the fly to the decoded evaluation images
(never written back); the perturbed batch goes through the same scorer as `evaluate`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genspot.data import load_dataset
from genspot.data.batches import normalize, scoring_batch
from genspot.data.perturb import SUITE, Perturbation
from genspot.errors import GenspotError
from genspot.evaluate import classification_metrics, select_indices
from genspot.models.io import load_model_dir
from genspot.models.spec import ModelSpec
from genspot.models.tta import predict_logits
from genspot.progress import progress_bar


@torch.inference_mode()
def _scores(model, spec: ModelSpec, images: torch.Tensor, p: Perturbation, batch_size: int) -> np.ndarray:
    out = []
    for i in range(0, len(images), batch_size):
        x = normalize(p.fn(images[i : i + batch_size]), spec.mean, spec.std)
        if spec.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        out.append(spec.p_fake(predict_logits(model, spec.tta, x)))
    return torch.cat(out).numpy()


def robustness(
    model_dirs: list[str],
    data: str | Path,
    split: str = "auto",
    n: int | None = None,
    seed: int = 0,
    batch_size: int | None = None,  # None: scoring_batch(the model's input size)
    perturbations: list[str] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Accuracy and ROC-AUC of each model under each perturbation; one dict, ready for JSON."""
    suite = [p for p in SUITE if perturbations is None or p.name in perturbations or p.family in perturbations]
    if perturbations and len(suite) <= 0:
        raise GenspotError(f"no such perturbation: {', '.join(perturbations)}; see `genspot robustness --help`")
    if suite[0].family != "clean":
        suite = [SUITE[0]] + suite  # the clean row is always the reference
    ds = None
    models = []
    for md in model_dirs:
        model, cfg = load_model_dir(md)
        if ds is None:
            ds = load_dataset(data, size=cfg.input_size, policy=cfg.input_policy, progress=progress)
        idx, desc = select_indices(ds, cfg, split)
        if n is not None and n < len(idx):
            idx = np.sort(np.random.default_rng(seed).choice(idx, n, replace=False))
        images = ds.images[torch.as_tensor(idx)]
        y = ds.labels.numpy()[idx]
        rows = []
        with progress_bar(f"robustness {cfg.name or Path(md).name}", total=len(suite), unit="perturbation",
                          enabled=progress) as bar:  # fmt: skip
            for p in suite:
                t0 = time.perf_counter()
                m = classification_metrics(y, _scores(model, cfg, images, p, batch_size or scoring_batch(cfg.input_size)), seed=seed)
                rows.append({"perturbation": p.name, "family": p.family, "strength": p.strength, "level": p.level,
                             "accuracy": m["accuracy"], "accuracy_ci95": m["accuracy_ci95"], "roc_auc": m["roc_auc"],
                             "f1": m["f1"], "seconds": round(time.perf_counter() - t0, 2)})  # fmt: skip
                bar.advance(1)
        clean = rows[0]["accuracy"]
        for r in rows:
            r["drop_pt"] = round(100 * (clean - r["accuracy"]), 2)
        models.append({"model": cfg.model, "name": cfg.name or Path(md).name, "model_dir": str(md),
                       "split": desc, "n": int(len(idx)), "rows": rows})  # fmt: skip
    return {"data": str(data), "seed": seed, "models": models}
