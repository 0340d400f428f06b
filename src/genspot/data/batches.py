"""Batches of cached uint8 tensors, normalised and augmented per batch on tensors.

No DataLoader, no per-image Python: a batch is one index_select, one float conversion
and a few vectorised ops, so the training step, not the loop, is the bottleneck. (Under
`--cache none` the images come from data/stream.py's worker processes instead of the
index_select; everything after is the same.) Images stored larger than the input (a crop
margin) are cut to it: a random crop per image when training, the centre otherwise.
Augmentations are geometric by default (flips, translations): generator artefacts live in
the pixels, so nothing blurs, resamples or re-encodes them unless asked: `robust` adds
Wang et al. 2020's random blur and JPEG re-encoding (data/perturb.py) to flips; `d4` draws from
the eight symmetries of the square (flips, transposes, 90-degree turns), which all map a
32x32 image's 8x8 JPEG block grid onto itself, as steganalysis does for pixel-level traces;
`aligned` (data/pairs.py) is for aligned archives: a photo and its fakes shuffled together and given
the same crop, flip, JPEG and rescale, with some reals made hard negatives.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

AUGMENTS = ("none", "flip", "flip-crop", "robust", "d4", "aligned")


# Images per scoring batch (validation, evaluate): 512 at 64 px and below, the same pixels per batch
# above, so that a 256-px batch of a full-resolution network (spot_resnet_s keeps 32 channels at
# full size) holds a few hundred MB of activations rather than several GB.
SCORING_PIXELS = 512 * 64 * 64


def scoring_batch(size: int, floor: int = 1) -> int:
    """Images per scoring batch at input size `size`: 512 up to 64 px, 32 at 256 px; at least `floor`."""
    return max(floor, min(512, SCORING_PIXELS // (size * size)))


def normalize(x_u8: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> float32 normalised."""
    m = torch.tensor(mean, dtype=torch.float32, device=x_u8.device).view(1, -1, 1, 1) * 255.0
    s = torch.tensor(std, dtype=torch.float32, device=x_u8.device).view(1, -1, 1, 1) * 255.0
    return (x_u8.float() - m) / s


def flip_translate(x: torch.Tensor, g: torch.Generator, flip: bool = True, pad: int = 0) -> torch.Tensor:
    """Random horizontal flips and random crops of a reflect-padded batch, in one gather.

    Each image is mirrored with probability 1/2 and shifted by up to `pad` pixels; both are
    folded into the column index, so the whole batch costs two torch.gather calls.
    """
    b, c, h, w = x.shape
    flips = torch.rand(b, generator=g) < 0.5 if flip else torch.zeros(b, dtype=torch.bool)
    xp = F.pad(x, (pad, pad, pad, pad), mode="reflect") if pad else x
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=g) if pad else torch.zeros(b, dtype=torch.int64)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=g) if pad else torch.zeros(b, dtype=torch.int64)
    ar_h, ar_w = torch.arange(h), torch.arange(w)
    # indices are drawn on the CPU (one generator for every device), then moved to the batch
    rows = (dy.view(b, 1) + ar_h).view(b, 1, h, 1).to(x.device).expand(b, c, h, w + 2 * pad)
    cols = (dx.view(b, 1) + torch.where(flips.view(b, 1), ar_w.flip(0), ar_w)).to(x.device)
    out = torch.gather(xp, 2, rows)
    return torch.gather(out, 3, cols.view(b, 1, 1, w).expand(b, c, h, w))


