"""Is an image inside what a model was trained on? A domain check beside every verdict.

Two parts, both cheap, neither changing `p_fake` or `label`:

- **A rule** from the model's config against the image: its size against the sizes the model
  was trained on and the input policy (a 1024x768 photo squeezed to 32x32 is not what a CIFAKE
  model saw), its colour (a grayscale image, when training saw colour photos), its format (when
  the training data's formats are recorded).
- **A learned score** of the model's own penultimate features (the input of its last linear
  layer, averaged over the test-time views), taken in the same forward pass as the verdict:
  the Mahalanobis distance to the nearest class mean under one shared covariance (Lee et al.
  2018, "A simple unified framework for detecting out-of-distribution samples"). Means and
  covariance are fitted on a seeded sample of the training split; the threshold is a stated
  quantile (95%) of the scores of one seeded half of the validation split, so about 5% of
  in-distribution images are flagged, and the other half measures that share.

The statistics live beside the weights: `domain.safetensors` (means, precision matrix) and
`config.json["domain"]` (threshold, what was fitted on what, the training sizes and formats).
A model directory without them still gets the rule.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from genspot.data.image import ImageFacts
from genspot.models.spec import ModelSpec

DOMAIN_FILE = "domain.safetensors"
QUANTILE = 0.95  # the share of in-distribution validation images the learned score lets through
GRAY_TOLERANCE = 3  # max |R-G|, |G-B| (0-255) still called grayscale: JPEG rounding of gray content
SIZE_FACTOR = 2.0  # an image more than this many times larger (or smaller) than any training image is out
GRAY_RARE = 0.01  # grayscale below this share of every class: the model never learned what gray means
GRAY_SHORTCUT = 3.0  # one class this many times grayer than another: "no colour" is a learned shortcut


def head_linear(model: nn.Module, name: str | None = None) -> nn.Module:
    """The layer whose input is the penultimate feature vector: the one the model's registration
    names (feature_layer), else its last linear layer."""
    if name is not None:
        from genspot.models.layers import resolve_layer
        from genspot.models.registry import model_entry

        path = model_entry(name).feature_layer
        if path is not None:
            return resolve_layer(model, path)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no linear layer to read features from")
    return linears[-1]


@contextlib.contextmanager
def feature_tap(model: nn.Module, name: str | None = None) -> Iterator[list[torch.Tensor]]:
    """Collect the head's input, (B, D) per forward pass, while the block runs."""
    seen: list[torch.Tensor] = []
    handle = head_linear(model, name).register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach().float().flatten(1)))
    try:
        yield seen
    finally:
        handle.remove()


