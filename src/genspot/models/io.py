"""The model directory: `model.safetensors` + `config.json`, the one hand-off between
training and every consumer (evaluate, explain, predict, serve).

The config travels with the weights, as timm's pretrained configs do, so no consumer
guesses the architecture, input size, normalisation or class order. Loading never
unpickles anything.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from genspot.errors import GenspotError
from genspot.data.splits import SPLIT_KEYS, DataSpec
from genspot.models.spec import ModelSpec

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
__all__ = ["SPLIT_KEYS", "ModelSpec", "load_model_dir", "read_config", "read_spec", "save_model_dir", "write_config"]


def split_differences(data_a: DataSpec, data_b: DataSpec) -> list[str]:
    """The SPLIT_KEYS in which two models' data splits (ModelSpec.data) differ (empty: the same split)."""
    a, b = data_a.split_key(), data_b.split_key()
    return [k for k in SPLIT_KEYS if a[k] != b[k]]


def write_config(config: ModelSpec | dict[str, Any], out_dir: str | os.PathLike) -> Path:
    """config.json, written atomically (a reader never sees half a file)."""
    cfg = config.to_config() if isinstance(config, ModelSpec) else config
    out = Path(out_dir)
    tmp_c = out / (CONFIG_FILE + ".tmp")
    tmp_c.write_text(json.dumps(cfg, indent=2, sort_keys=False) + "\n")
    os.replace(tmp_c, out / CONFIG_FILE)
    return out / CONFIG_FILE


def save_model_dir(model: nn.Module, config: ModelSpec | dict[str, Any], out_dir: str | os.PathLike) -> Path:
    """Write weights and config atomically (a reader never sees half a file)."""
    cfg = config.to_config() if isinstance(config, ModelSpec) else config
    ModelSpec.from_config(cfg)  # a config that would not load is refused before anything is written
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    tmp_w = out / (WEIGHTS_FILE + ".tmp")
    save_file(sd, str(tmp_w), metadata={"format": "pt", "model": str(cfg["model"])})
    # safetensors writes through a private temporary file (mode 0600): give the weights the
    # mode any new file gets here (0644 under the usual umask), as config.json has.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_w, 0o666 & ~umask)
    os.replace(tmp_w, out / WEIGHTS_FILE)
    write_config(cfg, out)
    return out


DEFAULT = "default"
# Detectors shipped inside the package, weights/<name>/: the default (trained with blur + JPEG
# augmentation, `--augment robust`, so resampled or re-compressed images do not fool it), and
# "pristine", the default and a flips-only model as one ensemble: half a point better on
# untouched CIFAKE-style JPEGs, up to 14 points worse once an image is blurred, resized or
# cropped (docs/results/robustness-shipped).
SHIPPED = (DEFAULT, "pristine")


def shipped_model_dir(name: str = DEFAULT) -> Path:
    """A detector shipped inside the package (src/genspot/weights/<name>)."""
    return Path(__file__).resolve().parent.parent / "weights" / name


def default_model_dir() -> Path:
    """The detector shipped inside the package (src/genspot/weights/default)."""
    return shipped_model_dir(DEFAULT)


def resolve_model_dir(model_dir: str | os.PathLike | None) -> Path:
    """A model directory path; None or "default" names the shipped detector, "pristine" the other
    shipped one (a local folder of that name: write ./pristine)."""
    name = DEFAULT if model_dir is None else str(model_dir)
    if name in SHIPPED:
        d = shipped_model_dir(name)
        if not (d / WEIGHTS_FILE).is_file():
            raise GenspotError(f"the {name} model is missing from this installation ({d}); pass --model DIR")
        return d
    return Path(model_dir).expanduser()


def read_config(model_dir: str | os.PathLike | None) -> dict[str, Any]:
    """config.json as the file holds it (to rewrite it); consumers read `read_spec`."""
    d = resolve_model_dir(model_dir)
    cfg_path = d / CONFIG_FILE
    if not cfg_path.is_file():
        raise GenspotError(f"{d} is not a model directory (no {CONFIG_FILE})")
    try:
        return json.loads(cfg_path.read_text())
    except json.JSONDecodeError as e:
        raise GenspotError(f"{cfg_path} is not valid JSON: {e}") from None


def read_spec(model_dir: str | os.PathLike | None) -> ModelSpec:
    """The model directory's config.json as a ModelSpec (every default applied in one place)."""
    return ModelSpec.from_config(read_config(model_dir))


def load_model_dir(
    model_dir: str | os.PathLike | None, device: str | torch.device = "cpu"
) -> tuple[nn.Module, ModelSpec]:
    """Build the model named in config.json and load its safetensors weights, in eval mode.

    `model_dir` None or "default" loads the shipped default detector."""
    d = resolve_model_dir(model_dir)
    spec = read_spec(d)
    w = d / WEIGHTS_FILE
    if not w.is_file():
        raise GenspotError(f"{d} has no {WEIGHTS_FILE}")
    model = spec.build()
    try:
        model.load_state_dict(load_file(str(w)))
    except (RuntimeError, OSError) as e:
        first = str(e).strip().splitlines()[0]
        raise GenspotError(f"{w} does not fit model {spec.model!r}: {first}") from None
    model.eval().to(device)
    return model, spec
