"""A seeded, class-balanced sample of a labelled archive, decoded as one model sees it.

Scoring a model on another dataset (`genspot benchmark --test-data`) needs a few hundred of its
images, not all of them: CIFAKE decoded at 256 px would be a 20 GB cache. Only the sampled
members are read; an unreadable one is reported and skipped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from genspot.data.sources import open_source
from genspot.errors import GenspotError


@dataclass
class Sample:
    images: np.ndarray  # uint8 (N, 3, S, S)
    labels: np.ndarray  # int64 (N,), 0 REAL, 1 FAKE
    names: list[str]
    skipped: int


def sample_labelled(path: str | os.PathLike, n_per_class: int, seed: int, size: int, policy: str) -> Sample:
    """Up to `n_per_class` REAL and as many FAKE members of `path`, drawn with `seed` (sorted by
    name first, so the draw does not depend on the archive's order), decoded by `policy`."""
    from genspot.data.image import decode, model_input
    from genspot.progress import warn

    src = open_source(path)
    try:
        recs = sorted(src.records(), key=lambda r: r.path)
        if not recs:
            raise GenspotError(f"no labelled images (REAL/FAKE folders) in {str(path)[:200]}")
        rng = np.random.default_rng(seed)
        chosen = []
        for label in (0, 1):
            mine = [r for r in recs if r.label == label]
            take = rng.permutation(len(mine))[: min(n_per_class, len(mine))]
            chosen += [mine[i] for i in sorted(take)]
        images, labels, names, skipped = [], [], [], 0
        for r in chosen:
            try:
                img, _ = decode(src.read(r.path))
                images.append(model_input(img, size, policy))
            except Exception as e:  # noqa: BLE001 - one unreadable member is reported, the rest scored
                warn(f"skipped {r.path}: {e}")
                skipped += 1
                continue
            labels.append(r.label)
            names.append(r.path)
    finally:
        src.close()
    if not images:
        raise GenspotError(f"no readable images sampled from {str(path)[:200]}")
    return Sample(np.stack(images), np.asarray(labels, dtype=np.int64), names, skipped)
