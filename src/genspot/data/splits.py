"""Seeded, stratified, duplicate-aware splits, and the study's 10k / 5k / 5k protocol.

Byte-identical images form a group and a group always lands on one side of a split,
so a validation image never has a copy in training (CIFAKE's train/FAKE holds 920 pairs).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from types import MappingProxyType
from typing import Any

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


def merge_groups(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Group ids under which items share a group when they share one in `a` or in `b` (transitively)."""
    parent = list(range(len(a)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for ids in (a, b):
        first: dict[int, int] = {}
        for i, g in enumerate(ids.tolist()):
            if g in first:
                ra, rb = find(i), find(first[g])
                if ra != rb:
                    parent[ra] = rb
            else:
                first[g] = i
    return duplicate_groups([str(find(i)) for i in range(len(a))])


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


# the data-block keys that fix which images trained and which validate
SPLIT_KEYS = ("fingerprint", "protocol", "split_seed", "val_fraction", "limit", "source_split", "sources", "group_by")
GROUPINGS = ("stem",)  # group_by: also keep every file sharing a stem (a photo and all made from it) on one side


@dataclass(frozen=True)
class DataSpec:
    """Where a model's images came from and how its split was drawn (config.json's "data")."""

    source: str | None = None  # the training archive or folder, as given
    fingerprint: str | None = None
    protocol: str = "full"
    split_seed: int = 0
    val_fraction: float = 0.1
    limit: int | None = None
    source_split: str | None = None
    sources: tuple[str, ...] | None = None  # the generators trained on (None: all)
    n_train: int | None = None
    n_val: int | None = None
    n_test: int | None = None
    group_by: str | None = None  # "stem": an aligned archive's photo and everything made from it on one side
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_config(cls, d: Mapping[str, Any] | None) -> DataSpec:
        d = dict(d or {})
        known = {f.name for f in dataclasses.fields(cls)} - {"raw"}
        kw = {k: d[k] for k in known if d.get(k) is not None}
        if kw.get("sources") is not None:
            kw["sources"] = tuple(kw["sources"])
        return cls(**kw, raw=MappingProxyType(d))

    def split_key(self) -> dict[str, Any]:
        """The keys that fix the split: two models with equal keys validate on the same images."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k in SPLIT_KEYS for v in [getattr(self, k)]}



def splits_from_config(ds: DecodedSet, data: DataSpec) -> Splits:
    """The split a model was trained on, rebuilt from its config's data block (ModelSpec.data)."""
    return make_splits(ds, data.protocol, seed=data.split_seed, val_fraction=data.val_fraction, limit=data.limit,
                       source_split=data.source_split, sources=list(data.sources) if data.sources is not None else None,
                       group_by=data.group_by)  # fmt: skip


def make_splits(
    ds: DecodedSet,
    protocol: str = "full",
    *,
    seed: int = 0,
    val_fraction: float = 0.1,
    limit: int | None = None,
    source_split: str | None = None,
    sources: list[str] | None = None,
    group_by: str | None = None,
) -> Splits:
    """Carve train / val (/ test) from a dataset.

    The pool is the archive's own 'train' split when it has one (else every image, or the
    split named by source_split). 'full': val_fraction of the pool is validation, the rest
    trains (optionally cut to `limit` images), and the archive's 'test' split, if any, is test.
    'study': 10k train / 5k val / 5k test carved from the pool, as the study did; scaled down
    in the same 2:1:1 ratio when the pool is smaller. `sources` keeps only the images of those
    sources (generators' folders) in the pool and the test split: train on one generator.
    `group_by="stem"` (aligned archives, genspot synth) also keeps every image whose file stem is
    the same, a photo and all made from it under every source, on one side; the parts are then
    sized in images over whole photo groups, each holding both classes.
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
    if group_by is not None:
        if group_by not in GROUPINGS:
            raise GenspotError(f"unknown grouping {group_by!r}; choose {' or '.join(GROUPINGS)}")
        groups = merge_groups(groups, duplicate_groups([PurePosixPath(ds.paths[i]).stem for i in pool]))
    # Photo groups hold both classes: stratifying by a group's first label would miscount them;
    # whole groups, each balanced, keep the parts balanced.
    strata = np.zeros_like(labels) if group_by is not None else labels
    if len(np.unique(labels)) < 2:
        raise GenspotError("the training data holds only one class; both REAL and FAKE are needed")
    info = {"pool_split": source_split, "pool_size": int(len(pool)), "sources": list(sources) if sources else None,
            "group_by": group_by}
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
        parts = carve(strata, groups, sizes, seed)
        info["sizes"] = sizes
        return Splits(pool[parts["train"]], pool[parts["val"]], pool[parts["test"]], protocol, seed, info)
    if not 0.0 < val_fraction < 1.0:
        raise GenspotError(f"validation fraction must be between 0 and 1, got {val_fraction}")
    n_val = max(2, int(round(len(pool) * val_fraction)))
    sizes = {"val": n_val}
    if limit is not None:
        sizes["train"] = min(limit, len(pool) - n_val)
    parts = carve(strata, groups, sizes, seed)
    train = parts["train"] if limit is not None else parts["rest"]
    info["val_fraction"] = val_fraction
    if limit is not None:
        info["limit"] = limit
    return Splits(pool[train], pool[parts["val"]], test, protocol, seed, info)
