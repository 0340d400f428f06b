"""Several spot_resnet models as one network: their logits averaged.

Averaging the members' logits equals one linear layer over their pooled features stacked
side by side (weights W_i / n, mean bias), since pooling and the head are linear. So an
ensemble is written as a single GAP + linear net whose last "stage" runs every member's
body and concatenates the 8x8 maps along channels: CAM, Grad-CAM and the rest explain it
exactly as they explain one member (`stages.-1`, the stacked maps), and every scorer
(evaluate, calibrate, predict, serve, robustness) sees one ordinary model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from genspot.errors import GenspotError
from genspot.models.io import load_model_dir, save_model_dir, split_differences
from genspot.models.registry import register_model
from genspot.models.resnet import RESNET_FACTS, SpotResNet

SMALL = {"widths": [16, 32, 64, 128], "blocks": [1, 1, 1]}


class StackedBodies(nn.Module):
    """Each member's stem + stages on the same input, maps concatenated along channels."""

    def __init__(self, bodies: Sequence[nn.Module]) -> None:
        super().__init__()
        self.bodies = nn.ModuleList(bodies)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([b(x) for b in self.bodies], 1)


class SpotEnsemble(nn.Module):
    def __init__(self, num_classes: int = 2, members: Sequence[dict[str, Any]] | None = None) -> None:
        super().__init__()
        members = list(members) if members else [SMALL, SMALL]
        nets = [SpotResNet(num_classes, **{k: v if isinstance(v, str) else tuple(v) for k, v in m.items()})
                for m in members]  # fmt: skip
        self.members = [dict(m) for m in members]
        self.stages = nn.Sequential(StackedBodies([nn.Sequential(n.stem, n.stages) for n in nets]))
        self.pool = nn.AdaptiveAvgPool2d(1)
        width = sum(n.head[-1].in_features for n in nets)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(width, num_classes))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.stages(x)))


def merge(models: Sequence[SpotResNet]) -> SpotEnsemble:
    """One SpotEnsemble whose logits are the mean of `models`' logits (weights copied)."""
    if len(models) < 2:
        raise ValueError("an ensemble needs at least two models")
    for i, m in enumerate(models, 1):
        if isinstance(m, SpotEnsemble):  # e.g. the shipped pristine: its members' runs are what to merge
            raise ValueError(f"model {i} is already an ensemble; merge the run directories of its members instead")
        if not isinstance(m, SpotResNet):
            raise ValueError(f"only spot_resnet models can be merged, not {type(m).__name__}")
    members = [{"widths": list(m.widths), "blocks": list(m.blocks)} for m in models]
    for d, m in zip(members, models):
        if m.stem_kind != "rgb":  # kept out of rgb members so earlier ensemble configs stay valid
            d["stem"] = m.stem_kind
    n_cls = models[0].head[-1].out_features
    ens = SpotEnsemble(n_cls, members)
    with torch.no_grad():
        for body, m in zip(ens.stages[0].bodies, models):
            body.load_state_dict(nn.Sequential(m.stem, m.stages).state_dict())
        ens.head[-1].weight.copy_(torch.cat([m.head[-1].weight for m in models], 1) / len(models))
        ens.head[-1].bias.copy_(torch.stack([m.head[-1].bias for m in models]).mean(0))
    return ens


@register_model("spot_resnet_ensemble", "spot_resnet models with averaged logits, as one GAP + linear net", "genspot", **RESNET_FACTS)
def spot_resnet_ensemble(num_classes: int = 2, members: Sequence[dict[str, Any]] | None = None) -> nn.Module:
    return SpotEnsemble(num_classes=num_classes, members=members)


# what members must share: one split (else a member has trained on the ensemble's validation
# images) and one input pipeline (else "the same image" differs between them)
_SHARED = ("input_size", "mean", "std", "class_names", "positive_class", "tta")


def make_ensemble_dir(member_dirs: Sequence[str], out_dir: str | Path) -> Path:
    """Merge trained spot_resnet model directories into one ensemble model directory.

    The result is uncalibrated (temperature 1): fit one with `genspot calibrate` on the
    members' common validation split.
    """
    if len(member_dirs) < 2:
        raise GenspotError("an ensemble needs at least two model directories")
    loaded = [load_model_dir(d) for d in member_dirs]
    cfg0 = loaded[0][1]
    for d, (_, cfg) in zip(member_dirs[1:], loaded[1:]):
        diff = [k for k in _SHARED if getattr(cfg, k) != getattr(cfg0, k)]
        diff += [f"data.{k}" for k in split_differences(cfg.data, cfg0.data)]
        if diff:
            raise GenspotError(f"{d} differs from {member_dirs[0]} in {', '.join(diff)}; members must share split and input")
    try:
        model = merge([m for m, _ in loaded])
    except ValueError as e:
        raise GenspotError(f"{', '.join(map(str, member_dirs))}: {e}") from None
    config = {k: v for k, v in cfg0.to_config().items() if k not in ("name", "calibration", "temperature", "domain")}  # domain statistics are per network: fit the ensemble's own
    config.update(model="spot_resnet_ensemble", model_kwargs={"members": model.members}, temperature=1.0,
                  channels_last=all(c.channels_last for _, c in loaded),
                  ensemble=[{"source": str(d), "model": c.model, "training": c["training"] if "training" in c else None}
                            for d, (_, c) in zip(member_dirs, loaded)])  # fmt: skip
    config.pop("training", None)  # per member, under "ensemble"
    return save_model_dir(model, config, out_dir)
