import numpy as np
import torch

import pytest

from genspot.data.batches import Batches, dihedral, flip_translate, normalize


def _data(n=50):
    imgs = torch.arange(n * 3 * 8 * 8, dtype=torch.int64).remainder(256).to(torch.uint8).view(n, 3, 8, 8)
    return imgs, torch.arange(n) % 2


def test_batches_cover_subset_once_and_depend_only_on_seed_and_epoch():
    imgs, labels = _data()
    idx = np.arange(0, 50, 2)
    b = Batches(imgs, labels, idx, batch_size=8, mean=(0, 0, 0), std=(1, 1, 1), shuffle=True, seed=1)
    b.set_epoch(3)
    seen = torch.cat([y for _, y in b])
    assert len(b) == 4 and len(seen) == 25
    first = [x for x, _ in b]
    b2 = Batches(imgs, labels, idx, batch_size=8, mean=(0, 0, 0), std=(1, 1, 1), shuffle=True, seed=1)
    b2.set_epoch(3)
    assert all(torch.equal(a, c) for a, c in zip(first, [x for x, _ in b2]))
    b2.set_epoch(4)
    assert not all(torch.equal(a, c) for a, c in zip(first, [x for x, _ in b2]))


def test_normalize_and_translate():
    x = torch.full((2, 3, 4, 4), 255, dtype=torch.uint8)
    n = normalize(x, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    assert torch.allclose(n, torch.ones_like(n))
    img = torch.arange(16, dtype=torch.float32).view(1, 1, 4, 4).repeat(64, 1, 1, 1)
    out = flip_translate(img, torch.Generator().manual_seed(0), flip=False, pad=1)
    assert out.shape == img.shape
    assert any(torch.equal(o, img[0]) for o in out)  # zero shift is one of the outcomes
    assert not all(torch.equal(o, img[0]) for o in out)
    padded = torch.nn.functional.pad(img[:1], (1, 1, 1, 1), mode="reflect")[0]
    for o in out:  # every output is some 4x4 window of the reflect-padded image
        assert any(torch.equal(o, padded[:, i : i + 4, j : j + 4]) for i in range(3) for j in range(3))


def test_flip_only_mirrors_or_keeps():
    img = torch.randn(32, 3, 5, 5)
    out = flip_translate(img, torch.Generator().manual_seed(0), flip=True, pad=0)
    kinds = [torch.equal(o, i) or torch.equal(o, i.flip(-1)) for o, i in zip(out, img)]
    assert all(kinds)
    assert any(torch.equal(o, i.flip(-1)) for o, i in zip(out, img))
    assert any(torch.equal(o, i) for o, i in zip(out, img))


def _d4(img):
    turns = [torch.rot90(img, k, (-2, -1)) for k in range(4)]
    return turns + [t.flip(-1) for t in turns]


def test_dihedral_draws_each_symmetry_of_the_square_and_only_those():
    img = torch.randn(1, 3, 6, 6).repeat(400, 1, 1, 1)
    out = dihedral(img, torch.Generator().manual_seed(0))
    views = _d4(img[0])
    hits = [next(k for k, v in enumerate(views) if torch.equal(o, v)) for o in out]  # StopIteration if none
    assert sorted(set(hits)) == list(range(8))
    with pytest.raises(ValueError, match="square"):
        dihedral(torch.zeros(2, 3, 4, 6), torch.Generator())


def test_d4_batches_are_seeded_and_keep_labels():
    imgs, labels = _data()
    kw = dict(batch_size=10, mean=(0, 0, 0), std=(1, 1, 1), shuffle=True, seed=2, augment="d4")
    a, b = Batches(imgs, labels, np.arange(50), **kw), Batches(imgs, labels, np.arange(50), **kw)
    assert all(torch.equal(x, y) and torch.equal(u, v) for (x, u), (y, v) in zip(a, b))
    plain = Batches(imgs, labels, np.arange(50), **{**kw, "augment": "none"})
    for (x, _), (p, _) in zip(a, plain):  # same order, each image some symmetry of itself
        assert all(any(torch.equal(xi, v) for v in _d4(pi)) for xi, pi in zip(x, p))
    assert not all(torch.equal(x, p) for (x, _), (p, _) in zip(a, plain))
