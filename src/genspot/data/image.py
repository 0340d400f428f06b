"""One path from an image file's bytes to a model's input, for every consumer.

predict, explain, the server, evaluate's decode cache and the domain check all read an image
through here: `decode` (bytes -> RGB image and the facts the domain check needs of the original:
size, format, mode), `as_image` (a path, bytes, a PIL image or an array), and `model_input`
(the model's S x S input under a mode: resize the whole image, crop its centre at native
resolution, or tiles covering it). Decompression bombs are refused before any pixel is decoded.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from genspot.data.inputs import DEFAULT_MAX_FILE_BYTES, read_file_capped
from genspot.errors import GenspotError

# Refuse images over this many pixels before decoding them (decompression bombs).
MAX_PIXELS = 64_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
# Pillow warns (on stderr, once per place) about metadata it tolerates, e.g. "Corrupt EXIF
# data": noise beside a per-image result; what it cannot decode still raises.
warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
MAX_TILES = 1024


@dataclass
class ImageFacts:
    """What the domain rule needs to know about one image, read while decoding it."""

    width: int
    height: int
    format: str | None = None  # PIL's format name (JPEG, PNG, ...), None for arrays and PIL images made in memory
    mode: str | None = None  # PIL's mode before conversion to RGB


class ImageTooLarge(ValueError):
    """More pixels than genspot decodes (a decompression bomb, or just too big)."""


def open_image(data: bytes) -> Image.Image:
    """Open (not yet decode) an image, refusing decompression bombs before any pixel is decoded."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageTooLarge(f"image too large (over {MAX_PIXELS:,} pixels)") from None
        except UnidentifiedImageError:
            raise ValueError("not a recognised image format") from None
    if img.width * img.height > MAX_PIXELS:
        raise ImageTooLarge(f"image too large ({img.width}x{img.height} pixels, limit {MAX_PIXELS:,})")
    return img


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL image -> RGB: EXIF orientation, palettes, alpha over white, CMYK, 16-bit, first frame."""
    img.load()  # decodes the first frame of an animation; truncated files fail here
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(img, dtype=np.float64)
        peak = 1.0 if img.mode == "F" else 65535.0 if img.mode.startswith("I;16") or a.max() > 255 else 255.0
        img = Image.fromarray(np.clip(a / peak * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return img if img.mode == "RGB" else img.convert("RGB")


def image_from_bytes(data: bytes) -> Image.Image:
    """Decode any common image file (PNG, JPEG, WebP, BMP, GIF, TIFF) to RGB."""
    return to_rgb(open_image(data))


def to_array(img: Image.Image, size: int) -> np.ndarray:
    """RGB image -> uint8 (3, size, size); other sizes are resized with antialiasing."""
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BICUBIC, reducing_gap=3.0)
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8).transpose(2, 0, 1))  # a writable copy


POLICIES = ("resize", "crop")


def crop_array(img: Image.Image, size: int) -> np.ndarray:
    """RGB image -> uint8 (3, size, size): the centre square at native resolution, no resampling.

    An image smaller than `size` on a side cannot be cropped: its shorter side is scaled up to
    `size` first (bicubic), the one case where this policy resamples (the domain check flags it)."""
    w, h = img.size
    if min(w, h) < size:
        scale = size / min(w, h)
        img = img.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.Resampling.BICUBIC)
        w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    img = img.crop((left, top, left + size, top + size))
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8).transpose(2, 0, 1))


def stored_crop(img: Image.Image, size: int, margin: int) -> np.ndarray:
    """uint8 (3, size + 2 margin, size + 2 margin) around the centre, for random size x size training
    crops at native resolution; its centre size x size square is exactly crop_array(img, size).

    An image too small for the margin keeps its centre crop and gets the margin by mirroring its
    edge pixels (nothing is resampled for the margin's sake)."""
    full = size + 2 * margin
    if min(img.size) >= full:
        return crop_array(img, full)
    return np.ascontiguousarray(np.pad(crop_array(img, size), ((0, 0), (margin, margin), (margin, margin)), mode="reflect"))


def input_array(img: Image.Image, size: int, policy: str = "resize") -> np.ndarray:
    """What a model with this input policy sees of an RGB image: `resize` (the whole image, with
    antialiasing, as CIFAKE was made) or `crop` (the centre size x size square at native
    resolution: generator traces live in single pixels, and resampling erases them)."""
    if policy == "crop":
        return crop_array(img, size)
    if policy != "resize":
        raise GenspotError(f"unknown input policy {policy!r}; choose {' or '.join(POLICIES)}")
    return to_array(img, size)


def decode_bytes(data: bytes, size: int, policy: str = "resize", margin: int = 0) -> tuple[np.ndarray, tuple[int, int]]:
    """Raw file bytes -> (uint8 (3, size, size), or with a crop margin (3, size + 2 margin, ...), original (width, height))."""
    img = open_image(data)
    orig = img.size
    if policy == "resize" and img.format == "JPEG" and min(orig) >= 4 * size:
        img.draft("RGB", (size, size))  # libjpeg scales by 1/2..1/8 while decoding: big photos stay cheap
    if margin:
        return stored_crop(to_rgb(img), size, margin), orig
    return input_array(to_rgb(img), size, policy), orig


def decode(data: bytes) -> tuple[Image.Image, ImageFacts]:
    """File bytes -> RGB image, and what the domain rule needs to know of the original."""
    raw = open_image(data)
    fmt, mode = raw.format, raw.mode
    img = to_rgb(raw)
    return img, ImageFacts(img.width, img.height, fmt, mode)


def as_image(image: str | os.PathLike | bytes | Image.Image | np.ndarray,
             max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> tuple[Image.Image, ImageFacts]:
    """Any image a caller holds (a path, raw file bytes, a PIL image, an HxWx3 array) -> RGB image and facts.
    Paths are read as regular files only, capped at `max_bytes`."""
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
    return decode(read_file_capped(image, max_bytes))


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


def model_input(img: Image.Image, size: int, mode: str, policy: str = "resize") -> np.ndarray:
    """The uint8 (3, S, S) a model sees of an RGB image under a resolved mode (resize or crop). Under
    tiles it is the image by the model's own `policy`, which the domain rule checks; the tiles
    themselves come from tile_image."""
    return input_array(img, size, policy if mode == "tiles" else mode)


def read_input(data: bytes, size: int, mode: str, policy: str = "resize") -> tuple[np.ndarray, ImageFacts]:
    """File bytes -> (the model's uint8 (3, S, S) input under a resolved mode, the original's facts)."""
    img, facts = decode(data)
    return model_input(img, size, mode, policy), facts
