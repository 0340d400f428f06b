import numpy as np
import pytest

from genspot.data import load_dataset, make_splits
from genspot.data.splits import carve, duplicate_groups


def _labels_groups(n=2000, dup_pairs=100, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat([0, 1], n // 2)
    hashes = [f"h{i}" for i in range(n)]
    fakes = np.flatnonzero(labels == 1)
    picks = rng.choice(fakes, size=2 * dup_pairs, replace=False)
    for a, b in picks.reshape(-1, 2):
        hashes[b] = hashes[a]
    return labels, duplicate_groups(hashes)


def test_carve_sizes_stratified_disjoint_and_duplicate_aware():
    labels, groups = _labels_groups()
    parts = carve(labels, groups, {"train": 1000, "val": 500, "test": 300}, seed=3)
    assert [len(parts[p]) for p in ("train", "val", "test")] == [1000, 500, 300]
    for p in ("train", "val", "test"):
        assert (labels[parts[p]] == 1).sum() == len(parts[p]) // 2
    all_idx = np.concatenate([parts[p] for p in ("train", "val", "test", "rest")])
    assert len(all_idx) == len(labels) == len(np.unique(all_idx))
    side = {}
    for p in ("train", "val", "test", "rest"):
        for g in groups[parts[p]]:
            assert side.setdefault(g, p) == p, "a duplicate group was split across parts"


def test_carve_is_deterministic_per_seed():
    labels, groups = _labels_groups()
    a = carve(labels, groups, {"val": 200}, seed=7)
    b = carve(labels, groups, {"val": 200}, seed=7)
    c = carve(labels, groups, {"val": 200}, seed=8)
    assert np.array_equal(a["val"], b["val"])
    assert not np.array_equal(a["val"], c["val"])


def test_study_protocol_and_full_protocol(toy_zip):
    ds = load_dataset(toy_zip, progress=False)
    s = make_splits(ds, "study", seed=0)  # 1,000 images: scaled 2:1:1
    assert len(s.train) == 2 * len(s.val) == 2 * len(s.test)
    assert not set(s.train) & set(s.val) and not set(s.val) & set(s.test) and not set(s.train) & set(s.test)
    f = make_splits(ds, "full", seed=0, val_fraction=0.2)
    assert len(f.val) == 200 and len(f.train) == 800 and f.test is None
    lim = make_splits(ds, "full", seed=0, val_fraction=0.2, limit=300)
    assert len(lim.train) == 300 and np.array_equal(lim.val, f.val)


def test_archive_test_split_is_used_as_test(toy_zip_with_test):
    ds = load_dataset(toy_zip_with_test, progress=False)
    s = make_splits(ds, "full", seed=0)
    assert set(ds.splits[s.test]) == {"test"}
    assert set(ds.splits[s.train]) == set(ds.splits[s.val]) == {"train"}


@pytest.mark.realdata
def test_real_cifake_zip(tmp_path):
    from conftest import SHARED_ZIP

    if not SHARED_ZIP.exists():
        pytest.skip(f"{SHARED_ZIP} not present")
    from genspot.data.info import dataset_info

    ds = load_dataset(SHARED_ZIP, progress=False)
    info = dataset_info(ds)
    assert info["splits"]["train"]["REAL"] == 50_000
    assert info["splits"]["train"]["FAKE"] == 50_000
    assert info["duplicates"]["groups"] == 920 and info["skipped"] == 0
    s = make_splits(ds, "study", seed=0)
    assert (len(s.train), len(s.val), len(s.test)) == (10_000, 5_000, 5_000)
    groups = duplicate_groups(ds.hashes)
    seen = {}
    for name, idx in s.as_dict().items():
        for g in groups[idx]:
            assert seen.setdefault(g, name) == name
