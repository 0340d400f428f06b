"""Logits as a model directory's config asks for them, with test-time augmentation.

`config["tta"] == "flip"` averages the logits of the image and its mirror image. A
horizontal flip maps CIFAKE's 8x8 JPEG block grid onto itself (32 is a multiple of 8), so
both views carry the same compression traces; the flip only removes left-right chance.
Every scorer (evaluate, calibrate, predict, serve) goes through here, so one model
directory gives one number everywhere. Explanations use the single, unflipped view.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

TTA_MODES = ("none", "flip")


def predict_logits(model: nn.Module, config: dict[str, Any], x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) normalised input -> (B, classes) float logits, TTA applied."""
    logits = model(x).float()
    if config.get("tta", "none") == "flip":
        logits = (logits + model(x.flip(3)).float()) / 2
    return logits
