"""A timm-style model registry: builders register under a name; create_model builds by name.

Each builder returns an nn.Module taking normalised (B, 3, S, S) float input (S: the model's
input size, 32 for CIFAKE) and returning (B, num_classes) logits. Weights come only from a
local file (`pretrained=PATH`).

Each registration also declares what the rest of genspot needs to know of the model, the way
timm keeps a default_cfg beside each builder: whether it is built for one input size, its CAM
head, its Grad-CAM layer, whether attention rollout applies, where the domain check reads its
features. Adding a model is one file with one `@register_model(...)`; nothing else names it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from genspot.errors import GenspotError

# ImageNet statistics: the usual choice, and the one that lets ImageNet weights given by path work.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# A model's default explanation layer: a dotted path, or a function of (model, input size) -> path.
LayerRule = str | Callable[[nn.Module, int], str]


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[..., nn.Module]
    description: str
    paper: str = ""
    # built for one input size: train passes --image-size as `img_size` when it is not 32
    sized: bool = False
    # CAM: (the layer feeding the global pooling, the dotted path of the one linear layer after it);
    # None where CAM does not apply, with the reason in cam_why
    cam: tuple[str, str] | None = None
    cam_why: str = "its head is not a plain linear layer over pooled maps"
    # Grad-CAM and its kin: the default target layer, and how its output becomes (B, C, H, W)
    target_layer: LayerRule | None = None
    reshape: Callable[[torch.Tensor], torch.Tensor] | None = None
    rollout: bool = False  # attention rollout applies (a ViT without a class token)
    # the domain score's features: the input of this linear layer (None: the model's last nn.Linear)
    feature_layer: str | None = None

    def explain_layer(self, model: nn.Module, input_size: int) -> str:
        if self.target_layer is None:
            raise GenspotError(f"no default explanation layer for model {self.name!r}; give one with --layer")
        return self.target_layer if isinstance(self.target_layer, str) else self.target_layer(model, input_size)


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, description: str, paper: str = "", **facts: Any) -> Callable:
    """Register a builder under `name`, with the model's facts (see ModelEntry's fields)."""

    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _REGISTRY[name] = ModelEntry(name, fn, description, paper, **facts)
        return fn

    return deco


def unregister_model(name: str) -> None:
    """Forget a registered model (tests that register a toy one clean up with this)."""
    _REGISTRY.pop(name, None)


def list_models() -> list[str]:
    _import_families()
    return sorted(_REGISTRY)


def model_entry(name: str) -> ModelEntry:
    _import_families()
    if name not in _REGISTRY:
        raise GenspotError(f"unknown model {name!r}; known models: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def sized_kwargs(name: str, size: int, kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """`kwargs` plus img_size=size for a model built for one input size (nothing added at 32 px)."""
    out = dict(kwargs or {})
    if model_entry(name).sized and size != 32:
        out.setdefault("img_size", size)
    return out


def create_model(name: str, num_classes: int = 2, pretrained: str | Path | None = None, **kwargs) -> nn.Module:
    """Build a registered model; `pretrained` is a local .safetensors (or weights-only .pt) file."""
    entry = model_entry(name)
    try:
        model = entry.builder(num_classes=num_classes, **kwargs)
    except TypeError as e:
        raise GenspotError(f"bad option for model {name!r}: {e}") from None
    if pretrained:
        load_pretrained(model, pretrained)
    model.genspot_name = name  # type: ignore[attr-defined]
    return model


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors from a local weights file; pickles are read with torch's weights-only loader."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise GenspotError(f"no weights file at {p}")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(p))
    try:
        sd = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise GenspotError(f"cannot read weights from {p}: {e}") from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
    return {k.removeprefix("module.").removeprefix("model."): v for k, v in sd.items() if torch.is_tensor(v)}


def load_pretrained(model: nn.Module, path: str | Path) -> dict[str, list[str]]:
    """Load matching tensors (a classifier head of another shape is left as initialised)."""
    sd = read_state_dict(path)
    own = model.state_dict()
    usable = {k: v for k, v in sd.items() if k in own and own[k].shape == v.shape}
    if not usable:
        raise GenspotError(f"{path}: no tensor matches this model's parameters")
    model.load_state_dict(usable, strict=False)
    return {
        "loaded": sorted(usable),
        "missing": sorted(set(own) - set(usable)),
        "ignored": sorted(set(sd) - set(usable)),
    }


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(total, trainable) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable


def _import_families() -> None:
    # Importing a family module registers its models.
    from genspot.models import cifake_cnn, efficientnet, ensemble, npr, resnet, safe, vgg, vit  # noqa: F401
