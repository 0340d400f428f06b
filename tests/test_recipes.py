"""Named recipes (`genspot train --recipe`) and the per-epoch time breakdown (`--profile`)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

from genspot.errors import GenspotError
from genspot.recipes import RECIPES, recipe
from genspot.train import TrainConfig


def _cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "genspot.cli", *map(str, args)], capture_output=True, text=True, timeout=600)


def test_every_recipe_is_valid_train_options_with_a_reason_for_each_number():
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    for name, entries in RECIPES.items():
        assert entries.keys() <= fields, name
        for key, (_value, why) in entries.items():
            assert len(why) > 10, (name, key)  # a reason, not a placeholder
        TrainConfig(data="x", out="y", **recipe(name))  # the options pass TrainConfig's own checks


def test_the_default_recipe_is_the_shipped_defaults_training():
    from genspot.models.io import read_config

    shipped = read_config("default")["training"]
    for key, value in recipe("default").items():
        assert shipped[key] == value, key


def test_unknown_recipe_lists_the_recipes(toy_zip, tmp_path):
    with pytest.raises(GenspotError, match="fast, default|default, fast"):
        recipe("fastest")
    r = _cli("train", "--recipe", "fastest", "--data", toy_zip, "--out", tmp_path / "r")
    assert r.returncode == 2 and "the recipes are: default, fast" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "r").exists()
    r = _cli("train", "--resume", "--recipe", "fast", "--out", tmp_path / "r")
    assert r.returncode == 2 and "drop --recipe" in r.stderr


@pytest.mark.slow
def test_recipe_with_overrides_and_profile(toy_zip, tmp_path):
    out = tmp_path / "fast"
    r = _cli("train", "--recipe", "fast", "--data", toy_zip, "--epochs", "2", "--precision", "32", "--lr", "0.05",
             "--profile", "--out", out)  # fmt: skip
    assert r.returncode == 0, r.stderr
    training = json.loads((out / "config.json").read_text())["training"]
    fast = recipe("fast")
    # the command line wins where it speaks; the recipe fills in the rest
    assert training["epochs"] == 2 and training["precision"] == "32" and training["lr"] == 0.05
    for key in ("model", "batch_size", "augment", "label_smoothing", "tta", "schedule"):
        assert training[key] == fast[key], key
    assert training["recipe"] == "fast"
    rows = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2
    for row in rows:
        parts = row["profile"]
        assert set(parts) == {"batches", "forward", "backward", "optimizer", "other", "validation"}
        assert all(v >= -0.01 for v in parts.values()), parts
        assert parts["forward"] > 0 and parts["backward"] > 0 and parts["batches"] > 0
        assert sum(parts.values()) == pytest.approx(row["epoch_seconds"], abs=0.02)  # the parts are the whole epoch
        assert row["finished_at"] > 1.7e9
    assert "where the time went" in r.stderr + r.stdout
    # without --profile no breakdown is written, and the run is otherwise the same
    r = _cli("train", "spot_resnet_s", "--data", toy_zip, "--epochs", "1", "--out", tmp_path / "plain")
    assert r.returncode == 0, r.stderr
    assert "profile" not in json.loads((tmp_path / "plain" / "metrics.jsonl").read_text().splitlines()[0])
