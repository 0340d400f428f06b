"""A wall-clock budget: `genspot train --time-budget` cuts a run and validates where it stopped;
`genspot compare --protocol aligned --budget` fits each model's epochs into the same minutes and
reports a model that cannot finish one instead of training it."""

import json
from pathlib import Path

import numpy as np
import pytest

from genspot.compare import CompareConfig, compare
from genspot.errors import GenspotError
from genspot.recipes import aligned_recipe
from genspot.train import TrainConfig, fit


def _aligned_zip(tmp_path: Path, n: int = 40) -> Path:
    from conftest import jpeg_bytes, write_zip

    rng = np.random.default_rng(0)
    members = {"genspot-synth.json": b"{}"}
    for k in range(n):
        photo = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
        for src in ("ae:x", "identity"):
            members[f"{src}/0_real/p{k:03d}.jpg"] = jpeg_bytes(photo)
            members[f"{src}/1_fake/p{k:03d}.jpg"] = jpeg_bytes(photo // 2 if src == "ae:x" else photo)
    return write_zip(tmp_path / "aligned.zip", members)


def test_time_budget_cuts_the_run_and_validates_where_it_stopped(toy_zip, tmp_path):
    cfg = TrainConfig(model="cifake_cnn", data=str(toy_zip), out=str(tmp_path / "r"), epochs=50, batch_size=32,
                      time_budget=1e-4, progress=False, device="cpu")  # fmt: skip
    s = fit(cfg)
    cut = s["stopped_by_budget"]
    assert cut is not None and cut["epoch"] == 0 and 1 <= cut["steps"] < cut["steps_per_epoch"]
    rows = [json.loads(ln) for ln in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["val_accuracy"] is not None
    assert rows[0]["epoch_share"] == pytest.approx(cut["steps"] / cut["steps_per_epoch"], abs=1e-3)
    assert (tmp_path / "r" / "model.safetensors").exists()
    # Without a budget nothing is cut.
    s = fit(TrainConfig(model="cifake_cnn", data=str(toy_zip), out=str(tmp_path / "f"), epochs=1, batch_size=64,
                        progress=False, device="cpu"))  # fmt: skip
    assert s["stopped_by_budget"] is None
    with pytest.raises(GenspotError, match="time-budget"):
        TrainConfig(model="cifake_cnn", data="x", out="y", time_budget=-1)


def test_aligned_recipe_is_one_data_recipe_with_each_models_optimiser():
    vit, safe, cnn = aligned_recipe("vit_p2"), aligned_recipe("safe"), aligned_recipe("efficientnetv2_b0")
    for r in (vit, safe, cnn):
        assert (r.image_size, r.input_policy, r.augment, r.batch_size, r.val_fraction) == (256, "crop", "aligned", 64, 0.2)
    assert vit.patch == 256 and safe.patch == 64  # built for one size: the whole crop; fully convolutional: patches
    assert (safe.optimizer, safe.lr, safe.schedule) == ("adamw", 1e-3, "cosine")  # no study recipe: the aligned runs'
    assert vit.label_smoothing == 0.1 and "model_kwargs" not in cnn.options  # the study's; its 32-px stem option dropped
    assert aligned_recipe("safe", image_size=32).patch == 32


def test_compare_aligned_under_a_budget(tmp_path):
    data = _aligned_zip(tmp_path)
    common = dict(data=str(data), protocol="aligned", image_size=32, train_sources=["ae:x"], progress=False, device="cpu")
    # A budget no epoch fits: every model is reported with its measured speed, none is trained.
    s = compare(CompareConfig(out=str(tmp_path / "none"), models=["cifake_cnn", "vit_p2"], budget=1e-4, **common))
    for r in s["models"]:
        assert r["trained"] is False and r["test"] is None and r["budget"]["plan"]["epochs"] == 0
        assert r["parameters"] > 0 and r["median_epoch_seconds"] > 0
        assert not (Path(r["run_dir"]) / "model.safetensors").exists()
    md = (tmp_path / "none" / "results.md").read_text()
    assert md.count("cannot finish an epoch in 0.0001 min") == 2
    again = compare(CompareConfig(out=str(tmp_path / "none"), models=["cifake_cnn", "vit_p2"], budget=1e-4, **common))
    assert again["models"] == s["models"]  # a rerun keeps the rows: nothing is probed or trained again
    # A budget that fits: the planned epochs run, scored on the validation photos.
    s = compare(CompareConfig(out=str(tmp_path / "fit"), models=["cifake_cnn"], budget=0.5, **common))
    r = s["models"][0]
    plan = r["budget"]["plan"]
    assert r["trained"] and plan["epochs"] >= 1 and plan["val_images"] == 16  # 8 of 40 photos, a real and a fake each
    assert r["epochs_run"] == plan["epochs"] or r["budget"]["stopped_by_budget"]
    assert r["test_split"].startswith("validation") and r["test"]["n"] == 16
    assert r["recipe"]["epochs"] == plan["epochs"]
    assert "val acc [95% CI]" in (tmp_path / "fit" / "results.md").read_text()
    with pytest.raises(GenspotError, match="genspot synth"):
        compare(CompareConfig(data=str(tmp_path / "none" / "results.json"), out=str(tmp_path / "x"), protocol="aligned"))
    assert not (tmp_path / "x").exists()  # refused before anything was written
