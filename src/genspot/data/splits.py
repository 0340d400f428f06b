"""Seeded, stratified, duplicate-aware splits, and the study's 10k / 5k / 5k protocol.

Byte-identical images form a group and a group always lands on one side of a split,
so a validation image never has a copy in training (CIFAKE's train/FAKE holds 920 pairs).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from genspot.data.decode import DecodedSet
from genspot.data.sources import NO_SPLIT
from genspot.errors import GenspotError
from genspot.progress import warn

STUDY_SIZES = {"train": 10_000, "val": 5_000, "test": 5_000}
PROTOCOLS = ("full", "study")


def duplicate_groups(hashes: list[str]) -> np.ndarray:
    """Group id per item; items with equal hashes share an id."""
    _, inverse = np.unique(np.asarray(hashes, dtype=object).astype(str), return_inverse=True)
    return inverse.astype(np.int64)


def carve(
    labels: np.ndarray,
    groups: np.ndarray,
    sizes: dict[str, int],
    seed: int,
) -> dict[str, np.ndarray]:
    """Disjoint parts of exactly the requested sizes (when possible), stratified by label.

    Parts are filled in the order given, each with the same label proportions as the pool;
    whole duplicate groups are taken, and a group that would overflow a part waits for the
    next. Positions not taken are returned under 'rest'. Deterministic for a seed.
    """
    labels = np.asarray(labels)
    n = len(labels)
    total = sum(sizes.values())
    if total > n:
        raise GenspotError(f"cannot carve {total} images from a pool of {n}")
    rng = np.random.default_rng(seed)
    uniq_groups, first = np.unique(groups, return_index=True)
    group_label = labels[first]  # a group takes the label of its first member
    members: dict[int, list[int]] = {}
    for i, g in enumerate(groups.tolist()):
        members.setdefault(g, []).append(i)
    classes = np.unique(labels)
    # Per-class quota for each part, proportional to the pool, rounding so parts sum exactly.
    frac = np.array([(labels == c).mean() for c in classes])
    quota = {}
    for part, want in sizes.items():
        q = np.floor(frac * want).astype(int)
        q[np.argsort(-(frac * want - q))[: want - q.sum()]] += 1
        quota[part] = dict(zip(classes.tolist(), q.tolist()))
    out: dict[str, list[int]] = {p: [] for p in sizes}
    rest: list[int] = []
    for c in classes.tolist():
        order = rng.permutation(uniq_groups[group_label == c])
        remaining = list(order.tolist())
        for part in sizes:
            need = quota[part][c]
            left = []
            for g in remaining:
                m = members[g]
                if need >= len(m):
                    out[part].extend(m)
                    need -= len(m)
                else:
                    left.append(g)
            remaining = left
        for g in remaining:
            rest.extend(members[g])
    res = {p: np.sort(np.array(v, dtype=np.int64)) for p, v in out.items()}
    res["rest"] = np.sort(np.array(rest, dtype=np.int64))
    return res


@dataclass
class Splits:
    """Indices into a DecodedSet for each role, and how they were made."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray | None
    protocol: str
    seed: int
    info: dict = field(default_factory=dict)

    def as_dict(self) -> dict[str, np.ndarray]:
        d = {"train": self.train, "val": self.val}
        if self.test is not None:
            d["test"] = self.test
        return d


def splits_from_config(ds: DecodedSet, data_cfg: dict) -> Splits:
    """The split a model was trained on, rebuilt from its config.json's `data` block."""
    return make_splits(ds, data_cfg.get("protocol", "full"), seed=data_cfg.get("split_seed", 0),
                       val_fraction=data_cfg.get("val_fraction", 0.1), limit=data_cfg.get("limit"),
                       source_split=data_cfg.get("source_split"), sources=data_cfg.get("sources"))  # fmt: skip


def make_splits(
    ds: DecodedSet,
    protocol: str = "full",
    *,
    seed: int = 0,
    val_fraction: float = 0.1,
    limit: int | None = None,
    source_split: str | None = None,
    sources: list[str] | None = None,
) -> Splits:
    """Carve train / val (/ test) from a dataset.

    The pool is the archive's own 'train' split when it has one (else every image, or the
    split named by source_split). 'full': val_fraction of the pool is validation, the rest
    trains (optionally cut to `limit` images), and the archive's 'test' split, if any, is test.
    'study': 10k train / 5k val / 5k test carved from the pool, as the study did; scaled down
    in the same 2:1:1 ratio when the pool is smaller. `sources` keeps only the images of those
    sources (generators' folders) in the pool and the test split: train on one generator.
    """
    if protocol not in PROTOCOLS:
        raise GenspotError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    names = set(ds.splits.tolist())
    if source_split is None:
        source_split = "train" if "train" in names else NO_SPLIT if NO_SPLIT in names else None
    if source_split is None or source_split not in names:
        have = ", ".join(sorted(names))
        raise GenspotError(f"the data has no {source_split or 'train'} split to train on (it has: {have})")
    pool = ds.indices(source_split)
    if sources:
        unknown = sorted(set(sources) - set(ds.sources.tolist()))
        if unknown:
            raise GenspotError(f"no source {', '.join(unknown)} in the data; it has: {', '.join(sorted(set(ds.sources.tolist())))}")
        pool = pool[np.isin(ds.sources[pool], sources)]
    labels = ds.labels.numpy()[pool]
    groups = duplicate_groups([ds.hashes[i] for i in pool])
    if len(np.unique(labels)) < 2:
        raise GenspotError("the training data holds only one class; both REAL and FAKE are needed")
    info = {"pool_split": source_split, "pool_size": int(len(pool)), "sources": list(sources) if sources else None}
    test = ds.indices("test") if "test" in names and source_split != "test" else None
    if test is not None and sources:
        test = test[np.isin(ds.sources[test], sources)]
    if protocol == "study":
        sizes = dict(STUDY_SIZES)
        total = sum(sizes.values())
        if len(pool) < total:
            scale = len(pool) / total
            sizes = {k: max(2, int(v * scale)) for k, v in sizes.items()}
            warn(f"pool of {len(pool)} images is smaller than the study's 20,000: using {sizes}")
        parts = carve(labels, groups, sizes, seed)
        info["sizes"] = sizes
        return Splits(pool[parts["train"]], pool[parts["val"]], pool[parts["test"]], protocol, seed, info)
    if not 0.0 < val_fraction < 1.0:
        raise GenspotError(f"validation fraction must be between 0 and 1, got {val_fraction}")
    n_val = max(2, int(round(len(pool) * val_fraction)))
    sizes = {"val": n_val}
    if limit is not None:
        sizes["train"] = min(limit, len(pool) - n_val)
    parts = carve(labels, groups, sizes, seed)
    train = parts["train"] if limit is not None else parts["rest"]
    info["val_fraction"] = val_fraction
    if limit is not None:
        info["limit"] = limit
    return Splits(pool[train], pool[parts["val"]], test, protocol, seed, info)
