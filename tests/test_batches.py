import numpy as np
import torch

from genspot.data.batches import Batches, flip_translate, normalize


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
