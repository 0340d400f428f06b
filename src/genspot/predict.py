"""The Detector: load a model directory once, then score and explain any image a person has.

How an image becomes the model's S x S input is the prediction mode (data/image.py does it):
- `auto` (default): the model's own input policy, from its ModelSpec: `resize` for the CIFAKE
  models (the whole image downscaled with antialiasing, as CIFAKE's images were made), `crop`
  for native-resolution ones.
- `resize` / `crop`: force one (the domain check says when that is not what the model learned).
- `tiles`: cut the image at native resolution into S x S tiles (a grid covering it; at most
  MAX_TILES, by a larger stride on huge images), score every tile, and average the tiles'
  log-odds into one score. The model then sees real pixels, not a thumbnail, but each tile
  shows only a small part of the scene, so expect it to be less certain.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image

from genspot.data.image import MAX_TILES, ImageFacts, as_image, decode, model_input, read_input, tile_image  # noqa: F401 - the API's names
from genspot.data.inputs import DEFAULT_MAX_FILE_BYTES, iter_inputs
from genspot.domain import DomainCheck, DomainStats
from genspot.errors import GenspotError
from genspot.models.io import DEFAULT, resolve_model_dir
from genspot.models.spec import MODE_CHOICES, MODES, ModelSpec  # noqa: F401 - the API's names
from genspot.scorer import RUNTIMES, SCORING_PRECISIONS, Scorer  # noqa: F401 - the API's names


@dataclass
class Prediction:
    path: str
    label: str | None  # "REAL" or "FAKE"; None when the input could not be read
    p_fake: float | None  # calibrated probability that the image is AI-generated
    model: str
    error: str | None = None
    mode: str = "resize"  # what was done: resize, crop or tiles ("auto" is resolved to the model's policy)
    width: int | None = None
    height: int | None = None
    tiles: int | None = None
    tile_grid: np.ndarray | None = field(default=None, repr=False)  # (rows, cols) P(FAKE) per tile
    image: Image.Image | None = field(default=None, repr=False)  # kept only when asked for
    rel: str = field(default="", repr=False)  # name relative to its argument (names heat-map files)
    domain: str | None = None  # "in" or "out" of what the model was trained on; None when the input could not be read
    domain_reason: str | None = None  # why "out" (the rule's reasons and the learned score's), else None
    domain_score: float | None = None  # the learned score (None: the model has no domain statistics)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ROW_KEYS}


class Detector:
    """A loaded model and everything needed to use it: `Detector.load(dir).predict("img.jpg")`.

    Composed of parts with one job each: a Scorer (scorer.py: the loaded model, its runtime and
    precision, one forward pass per batch), a DomainCheck (domain.py: the rule and the learned
    score) and explain/ for heat maps; the Detector itself turns images (paths, bytes, PIL images,
    arrays, folders, zips) into the model's input through data/image.py and rows into Predictions."""

    def __init__(self, model: torch.nn.Module, spec: ModelSpec, name: str, device: str = "cpu",
                 precision: str = "fp32", domain: DomainStats | None = None, onnx: Any = None) -> None:
        self.scorer = Scorer(model, spec, device, precision, onnx)
        self.check = DomainCheck(spec, domain)
        self.name = name

    @classmethod
    def load(cls, model: str | os.PathLike | None = DEFAULT, device: str = "cpu", precision: str = "fp32",
             runtime: str = "torch", onnx_file: str | os.PathLike | None = None) -> Detector:
        """Load a model directory (model.safetensors + config.json); no argument: the shipped default,
        "pristine": the shipped ensemble for untouched images (most accurate there, fragile to
        resampling; see its model card). precision "bf16" scores under bfloat16 autocast:
        faster on CPUs with bf16 support, with scores that differ slightly from the fp32 ones the
        model card's metrics and calibration were measured with.

        runtime "onnx" scores through ONNX Runtime (fp32, CPU; the onnx extra): `onnx_file` if
        given, else the directory's model.onnx, else an export made once into the cache. The file
        is checked against the directory's weights before anything is scored."""
        scorer, name = Scorer.load(model, device, precision, runtime, onnx_file)
        stats = DomainStats.load(resolve_model_dir(DEFAULT if model is None else str(model)), scorer.spec)
        det = cls.__new__(cls)
        det.scorer, det.check, det.name = scorer, DomainCheck(scorer.spec, stats), name
        return det

    # -- what the parts hold, under the names callers use ---------------------------------------
    model = property(lambda self: self.scorer.model)
    spec = property(lambda self: self.scorer.spec)
    device = property(lambda self: self.scorer.device)
    precision = property(lambda self: self.scorer.precision)
    onnx = property(lambda self: self.scorer.onnx)
    runtime = property(lambda self: self.scorer.runtime)
    domain = property(lambda self: self.check.stats, doc="the learned score's statistics (None: the rule alone)")
    size = property(lambda self: self.spec.input_size)
    policy = property(lambda self: self.spec.input_policy)
    temperature = property(lambda self: self.spec.temperature)
    positive = property(lambda self: self.spec.positive)

    @property
    def config(self) -> dict[str, Any]:
        """config.json as read (records included)."""
        return dict(self.spec.raw)

    # -- scoring -------------------------------------------------------------------------
    def logits(self, x_u8: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 3, S, S) -> logits, (B, 2) float."""
        return self.scorer.forward(x_u8)[0]

    def p_fake(self, x_u8: torch.Tensor) -> np.ndarray:
        return self.scorer.p_fake(x_u8)

    def score(self, x_u8: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
        """uint8 (B, 3, S, S) -> (p_fake, domain score or None): one forward pass for both."""
        return self.scorer.score(x_u8, self.check.stats)

    def _row(self, name: str, p: float, facts: ImageFacts, arr: np.ndarray, score: float | None, mode: str, **kw) -> Prediction:
        label = self.spec.label_of(p)
        domain, reason = self.check(facts, arr, score, mode, label)
        return Prediction(name, label, p, self.name, None, mode, facts.width, facts.height, domain=domain,
                          domain_reason=reason, domain_score=None if score is None else round(float(score), 3), **kw)  # fmt: skip

    def resolve_mode(self, mode: str) -> str:
        """resize, crop or tiles: what `mode` means for this model ("auto": its own input policy)."""
        return self.spec.resolve_mode(mode)

    def _score_pil(self, img: Image.Image, path: str, mode: str, facts: ImageFacts | None = None) -> Prediction:
        """`mode` is resolved already (resize, crop or tiles): every public entry resolves it once."""
        facts = facts or ImageFacts(img.width, img.height)
        arr = model_input(img, self.size, mode, self.policy)
        if mode != "tiles":
            p, d = self.score(torch.from_numpy(arr)[None])
            return self._row(path, float(p[0]), facts, arr, None if d is None else float(d[0]), mode)
        tiles, grid = tile_image(img, self.size)
        scored = [self.score(torch.from_numpy(tiles[i : i + 256])) for i in range(0, len(tiles), 256)]
        ps = np.concatenate([a for a, _ in scored])
        d = None if scored[0][1] is None else float(np.median(np.concatenate([b for _, b in scored])))
        # Average the tiles' log-odds: one confident tile moves the score, many unsure ones do not.
        eps = 1e-6
        logit = np.mean(np.log(np.clip(ps, eps, 1 - eps)) - np.log(np.clip(1 - ps, eps, 1 - eps)))
        p = float(1 / (1 + np.exp(-logit)))
        return self._row(path, p, facts, arr, d, mode, tiles=len(tiles), tile_grid=ps.reshape(grid))

    def predict(self, image: str | os.PathLike | bytes | Image.Image | np.ndarray, mode: str = "auto") -> Prediction:
        """Score one image (a path, raw file bytes, a PIL image or an HxWx3 uint8 array)."""
        mode = self.resolve_mode(mode)
        name = str(image) if isinstance(image, (str, os.PathLike)) else "<image>"
        img, facts = as_image(image)
        return self._score_pil(img, name, mode, facts)

    def predict_batch(self, images: Iterable, mode: str = "auto") -> list[Prediction]:
        """Score several images; an unreadable one gets a Prediction with `error` set."""
        mode = self.resolve_mode(mode)  # the caller's mistake, raised once, not an error row per image
        out = []
        for im in images:
            name = str(im) if isinstance(im, (str, os.PathLike)) else "<image>"
            try:
                out.append(self.predict(im, mode))
            except GenspotError as e:
                out.append(Prediction(name, None, None, self.name, str(e), mode))
            except Exception as e:  # noqa: BLE001 - whatever a decoder raises (even SyntaxError) is this image's error
                out.append(Prediction(name, None, None, self.name, f"not a readable image: {e}", mode))
        return out

    def predict_paths(
        self, paths: list[str], mode: str = "auto", batch_size: int = 256, keep_images: bool = False,
        workers: int = 0, max_bytes: int = DEFAULT_MAX_FILE_BYTES,
    ) -> Iterator[Prediction]:
        """Stream predictions for every image under files / folders / zips / globs, in input order.

        workers > 0 decodes in that many processes (not in tiles mode, nor with kept images): the
        inputs are read here, decoded there chunk by chunk, scored here in batches, and yielded
        in input order; at most 2 chunks per worker are in flight, so memory stays flat
        whatever the input's size. Each file or zip member is read up to `max_bytes` (over it: an
        error row, decided before reading where the size is known)."""
        mode = self.resolve_mode(mode)
        if workers < 0:
            raise GenspotError("--workers must be 0 (decode in this process) or more")
        if workers > 0 and mode != "tiles" and not keep_images:
            yield from self._predict_pool(paths, batch_size, workers, max_bytes, mode)
            return
        pending: list[tuple[str, np.ndarray, Image.Image | None, str, ImageFacts]] = []

        def flush() -> Iterator[Prediction]:
            if not pending:
                return
            ps, ds = self.score(torch.from_numpy(np.stack([a for _, a, _, _, _ in pending])))
            for i, (name, arr, img, rel, facts) in enumerate(pending):
                yield self._row(name, float(ps[i]), facts, arr, None if ds is None else float(ds[i]), mode, image=img, rel=rel)
            pending.clear()

        for item in iter_inputs(paths, max_bytes):
            if item.error is not None:
                yield from flush()
                yield Prediction(item.name, None, None, self.name, item.error, mode, rel=item.rel)
                continue
            try:
                img, facts = decode(item.data)  # type: ignore[arg-type]
                arr = model_input(img, self.size, mode) if mode != "tiles" else None
            except Exception as e:  # noqa: BLE001 - any undecodable input is reported, never fatal
                yield from flush()
                yield Prediction(item.name, None, None, self.name, f"not a readable image: {e}", mode, rel=item.rel)
                continue
            if mode == "tiles":
                yield from flush()
                try:
                    pred = self._score_pil(img, item.name, mode, facts)
                except Exception as e:  # noqa: BLE001 - one image's failure is its own row
                    yield Prediction(item.name, None, None, self.name, f"not a readable image: {e}", mode, rel=item.rel)
                    continue
                pred.image, pred.rel = (img if keep_images else None), item.rel
                yield pred
                continue
            pending.append((item.name, arr, img if keep_images else None, item.rel, facts))  # type: ignore[arg-type]
            if len(pending) >= batch_size:
                yield from flush()
        yield from flush()

    def _predict_pool(self, paths: list[str], batch_size: int, workers: int, max_bytes: int, mode: str) -> Iterator[Prediction]:
        from collections import deque
        from itertools import islice

        from genspot.data.decode import _mp_context

        items = ((it.name, it.data, it.error) for it in iter_inputs(paths, max_bytes))
        with _mp_context().Pool(workers) as pool:
            window: deque = deque()

            def scored(chunk: list[tuple[str, np.ndarray | None, ImageFacts | None, str | None]]) -> Iterator[Prediction]:
                ok = [c for c in chunk if c[3] is None]
                ps, ds = self.score(torch.from_numpy(np.stack([c[1] for c in ok]))) if ok else (np.zeros(0), None)
                k = 0
                for name, arr, facts, err in chunk:
                    if err is not None:
                        yield Prediction(name, None, None, self.name, err, mode)
                    else:
                        yield self._row(name, float(ps[k]), facts, arr, None if ds is None else float(ds[k]), mode)  # type: ignore[arg-type]
                        k += 1

            while chunk := list(islice(items, batch_size)):
                window.append(pool.apply_async(_decode_chunk, (chunk, self.size, mode)))
                if len(window) >= 2 * workers:
                    yield from scored(window.popleft().get())
            while window:
                yield from scored(window.popleft().get())

    # -- explaining ----------------------------------------------------------------------
    def explain_arrays(self, x_u8: torch.Tensor, method: str | None = None, target: str = "predicted",
                       layer: str | None = None, facts: list[ImageFacts | None] | None = None, mode: str = "auto") -> dict[str, Any]:
        """Heat maps for a uint8 (B, 3, S, S) batch, with the verdicts predict() gives them.

        The one explaining path (genspot explain, predict --explain, the server, this API):
        p_fake comes from the same scorer as predict() (TTA and temperature included), and
        "predicted" explains that verdict, so a heat map never contradicts its caption. `method`
        None: the model's default (config.json "explain": the method measured best at pointing
        inside generated regions; else Grad-CAM)."""
        from genspot.explain.methods import explain_verdicts

        method = method or self.spec.default_method
        p, d = self.score(x_u8)  # the verdict and the domain score, in one pass
        labels = [self.spec.label_of(float(v)) for v in p]
        r = explain_verdicts(self.model, self.spec, x_u8, labels, method=method, target=target, layer=layer)
        facts = facts or [None] * len(labels)  # what is known of each original image, for the domain rule
        domains = [self.check(facts[i], a, None if d is None else float(d[i]), mode, labels[i]) for i, a in enumerate(x_u8.numpy())]
        return {"maps": r["maps"], "p_fake": p, "labels": labels, "layer": r["layer"], "targets": r["targets"],
                "domains": domains, "domain_scores": d, "method": method}

    def explain(self, image, method: str | None = None, target: str = "predicted", layer: str | None = None,
                mode: str = "auto") -> dict[str, Any]:
        """Heat map (size x size float32 in [0, 1]) for one image, with its prediction and domain;
        `mode` auto (the model's policy), resize or crop says which S x S pixels are explained."""
        mode = self.resolve_mode(mode)
        if mode == "tiles":
            raise GenspotError("a heat map explains one S x S input: use mode auto, resize or crop (tiles mode has its tile map)")
        img, facts = as_image(image)
        arr = model_input(img, self.size, mode)
        r = self.explain_arrays(torch.from_numpy(arr)[None], method=method, target=target, layer=layer, facts=[facts], mode=mode)
        score = None if r["domain_scores"] is None else float(r["domain_scores"][0])
        domain, reason = r["domains"][0]
        return {"map": r["maps"][0], "p_fake": float(r["p_fake"][0]), "label": r["labels"][0], "image": arr.transpose(1, 2, 0),
                "method": r["method"], "layer": r["layer"], "target": r["targets"][0], "domain": domain, "domain_reason": reason,
                "domain_score": None if score is None else round(score, 3)}  # fmt: skip


def _decode_chunk(chunk: list[tuple[str, bytes | None, str | None]], size: int, mode: str = "resize") -> list[tuple]:
    """Worker side of the streaming predictor: bytes -> (name, uint8 (3, size, size), facts, error)."""
    out = []
    for name, data, err in chunk:
        if err is not None:
            out.append((name, None, None, err))
            continue
        try:
            arr, facts = read_input(data, size, mode)  # type: ignore[arg-type]
            out.append((name, arr, facts, None))
        except Exception as e:  # noqa: BLE001 - any undecodable input is reported, never fatal
            out.append((name, None, None, f"not a readable image: {e}"))
    return out


ROW_KEYS = ["path", "label", "p_fake", "model", "error", "mode", "width", "height", "tiles", "domain", "domain_reason", "domain_score"]
