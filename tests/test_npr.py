"""NPR (Tan et al. 2024) in the zoo: its input is the up-sampling residual, it trains and it explains."""

import numpy as np
import torch

from genspot.models import count_parameters, create_model
from genspot.models.npr import npr_residual


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
