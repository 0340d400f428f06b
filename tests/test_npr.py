"""NPR (Tan et al. 2024) in the zoo: its input is the up-sampling residual, it trains and it explains."""

import numpy as np
import pytest
import torch

from genspot.models import count_parameters, create_model
from genspot.models.npr import npr_residual
from genspot.models.spec import ModelSpec


def test_the_residual_is_zero_on_a_nearest_upsampled_image_and_not_on_others():
    small = torch.randn(2, 3, 16, 16)
    up = torch.nn.functional.interpolate(small, scale_factor=2, mode="nearest")  # what a nearest up-sampling layer makes
    assert torch.count_nonzero(npr_residual(up)) == 0
    assert npr_residual(torch.randn(2, 3, 32, 32)).abs().mean() > 0.5
    # every 2x2 block's top-left pixel is its own reference: zero there, by construction
    assert torch.count_nonzero(npr_residual(torch.randn(1, 3, 8, 8))[..., ::2, ::2]) == 0


def test_npr_at_any_size_and_its_parameter_count():
    m = create_model("npr").eval()
    assert count_parameters(m)[0] == 1_438_274  # ResNet-50's stem and first two stages, one linear head
    for s in (32, 64, 128):
        assert m(torch.randn(2, 3, s, s)).shape == (2, 2)


def test_npr_trains_and_explains(tmp_path, toy_zip):
    from genspot.explain.methods import explain_batch
    from genspot.train import TrainConfig, fit

    s = fit(TrainConfig(model="npr", data=str(toy_zip), out=str(tmp_path / "n"), epochs=2, batch_size=64, device="cpu", progress=False))
    assert s["best_val_accuracy"] > 0.6
    from genspot.models.io import load_model_dir

    model, cfg = load_model_dir(tmp_path / "n")
    x = torch.randn(4, 3, 32, 32)
    r = explain_batch(model, cfg, x, method="gradcam++")
    assert r["layer"] == "layer2" and r["maps"].shape == (4, 32, 32) and np.isfinite(r["maps"]).all()


def test_safe_reads_only_the_diagonal_wavelet_band():
    from genspot.models.safe import haar_hh

    # a signal that varies along one axis only, or is constant on 2x2 blocks, has no diagonal detail
    rows = torch.arange(16.0).view(1, 1, 16, 1).expand(1, 3, 16, 16)
    assert torch.count_nonzero(haar_hh(rows)) == 0
    assert torch.count_nonzero(haar_hh(torch.randn(1, 3, 8, 8).repeat_interleave(2, 2).repeat_interleave(2, 3))) == 0
    checker = (torch.arange(8).view(8, 1) + torch.arange(8).view(1, 8)) % 2 * 2.0 - 1  # the finest diagonal pattern
    assert torch.allclose(haar_hh(checker.expand(1, 3, 8, 8)).abs(), torch.full((1, 3, 4, 4), 2.0))
    m = create_model("safe").eval()
    assert count_parameters(m)[0] == 1_438_274  # NPR's network: only the input transform differs
    for s in (32, 64, 256):
        assert m(torch.randn(2, 3, s, s)).shape == (2, 2)
    # two images with the same diagonal band get the same logits: the network sees nothing else
    x = torch.randn(1, 3, 32, 32)
    smooth = torch.linspace(-1, 1, 32).view(1, 1, 1, 32).expand(1, 3, 32, 32)  # varies along one axis: no HH
    assert torch.allclose(m(x), m(x + smooth), atol=1e-5)


@pytest.mark.parametrize("name", ["npr", "safe"])
def test_cam_applies_to_npr_and_safe_at_their_input_size(name):
    from genspot.explain.methods import explain_batch

    model = create_model(name).eval()
    cfg = ModelSpec.from_config({"model": name, "input_size": 64})
    for method in ("cam", "gradcam"):
        r = explain_batch(model, cfg, torch.randn(2, 3, 64, 64), method=method)
        assert r["layer"] == "layer2" and r["maps"].shape == (2, 64, 64) and np.isfinite(r["maps"]).all()
        assert np.ptp(r["maps"][0]) > 0  # an 8x8 map at 64 px, not a constant
