"""The decision threshold: set on real photos at a false-positive rate, kept in logit units, used by every verdict."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from genspot.calibrate import threshold_margin
from genspot.evaluate import tpr_at_fpr
from genspot.models.spec import ModelSpec


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "genspot.cli", *args], capture_output=True, text=True, timeout=300)


def test_threshold_margin_calls_at_most_the_share_of_reals_fake():
    m = np.linspace(-5, 5, 200)
    for fpr in (0.0, 0.01, 0.05, 0.5):
        cut = threshold_margin(m, fpr)
        assert (m >= cut).sum() == int(np.floor(fpr * 200))
    assert (np.array([1.0, 1.0, 1.0]) >= threshold_margin(np.array([1.0, 1.0, 1.0]), 0.34)).sum() == 0  # ties: none past the cut


def test_tpr_at_fpr():
    y = np.array([0] * 100 + [1] * 10)
    p = np.concatenate([np.linspace(0, 0.9, 100), np.linspace(0.5, 1.0, 10)])
    assert tpr_at_fpr(y, p, 0.01) == pytest.approx(np.mean(np.linspace(0.5, 1.0, 10) > 0.9 - 1e-12 + 0.009))
    assert tpr_at_fpr(np.zeros(5, int), np.ones(5), 0.01) is None


def test_a_refitted_temperature_changes_p_fake_but_no_verdict():
    spec = ModelSpec(model="cifake_cnn", threshold={"margin": 1.3})
    logits = torch.tensor([[0.0, 1.29], [0.0, 1.31], [2.0, -1.0], [-3.0, 4.0]])
    for t in (0.5, 1.0, 2.5):
        s = spec.replace(temperature=t)
        assert [s.label_of(float(v)) for v in s.p_fake(logits)] == ["REAL", "FAKE", "REAL", "FAKE"]
    assert ModelSpec(model="cifake_cnn").fake_threshold == 0.5


def test_calibrate_real_only_sets_the_threshold_every_verdict_uses(tmp_path, make_model_dir):
    d = make_model_dir(tmp_path / "m", "cifake_cnn")
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(60):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(photos / f"p{i:02d}.png")
    (photos / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    r = _cli("calibrate", str(d), "--fpr", "0.05", "--real-only", str(photos))
    assert r.returncode == 0, r.stderr
    assert "broken.jpg" in r.stderr and "threshold: FAKE when P(FAKE) >=" in r.stdout
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["threshold"]["n_real"] == 60 and cfg["threshold"]["skipped"] == 1
    assert cfg["threshold"]["fpr_fit"] <= 0.05
    from genspot.predict import Detector

    det = Detector.load(d)
    rows = [p for p in det.predict_paths([str(photos)]) if p.error is None]
    assert len(rows) == 60
    assert sum(p.label == "FAKE" for p in rows) <= 3  # at most 5% of these photos called FAKE, by predict too
    assert all((p.label == "FAKE") == (p.p_fake >= det.spec.fake_threshold) for p in rows)
    # evaluate reads the same threshold and reports the operating points
    bad = _cli("calibrate", str(d), "--real-only", str(photos))
    assert bad.returncode != 0 and "--fpr" in bad.stderr and "Traceback" not in bad.stderr


def test_evaluate_reports_tpr_at_fixed_fpr_and_uses_the_threshold(tmp_path, make_model_dir, toy_zip):
    from genspot.evaluate import evaluate

    d = make_model_dir(tmp_path / "m", "cifake_cnn")
    r = evaluate(d, toy_zip, split="all", progress=False, sample=300)
    assert set(r["tpr_at_fpr"]) == {"0.01", "0.05"} and r["threshold"] == 0.5
    cfg = json.loads((d / "config.json").read_text())
    cfg["threshold"] = {"margin": 50.0}  # nothing is that sure: every verdict REAL
    (d / "config.json").write_text(json.dumps(cfg))
    r = evaluate(d, toy_zip, split="all", progress=False, sample=300)
    assert r["threshold"] > 0.99 and r["confusion_matrix"][1][1] == 0 and r["confusion_matrix"][0][1] == 0
