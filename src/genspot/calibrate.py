"""Temperature scaling (Guo et al. 2017): one scalar T fitted on validation logits so that
softmax(logits / T) is calibrated; `p_fake` everywhere is this calibrated probability.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from genspot.data import load_dataset
from genspot.data.batches import Batches
from genspot.evaluate import select_indices
from genspot.models.io import load_model_dir, resolve_model_dir, write_config
from genspot.models.spec import ModelSpec
from genspot.models.tta import predict_logits


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE over equal-width confidence bins of the predicted class (the usual definition)."""
    conf = probs.max(1)
    correct = probs.argmax(1) == labels
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The T > 0 minimising validation NLL (optimised in log T, so T stays positive)."""
    log_t = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.exp().item())


@torch.no_grad()  # not inference_mode: the logits feed the temperature fit's autograd
def _logits(model, spec: ModelSpec, ds, idx) -> torch.Tensor:
    b = Batches(ds.images, ds.labels, idx, batch_size=512, mean=spec.mean, std=spec.std, channels_last=spec.channels_last)
    return torch.cat([predict_logits(model, spec.tta, x) for x, _ in b])


def calibrate(model_dir: str | Path, data: str | Path, split: str = "val", progress: bool = True) -> dict[str, Any]:
    """Fit T on the model's validation split, store it in config.json; returns ECE before and after."""
    model, spec = load_model_dir(model_dir)
    ds = load_dataset(data, size=spec.input_size, policy=spec.input_policy, progress=progress)
    idx, desc = select_indices(ds, spec, split)
    logits = _logits(model, spec, ds, idx)
    labels = ds.labels[torch.as_tensor(idx)]
    t = fit_temperature(logits, labels)
    y = labels.numpy()
    before = torch.softmax(logits, 1).numpy()
    after = torch.softmax(logits / t, 1).numpy()
    res = {
        "temperature": t,
        "split": desc,
        "n": int(len(idx)),
        "ece_before": expected_calibration_error(before, y),
        "ece_after": expected_calibration_error(after, y),
        "nll_before": float(F.cross_entropy(logits, labels)),
        "nll_after": float(F.cross_entropy(logits / t, labels)),
    }
    write_config(spec.to_config(temperature=t, calibration=res), resolve_model_dir(model_dir))
    return res
