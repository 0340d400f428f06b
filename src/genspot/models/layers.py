"""Finding a model's layers by name and probing their output shapes: what model files need to
declare their explanation layers, and what explain/ needs to use them."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from genspot.errors import GenspotError

MIN_MAP = 4  # a class activation map coarser than 4x4 is nearly constant


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


def deepest_block(model: nn.Module, input_size: int) -> str:
    """The deepest of `model.blocks` whose output map is at least MIN_MAP x MIN_MAP at this input size."""
    best = None
    for i in range(len(model.blocks)):  # type: ignore[arg-type]
        shape = map_shape(model, model.blocks[i], input_size)  # type: ignore[index]
        if min(shape[-2:]) >= MIN_MAP:
            best = f"blocks.{i}"
    if best is None:
        raise GenspotError("no block keeps a 4x4 map at this input size")
    return best


def tokens_to_map(tokens: torch.Tensor) -> torch.Tensor:
    """(B, N, C) tokens -> (B, C, sqrt N, sqrt N), for a ViT without a class token."""
    b, n, c = tokens.shape
    side = int(round(n**0.5))
    if side * side != n:
        raise GenspotError(f"cannot reshape {n} tokens to a square grid")
    return tokens.reshape(b, side, side, c).permute(0, 3, 1, 2)