def dihedral(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """One random symmetry of the square per image: a random transpose then random flips.

    Transpose, vertical and horizontal flip generate all eight elements of D4; square
    inputs only (a transpose of a non-square batch changes its shape).
    """
    b, _, h, w = x.shape
    if h != w:
        raise ValueError("d4 augmentation needs square images")
    t, v, f = (torch.rand(b, generator=g).lt(0.5).view(b, 1, 1, 1).to(x.device) for _ in range(3))
    x = torch.where(t, x.transpose(2, 3), x)
    x = torch.where(v, x.flip(2), x)
    return torch.where(f, x.flip(3), x)


class Batches:
    """An epoch-aware iterable of (images, labels) batches over a subset of a tensor dataset.

    The shuffle order and augmentation of epoch e depend only on (seed, e), so a run
    resumed at epoch e sees the same batches as one that never stopped. Lightning calls
    `sampler.set_epoch(e)` at the start of each epoch.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        indices: np.ndarray | torch.Tensor,
        *,
        batch_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        shuffle: bool = False,
        augment: str = "none",
        seed: int = 0,
        drop_last: bool = False,
        channels_last: bool = False,
        crop: int = 0,
        groups: np.ndarray | None = None,
    ) -> None:
        if augment not in AUGMENTS:
            raise ValueError(f"augment must be one of {AUGMENTS}")
        self.images, self.labels = images, labels
        self.indices = torch.as_tensor(np.asarray(indices), dtype=torch.int64)
        self.batch_size, self.shuffle, self.augment = batch_size, shuffle, augment
        self.mean, self.std = tuple(mean), tuple(std)
        self.seed, self.drop_last, self.channels_last = seed, drop_last, channels_last
        # Images stored larger than the model's input (a crop margin, data/decode.stored_crop) are
        # cut to crop x crop: at a random place per image when shuffling (training), else the centre.
        self.crop = crop if crop and crop < images.shape[-1] else 0
        # --augment aligned: a group id per image of the dataset (a photo and its fakes share one);
        # the shuffle keeps groups whole and the augmentation draws once per group (data/pairs.py)
        self.groups = torch.as_tensor(groups, dtype=torch.int64) if groups is not None else None
        if augment == "aligned" and self.groups is None:
            self.groups = torch.arange(len(labels), dtype=torch.int64)
        self.epoch = 0
        self.seconds = 0.0  # time spent making batches (gather, augment, normalise), summed: what --profile reports
        # DDP: rank r of w takes every w-th item of the (shared, seeded) order; training shards
        # are cut to equal length so every rank runs the same number of steps.
        self.rank, self.world = 0, 1
        self.sampler = self  # where Lightning looks for set_epoch
        self.batch_sampler = None  # Lightning probes for it next to `sampler`

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def shard(self, rank: int, world: int) -> None:
        self.rank, self.world = rank, world

    def _n(self) -> int:
        n = len(self.indices)
        if self.world == 1:
            return n
        return n // self.world if self.shuffle else len(range(self.rank, n, self.world))

    def __len__(self) -> int:
        n = self._n()
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _crop(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        b, c, m, _ = x.shape
        s, room = self.crop, x.shape[-1] - self.crop
        if not self.shuffle:
            return x[..., room // 2 : room // 2 + s, room // 2 : room // 2 + s]
        dy, dx = (torch.randint(0, room + 1, (b,), generator=g) for _ in range(2))
        ar = torch.arange(s)
        rows = (dy.view(b, 1) + ar).view(b, 1, s, 1).to(x.device).expand(b, c, s, m)
        cols = (dx.view(b, 1) + ar).view(b, 1, 1, s).to(x.device).expand(b, c, s, s)
        return torch.gather(torch.gather(x, 2, rows), 3, cols)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        if self.shuffle and self.augment == "aligned":
            from genspot.data.pairs import group_order

            order = group_order(self.indices, self.groups, g)
        else:
            order = self.indices[torch.randperm(len(self.indices), generator=g)] if self.shuffle else self.indices
        if self.world > 1:
            order = order[self.rank :: self.world][: self._n()]
            # augmentation draws differ per rank (else every rank would flip the same positions)
            g.manual_seed(self.seed * 1_000_003 + self.epoch + 7_919 * self.rank)
        chunks = [order[k * self.batch_size : (k + 1) * self.batch_size] for k in range(len(self))]
        # --cache none (data/stream.py): the batches' images are decoded ahead in worker processes
        streamed = self.images.stream(chunks) if hasattr(self.images, "stream") else None
        for k in range(len(self)):
            t0 = time.perf_counter()
            idx = chunks[k]
            if streamed is not None:
                x_u8, keep = next(streamed)
                idx = idx[keep]
                if len(idx) == 0:
                    continue
            else:
                idx = idx.to(self.images.device)
                x_u8 = self.images.index_select(0, idx)
            if self.augment == "aligned" and self.shuffle:  # crops, flips and re-encodes per photo, on the CPU
                from genspot.data.pairs import aligned_augment

                y_idx = self.labels.index_select(0, idx)
                x_u8 = aligned_augment(x_u8, y_idx, self.groups[idx.cpu()], g, patch=self.crop).to(self.images.device)
            elif self.crop:
                x_u8 = self._crop(x_u8, g)
            if self.augment == "robust":  # PIL's JPEG codec: on the CPU, whatever the device
                from genspot.data.perturb import robust_augment

                x_u8 = robust_augment(x_u8.cpu(), g).to(self.images.device)
            x = normalize(x_u8, self.mean, self.std)
            if self.augment == "d4":
                x = dihedral(x, g)
            elif self.augment not in ("none", "aligned"):
                x = flip_translate(x, g, flip=True, pad=4 if self.augment == "flip-crop" else 0)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = self.labels.index_select(0, idx)
            self.seconds += time.perf_counter() - t0
            yield x, y
