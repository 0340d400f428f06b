"""Perturbations of uint8 image batches (N, 3, H, W): what an image meets between a generator and
a detector (re-compression, resizing, blur, noise, crops, flips).

Used twice, on purpose with the same code: `genspot robustness` applies each one at fixed
strengths to measure a model, and `--augment robust` applies blur and JPEG at random strengths
in training (Wang et al. 2020, "CNN-generated images are surprisingly easy to spot... for now").
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image


def _per_image(x: torch.Tensor, fn: Callable[[Image.Image], Image.Image]) -> torch.Tensor:
    out = torch.empty_like(x)
    for i in range(len(x)):
        img = fn(Image.fromarray(x[i].permute(1, 2, 0).numpy()))
        out[i] = torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.uint8).copy()).permute(2, 0, 1)
    return out


def _codec(img: Image.Image, **kw) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, **kw)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    """Re-encode as JPEG at `quality` (Pillow/libjpeg, 4:2:0 chroma subsampling as most encoders do)."""
    return _per_image(x, lambda im: _codec(im, format="JPEG", quality=int(quality)))


def png_roundtrip(x: torch.Tensor) -> torch.Tensor:
    """Lossless: must leave every pixel as it was."""
    return _per_image(x, lambda im: _codec(im, format="PNG"))


def down_up(x: torch.Tensor, factor: float = 0.5) -> torch.Tensor:
    """Downscale by `factor` (antialiased), then back up to the original size (bicubic)."""
    h, w = x.shape[-2:]
    small = TF.resize(x, [max(1, round(h * factor)), max(1, round(w * factor))], antialias=True)
    return TF.resize(small, [h, w], interpolation=TF.InterpolationMode.BICUBIC, antialias=True)


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur with standard deviation `sigma` pixels (kernel 2 * ceil(3 sigma) + 1)."""
    k = 2 * int(np.ceil(3 * sigma)) + 1
    return TF.gaussian_blur(x.float(), [k, k], [sigma, sigma]).round().clamp(0, 255).to(torch.uint8)


def noise(x: torch.Tensor, sigma: float, seed: int = 0) -> torch.Tensor:
    """Additive Gaussian noise of standard deviation `sigma` (on the 0-255 scale), seeded."""
    g = torch.Generator().manual_seed(seed)
    n = torch.randn(x.shape, generator=g) * sigma
    return (x.float() + n).round().clamp(0, 255).to(torch.uint8)


def crop_resize(x: torch.Tensor, crop: int = 24) -> torch.Tensor:
    """Centre crop of `crop` pixels, resized back to the original size (a zoom)."""
    h, w = x.shape[-2:]
    return TF.resize(TF.center_crop(x, [crop, crop]), [h, w], interpolation=TF.InterpolationMode.BICUBIC, antialias=True)


def hflip(x: torch.Tensor) -> torch.Tensor:
    return x.flip(-1)


@dataclass(frozen=True)
class Perturbation:
    family: str
    strength: str  # as shown in tables and plots
    level: float  # for ordering on the plot's x axis
    fn: Callable[[torch.Tensor], torch.Tensor]

    @property
    def name(self) -> str:
        return self.family if self.family in ("clean", "png", "hflip") else f"{self.family} {self.strength}"


SUITE: list[Perturbation] = (
    [Perturbation("clean", "-", 0, lambda x: x)]
    + [Perturbation("jpeg", f"q{q}", 100 - q, lambda x, q=q: jpeg(x, q)) for q in (95, 75, 50, 30)]
    + [Perturbation("png", "-", 0, png_roundtrip)]
    + [Perturbation("downscale", "x0.5", 1, down_up)]
    + [Perturbation("blur", f"sigma {s:g}", s, lambda x, s=s: blur(x, s)) for s in (0.5, 1, 2)]
    + [Perturbation("noise", f"sigma {s:g}", s, lambda x, s=s: noise(x, s)) for s in (2, 5, 10)]
    + [Perturbation("crop", "24px", 1, crop_resize)]
    + [Perturbation("hflip", "-", 0, hflip)]
)


def robust_augment(x: torch.Tensor, g: torch.Generator, p_blur: float = 0.5, p_jpeg: float = 0.5) -> torch.Tensor:
    """Wang et al. 2020's training augmentation on a uint8 batch: with probability 1/2 a Gaussian
    blur of sigma ~ U(0, 3), and with probability 1/2 a JPEG re-encode of quality ~ U{30..100};
    drawn from `g`, so a resumed run sees the same images."""
    x = x.clone()
    do_blur = (torch.rand(len(x), generator=g) < p_blur).tolist()
    sigmas = (torch.rand(len(x), generator=g) * 3).tolist()
    do_jpeg = (torch.rand(len(x), generator=g) < p_jpeg).tolist()
    quals = torch.randint(30, 101, (len(x),), generator=g).tolist()
    for i in range(len(x)):
        if do_blur[i] and sigmas[i] > 0.05:
            x[i : i + 1] = blur(x[i : i + 1], sigmas[i])
        if do_jpeg[i]:
            x[i : i + 1] = jpeg(x[i : i + 1], quals[i])
    return x
