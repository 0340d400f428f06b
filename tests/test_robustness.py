"""Perturbations do what they say, robust training runs, and `genspot robustness` reports."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from genspot.data.perturb import SUITE, blur, crop_resize, down_up, hflip, jpeg, noise, png_roundtrip, robust_augment


def photo_like(n=8, seed=0, grain=6.0) -> torch.Tensor:
    """Smooth gradients with texture: closer to a photo than uniform noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:32] / 31.0
    imgs = []
    for _ in range(n):
        a, b, c = rng.uniform(0.2, 1, 3)
        base = np.stack([a * xx, b * yy, c * (1 - xx * yy)]) * 200 + 20
        imgs.append(base + rng.normal(0, grain, base.shape))
    return torch.from_numpy(np.clip(np.round(imgs), 0, 255).astype(np.uint8))


def diff(a, b) -> float:
    return (a.float() - b.float()).abs().mean().item()


def test_exact_ones_are_exact():
    x = photo_like()
    assert torch.equal(png_roundtrip(x), x)
    assert torch.equal(hflip(x), x.flip(-1)) and torch.equal(hflip(hflip(x)), x)
    assert torch.equal(SUITE[0].fn(x), x) and SUITE[0].name == "clean"


def test_jpeg_error_grows_as_quality_falls():
    x = photo_like(grain=1.0)  # per-pixel colour grain would make 4:2:0 chroma subsampling dominate
    errs = [diff(jpeg(x, q), x) for q in (95, 75, 50, 30)]
    assert 0 < errs[0] < errs[1] < errs[2] < errs[3]
    assert errs[0] < 0.6 * errs[3]  # q95 is much closer to the original than q30


def test_blur_smooths_more_with_sigma_and_keeps_flat_images():
    x = photo_like()
    flat = torch.full((2, 3, 32, 32), 128, dtype=torch.uint8)
    assert torch.equal(blur(flat, 2), flat)
    hf = lambda t: (t.float()[..., 1:] - t.float()[..., :-1]).abs().mean().item()  # noqa: E731
    assert hf(x) > hf(blur(x, 0.5)) > hf(blur(x, 1)) > hf(blur(x, 2))


def test_noise_has_the_asked_sigma_and_is_seeded():
    grey = torch.full((16, 3, 32, 32), 128, dtype=torch.uint8)
    for s in (2, 5, 10):
        d = noise(grey, s).float() - 128
        assert d.std().item() == pytest.approx(s, rel=0.05)
        assert abs(d.mean().item()) < 0.2
    assert torch.equal(noise(grey, 5, seed=1), noise(grey, 5, seed=1))


def test_resizing_ones_keep_shape_and_flat_images_and_lose_detail():
    x = photo_like()
    flat = torch.full((2, 3, 32, 32), 77, dtype=torch.uint8)
    checker = ((torch.arange(32).view(1, 32) + torch.arange(32).view(32, 1)) % 2 * 255).to(torch.uint8).expand(1, 3, 32, 32)
    for fn in (down_up, crop_resize):
        assert fn(x).shape == x.shape and fn(x).dtype == torch.uint8
        assert torch.equal(fn(flat), flat)
    assert diff(down_up(checker), torch.full_like(checker, 127)) < 10  # a 1-px pattern does not survive x0.5
    # the zoom maps the centre 24 px onto 32: the centre pixel stays (nearly) where it was
    c = crop_resize(x)
    assert diff(c[..., 15:17, 15:17], x[..., 15:17, 15:17]) < 12


def test_robust_augment_is_seeded_and_touches_about_three_quarters():
    x = photo_like(64)
    a = robust_augment(x, torch.Generator().manual_seed(3))
    b = robust_augment(x, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    changed = (a != x).flatten(1).any(1).float().mean().item()
    assert 0.55 < changed < 0.95  # P(blur or JPEG) = 1 - 0.25


@pytest.fixture(scope="module")
def robust_model(tmp_path_factory, toy_zip_with_test):
    from genspot.train import TrainConfig, fit

    out = tmp_path_factory.mktemp("rob") / "m"
    fit(TrainConfig(model="cifake_cnn", data=str(toy_zip_with_test), out=str(out), epochs=2, batch_size=64,
                    augment="robust", tta="flip", progress=False, device="cpu"))  # fmt: skip
    return out


def test_robustness_cli_on_a_tiny_model(robust_model, toy_zip_with_test, tmp_path):
    out = tmp_path / "rob"
    r = subprocess.run([sys.executable, "-m", "genspot.cli", "robustness", str(robust_model), str(robust_model),
                        "--data", str(toy_zip_with_test), "--n", "300", "--out", str(out)],
                       capture_output=True, text=True, timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((out / "robustness.json").read_text())
    assert len(res["models"]) == 2
    rows = {x["perturbation"]: x for x in res["models"][0]["rows"]}
    assert list(rows)[0] == "clean" and len(rows) == len(SUITE)
    assert rows["png"]["accuracy"] == rows["clean"]["accuracy"]  # lossless
    assert rows["hflip"]["accuracy"] == rows["clean"]["accuracy"]  # flip TTA makes the model mirror-invariant
    assert res["models"][0]["n"] == 300 and 0 <= rows["jpeg q30"]["accuracy"] <= 1
    md = (out / "robustness.md").read_text()
    assert "genspot robustness" in md and "jpeg q30" in md
    assert (out / "robustness.png").stat().st_size > 10_000


def test_robustness_refuses_unknown_perturbations(robust_model, toy_zip_with_test, tmp_path):
    r = subprocess.run([sys.executable, "-m", "genspot.cli", "robustness", str(robust_model), "--data", str(toy_zip_with_test),
                        "--only", "sepia", "--out", str(tmp_path)], capture_output=True, text=True, timeout=600)  # fmt: skip
    assert r.returncode == 2 and "no such perturbation" in r.stderr and "Traceback" not in r.stderr
