"""ModelSpec: a model directory's config.json as one typed, frozen object.

Built once when a model directory is loaded (and written by training), it owns what every
consumer needs: the architecture and its options, how an image becomes the model's input
(size, policy, normalisation), test-time augmentation, the temperature, the positive class and
the calibrated `p_fake(logits)`, and the data block that rebuilds the training split. Defaults
live here and only here, so a directory written before a key existed loads with the meaning it
had then (no `input_policy`: resize; no `temperature`: 1; no `tta`: none). A new key is one
field here, read in `from_config` and written back in `to_config`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import torch

from genspot.data.image import POLICIES
from genspot.data.splits import SPLIT_KEYS, DataSpec  # noqa: F401 - re-exported
from genspot.errors import GenspotError, quote

# How an image becomes the model's S x S input: "auto" is the model's own input policy (resize for
# the CIFAKE models, a centre crop for native-resolution ones); resize and crop override it; tiles
# averages over S x S crops covering the image.
MODES = ("auto", "resize", "crop", "tiles")
MODE_CHOICES = "auto, resize, crop or tiles"


def _frozen(d: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(d or {}))


@dataclass(frozen=True)
class ModelSpec:
    """Everything a consumer needs to know about a model directory, with each default in one place."""

    model: str
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    class_names: tuple[str, ...] = ("REAL", "FAKE")
    positive_class: str = "FAKE"
    input_size: int = 32
    input_policy: str = "resize"  # resize | crop (the centre square at native resolution)
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    channels_last: bool = False
    tta: str = "none"  # none | flip | d4
    temperature: float = 1.0
    name: str | None = None  # the detector's name (shipped ones: default, pristine)
    data: DataSpec = field(default_factory=DataSpec)
    domain: Mapping[str, Any] | None = None  # the domain check's statistics (None: the rule alone)
    calibration: Mapping[str, Any] | None = None
    # The decision threshold (genspot calibrate --fpr): {"margin": m, ...}. FAKE when the positive
    # logit exceeds the other by at least m (TTA-averaged, before the temperature). Kept in logit
    # units on purpose: refitting the temperature changes P(FAKE) but not one verdict, and the
    # threshold on P(FAKE) is derived from it (fake_threshold). None: P(FAKE) >= 0.5.
    threshold: Mapping[str, Any] | None = None
    # The heat-map method that localises best on this model's validation splices, with its score
    # (genspot explain-eval --localise --set-default): {"method": ..., "pointing_game": ..., ...}.
    # None: Grad-CAM, the study's choice.
    explain: Mapping[str, Any] | None = None
    ensemble: tuple[Mapping[str, Any], ...] | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)  # config.json as read

    # -- reading and writing ---------------------------------------------------------------------
    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> ModelSpec:
        """config.json's dict -> spec; a key the file lacks keeps the meaning it had before it existed."""
        if "model" not in cfg:
            raise GenspotError("config.json names no model (no 'model' key)")
        kw: dict[str, Any] = {"model": str(cfg["model"])}
        simple = ("positive_class", "input_size", "input_policy", "channels_last", "tta", "temperature", "name")
        kw.update({k: cfg[k] for k in simple if cfg.get(k) is not None})
        if "model_kwargs" in cfg:
            kw["model_kwargs"] = _frozen(cfg["model_kwargs"])
        for k in ("class_names", "mean", "std"):
            if k in cfg:
                kw[k] = tuple(cfg[k])
        for k in ("domain", "calibration", "threshold", "explain"):
            if cfg.get(k):
                kw[k] = _frozen(cfg[k])
        if cfg.get("ensemble"):
            kw["ensemble"] = tuple(_frozen(m) for m in cfg["ensemble"])
        spec = cls(**kw, data=DataSpec.from_config(cfg.get("data")), raw=_frozen(cfg))
        object.__setattr__(spec, "input_size", int(spec.input_size))
        object.__setattr__(spec, "temperature", float(spec.temperature))
        if spec.input_policy not in POLICIES:
            raise GenspotError(f"config.json: unknown input_policy {spec.input_policy!r}; choose {' or '.join(POLICIES)}")
        return spec

    def to_config(self, **updates: Any) -> dict[str, Any]:
        """The dict config.json holds: what was read, with `updates` (e.g. temperature=...) applied.
        A spec made in code (not read) writes its fields."""
        base = dict(self.raw) if self.raw else {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "raw"}
        if not self.raw:
            base["data"] = {f.name: getattr(self.data, f.name) for f in dataclasses.fields(self.data) if f.name != "raw"}
        out = json.loads(json.dumps(base, default=_plain))
        out.update(json.loads(json.dumps(updates, default=_plain)))
        return out

    def replace(self, **updates: Any) -> ModelSpec:
        """A spec with these config keys changed (rebuilt from the config, so raw stays in step)."""
        return ModelSpec.from_config(self.to_config(**updates))

    def __getitem__(self, key: str) -> Any:
        """config.json's records that are not the spec's business (training, best, heldout...), read-only."""
        return self.raw[key]

    def __contains__(self, key: str) -> bool:
        return key in self.raw

    # -- what consumers ask of it ----------------------------------------------------------------
    @property
    def positive(self) -> int:
        """Which logit is FAKE's, as the config names its classes."""
        return list(self.class_names).index(self.positive_class)

    @property
    def display_name(self) -> str:
        return self.name or self.model

    def p_fake(self, logits: torch.Tensor) -> torch.Tensor:
        """Calibrated P(FAKE) from TTA-averaged logits: softmax(logits / T)[:, positive]."""
        return torch.softmax(logits.float() / self.temperature, 1)[:, self.positive]

    def p_fake_np(self, logits: torch.Tensor) -> np.ndarray:
        return self.p_fake(logits).detach().cpu().numpy()

    @property
    def default_method(self) -> str:
        """The heat-map method explain, /v1/explain and the page use when none is asked for."""
        return str(self.explain["method"]) if self.explain and self.explain.get("method") else "gradcam"

    @property
    def fake_threshold(self) -> float:
        """The P(FAKE) at and above which the verdict is FAKE: 0.5, or sigmoid(margin / T) when a
        threshold was calibrated (the same decision as margin on the logits, whatever T is)."""
        if not self.threshold:
            return 0.5
        z = float(self.threshold["margin"]) / self.temperature
        return float(1.0 / (1.0 + np.exp(-z))) if z >= 0 else float(np.exp(z) / (1.0 + np.exp(z)))  # no overflow either way

    def label_of(self, p_fake: float) -> str:
        """The verdict for a calibrated P(FAKE), at this model's threshold: one rule for every caller."""
        return "FAKE" if p_fake >= self.fake_threshold else "REAL"

    def resolve_mode(self, mode: str) -> str:
        """resize, crop or tiles: what a prediction `mode` means for this model ("auto": its own policy)."""
        if mode not in MODES:
            raise GenspotError(f"unknown mode {quote(mode)}; choose {MODE_CHOICES}")
        return self.input_policy if mode == "auto" else mode

    def build(self) -> torch.nn.Module:
        """The architecture, untrained (load_model_dir loads the weights into it)."""
        from genspot.models.registry import create_model

        return create_model(self.model, num_classes=len(self.class_names), **dict(self.model_kwargs))


def _plain(o: Any) -> Any:
    if isinstance(o, (MappingProxyType, Mapping)):
        return dict(o)
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")
