"""The Detector: load a model directory once, then score and explain any image a person has.

Two policies for images that are not 32x32, chosen explicitly:
- `resize` (default): downscale the whole image to 32x32 with antialiasing, as CIFAKE's
  images were made. Fast and matches training, but a large image's fine detail is averaged
  away before the model sees it.
- `tiles`: cut the image at native resolution into 32x32 tiles (a grid covering it; at most
  MAX_TILES, by a larger stride on huge images), score every tile, and average the tiles'
  log-odds into one score. The model then sees real pixels, not a thumbnail, which takes the
  study past its 32x32 limit, but each tile shows only a small part of the scene, and the
  model was trained on whole downscaled scenes, so expect it to be less certain.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from genspot.data.batches import normalize
from genspot.data.decode import input_array, open_image, to_array, to_rgb
from genspot.data.inputs import DEFAULT_MAX_FILE_BYTES, iter_inputs, read_file_capped
from genspot.domain import DomainStats, ImageFacts, learned_reason, logits_and_features, rule_reasons, verdict
from genspot.errors import GenspotError
from genspot.models.io import DEFAULT, SHIPPED, load_model_dir, positive_index, resolve_model_dir
from genspot.models.tta import predict_logits

# How an image becomes the model's S x S input: "auto" is the model's own input policy (its
# config.json: resize for the CIFAKE models, a centre crop for native-resolution ones); resize and
# crop override it; tiles averages over S x S crops covering the image.
MODES = ("auto", "resize", "crop", "tiles")
MODE_CHOICES = "auto, resize, crop or tiles"
# Scoring precisions, under the names `genspot train --precision` also accepts for them.
PRECISIONS = {"fp32": "fp32", "32": "fp32", "bf16": "bf16"}
RUNTIMES = ("torch", "onnx")
MAX_TILES = 1024


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


def label_of(p_fake: float) -> str:
    """The verdict for a calibrated P(FAKE): one threshold for every caller."""
    return "FAKE" if p_fake >= 0.5 else "REAL"


def decode(data: bytes) -> tuple[Image.Image, ImageFacts]:
    """File bytes -> RGB image, and what the domain rule needs to know of the original."""
    raw = open_image(data)
    fmt, mode = raw.format, raw.mode
    img = to_rgb(raw)
    return img, ImageFacts(img.width, img.height, fmt, mode)


def _as_pil(image: str | os.PathLike | bytes | Image.Image | np.ndarray,
            max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> tuple[Image.Image, ImageFacts]:
    if isinstance(image, Image.Image):
        img = to_rgb(image)
        return img, ImageFacts(img.width, img.height, image.format, image.mode)
    if isinstance(image, np.ndarray):
        arr = image if image.dtype == np.uint8 else np.clip(image, 0, 255).astype(np.uint8)
        raw = Image.fromarray(arr)
        img = to_rgb(raw)
        return img, ImageFacts(img.width, img.height, None, raw.mode)
    if isinstance(image, (bytes, bytearray)):
        return decode(bytes(image))
    return decode(read_file_capped(image, max_bytes))  # regular files only, size-capped


def tile_image(img: Image.Image, size: int = 32, max_tiles: int = MAX_TILES) -> tuple[np.ndarray, tuple[int, int]]:
    """uint8 (T, 3, size, size) tiles on a grid covering the image, and the grid's (rows, cols)."""
    a = np.asarray(img, dtype=np.uint8)
    h, w = a.shape[:2]
    if h < size or w < size:  # too small to tile: one tile of the whole image, resized
        return to_array(img, size)[None], (1, 1)
    stride = size
    while math.ceil((h - size) / stride + 1) * math.ceil((w - size) / stride + 1) > max_tiles:
        stride += size // 2
    ys = _starts(h, size, stride)
    xs = _starts(w, size, stride)
    tiles = np.stack([a[y : y + size, x : x + size] for y in ys for x in xs]).transpose(0, 3, 1, 2)
    return np.ascontiguousarray(tiles), (len(ys), len(xs))


