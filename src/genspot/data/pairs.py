"""Batches of aligned pairs (genspot synth): a photo and every fake made from it travel together.

In an aligned archive the only difference between a real photo and its fake should be the
generator's decoder. Two things can spoil that during training, and this module handles both:

1. Processing applied to one member of a pair and not the other becomes a cue. So the shuffle
   keeps each photo's members next to each other (`group_order`: whole groups, consecutive), and
   `aligned_augment` draws the crop, the flip, the JPEG re-encode and the rescale once per photo
   and applies them to every member: compression and resampling history then separate nothing.
2. Reconstructions are slightly softer than their photos, so "soft" could become "fake". REAL
   hard negatives break that: each real is, with some probability, blurred, resampled down and
   up, or re-encoded on its own (its fake twin is not), and keeps its REAL label.

Every draw comes from the batch's seeded generator, so a resumed run sees the same batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np
import torch

from genspot.data import perturb


def stem_groups(paths: list[str]) -> np.ndarray:
    """A group id per image: images with the same file stem (a photo and all made from it) share one."""
    _, inverse = np.unique(np.array([PurePosixPath(p).stem for p in paths], dtype=object).astype(str), return_inverse=True)
    return inverse.astype(np.int64)


def group_order(indices: torch.Tensor, groups: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """`indices` shuffled by whole groups: the groups in a random order, each group's members
    consecutive (in index order), so that a batch whose size is a multiple of the group size
    holds whole pairs."""
    gid = groups[indices]
    uniq, inverse = torch.unique(gid, return_inverse=True)
    rank = torch.empty(len(uniq), dtype=torch.int64)
    rank[torch.randperm(len(uniq), generator=g)] = torch.arange(len(uniq))
    # sort by (the group's random rank, index): stable, so members keep their order
    key = rank[inverse] * (int(indices.max()) + 1 if len(indices) else 1) + indices
    return indices[torch.argsort(key)]


@dataclass(frozen=True)
class AlignedAugment:
    """The strengths, each with the reason it has that value."""

    p_jpeg: float = 0.5  # half the pairs re-encoded together: a second JPEG pass must not tell the classes apart
    jpeg_quality: tuple[int, int] = (65, 100)  # the range people's photos are saved at; below 65 the 8x8 grid swamps a 256-px crop
    p_rescale: float = 0.1  # rare: a shared resample also weakens the decoder's trace, which is what is being learned
    rescale: tuple[float, float] = (0.75, 0.95)  # down then back up (bicubic): mild, as platforms shrink photos
    p_hard: float = 0.3  # share of reals that become hard negatives (their fakes untouched)
    blur_sigma: tuple[float, float] = (0.4, 1.2)  # as soft as a TAEF2 reconstruction and softer
    hard_rescale: tuple[float, float] = (0.5, 0.9)
    hard_jpeg: tuple[int, int] = (60, 95)


def _uniform(g: torch.Generator, n: int, lo: float, hi: float) -> list[float]:
    return (lo + (hi - lo) * torch.rand(n, generator=g)).tolist()


def aligned_augment(
    x: torch.Tensor, labels: torch.Tensor, groups: torch.Tensor, g: torch.Generator, patch: int = 0,
    cfg: AlignedAugment = AlignedAugment(),
) -> torch.Tensor:  # fmt: skip
    """Augment a uint8 batch (B, 3, H, W) whose images belong to `groups` (a photo's id per image).

    Per group: a random `patch` x `patch` crop (0: keep the size), a flip, a JPEG re-encode, a rescale.
    Per REAL image (label 0): a hard negative (blur, resample or re-encode) with probability p_hard."""
    b, c, h, w = x.shape
    uniq, inv = torch.unique(groups.cpu(), return_inverse=True)
    n = len(uniq)
    s = patch if patch and patch < min(h, w) else 0
    dy = torch.randint(0, h - s + 1, (n,), generator=g) if s else None
    dx = torch.randint(0, w - s + 1, (n,), generator=g) if s else None
    flip = (torch.rand(n, generator=g) < 0.5).tolist()
    do_jpeg = (torch.rand(n, generator=g) < cfg.p_jpeg).tolist()
    quality = torch.randint(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1, (n,), generator=g).tolist()
    do_rescale = (torch.rand(n, generator=g) < cfg.p_rescale).tolist()
    factor = _uniform(g, n, *cfg.rescale)
    hard = (torch.rand(b, generator=g) < cfg.p_hard).tolist()
    kind = torch.randint(0, 3, (b,), generator=g).tolist()
    sigma = _uniform(g, b, *cfg.blur_sigma)
    hard_factor = _uniform(g, b, *cfg.hard_rescale)
    hard_q = torch.randint(cfg.hard_jpeg[0], cfg.hard_jpeg[1] + 1, (b,), generator=g).tolist()

    x = x.cpu()
    out = torch.empty((b, c, s or h, s or w), dtype=torch.uint8)
    real = (labels.cpu() == 0).tolist() if labels.ndim == 1 else (labels.cpu().argmax(1) == 0).tolist()
    for i in range(b):
        k = int(inv[i])
        img = x[i : i + 1]
        if s:
            img = img[..., int(dy[k]) : int(dy[k]) + s, int(dx[k]) : int(dx[k]) + s]
        if flip[k]:
            img = img.flip(-1)
        if do_rescale[k]:
            img = perturb.down_up(img, factor[k])
        if do_jpeg[k]:
            img = perturb.jpeg(img, quality[k])
        if real[i] and hard[i]:
            if kind[i] == 0:
                img = perturb.blur(img, sigma[i])
            elif kind[i] == 1:
                img = perturb.down_up(img, hard_factor[i])
            else:
                img = perturb.jpeg(img, hard_q[i])
        out[i] = img[0]
    return out
