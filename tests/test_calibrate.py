import json

import numpy as np
import pytest
import torch

from genspot.calibrate import calibrate, expected_calibration_error, fit_temperature


def test_fit_temperature_recovers_a_known_temperature():
    g = torch.Generator().manual_seed(0)
    true_logits = torch.randn(20000, 2, generator=g) * 2
    labels = torch.multinomial(torch.softmax(true_logits, 1), 1, generator=g).squeeze(1)
    t = fit_temperature(true_logits * 3.0, labels)  # over-confident by a factor 3
    assert t == pytest.approx(3.0, rel=0.05)


def test_ece():
    probs = np.array([[0.1, 0.9]] * 10)
    labels = np.array([1] * 9 + [0])
    assert expected_calibration_error(probs, labels) == pytest.approx(0.0, abs=1e-9)
    assert expected_calibration_error(probs, np.array([1] * 5 + [0] * 5)) == pytest.approx(0.4)


def test_calibrate_writes_temperature(toy_zip_with_test, tmp_path):
    from genspot.predict import Detector
    from genspot.train import TrainConfig, fit

    fit(TrainConfig(model="cifake_cnn", data=str(toy_zip_with_test), out=str(tmp_path / "m"), epochs=2, batch_size=64,
                    progress=False, device="cpu"))  # fmt: skip
    r = calibrate(tmp_path / "m", toy_zip_with_test, progress=False)
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["temperature"] == r["temperature"] > 0 and cfg["calibration"]["ece_after"] == r["ece_after"]
    assert r["nll_after"] <= r["nll_before"] + 1e-6
    assert Detector.load(tmp_path / "m").temperature == r["temperature"]