def logits_and_features(model: nn.Module, spec: ModelSpec, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """TTA logits as every scorer computes them, and the penultimate features averaged over the same views."""
    from genspot.models.tta import predict_logits

    with feature_tap(model, spec.model) as seen:
        logits = predict_logits(model, spec.tta, x)
    return logits, torch.stack(seen).mean(0)


class DomainStats:
    """Class means and a shared precision matrix of a model's features, and the threshold on the score."""

    def __init__(self, means: torch.Tensor, precision: torch.Tensor, info: dict[str, Any]) -> None:
        self.means = means.double()
        self.precision = precision.double()
        self.info = info
        self.threshold = float(info["threshold"])

    def score(self, feats: torch.Tensor) -> np.ndarray:
        """Mahalanobis distance (not squared) to the nearest class mean, per row of (B, D) features."""
        d = feats.double()[:, None, :] - self.means[None]  # (B, C, D)
        m2 = torch.einsum("bcd,de,bce->bc", d, self.precision, d).clamp_min(0)
        return m2.min(1).values.sqrt().numpy()

    @classmethod
    def load(cls, model_dir: str | os.PathLike, spec: ModelSpec) -> DomainStats | None:
        info = spec.domain
        path = Path(model_dir) / DOMAIN_FILE
        if not info or not path.is_file():
            return None
        from safetensors.torch import load_file

        t = load_file(str(path))
        return cls(t["means"], t["precision"], dict(info))


def fit_gaussians(feats: torch.Tensor, labels: torch.Tensor, n_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Class means and the inverse of the shared (pooled, within-class) covariance, lightly shrunk."""
    f = feats.double()
    means = torch.stack([f[labels == c].mean(0) for c in range(n_classes)])
    centred = f - means[labels]
    cov = centred.T @ centred / max(len(f) - n_classes, 1)
    # A little shrinkage towards the mean variance keeps the inverse stable when features are
    # nearly collinear (ReLU features often are), without changing the ranking much.
    cov = cov + 1e-3 * cov.diagonal().mean() * torch.eye(cov.shape[0], dtype=cov.dtype)
    return means.float(), torch.linalg.inv(cov).float()


def is_gray(arr: np.ndarray) -> bool:
    """A (3, H, W) uint8 image with no colour in it."""
    a = arr.astype(np.int16)
    return bool(np.abs(a[0] - a[1]).max() <= GRAY_TOLERANCE and np.abs(a[1] - a[2]).max() <= GRAY_TOLERANCE)


def rule_reasons(facts: ImageFacts | None, arr: np.ndarray, spec: ModelSpec, mode: str = "auto",
                 label: str | None = None) -> list[str]:
    """Why the image is outside what the model's config says it was trained on (empty: nothing found).

    `label` is the verdict: a grayscale image is flagged when training saw (almost) no grayscale,
    or when grayscale was concentrated in one class and the verdict is that class (then "no
    colour" may be all the verdict rests on)."""
    reasons = []
    size = spec.input_size
    info = spec.domain or {}
    lo, hi = info.get("train_sizes", [[size, size], [size, size]])  # smallest and largest (w, h) seen in training
    if facts is not None:
        w, h = facts.width, facts.height
        policy = spec.input_policy
        mode = spec.resolve_mode(mode)  # what the image went through: resize, crop or tiles
        if mode == "crop" and min(w, h) < size:
            reasons.append(f"{w}x{h} image upscaled to fill a {size}x{size} crop; the model reads native pixels")
        elif mode == "crop" and policy == "resize" and (w, h) != (size, size):
            reasons.append(f"a {size}x{size} crop of a {w}x{h} image; the model was trained on whole images resized to {size}x{size}")
        elif mode == "resize" and policy == "crop" and (w, h) != (size, size):
            reasons.append(f"{w}x{h} image resized to {size}x{size}; the model was trained on native-resolution crops")
        elif mode == "resize" and policy == "resize" and (max(w, h) > SIZE_FACTOR * max(hi) or min(w, h) < min(lo) / SIZE_FACTOR):
            trained = f"{lo[0]}x{lo[1]}" if lo == hi else f"{min(lo)}-{max(hi)} px"
            reasons.append(f"{w}x{h} image resized to {size}x{size}; trained on {trained} images")
        elif mode == "tiles" and min(w, h) < size:
            reasons.append(f"{w}x{h} image smaller than one {size}x{size} tile; trained on {size}x{size} images")
        formats = info.get("train_formats")
        if formats and facts.format and facts.format not in formats:
            reasons.append(f"{facts.format} image; trained on {', '.join(formats)} images")
    if is_gray(arr):
        why = _gray_reason(info.get("train_gray_share"), label)
        if why:
            reasons.append(why)
    return reasons


def _gray_reason(shares: dict[str, float] | None, label: str | None) -> str | None:
    if not shares:  # no statistics: assume colour training data, as every model here has
        return "grayscale image; trained on colour photos"
    most = max(shares, key=shares.get)
    seen = " and ".join(f"{100 * v:.1f}% of {k}" for k, v in shares.items())
    if shares[most] < GRAY_RARE:
        return f"grayscale image; trained on colour photos (grayscale was {seen} training images)"
    if shares[most] >= GRAY_SHORTCUT * max(min(shares.values()), 1e-6) and label == most:
        return f"grayscale image called {most}: grayscale was {seen} training images, so no colour alone reads as {most}"
    return None


class DomainCheck:
    """The domain check of one model: its rule (from the spec) and its learned score (from the
    statistics beside its weights, None: the rule alone). Never changes a verdict; says whether
    the image is inside what the model was trained on, and why not."""

    def __init__(self, spec: ModelSpec, stats: DomainStats | None) -> None:
        self.spec, self.stats = spec, stats

    def __call__(self, facts: ImageFacts | None, arr: np.ndarray, score: float | None, mode: str,
                 label: str | None = None) -> tuple[str, str | None]:  # fmt: skip
        """("in" | "out", the reasons or None) for one image: `arr` is what the model saw of it under
        the resolved `mode`, `score` its learned score from the verdict's own forward pass."""
        reasons = rule_reasons(facts, arr, self.spec, mode, label)
        if score is not None and self.stats is not None:
            learned = learned_reason(score, self.stats.threshold)
            reasons += [learned] if learned else []
        return verdict(reasons)


def learned_reason(score: float, threshold: float) -> str | None:
    return f"features unlike the training data (score {score:.1f} > {threshold:.1f})" if score > threshold else None


def verdict(reasons: list[str]) -> tuple[str, str | None]:
    return ("out", "; ".join(reasons)) if reasons else ("in", None)


# -- fitting and measuring --------------------------------------------------------------------------


@torch.inference_mode()
def features_of(model: nn.Module, spec: ModelSpec, images: torch.Tensor, batch_size: int = 256,
                progress: str | None = None, with_p_fake: bool = False) -> torch.Tensor | tuple[torch.Tensor, np.ndarray]:
    """(N, D) penultimate features of uint8 (N, 3, S, S) images, TTA-averaged, as Detector computes them
    (and the calibrated p_fake of the same pass, with_p_fake)."""
    from genspot.data.batches import normalize
    from genspot.progress import progress_bar

    out, ps = [], []
    with progress_bar(progress or "features", total=len(images), unit="img", enabled=progress is not None) as bar:
        for i in range(0, len(images), batch_size):
            x = normalize(images[i : i + batch_size], spec.mean, spec.std)
            if spec.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            logits, feats = logits_and_features(model, spec, x)
            out.append(feats)
            ps.append(spec.p_fake_np(logits))
            bar.advance(len(x))
    return (torch.cat(out), np.concatenate(ps)) if with_p_fake else torch.cat(out)


def _halves(idx: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    perm = np.random.default_rng(seed).permutation(idx)
    return np.sort(perm[: len(perm) // 2]), np.sort(perm[len(perm) // 2 :])


def fit_domain(model_dir: str | os.PathLike, data: str | os.PathLike, n_fit: int = 20_000, seed: int = 0,
               quantile: float = QUANTILE, progress: bool = True) -> dict[str, Any]:
    """Fit the learned score on the model's own training data and write it beside the weights.

    Means and covariance: a seeded sample of `n_fit` images of the model's training split. Threshold:
    the `quantile` of the scores of one seeded half of its validation split ("threshold half"); the
    other half ("check half") is left to measure the share flagged. Needs the model's training data
    (its split is rebuilt from config.json)."""
    from safetensors.torch import save_file

    from genspot.data import load_dataset
    from genspot.data.splits import splits_from_config
    from genspot.errors import GenspotError
    from genspot.models.io import load_model_dir, read_spec, resolve_model_dir, write_config

    d = resolve_model_dir(model_dir)
    model, spec = load_model_dir(d)
    ds = load_dataset(data, size=spec.input_size, policy=spec.input_policy, progress=progress)
    if spec.data.fingerprint != ds.fingerprint:
        raise GenspotError(f"{data} is not the data {d} was trained on (fingerprints differ): its training split cannot be rebuilt")
    s = splits_from_config(ds, spec.data)
    rng = np.random.default_rng(seed)
    fit_idx = np.sort(rng.choice(s.train, size=min(n_fit, len(s.train)), replace=False))
    thr_idx, check_idx = _halves(s.val, seed)
    labels = ds.labels[fit_idx]
    feats = features_of(model, spec, ds.images[fit_idx], progress="domain: training features" if progress else None)
    means, precision = fit_gaussians(feats, labels, len(spec.class_names))
    stats = DomainStats(means, precision, {"threshold": 0.0})
    thr_scores = stats.score(features_of(model, spec, ds.images[thr_idx], progress="domain: threshold half" if progress else None))
    threshold = float(np.quantile(thr_scores, quantile))
    sizes = ds.sizes[fit_idx]
    gray = np.array([is_gray(a) for a in ds.images[fit_idx].numpy()])
    names = spec.class_names
    gray_share = {names[c]: round(float(gray[labels.numpy() == c].mean()), 4) for c in range(len(names))}
    info = {
        "method": "mahalanobis (shared covariance, nearest class mean; Lee et al. 2018)",
        "feature_layer": "input of the last linear layer, averaged over the test-time views",
        "threshold": round(threshold, 4),
        "quantile": quantile,
        "fitted_on": {"data_fingerprint": ds.fingerprint, "train_images": int(len(fit_idx)), "threshold_images": int(len(thr_idx)),
                      "check_images": int(len(check_idx)), "seed": seed},  # fmt: skip
        "train_sizes": [[int(sizes[:, 0].min()), int(sizes[:, 1].min())], [int(sizes[:, 0].max()), int(sizes[:, 1].max())]],
        "train_formats": sorted(set(formats_of(ds, fit_idx[:200]))),
        # Where one class is far grayer (CIFAKE: 12.1% of FAKE images, 1.3% of REAL), a model reads
        # "no colour" as that class, and its verdict on a grayscale photo may be that shortcut.
        "train_gray_share": gray_share,
    }
    tmp = d / (DOMAIN_FILE + ".tmp")
    save_file({"means": means.contiguous(), "precision": precision.contiguous()}, str(tmp))
    os.replace(tmp, d / DOMAIN_FILE)
    write_config(read_spec(d).to_config(domain=info), d)
    return info


def formats_of(ds, idx: np.ndarray) -> list[str | None]:
    """The file format of each of these images, read from its header."""
    import io

    from PIL import Image

    from genspot.data.sources import open_source

    src = open_source(ds.source)
    try:
        out = []
        for i in idx:
            with Image.open(io.BytesIO(src.read(ds.paths[int(i)]))) as im:
                out.append(im.format)
        return out
    finally:
        src.close()
