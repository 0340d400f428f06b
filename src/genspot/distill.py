"""Knowledge distillation: training targets that mix the labels with a teacher's probabilities.

A student trained on `(1 - w) * one_hot(label) + w * p_teacher` learns which training
images the teacher (typically an ensemble) finds ambiguous, instead of being pushed to
full confidence on all of them: one network that inherits part of the ensemble's gain at a
single network's cost (Hinton et al. 2015). The teacher scores each training image once,
before the first epoch, with its own test-time augmentation and temperature; the
probabilities are cached in the run directory so a resumed run does not score again.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from genspot.data import DecodedSet, Splits
from genspot.errors import GenspotError
from genspot.evaluate import predict_scores
from genspot.models.io import load_model_dir

CACHE_FILE = "teacher_targets.safetensors"
# a teacher must have been trained on this very split: one that saw the student's validation
# images would leak them into its training targets (`limit` too: it changes how the pool is carved)
_SAME_SPLIT = ("fingerprint", "protocol", "split_seed", "val_fraction", "limit", "source_split")


def check_teacher_split(teacher_cfg: dict, student_data: dict, teacher: str) -> None:
    tdata = teacher_cfg.get("data", {})
    diff = [k for k in _SAME_SPLIT if tdata.get(k) != student_data.get(k)]
    if diff:
        raise GenspotError(f"teacher {teacher} was trained on another split ({', '.join(diff)} differ); "
                           "it may have seen this run's validation images")  # fmt: skip


def soft_targets(labels: torch.Tensor, p_fake: torch.Tensor, weight: float) -> torch.Tensor:
    """(N, 2) targets: `weight` of the teacher's [P(REAL), P(FAKE)], the rest the one-hot label."""
    one_hot = torch.nn.functional.one_hot(labels.long(), 2).float()
    teacher = torch.stack([1 - p_fake, p_fake], 1).float()
    return (1 - weight) * one_hot + weight * teacher


def teacher_targets(
    teacher: str,
    ds: DecodedSet,
    splits: Splits,
    student_data: dict,
    weight: float,
    out: Path,
    device: str = "cpu",
    progress: bool = True,
) -> torch.Tensor:
    """(len(ds), 2) float targets on the CPU: soft for the training images, one-hot elsewhere."""
    cache = out / CACHE_FILE
    idx = np.asarray(splits.train)
    if cache.exists():  # a resumed run: the same teacher scored the same images already
        saved = load_file(str(cache))
        if torch.equal(saved["indices"], torch.as_tensor(idx, dtype=torch.int64)):
            p_fake = saved["p_fake"]
        else:
            raise GenspotError(f"{cache} was written for other training images; remove it or use another --out")
    else:
        model, cfg = load_model_dir(teacher)
        check_teacher_split(cfg, student_data, teacher)
        model.to(device).eval()
        with torch.inference_mode():
            p_fake = torch.from_numpy(predict_scores(model, cfg, ds, idx, progress=progress)).float()
        # atomic: under DDP every rank scores and writes; a reader never sees half a file
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        save_file({"indices": torch.as_tensor(idx, dtype=torch.int64), "p_fake": p_fake}, str(tmp))
        os.replace(tmp, cache)
    labels = ds.labels.cpu()
    targets = torch.nn.functional.one_hot(labels.long(), 2).float()
    targets[torch.as_tensor(idx, dtype=torch.int64)] = soft_targets(labels[idx], p_fake, weight)
    return targets
