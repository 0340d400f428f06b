"""A model directory as one ONNX file, and scoring it through ONNX Runtime.

The graph takes what genspot's scorers take, uint8 images (B, 3, S, S) at the model's input
size, and folds in everything between them and the verdict except the domain check's
statistics: the normalisation, the test-time augmentation of config["tta"] (both views run
and their logits are averaged inside the graph) and the calibration temperature. Outputs:

  logits    (B, classes)  the TTA-averaged logits, before the temperature (what PyTorch's
                          `predict_logits` returns; genspot applies the temperature itself)
  p_fake    (B,)          softmax(logits / T) of the positive class: the calibrated verdict,
                          for a person who runs the file without genspot
  features  (B, D)        the head's input averaged over the views, for the domain check
  is_fake   (B,)          p_fake at or above the model's decision threshold (0.5, or the one
                          `genspot calibrate --fpr` set): the verdict genspot gives

The model directory's config.json and the SHA-256 of its weights ride in the file's metadata
(`genspot_config`, `genspot_weights_sha256`), so a file is checked against the directory it is
used with before any image is read. Exported with torch's TorchScript-based exporter at opset 17
(the torch.export-based one needs onnxscript, one more dependency, for the same graph here).
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from genspot.data.batches import normalize
from genspot.domain import logits_and_features
from genspot.errors import GenspotError
from genspot.models.io import WEIGHTS_FILE, load_model_dir, resolve_model_dir
from genspot.models.spec import ModelSpec

OPSET = 17
ONNX_FILE = "model.onnx"
FORMATS = ("onnx",)
INSTALL = "pip install 'genspot[onnx]' (from a checkout: pip install -e '.[onnx]')"


def require(module: str) -> Any:
    """Import onnx or onnxruntime, or say in one line which extra installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise GenspotError(f"{module} is not installed: ONNX export and scoring need the onnx extra; {INSTALL}") from None


def weights_sha256(model_dir: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(Path(model_dir) / WEIGHTS_FILE, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class _Graph(nn.Module):
    """uint8 images -> (TTA logits, calibrated p_fake, features, is_fake): what the ONNX file computes."""

    def __init__(self, model: nn.Module, spec: ModelSpec) -> None:
        super().__init__()
        self.model, self.spec = model, spec

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        x = normalize(images, self.spec.mean, self.spec.std)  # the scorers' own normalisation, traced
        logits, feats = logits_and_features(self.model, self.spec, x)
        p = self.spec.p_fake(logits)
        return logits, p, feats, p >= self.spec.fake_threshold


def export_onnx(model_dir: str | os.PathLike | None, out: str | os.PathLike, opset: int = OPSET,
                sha256: str | None = None) -> dict[str, Any]:  # fmt: skip
    """Write `model_dir` (a path, or "default" / "pristine") as an ONNX file at `out`; returns what
    was written. `sha256`: the weights' hash, when the caller has it already."""
    onnx = require("onnx")
    d = resolve_model_dir(model_dir)
    model, spec = load_model_dir(d)
    size = spec.input_size
    graph = _Graph(model, spec).eval()
    out = Path(out)
    if not out.parent.is_dir():
        raise GenspotError(f"cannot write {out}: folder {out.parent} does not exist")
    tmp = out.with_name(out.name + ".tmp")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's deprecation and tracer notes, not the user's concern
            torch.onnx.export(
                graph, (torch.zeros(2, 3, size, size, dtype=torch.uint8),), str(tmp), dynamo=False, opset_version=opset,
                input_names=["images"], output_names=["logits", "p_fake", "features", "is_fake"],
                dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}, "p_fake": {0: "batch"}, "features": {0: "batch"},
                              "is_fake": {0: "batch"}},
            )  # fmt: skip
    except Exception as e:  # noqa: BLE001 - whatever the tracer cannot express, said in one line
        tmp.unlink(missing_ok=True)
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise GenspotError(f"cannot export {spec.model!r} to ONNX: {first}") from None
    m = onnx.load(str(tmp))
    meta = {"genspot_config": json.dumps(spec.to_config()), "genspot_weights_sha256": sha256 or weights_sha256(d), "genspot_opset": str(opset)}
    for k, v in meta.items():
        m.metadata_props.add(key=k, value=v)
    m.producer_name = "genspot"
    onnx.save(m, str(tmp))
    os.replace(tmp, out)
    return {"model_dir": str(d), "out": str(out), "opset": opset, "input": [None, 3, size, size], "bytes": out.stat().st_size,
            "tta": spec.tta, "temperature": spec.temperature, "threshold": spec.fake_threshold,
            "folded": ["normalisation", "tta", "temperature", "threshold"]}  # fmt: skip


def _cached_export(model_dir: Path, sha: str) -> Path:
    """The model directory's ONNX file in the cache, exported on first use (keyed by the weights' hash)."""
    from genspot.data.decode import cache_root

    path = cache_root() / "onnx" / f"{sha[:24]}-opset{OPSET}.onnx"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        export_onnx(model_dir, path, sha256=sha)
    return path


class OnnxModel:
    """An exported genspot graph loaded in ONNX Runtime: uint8 images in, (logits, features) out."""

    def __init__(self, path: Path, runner: Any) -> None:
        self.path, self.runner = path, runner  # an onnxruntime InferenceSession

    def run(self, x_u8: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, _p, feats, _fake = self.runner.run(None, {"images": np.ascontiguousarray(x_u8, dtype=np.uint8)})
        return logits, feats

    @classmethod
    def open(cls, model_dir: str | os.PathLike | None, spec: ModelSpec, onnx_file: str | os.PathLike | None = None,
             threads: int | None = None) -> OnnxModel:  # fmt: skip
        """The runtime's model for `model_dir`: `onnx_file` if given, else its model.onnx, else one exported
        into the cache. The file is refused (one line) unless it was exported from these weights."""
        ort = require("onnxruntime")
        d = resolve_model_dir(model_dir)
        sha = weights_sha256(d)  # once: it names the cached export and checks whichever file is used
        if onnx_file is not None:
            path = Path(onnx_file).expanduser()
            if not path.is_file():
                raise GenspotError(f"no ONNX file at {path}")
        elif (d / ONNX_FILE).is_file():
            path = d / ONNX_FILE
        else:
            path = _cached_export(d, sha)
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        # ONNX Runtime's idle threads spin for a while after each run by default, and then compete
        # with the torch work around it (decode, the domain score): Detector.predict of a 32x32 JPEG
        # took 8.0 ms with spinning and 3.8 ms without on 2 cores, the model's own run 2.3-2.8 ms.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            runner = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - truncated, random or foreign bytes: whatever the runtime raises
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise GenspotError(f"{path} is not a readable ONNX model ({first[:160]})") from None
        meta = runner.get_modelmeta().custom_metadata_map
        if "genspot_weights_sha256" not in meta:
            raise GenspotError(f"{path} was not exported by genspot (no genspot metadata); export it with genspot export {d} --format onnx")
        if meta["genspot_weights_sha256"] != sha:
            raise GenspotError(f"{path} was exported from other weights than {d}'s; export this model again (genspot export {d} --format onnx)")
        inputs = runner.get_inputs()
        size = spec.input_size
        if len(inputs) != 1 or inputs[0].name != "images" or list(inputs[0].shape[1:]) != [3, size, size]:
            raise GenspotError(f"{path} does not take (batch, 3, {size}, {size}) images as {d}'s config says")
        return cls(path, runner)
