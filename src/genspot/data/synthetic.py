"""A tiny generated CIFAKE-like set, for the quick start and the tests (no download needed).

REAL images are smooth random colour fields with sensor-like noise; FAKE images are the
same kind of field carrying a faint periodic checkerboard, the up-sampling artefact that
generator decoders leave. A small CNN separates them in an epoch or two.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image


def toy_image(rng: np.random.Generator, fake: bool, size: int = 32) -> np.ndarray:
    coarse = rng.uniform(0, 255, (4, 4, 3))
    img = np.asarray(Image.fromarray(coarse.astype(np.uint8)).resize((size, size), Image.Resampling.BICUBIC), float)
    img += rng.normal(0, 6, img.shape)
    if fake:
        yy, xx = np.mgrid[0:size, 0:size]
        img += (((yy + xx) % 2) * 2 - 1)[..., None] * rng.uniform(10, 16)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_toy_archive(
    path: str | Path,
    n_per_class: int = 200,
    *,
    splits: tuple[str, ...] = ("train",),
    seed: int = 0,
    size: int = 32,
    quality: int = 95,
) -> Path:
    """Write a zip in the Kaggle CIFAKE layout (<split>/REAL, <split>/FAKE) of toy JPEGs."""
    rng = np.random.default_rng(seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for split in splits:
            for label in ("REAL", "FAKE"):
                for i in range(n_per_class):
                    buf = io.BytesIO()
                    Image.fromarray(toy_image(rng, label == "FAKE", size)).save(buf, "JPEG", quality=quality)
                    z.writestr(f"{split}/{label}/{i:05d}.jpg", buf.getvalue())
    return path
