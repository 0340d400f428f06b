"""Aligned pairs in training: whole groups per batch, one augmentation draw per photo, REAL hard negatives."""

from __future__ import annotations

import numpy as np
import torch

from genspot.data.batches import Batches
from genspot.data.pairs import AlignedAugment, aligned_augment, group_order, stem_groups


def test_stem_groups_pair_a_photo_with_its_fakes():
    paths = ["ae/0_real/a.jpg", "ae/1_fake/a.jpg", "ae/0_real/b.jpg", "splice/1_fake/a.jpg", "ae/1_fake/b.png"]
    g = stem_groups(paths)
    assert g[0] == g[1] == g[3] and g[2] == g[4] and g[0] != g[2]


def test_group_order_is_a_permutation_with_groups_consecutive():
    indices = torch.arange(40)
    groups = torch.arange(40) // 4  # ten photos, four members each
    order = group_order(indices, groups, torch.Generator().manual_seed(3))
    assert sorted(order.tolist()) == list(range(40))
    runs = groups[order].view(10, 4)
    assert (runs == runs[:, :1]).all()  # each block of four is one photo
    assert runs[:, 0].tolist() != list(range(10))  # and the photos are shuffled
    again = group_order(indices, groups, torch.Generator().manual_seed(3))
    assert torch.equal(order, again)


def _pair_batch(n: int = 6, size: int = 48) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(0)
    photos = torch.from_numpy(rng.integers(0, 256, (n, 3, size, size), dtype=np.uint8))
    x = photos.repeat_interleave(2, 0)  # a real and its "fake", identical pixels: any difference is the augmentation's
    labels = torch.tensor([0, 1] * n)
    groups = torch.arange(n).repeat_interleave(2)
    return x, labels, groups


def test_a_pair_gets_the_same_crop_jpeg_and_rescale():
    x, labels, groups = _pair_batch()
    cfg = AlignedAugment(p_jpeg=1.0, p_rescale=1.0, p_hard=0.0)
    out = aligned_augment(x, labels, groups, torch.Generator().manual_seed(0), patch=32, cfg=cfg)
    assert out.shape == (12, 3, 32, 32)
    assert torch.equal(out[0::2], out[1::2])  # real == fake after the shared processing
    assert not torch.equal(out[0], out[2])  # photos differ


def test_hard_negatives_touch_reals_only():
    x, labels, groups = _pair_batch()
    plain = aligned_augment(x, labels, groups, torch.Generator().manual_seed(0), patch=32, cfg=AlignedAugment(p_jpeg=0, p_rescale=0, p_hard=0))
    hard = aligned_augment(x, labels, groups, torch.Generator().manual_seed(0), patch=32, cfg=AlignedAugment(p_jpeg=0, p_rescale=0, p_hard=1.0))
    assert torch.equal(plain[1::2], hard[1::2])  # fakes as they were
    assert all(not torch.equal(plain[i], hard[i]) for i in range(0, 12, 2))  # every real degraded


def test_batches_keep_pairs_together_and_are_seeded():
    x, labels, groups = _pair_batch(n=8)
    kw = dict(batch_size=4, mean=(0.5,) * 3, std=(0.5,) * 3, shuffle=True, augment="aligned", seed=1, groups=groups.numpy(), crop=32)
    b = Batches(x, labels, np.arange(16), **kw)
    batches = list(b)
    assert len(batches) == 4
    for xb, yb in batches:
        assert xb.shape == (4, 3, 32, 32) and yb.tolist() == [0, 1, 0, 1]
    again = list(Batches(x, labels, np.arange(16), **kw))
    assert all(torch.equal(a[0], c[0]) for a, c in zip(batches, again))
