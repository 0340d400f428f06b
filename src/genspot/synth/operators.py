"""What `genspot synth` does to a photo: each operator is a named source of the archive.

- `ae:NAME`      a round trip through a local autoencoder (encoder, then decoder): the photo's
                 content in the generator decoder's pixels. A FAKE training source.
- `splice:OP`    a partial fake: a seeded random region (10-40% of the image, soft edge) replaced
                 by OP's output for the same photo (OP's round trip is reused, never recomputed);
                 its mask is written beside it. A FAKE training source, and the ground truth that
                 heat maps are scored against.
- `up:KIND`      down-and-up resampling by 2 (nearest, bilinear, bicubic): a probe, never a FAKE
                 training source. A resampled photo is still a photo.
- `identity`     decode and re-encode only: the null operator. A probe: a detector must not tell it
                 from its photo, or it has learned the pipeline, not the generator.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from genspot.errors import GenspotError, quote

RESAMPLE = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}
SPLICE_AREA = (0.10, 0.40)  # the share of the image a splice replaces, drawn uniformly
SPLICE_EDGE = 0.03  # the soft edge's Gaussian sigma, as a share of the shorter side
MASK_LEVEL = 0.5  # the mask PNG is 255 where the blend weight is at least this


@dataclass(frozen=True)
class Operator:
    name: str  # the source's name in the archive: ae:taef2, splice:ae:taef2, up:bicubic, identity
    kind: str  # ae | splice | up | identity
    arg: str = ""  # the autoencoder's name, the spliced operator's name, or the resampling kind
    probe: bool = False  # probes measure what a detector learned; never FAKE training data

    @property
    def autoencoder(self) -> str | None:
        """The autoencoder this operator needs (its own, or the one of the operator it splices)."""
        if self.kind == "ae":
            return self.arg
        if self.kind == "splice":
            return parse_operator(self.arg).autoencoder
        return None


def parse_operator(text: str) -> Operator:
    """`ae:NAME`, `splice:OP`, `up:nearest|bilinear|bicubic` or `identity`."""
    kind, _, arg = text.partition(":")
    if kind == "identity" and not arg:
        return Operator("identity", "identity", probe=True)
    if kind == "ae" and arg:
        return Operator(text, "ae", arg)
    if kind == "up" and arg in RESAMPLE:
        return Operator(text, "up", arg, probe=True)
    if kind == "splice" and arg:
        inner = parse_operator(arg)
        if inner.kind == "splice":
            raise GenspotError(f"a splice of a splice is not an operator: {quote(text)}")
        return Operator(text, "splice", arg, probe=inner.probe)
    raise GenspotError(f"unknown operator {quote(text)}; choose ae:NAME, splice:OP, up:nearest|bilinear|bicubic or identity")


def photo_rng(seed: int, stem: str, what: str) -> np.random.Generator:
    """A generator seeded by (seed, photo, purpose): the same photo gets the same draw whatever the
    chunking, worker count or resume point."""
    digest = hashlib.blake2b(f"{seed}/{what}/{stem}".encode(), digest_size=8).digest()
    return np.random.default_rng(int.from_bytes(digest, "little"))


def splice_weight(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """float32 (h, w) blend weight in [0, 1]: an axis-aligned ellipse or rectangle covering 10-40%
    of the image (by its hard mask), its edge softened by a Gaussian blur."""
    area = rng.uniform(*SPLICE_AREA) * h * w
    aspect = np.exp(rng.uniform(np.log(0.5), np.log(2.0)))
    ellipse = rng.random() < 0.5
    # an ellipse of semi-axes a, b covers pi a b; a rectangle 4 a b
    ab = area / (np.pi if ellipse else 4.0)
    a = min(np.sqrt(ab * aspect), w / 2 - 1)  # half-width
    b = min(ab / max(a, 1), h / 2 - 1)  # half-height
    cx, cy = rng.uniform(a, w - a), rng.uniform(b, h - b)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if ellipse:
        hard = ((xx + 0.5 - cx) / a) ** 2 + ((yy + 0.5 - cy) / b) ** 2 <= 1
    else:
        hard = (np.abs(xx + 0.5 - cx) <= a) & (np.abs(yy + 0.5 - cy) <= b)
    sigma = max(1.0, SPLICE_EDGE * min(h, w))
    soft = Image.fromarray((hard * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(sigma))
    return np.asarray(soft, dtype=np.float32) / 255.0


def splice(photo: np.ndarray, other: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """uint8 (h, w, 3): `other` inside the region, the photo outside, blended by `weight`."""
    wgt = weight[..., None]
    return np.clip(np.rint(wgt * other.astype(np.float32) + (1 - wgt) * photo.astype(np.float32)), 0, 255).astype(np.uint8)


def mask_png(weight: np.ndarray) -> np.ndarray:
    """uint8 (h, w): 255 where the blend weight is at least MASK_LEVEL, else 0."""
    return np.where(weight >= MASK_LEVEL, 255, 0).astype(np.uint8)


def resample(photo: np.ndarray, kind: str) -> np.ndarray:
    """uint8 (h, w, 3): down by 2, then back up to (w, h), both with `kind`."""
    img = Image.fromarray(photo)
    w, h = img.size
    small = img.resize((max(1, w // 2), max(1, h // 2)), RESAMPLE[kind])
    return np.asarray(small.resize((w, h), RESAMPLE[kind]), dtype=np.uint8)
