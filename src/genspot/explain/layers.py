"""Which layer each model is explained at, and why.

At 32x32 input EfficientNet's last feature map is 1x1 and VGG16's 2x2 (1x1 after its last
pool): a class activation map there is a constant. Every model therefore has a default
target layer whose map is at least 4x4:

- cifake_cnn: `features.4`, the ReLU after the second conv (13x13).
- vgg16: `features.22`, the ReLU after conv4_3 (4x4), the last map before it shrinks to 2x2.
- efficientnet_b0 / efficientnetv2_b0: the deepest block of `blocks` whose output is at least
  4x4 (found by a dry run, so `stem_stride=1` variants get a deeper block).
- vit_p2: `blocks.-1.norm1`, the 256 tokens reshaped to 16x16 (no class token).
- spot_resnet*: `stages.-1`, the last stage (8x8), which feeds the global pooling.
- npr, safe: `layer2`, the last stage (S/8: 4x4 at 32 px, 32x32 at 256 px), which feeds the pooling.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from genspot.errors import GenspotError

MIN_MAP = 4


def resolve_layer(model: nn.Module, path: str) -> nn.Module:
    """A submodule by dotted path; integers index sequences and may be negative (`blocks.-1`)."""
    m: nn.Module = model
    for part in path.split("."):
        try:
            m = m[int(part)] if part.lstrip("-").isdigit() else getattr(m, part)  # type: ignore[index]
        except (AttributeError, IndexError, TypeError):
            raise GenspotError(f"model has no layer {path!r} (failed at {part!r})") from None
    if not isinstance(m, nn.Module):
        raise GenspotError(f"{path!r} is not a layer")
    return m


def vit_reshape(tokens: torch.Tensor) -> torch.Tensor:
    """(B, N, C) tokens -> (B, C, sqrt N, sqrt N); the ViT here has no class token."""
    b, n, c = tokens.shape
    side = int(round(n**0.5))
    if side * side != n:
        raise GenspotError(f"cannot reshape {n} tokens to a square grid")
    return tokens.reshape(b, side, side, c).permute(0, 3, 1, 2)


def map_shape(model: nn.Module, layer: nn.Module, input_size: int, reshape: Callable | None = None) -> tuple[int, ...]:
    """Shape of `layer`'s output for one input image (a dry run)."""
    seen: list[tuple[int, ...]] = []

    def hook(_m, _i, out):
        o = reshape(out) if reshape is not None else out
        seen.append(tuple(o.shape))

    h = layer.register_forward_hook(hook)
    try:
        with torch.no_grad():
            was = model.training
            model.eval()
            model(torch.zeros(1, 3, input_size, input_size, device=next(model.parameters()).device))
            model.train(was)
    finally:
        h.remove()
    return seen[0]


def _deepest_block(model: nn.Module, input_size: int) -> str:
    best = None
    for i in range(len(model.blocks)):  # type: ignore[arg-type]
        shape = map_shape(model, model.blocks[i], input_size)  # type: ignore[index]
        if min(shape[-2:]) >= MIN_MAP:
            best = f"blocks.{i}"
    if best is None:
        raise GenspotError("no block keeps a 4x4 map at this input size")
    return best


def default_target_layer(model: nn.Module, name: str, input_size: int = 32) -> tuple[str, Callable | None]:
    """(dotted layer path, reshape transform) of a model's default explanation layer."""
    if name == "cifake_cnn":
        return "features.4", None
    if name == "vgg16":
        return "features.22", None
    if name in ("efficientnet_b0", "efficientnetv2_b0"):
        return _deepest_block(model, input_size), None
    if name == "vit_p2":
        return "blocks.-1.norm1", vit_reshape
    if name.startswith("spot_resnet"):
        return "stages.-1", None
    if name in ("npr", "safe"):
        return "layer2", None  # the last stage, which feeds the global pooling (4x4 at 32x32)
    raise GenspotError(f"no default explanation layer for model {name!r}; give one with --layer")
