"""ModelSpec: one typed config for every consumer; older directories keep their meaning; a new model is one file."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from genspot.errors import GenspotError
from genspot.models.spec import ModelSpec
from shipped_reference import images

REFERENCE = json.loads((__import__("pathlib").Path(__file__).parent / "data" / "shipped_scores.json").read_text())


def test_a_config_without_the_newer_keys_keeps_its_old_meaning():
    s = ModelSpec.from_config({"model": "spot_resnet_s"})
    assert (s.input_size, s.input_policy, s.tta, s.temperature, s.positive, s.channels_last) == (32, "resize", "none", 1.0, 1, False)
    assert s.data.protocol == "full" and s.data.split_seed == 0 and s.data.val_fraction == 0.1 and s.data.sources is None
    assert s.resolve_mode("auto") == "resize" and ModelSpec.from_config({"model": "npr", "input_policy": "crop"}).resolve_mode("auto") == "crop"
    logits = torch.tensor([[0.0, 2.0], [1.0, -1.0]])
    assert torch.allclose(s.p_fake(logits), torch.softmax(logits, 1)[:, 1])
    hot = ModelSpec.from_config({"model": "npr", "temperature": 2.0, "class_names": ["FAKE", "REAL"]})
    assert hot.positive == 0 and torch.allclose(hot.p_fake(logits), torch.softmax(logits / 2, 1)[:, 0])


def test_spec_round_trips_and_refuses_what_would_not_load():
    cfg = {"model": "npr", "input_size": 256, "input_policy": "crop", "tta": "flip", "best": {"epoch": 3}, "data": {"split_seed": 4}}
    s = ModelSpec.from_config(cfg)
    assert s.to_config() == cfg and s["best"] == {"epoch": 3} and "best" in s  # records travel untouched
    assert s.replace(temperature=0.5).temperature == 0.5 and s.temperature == 1.0
    assert ModelSpec.from_config(ModelSpec(model="npr", input_size=64).to_config()) == ModelSpec(model="npr", input_size=64)
    with pytest.raises(GenspotError, match="no model"):
        ModelSpec.from_config({})
    with pytest.raises(GenspotError, match="input_policy"):
        ModelSpec.from_config({"model": "npr", "input_policy": "stretch"})
    with pytest.raises(GenspotError, match=r"characters\)"):  # a huge user value is cut, its length said
        s.resolve_mode("x" * 900_000)


@pytest.mark.parametrize("name", ["default", "pristine"])
def test_shipped_detectors_score_exactly_as_before(name):
    """Every score, domain verdict and heat map of the shipped detectors on a sample equals what the
    code before ModelSpec gave (tests/shipped_reference.py wrote the reference at 035636e)."""
    from genspot import Detector

    det = Detector.load(name)
    imgs = images()
    for mode in ("auto", "tiles", "crop"):
        got = [det.predict(b, mode=mode) for b in imgs]
        want = REFERENCE[f"{name}/{mode}"]
        assert [r.domain for r in got] == [w[1] for w in want]
        np.testing.assert_allclose([r.p_fake for r in got], [w[0] for w in want], rtol=0, atol=1e-6)
        np.testing.assert_allclose([r.domain_score for r in got], [w[2] for w in want], rtol=0, atol=1e-3)
    sums = [float(det.explain(b, method="gradcam")["map"].sum()) for b in imgs[:4]]
    np.testing.assert_allclose(sums, REFERENCE[f"{name}/gradcam_sum"], rtol=1e-5)


class ToyNet(nn.Module):
    """Two convs, global pooling, one linear layer: the smallest net every consumer can use."""

    def __init__(self, num_classes: int = 2, width: int = 8) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, width, 3, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.body(x)).flatten(1))


@pytest.fixture
def toy_registered():
    from genspot.models.registry import register_model, unregister_model

    # The whole of "adding a model": a builder and its facts, here, in the test.
    register_model("toy_net", "a toy for the registry test", target_layer="body.3", cam=("body", "fc"))(
        lambda num_classes=2, **kw: ToyNet(num_classes, **kw))
    yield "toy_net"
    unregister_model("toy_net")


def test_a_model_registered_in_one_place_trains_predicts_explains_and_fits_a_domain(toy_registered, toy_zip, tmp_path):
    from genspot import Detector
    from genspot.domain import fit_domain
    from genspot.explain.methods import applicable_methods
    from genspot.train import TrainConfig, fit

    assert applicable_methods("toy_net") == ["cam", "gradcam", "gradcam++", "scorecam", "layercam", "eigencam"]
    out = tmp_path / "toy"
    fit(TrainConfig(model="toy_net", data=str(toy_zip), out=str(out), epochs=1, batch_size=64, device="cpu", progress=False,
                    model_kwargs={"width": 6}))  # fmt: skip
    info = fit_domain(out, toy_zip, n_fit=200, progress=False)
    assert info["threshold"] > 0
    det = Detector.load(out)
    assert det.spec.model == "toy_net" and dict(det.spec.model_kwargs) == {"width": 6} and det.domain is not None
    img = (np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8)
    p = det.predict(img)
    assert p.label in ("REAL", "FAKE") and p.domain_score is not None
    for method in ("cam", "gradcam"):
        e = det.explain(img, method=method)
        assert e["map"].shape == (32, 32) and e["layer"] == ("body" if method == "cam" else "body.3")


def test_explain_takes_a_mode_in_the_api_the_runner_and_the_server(tmp_path):
    import io

    from fastapi.testclient import TestClient
    from PIL import Image

    from genspot import Detector
    from genspot.explain.run import explain_paths
    from genspot.models.io import save_model_dir
    from genspot.serve import create_app

    torch.manual_seed(0)
    spec = ModelSpec(model="spot_resnet_s", input_size=48, input_policy="crop")
    d = save_model_dir(spec.build().eval(), spec.to_config(), tmp_path / "m")
    arr = (np.random.default_rng(1).random((96, 128, 3)) * 255).astype(np.uint8)
    Image.fromarray(arr).save(tmp_path / "img.png")
    det = Detector.load(d)
    crop, resize = det.explain(arr, mode="auto"), det.explain(arr, mode="resize")
    assert crop["image"].shape == resize["image"].shape == (48, 48, 3) and not np.array_equal(crop["image"], resize["image"])
    assert crop["domain"] == "in" and resize["domain"] == "out"  # resizing a crop model's input is flagged
    rows = {m: explain_paths([str(tmp_path / "img.png")], det, tmp_path / m, progress=False, mode=m).rows[0] for m in ("auto", "resize")}
    assert rows["auto"]["p_fake"] == pytest.approx(det.predict(arr).p_fake, abs=1e-6)
    assert rows["resize"]["p_fake"] == pytest.approx(det.predict(arr, mode="resize").p_fake, abs=1e-6)
    with pytest.raises(GenspotError, match="tile map"):
        explain_paths([str(tmp_path / "img.png")], det, tmp_path / "t", progress=False, mode="tiles")
    png = (tmp_path / "img.png").read_bytes()
    with TestClient(create_app(d)) as c:
        ok = c.post("/v1/explain", files={"file": ("img.png", io.BytesIO(png), "image/png")}, data={"mode": "resize", "format": "json"})
        assert ok.status_code == 200 and ok.json()["domain"] == "out"
        bad = c.post("/v1/explain", files={"file": ("img.png", io.BytesIO(png), "image/png")}, data={"mode": "m" * 900_000})
        assert bad.status_code == 422 and len(bad.text) < 400  # the unknown value is cut, not echoed whole
