"""`--cache none`: train straight from the archive, decoding every batch in DataLoader worker
processes, with no decoded copy on disk or in memory (for archives too large to cache).

An index pass reads every file once, to hash its bytes for the duplicate-aware split (the same
hashes the cache keeps, so a clean archive splits exactly as it does with the cache); it decodes
nothing. Each epoch then decodes every image it uses again: that is the price, measured against
the cache in docs/benchmarks.md. A member that cannot be decoded is left out of its batch (one
warning per member); since the split was drawn before decoding, an archive with such members
splits slightly differently than through the cache, which drops them first.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from genspot.data.decode import DecodedSet, _mp_context, content_hash
from genspot.data.image import decode_bytes
from genspot.data.sources import LAYOUTS, Source, open_source, reopen, spec_of
from genspot.errors import GenspotError
from genspot.progress import progress_bar, warn

_SOURCES: dict[tuple[str, str], Source] = {}  # one open archive per worker process


def _source(spec: tuple[str, str]) -> Source:
    if spec not in _SOURCES:
        _SOURCES[spec] = reopen(spec)
    return _SOURCES[spec]


class LazyImages:
    """Stands where a DecodedSet's image tensor stands: (N, 3, side, side) uint8, decoded on demand."""

    def __init__(self, spec: tuple[str, str], names: list[str], size: int, policy: str, margin: int, workers: int) -> None:
        self.spec, self.names, self.size, self.policy, self.margin = spec, names, size, policy, margin
        self.workers = workers
        side = size + 2 * margin
        self.shape = torch.Size((len(names), 3, side, side))
        self.device = torch.device("cpu")
        self.warned: set[str] = set()

    def __len__(self) -> int:
        return len(self.names)

    def stream(self, chunks: list[torch.Tensor]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(uint8 images, mask of the chunk's indices that decoded) per chunk, in order; at most two
        chunks per worker are decoded ahead, so memory stays bounded."""
        workers = self.workers
        loader = DataLoader(_Chunks(self, chunks), batch_size=None, num_workers=workers,
                            prefetch_factor=2 if workers else None,
                            multiprocessing_context=_mp_context() if workers else None)  # fmt: skip
        for x, keep, failed in loader:
            for name in failed:
                if name not in self.warned:
                    self.warned.add(name)
                    warn(f"skipped {name}: it could not be decoded (left out of its batch)")
            yield x, keep


class _Chunks(Dataset):
    def __init__(self, images: LazyImages, chunks: list[torch.Tensor]) -> None:
        self.images, self.chunks = images, chunks

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        im = self.images
        src = _source(im.spec)
        arrays, keep, failed = [], [], []
        for i in self.chunks[k].tolist():
            try:
                arrays.append(decode_bytes(src.read(im.names[i]), im.size, im.policy, im.margin)[0])
                keep.append(True)
            except Exception:  # noqa: BLE001 - one bad member must not stop the epoch
                keep.append(False)
                failed.append(im.names[i])
        side = im.shape[-1]
        x = torch.from_numpy(np.stack(arrays)) if arrays else torch.zeros((0, 3, side, side), dtype=torch.uint8)
        return x, torch.tensor(keep, dtype=torch.bool), failed


def index_dataset(path: str | os.PathLike, *, size: int = 32, policy: str = "resize", margin: int = 0,
                  workers: int | None = None, progress: bool = True) -> DecodedSet:  # fmt: skip
    """Every labelled image of an archive or folder, indexed but not decoded: labels, splits and
    content hashes now, pixels batch by batch (LazyImages)."""
    src = open_source(path)
    try:
        records = src.records()
        if not records:
            raise GenspotError(f"{src.path}: found no images in a layout genspot reads ({LAYOUTS})")
        hashes = []
        with progress_bar("indexing", total=len(records), unit="img", enabled=progress) as bar:
            for r in records:
                try:
                    hashes.append(content_hash(src.read(r.path)))
                except Exception as e:  # noqa: BLE001 - unreadable bytes: a name-based key keeps it apart
                    hashes.append(f"unreadable:{r.path}:{type(e).__name__}")
                bar.advance(1)
        fp, spec = src.fingerprint(), spec_of(src)
    finally:
        src.close()
    names = [r.path for r in records]
    n_workers = max(0, min(workers if workers is not None else (os.cpu_count() or 1), 16))
    images = LazyImages(spec, names, size, policy, margin, n_workers)
    return DecodedSet(
        images=images,  # type: ignore[arg-type]
        labels=torch.tensor([r.label for r in records], dtype=torch.int64),
        paths=names,
        splits=np.array([r.split for r in records], dtype=object),
        hashes=hashes,
        sizes=np.zeros((len(records), 2), dtype=np.int32),  # unknown until decoded
        skipped=[],
        fingerprint=fp,
        source=str(src.path),
        image_size=size,
        margin=margin,
    )
