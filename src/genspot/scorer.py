"""Loading a model directory and scoring tensors with it: the runtime (PyTorch or ONNX Runtime),
the precision, and one forward pass that gives the calibrated P(FAKE) and, when asked, the
penultimate features the domain score reads. The Detector (predict.py) turns images into these
tensors; everything that scores a uint8 batch for a person goes through `Scorer.score`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genspot.data.batches import normalize
from genspot.domain import logits_and_features
from genspot.errors import GenspotError
from genspot.models.io import DEFAULT, SHIPPED, load_model_dir
from genspot.models.spec import ModelSpec
from genspot.models.tta import predict_logits

# Scoring precisions, under the names `genspot train --precision` also accepts for them.
SCORING_PRECISIONS = {"fp32": "fp32", "32": "fp32", "bf16": "bf16"}
RUNTIMES = ("torch", "onnx")


class Scorer:
    """A loaded model and how it runs: uint8 (B, 3, S, S) in, calibrated P(FAKE) out."""

    def __init__(self, model: torch.nn.Module, spec: ModelSpec, device: str = "cpu", precision: str = "fp32",
                 onnx: Any = None) -> None:  # fmt: skip
        if precision not in SCORING_PRECISIONS:
            raise GenspotError(f"unknown precision {precision!r}; choose fp32 (or 32) or bf16")
        self.model, self.spec, self.device = model, spec, device
        self.precision = SCORING_PRECISIONS[precision]
        self.onnx = onnx  # an export.OnnxModel: scoring runs there; explanations still need the torch model
        self.runtime = "torch" if onnx is None else "onnx"

    @classmethod
    def load(cls, model: str | os.PathLike | None = DEFAULT, device: str = "cpu", precision: str = "fp32",
             runtime: str = "torch", onnx_file: str | os.PathLike | None = None) -> tuple[Scorer, str]:
        """(the scorer, the detector's name) for a model directory; see Detector.load."""
        if runtime not in RUNTIMES:
            raise GenspotError(f"unknown runtime {runtime!r}; choose {' or '.join(RUNTIMES)}")
        if onnx_file is not None and runtime != "onnx":
            raise GenspotError("an ONNX file is only used with runtime onnx (--runtime onnx)")
        key = DEFAULT if model is None else str(model)
        m, spec = load_model_dir(key, device=device)
        name = spec.name or (key if key in SHIPPED else Path(key).name) or spec.model
        runner = None
        if runtime == "onnx":
            if SCORING_PRECISIONS.get(precision) == "bf16" or device != "cpu":
                raise GenspotError("ONNX Runtime scores in fp32 on the CPU here: drop --precision bf16 / --device, or use --runtime torch")
            from genspot.export import OnnxModel

            runner = OnnxModel.open(key, spec, onnx_file)
        return cls(m, spec, device, precision, runner), name

    @torch.inference_mode()
    def forward(self, x_u8: torch.Tensor, features: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """uint8 (B, 3, S, S) -> (TTA logits, and the penultimate features when asked): one pass."""
        if self.onnx is not None:  # the graph folds normalisation and TTA in, and always returns the features
            logits, feats = self.onnx.run(x_u8.numpy())
            return torch.from_numpy(logits), torch.from_numpy(feats) if features else None
        x = normalize(x_u8.to(self.device), self.spec.mean, self.spec.std)
        if self.spec.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(torch.device(self.device).type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            if features:
                return logits_and_features(self.model, self.spec, x)
            return predict_logits(self.model, self.spec.tta, x), None

    def p_fake(self, x_u8: torch.Tensor) -> np.ndarray:
        return self.spec.p_fake_np(self.forward(x_u8)[0])

    def score(self, x_u8: torch.Tensor, stats: Any = None) -> tuple[np.ndarray, np.ndarray | None]:
        """uint8 (B, 3, S, S) -> (p_fake, the domain score under `stats`, or None): one forward pass for both."""
        logits, feats = self.forward(x_u8, features=stats is not None)
        return self.spec.p_fake_np(logits), None if feats is None else stats.score(feats.cpu())
