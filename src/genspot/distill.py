"""Knowledge distillation: training targets that mix the labels with a teacher's probabilities.

A student trained on `(1 - w) * one_hot(label) + w * p_teacher` learns which training
images the teacher (typically an ensemble) finds ambiguous, instead of being pushed to
full confidence on all of them: one network that inherits part of the ensemble's gain at a
single network's cost (Hinton et al. 2015). The teacher scores each training image once,
before the first epoch, with its own test-time augmentation and temperature; the
probabilities are cached in the run directory, keyed by the teacher's files, so a resumed
run does not score again and a changed teacher is never served stale targets.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from genspot.data import DecodedSet, Splits
from genspot.data.splits import DataSpec
from genspot.errors import GenspotError
from genspot.evaluate import predict_scores
from genspot.models.io import CONFIG_FILE, WEIGHTS_FILE, load_model_dir, resolve_model_dir, split_differences

CACHE_FILE = "teacher_targets.safetensors"


def _teacher_key(teacher: str) -> str:
    """What the cached probabilities depend on: the teacher's weights and config (TTA, temperature)."""
    d = resolve_model_dir(teacher)
    h = hashlib.sha256()
    for name in (WEIGHTS_FILE, CONFIG_FILE):
        h.update((d / name).read_bytes())
    return h.hexdigest()


def soft_targets(labels: torch.Tensor, p_fake: torch.Tensor, weight: float) -> torch.Tensor:
    """(N, 2) targets: `weight` of the teacher's [P(REAL), P(FAKE)], the rest the one-hot label."""
    one_hot = torch.nn.functional.one_hot(labels.long(), 2).float()
    teacher = torch.stack([1 - p_fake, p_fake], 1).float()
    return (1 - weight) * one_hot + weight * teacher


def teacher_targets(
    teacher: str,
    ds: DecodedSet,
    splits: Splits,
    student_data: DataSpec,
    weight: float,
    out: Path,
    device: str = "cpu",
    progress: bool = True,
) -> torch.Tensor:
    """(len(ds), 2) float targets on the CPU: soft for the training images, one-hot elsewhere."""
    model, cfg = load_model_dir(teacher)  # a clear error for a missing teacher; checked on resume too
    diff = split_differences(cfg.data, student_data)
    if diff:  # a teacher that saw the student's validation images would leak them into its targets
        raise GenspotError(f"teacher {teacher} was trained on another split ({', '.join(diff)} differ); "
                           "it may have seen this run's validation images")  # fmt: skip
    cache = out / CACHE_FILE
    idx = torch.as_tensor(np.asarray(splits.train), dtype=torch.int64)
    key = _teacher_key(teacher)
    p_fake = None
    if cache.exists():  # a resumed run: reuse, if the same teacher scored the same images
        with safe_open(str(cache), "pt") as f:
            same = (f.metadata() or {}).get("teacher") == key and torch.equal(f.get_tensor("indices"), idx)
            p_fake = f.get_tensor("p_fake") if same else None
    if p_fake is None:
        model.to(device).eval()
        with torch.inference_mode():
            p_fake = torch.from_numpy(predict_scores(model, cfg, ds, idx.numpy(), progress=progress)).float()
        # atomic: under DDP every rank scores and writes; a reader never sees half a file
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        save_file({"indices": idx, "p_fake": p_fake}, str(tmp), metadata={"teacher": key})
        os.replace(tmp, cache)
    labels = ds.labels.cpu()
    targets = torch.nn.functional.one_hot(labels.long(), 2).float()
    targets[idx] = soft_targets(labels[idx], p_fake, weight)
    return targets