def _starts(n: int, size: int, stride: int) -> list[int]:
    s = list(range(0, n - size + 1, stride))
    if s[-1] != n - size:  # cover the far edge too
        s.append(n - size)
    return s


class Detector:
    """A loaded model and everything needed to use it: `Detector.load(dir).predict("img.jpg")`."""

    def __init__(self, model: torch.nn.Module, config: dict[str, Any], name: str, device: str = "cpu",
                 precision: str = "fp32", domain: DomainStats | None = None, onnx: Any = None) -> None:
        if precision not in PRECISIONS:
            raise GenspotError(f"unknown precision {precision!r}; choose fp32 (or 32) or bf16")
        self.model, self.config, self.name, self.device = model, config, name, device
        self.onnx = onnx  # an export.OnnxModel: scoring runs there; explanations still need the torch model
        self.runtime = "torch" if onnx is None else "onnx"
        self.domain = domain  # None: the domain check is the rule alone
        self.precision = PRECISIONS[precision]
        self.size = int(config.get("input_size", 32))
        self.policy = config.get("input_policy", "resize")  # resize | crop (centre square at native resolution)
        self.temperature = float(config.get("temperature", 1.0))
        self.positive = positive_index(config)

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
        if runtime not in RUNTIMES:
            raise GenspotError(f"unknown runtime {runtime!r}; choose {' or '.join(RUNTIMES)}")
        if onnx_file is not None and runtime != "onnx":
            raise GenspotError("an ONNX file is only used with runtime onnx (--runtime onnx)")
        key = DEFAULT if model is None else str(model)
        m, cfg = load_model_dir(key, device=device)
        name = cfg.get("name") or (key if key in SHIPPED else Path(key).name) or cfg["model"]
        runner = None
        if runtime == "onnx":
            if PRECISIONS.get(precision) == "bf16" or device != "cpu":
                raise GenspotError("ONNX Runtime scores in fp32 on the CPU here: drop --precision bf16 / --device, or use --runtime torch")
            from genspot.export import OnnxModel

            runner = OnnxModel.open(key, cfg, onnx_file)
        return cls(m, cfg, name, device, precision, DomainStats.load(resolve_model_dir(key), cfg), runner)

    # -- scoring -------------------------------------------------------------------------
    @torch.inference_mode()
    def _forward(self, x_u8: torch.Tensor, features: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """uint8 (B, 3, S, S) -> (TTA logits, and the penultimate features when asked): one pass."""
        if self.onnx is not None:  # the graph folds normalisation and TTA in, and always returns the features
            logits, feats = self.onnx.run(x_u8.numpy())
            return torch.from_numpy(logits), torch.from_numpy(feats) if features else None
        x = normalize(x_u8.to(self.device), self.config["mean"], self.config["std"])
        if self.config.get("channels_last"):
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(torch.device(self.device).type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            if features:
                return logits_and_features(self.model, self.config, x)
            return predict_logits(self.model, self.config, x), None

    def logits(self, x_u8: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 3, S, S) -> logits, (B, 2) float."""
        return self._forward(x_u8)[0]

    def _p(self, logits: torch.Tensor) -> np.ndarray:
        return torch.softmax(logits.float() / self.temperature, 1)[:, self.positive].cpu().numpy()

    def p_fake(self, x_u8: torch.Tensor) -> np.ndarray:
        return self._p(self.logits(x_u8))

    def score(self, x_u8: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
        """uint8 (B, 3, S, S) -> (p_fake, domain score or None): one forward pass for both."""
        logits, feats = self._forward(x_u8, features=self.domain is not None)
        return self._p(logits), None if feats is None else self.domain.score(feats.cpu())  # type: ignore[union-attr]

    def _domain(self, facts: ImageFacts | None, arr: np.ndarray, score: float | None, mode: str,
                label: str | None = None) -> tuple[str, str | None]:
        reasons = rule_reasons(facts, arr, self.config, mode, label)
        if score is not None and self.domain is not None:
            learned = learned_reason(score, self.domain.threshold)
            reasons += [learned] if learned else []
        return verdict(reasons)

    def _row(self, name: str, p: float, facts: ImageFacts, arr: np.ndarray, score: float | None, mode: str, **kw) -> Prediction:
        domain, reason = self._domain(facts, arr, score, mode, label_of(p))
        return Prediction(name, label_of(p), p, self.name, None, mode, facts.width, facts.height, domain=domain,
                          domain_reason=reason, domain_score=None if score is None else round(float(score), 3), **kw)  # fmt: skip

    def resolve_mode(self, mode: str) -> str:
        """resize, crop or tiles: what `mode` means for this model ("auto": its own input policy)."""
        if mode not in MODES:
            raise GenspotError(f"unknown mode {mode!r}; choose {MODE_CHOICES}")
        return self.policy if mode == "auto" else mode

    def _score_pil(self, img: Image.Image, path: str, mode: str, facts: ImageFacts | None = None) -> Prediction:
        """`mode` is resolved already (resize, crop or tiles): every public entry resolves it once."""
        facts = facts or ImageFacts(img.width, img.height)
        arr = input_array(img, self.size, self.policy if mode == "tiles" else mode)
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
        img, facts = _as_pil(image)
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
                arr = input_array(img, self.size, mode) if mode != "tiles" else None
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
    def explain_arrays(self, x_u8: torch.Tensor, method: str = "gradcam", target: str = "predicted",
                       layer: str | None = None, facts: list[ImageFacts | None] | None = None, mode: str = "auto") -> dict[str, Any]:
        """Heat maps for a uint8 (B, 3, S, S) batch, with the verdicts predict() gives them.

        The one explaining path (genspot explain, predict --explain, the server, this API):
        p_fake comes from the same scorer as predict() (TTA and temperature included), and
        "predicted" explains that verdict, so a heat map never contradicts its caption."""
        from genspot.explain import explain_batch

        p, d = self.score(x_u8)  # the verdict and the domain score, in one pass
        labels = [label_of(float(v)) for v in p]
        if target == "predicted":
            chosen: str | torch.Tensor = torch.tensor([self.positive if lab == "FAKE" else 1 - self.positive for lab in labels])
        else:
            chosen = target
        x = normalize(x_u8, self.config["mean"], self.config["std"])
        r = explain_batch(self.model, self.config, x, method=method, target=chosen, layer=layer)
        names = self.config["class_names"]
        facts = facts or [None] * len(labels)  # what is known of each original image, for the domain rule
        domains = [self._domain(facts[i], a, None if d is None else float(d[i]), mode, labels[i]) for i, a in enumerate(x_u8.numpy())]
        return {"maps": r["maps"], "p_fake": p, "labels": labels, "layer": r["layer"],
                "targets": [names[int(i)] for i in r["target"]], "domains": domains, "domain_scores": d}  # fmt: skip

    def explain(self, image, method: str = "gradcam", target: str = "predicted", layer: str | None = None,
                mode: str = "auto") -> dict[str, Any]:
        """Heat map (size x size float32 in [0, 1]) for one image, with its prediction and domain;
        `mode` auto (the model's policy), resize or crop says which S x S pixels are explained."""
        mode = self.resolve_mode(mode)
        if mode == "tiles":
            raise GenspotError("a heat map explains one S x S input: use mode auto, resize or crop (tiles mode has its tile map)")
        img, facts = _as_pil(image)
        arr = input_array(img, self.size, mode)
        r = self.explain_arrays(torch.from_numpy(arr)[None], method=method, target=target, layer=layer, facts=[facts], mode=mode)
        score = None if r["domain_scores"] is None else float(r["domain_scores"][0])
        domain, reason = r["domains"][0]
        return {"map": r["maps"][0], "p_fake": float(r["p_fake"][0]), "label": r["labels"][0], "image": arr.transpose(1, 2, 0),
                "method": method, "layer": r["layer"], "target": r["targets"][0], "domain": domain, "domain_reason": reason,
                "domain_score": None if score is None else round(score, 3)}  # fmt: skip


def _decode_chunk(chunk: list[tuple[str, bytes | None, str | None]], size: int, policy: str = "resize") -> list[tuple]:
    """Worker side of the streaming predictor: bytes -> (name, uint8 (3, size, size), (w, h), error)."""
    out = []
    for name, data, err in chunk:
        if err is not None:
            out.append((name, None, None, err))
            continue
        try:
            img, facts = decode(data)  # type: ignore[arg-type]
            out.append((name, input_array(img, size, policy), facts, None))
        except Exception as e:  # noqa: BLE001 - any undecodable input is reported, never fatal
            out.append((name, None, None, f"not a readable image: {e}"))
    return out


def tile_heatmap(img: Image.Image, grid: np.ndarray, alpha: float = 0.45) -> Image.Image:
    """The image with each tile tinted by its P(FAKE), and a colour scale under it
    (blue: REAL, p_fake 0; red: FAKE, p_fake 1)."""
    from PIL import ImageDraw

    from genspot.explain.render import _font, colorize

    heat = Image.fromarray(colorize(grid.astype(np.float32), "coolwarm")).resize(img.size, Image.Resampling.NEAREST)
    tinted = Image.blend(img.convert("RGB"), heat, alpha)
    w, bar_h, text_h = max(tinted.width, 240), 12, 18
    canvas = Image.new("RGB", (w, tinted.height + bar_h + text_h + 6), "white")
    canvas.paste(tinted, (0, 0))
    ramp = colorize(np.tile(np.linspace(0, 1, w - 20, dtype=np.float32), (bar_h, 1)), "coolwarm")
    canvas.paste(Image.fromarray(ramp), (10, tinted.height + 4))
    draw, font, y = ImageDraw.Draw(canvas), _font(), tinted.height + bar_h + 5
    draw.text((10, y), "p_fake 0 (REAL)", fill="black", font=font)
    right = "1 (FAKE)"
    draw.text((w - 10 - draw.textlength(right, font=font), y), right, fill="black", font=font)
    draw.text((w // 2 - draw.textlength("0.5", font=font) / 2, y), "0.5", fill="black", font=font)
    return canvas


ROW_KEYS = ["path", "label", "p_fake", "model", "error", "mode", "width", "height", "tiles", "domain", "domain_reason", "domain_score"]


class RowWriter:
    """Writes prediction rows one at a time as json (an array), jsonl or csv."""

    def __init__(self, fmt: str, stream: io.TextIOBase) -> None:
        import csv

        if fmt not in ("json", "jsonl", "csv"):
            raise GenspotError(f"unknown format {fmt!r}")
        self.fmt, self.stream, self.first = fmt, stream, True
        if fmt == "csv":
            self.csv = csv.DictWriter(stream, fieldnames=ROW_KEYS, extrasaction="ignore")
            self.csv.writeheader()
        elif fmt == "json":
            stream.write("[")

    def write(self, row: Prediction) -> None:
        import json

        if self.fmt == "csv":
            self.csv.writerow(row.as_dict())
        elif self.fmt == "jsonl":
            self.stream.write(json.dumps(row.as_dict()) + "\n")
        else:
            self.stream.write(("\n  " if self.first else ",\n  ") + json.dumps(row.as_dict()))
        self.first = False

    def close(self) -> None:
        if self.fmt == "json":
            self.stream.write("\n]\n" if not self.first else "]\n")
        self.stream.flush()


def write_rows(rows: list[Prediction], fmt: str, stream: io.TextIOBase) -> None:
    """All rows at once (the streaming RowWriter underneath)."""
    w = RowWriter(fmt, stream)
    for r in rows:
        w.write(r)
    w.close()
