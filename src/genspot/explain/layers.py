"""Which layer each model is explained at: each model file declares it beside its builder
(`@register_model(..., target_layer=..., cam=...)`), with the reason there.

At 32x32 input EfficientNet's last feature map is 1x1 and VGG16's 2x2 (1x1 after its last
pool): a class activation map there is a constant. Every model therefore declares a default
target layer whose map is at least 4x4 (cifake_cnn `features.4`, 13x13; vgg16 `features.22`, 4x4;
EfficientNets the deepest block that keeps 4x4; vit_p2 `blocks.-1.norm1`, tokens as 16x16;
spot_resnet* `stages.-1`, 8x8; npr and safe `layer2`, S/8).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from genspot.models.layers import MIN_MAP, map_shape, resolve_layer
from genspot.models.layers import tokens_to_map as vit_reshape
from genspot.models.registry import model_entry

__all__ = ["MIN_MAP", "default_target_layer", "map_shape", "resolve_layer", "vit_reshape"]


def default_target_layer(model: nn.Module, name: str, input_size: int = 32) -> tuple[str, Callable | None]:
    """(dotted layer path, reshape transform) of a model's default explanation layer."""
    entry = model_entry(name)
    return entry.explain_layer(model, input_size), entry.reshape
