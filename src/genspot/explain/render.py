"""Pictures a person can read: original, heat map and overlay side by side, with the verdict."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

_SCALE = 8  # 32 px -> 256 px panels, nearest-neighbour so pixels stay visible


@lru_cache(maxsize=8)
def _lut(cmap: str) -> np.ndarray:
    from matplotlib import colormaps

    return (colormaps[cmap](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8)


@lru_cache(maxsize=1)
def _font():
    try:
        return ImageFont.load_default(size=14)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def colorize(heat: np.ndarray, cmap: str = "jet") -> np.ndarray:
    """[0, 1] float map -> uint8 RGB with a matplotlib colour map."""
    return _lut(cmap)[np.clip((heat * 255).round(), 0, 255).astype(np.uint8)]


def overlay(rgb: np.ndarray, heat: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    return (rgb.astype(np.float32) * (1 - alpha) + colorize(heat).astype(np.float32) * alpha).round().astype(np.uint8)


def explanation_panel(rgb: np.ndarray, heat: np.ndarray, caption: str, scale: int | None = None) -> Image.Image:
    """(H, W, 3) uint8 image and (H, W) map -> one PNG-ready picture with a caption underneath
    (each panel about 256 px: 8x at 32 px input, 1x at 256)."""
    h, w = heat.shape
    scale = scale or max(1, _SCALE * 32 // max(h, w))
    up = lambda a: Image.fromarray(a).resize((w * scale, h * scale), Image.Resampling.NEAREST)  # noqa: E731
    panels = [up(rgb), up(colorize(heat)), up(overlay(rgb, heat))]
    pad, cap_h = 6, 22
    canvas = Image.new("RGB", (3 * w * scale + 4 * pad, h * scale + 2 * pad + cap_h), "white")
    for i, p in enumerate(panels):
        canvas.paste(p, (pad + i * (w * scale + pad), pad))
    ImageDraw.Draw(canvas).text((pad, h * scale + pad + 3), caption, fill="black", font=_font())
    return canvas


def save_png(img: Image.Image, path: Path) -> None:
    # Fast zlib level: these are previews, and level 6 costs 3x the time for ~15% smaller files.
    img.save(path, compress_level=1)


def safe_stem(name: str) -> str:
    """A file-name-safe stem for an input name (paths and zip members flattened)."""
    stem = name.replace(":", "__").replace("/", "__").replace("\\", "__")
    stem = "".join(c if c.isalnum() or c in "._-" else "_" for c in stem).strip("._") or "image"
    return str(Path(stem).with_suffix("")) if Path(stem).suffix.lower() in {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"} else stem
