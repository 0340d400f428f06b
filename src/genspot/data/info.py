"""What `genspot data info` reports about a dataset."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import numpy as np

from genspot.data.decode import DecodedSet, label_counts


def pairing(ds: DecodedSet) -> dict[str, Any] | None:
    """For an aligned archive (genspot synth): per source, how many photos have their real and their
    fake (sharing a file stem), and how the split groups them. None for other data."""
    from pathlib import PurePosixPath

    from genspot.data.sources import is_aligned

    if not is_aligned(ds.source):
        return None
    stems = np.array([PurePosixPath(p).stem for p in ds.paths], dtype=object)
    out: dict[str, Any] = {"photos": int(len(set(stems.tolist()))), "split_rule": "group_by stem: a photo and all made from it on one side",
                           "sources": {}}  # fmt: skip
    labels = ds.labels.numpy()
    for src in sorted(set(ds.sources.tolist())):
        m = ds.sources == src
        real, fake = set(stems[m & (labels == 0)].tolist()), set(stems[m & (labels == 1)].tolist())
        out["sources"][src] = {"pairs": len(real & fake), "real_only": len(real - fake), "fake_only": len(fake - real)}
    return out


def dataset_info(ds: DecodedSet, max_listed: int = 100) -> dict[str, Any]:
    splits = {}
    for s in ds.split_names():
        idx = ds.indices(s)
        c = label_counts(ds, idx)
        splits[s] = {**c, "total": int(len(idx))}
    sizes = Counter(f"{w}x{h}" for w, h in ds.sizes.tolist())
    per_source: dict[str, dict[str, dict[str, int]]] = {}
    for src in sorted(set(ds.sources.tolist())):
        rows = {}
        for s in ds.split_names():
            idx = np.flatnonzero((ds.sources == src) & (ds.splits == s))
            if len(idx):
                rows[s] = {**label_counts(ds, idx), "total": int(len(idx))}
        src_sizes = Counter(f"{w}x{h}" for w, h in ds.sizes[ds.sources == src].tolist())
        per_source[src] = {"splits": rows, "image_sizes": dict(src_sizes.most_common(5))}
    where: dict[str, list[int]] = defaultdict(list)
    for i, h in enumerate(ds.hashes):
        where[h].append(i)
    groups = [v for v in where.values() if len(v) > 1]
    within: dict[str, dict[str, int]] = {s: {"groups": 0, "images": 0} for s in splits}
    across = 0
    mixed_labels = 0
    for g in groups:
        split_set = {ds.splits[i] for i in g}
        if len(split_set) > 1:
            across += 1
        for s in split_set:
            members = [i for i in g if ds.splits[i] == s]
            if len(members) > 1:
                within[s]["groups"] += 1
                within[s]["images"] += len(members)
        if len({int(ds.labels[i]) for i in g}) > 1:
            mixed_labels += 1
    return {
        "pairing": pairing(ds),
        "source": ds.source,
        "fingerprint": ds.fingerprint,
        "images": len(ds),
        "splits": splits,
        "sources": per_source,
        "image_sizes": dict(sizes.most_common()),
        "duplicates": {
            "groups": len(groups),
            "images": sum(len(g) for g in groups),
            "within_split": within,
            "groups_across_splits": across,
            "groups_with_both_labels": mixed_labels,
        },
        "skipped": len(ds.skipped),
        "skipped_members": [{"path": p, "reason": r} for p, r in ds.skipped[:max_listed]],
        "decoded_size": ds.image_size,
        "from_cache": ds.from_cache,
        "load_seconds": round(ds.decode_seconds, 3),
    }
