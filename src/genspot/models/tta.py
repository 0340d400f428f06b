"""Logits as a model directory's config asks for them, with test-time augmentation.

`tta == "flip"` (a model's `ModelSpec.tta`) averages the logits of the image and its mirror image. A
horizontal flip maps CIFAKE's 8x8 JPEG block grid onto itself (32 is a multiple of 8), so
both views carry the same compression traces; the flip only removes left-right chance.
`"d4"` averages all eight symmetries of the square (for models trained with `--augment d4`).
Every scorer (evaluate, calibrate, predict, serve) goes through here, so one model
directory gives one number everywhere. Explanations use the single, unflipped view.
"""

from __future__ import annotations

import torch
from torch import nn

TTA_MODES = ("none", "flip", "d4")


def _views(x: torch.Tensor, mode: str) -> list[torch.Tensor]:
    if mode == "flip":
        return [x, x.flip(3)]
    if mode == "d4":  # the eight symmetries of the square: four turns, each mirrored
        # torch.rot90(x, k, (2, 3)) for k = 0..3, spelled as the flips and transposes torch computes it
        # with, so that the ONNX exporter (which has no rot90) can write the same views
        turns = [x, x.flip(3).transpose(2, 3), x.flip(2).flip(3), x.transpose(2, 3).flip(3)]
        return turns + [t.flip(3) for t in turns]
    return [x]


def predict_logits(model: nn.Module, tta: str, x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) normalised input -> (B, classes) float logits, averaged over the `tta` views
    (none, flip or d4: a model's ModelSpec.tta)."""
    views = _views(x, tta)
    logits = model(views[0]).float()
    for v in views[1:]:
        logits = logits + model(v).float()
    return logits / len(views)
