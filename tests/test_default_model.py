"""The shipped detectors (default and pristine): present, small, calibrated, documented, and as good as their cards say."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genspot.models.io import SHIPPED, shipped_model_dir


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_files_and_card(name):
    D = shipped_model_dir(name)
    assert (D / "model.safetensors").is_file(), f"the {name} model must ship inside the package"
    assert (D / "model.safetensors").stat().st_size <= 25 * 1024 * 1024
    cfg = json.loads((D / "config.json").read_text())
    cal = cfg["calibration"]
    assert cfg["temperature"] == pytest.approx(cal["temperature"]) and cfg["temperature"] > 0
    assert cal["ece_after"] <= cal["ece_before"] + 1e-9
    card = (D / "MODEL_CARD.md").read_text().lower()
    for needed in ("genspot train", "stable diffusion 1.4", "not a general deepfake detector", "ece", "95% bootstrap ci",
                   "out of distribution", f"genspot evaluate {name}",
                   "jpeg q30", "blur sigma 2", "| default acc |", "| pristine acc |"):  # both measured under perturbations
        assert needed in card, needed
    assert cfg["name"] == name
    metrics = json.loads((D / "metrics.json").read_text())
    assert metrics["validation"]["n"] >= 5000


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_detector_loads_scores_and_explains(tmp_path, name):
    from genspot import Detector

    det = Detector.load() if name == "default" else Detector.load(name)  # no argument: the default
    cfg = json.loads((shipped_model_dir(name) / "config.json").read_text())
    assert det.name == name and det.temperature == pytest.approx(cfg["temperature"])
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (300, 200, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    for mode in ("resize", "tiles"):
        p = det.predict(tmp_path / "a.png", mode=mode)
        assert p.label in ("REAL", "FAKE") and 0 <= p.p_fake <= 1 and p.model == name
    e = det.explain(tmp_path / "a.png", method="gradcam")
    assert e["map"].shape == (32, 32) and e["label"] == det.predict(tmp_path / "a.png").label
    assert np.ptp(e["map"]) > 0  # an ensemble is explained through its members' stacked 8x8 maps, not a constant


@pytest.mark.realdata
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_reproduces_its_card_on_validation_images(name):
    from conftest import SHARED_ZIP

    if not SHARED_ZIP.exists():
        pytest.skip(f"{SHARED_ZIP} not present")
    import torch

    from genspot.data import load_dataset
    from genspot.evaluate import predict_scores, select_indices
    from genspot.models.io import load_model_dir

    model, cfg = load_model_dir(name)
    ds = load_dataset(SHARED_ZIP, progress=False)
    idx, _ = select_indices(ds, cfg, "val")
    idx = np.sort(np.random.default_rng(0).choice(idx, 3000, replace=False))
    p = predict_scores(model, cfg, ds, idx)
    acc = float(((p >= 0.5) == (ds.labels[torch.as_tensor(idx)].numpy() == 1)).mean())
    card = json.loads((shipped_model_dir(name) / "metrics.json").read_text())["validation"]["accuracy"]
    # 3,000 of the validation images: within about three standard errors of the card's figure
    assert abs(acc - card) < 3 * np.sqrt(card * (1 - card) / 3000) + 0.002
    # and 512 of them score exactly as the code before ModelSpec scored them (tests/shipped_reference.py)
    want = json.loads((Path(__file__).parent / "data" / "shipped_scores.json").read_text())[f"{name}/cifake_val_512"]
    idx, _ = select_indices(ds, cfg, "val")
    idx = np.sort(np.random.default_rng(0).choice(idx, 512, replace=False))
    assert int(idx.sum()) == want["indices_sum"]  # the same split, rebuilt from the spec's data block
    np.testing.assert_allclose(predict_scores(model, cfg, ds, idx), want["p_fake"], rtol=0, atol=1e-6)
