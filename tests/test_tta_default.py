"""Test-time flip averaging and the `default` model name."""


import numpy as np
import pytest
import torch

from genspot.errors import GenspotError
from genspot.models import create_model
from genspot.models import io as model_io
from genspot.models.tta import predict_logits


def test_flip_tta_averages_the_two_views():
    torch.manual_seed(0)
    m = create_model("cifake_cnn").eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        plain = predict_logits(m, "none", x)
        tta = predict_logits(m, "flip", x)
        want = (m(x) + m(x.flip(3))) / 2
        # the flipped batch scores the same under TTA: averaging makes the model mirror-invariant
        tta_flipped = predict_logits(m, "flip", x.flip(3))
    assert torch.allclose(plain, m(x).detach())
    assert torch.allclose(tta, want, atol=1e-6)
    assert torch.allclose(tta, tta_flipped, atol=1e-5)
    assert not torch.allclose(tta, plain)


def test_d4_tta_averages_eight_views_and_is_invariant_to_them():
    torch.manual_seed(0)
    m = create_model("cifake_cnn").eval()  # flatten head: no symmetry of its own
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        d4 = predict_logits(m, "d4", x)
        turns = [torch.rot90(x, k, (2, 3)) for k in range(4)]
        want = sum(m(v) for v in turns + [t.flip(3) for t in turns]) / 8
        for v in (x.transpose(2, 3), x.flip(2), torch.rot90(x, 1, (2, 3))):
            assert torch.allclose(predict_logits(m, "d4", v), d4, atol=1e-4)
    assert torch.allclose(d4, want, atol=1e-5)
    assert not torch.allclose(d4, predict_logits(m, "flip", x).detach(), atol=1e-4)


def test_default_name_resolves_to_the_package_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(model_io, "shipped_model_dir", lambda name: tmp_path / "missing")
    with pytest.raises(GenspotError, match="default model is missing"):
        model_io.resolve_model_dir("default")
    d = tmp_path / "shipped"
    m = create_model("cifake_cnn")
    model_io.save_model_dir(m, {"model": "cifake_cnn", "class_names": ["REAL", "FAKE"], "mean": [0.5] * 3,
                                "std": [0.5] * 3, "tta": "flip"}, d)  # fmt: skip
    monkeypatch.setattr(model_io, "shipped_model_dir", lambda name: d)
    assert model_io.resolve_model_dir(None) == d
    assert model_io.resolve_model_dir("default") == d
    loaded, cfg = model_io.load_model_dir("default")
    assert cfg["tta"] == "flip"
    from genspot import Detector

    det = Detector.load()
    assert det.name == "default"
    p = det.predict(np.zeros((32, 32, 3), np.uint8))
    assert 0.0 <= p.p_fake <= 1.0


def test_pristine_name_resolves_to_its_package_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(model_io, "shipped_model_dir", lambda name: tmp_path / name)
    with pytest.raises(GenspotError, match="pristine model is missing"):
        model_io.resolve_model_dir("pristine")
    d = tmp_path / "pristine"
    model_io.save_model_dir(create_model("cifake_cnn"), {"model": "cifake_cnn", "class_names": ["REAL", "FAKE"],
                                                         "mean": [0.5] * 3, "std": [0.5] * 3}, d)  # fmt: skip
    assert model_io.resolve_model_dir("pristine") == d
    assert model_io.resolve_model_dir(str(tmp_path / "elsewhere")) == tmp_path / "elsewhere"  # a path stays a path
    from genspot import Detector

    assert Detector.load("pristine").name == "pristine"
