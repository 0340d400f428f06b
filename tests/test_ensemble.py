"""Ensembles of spot_resnet models: one network whose logits are the members' mean."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from genspot.errors import GenspotError
from genspot.explain.methods import class_activation_map, explain_batch
from genspot.models import create_model
from genspot.models.ensemble import make_ensemble_dir, merge
from genspot.models.io import load_model_dir, save_model_dir
from genspot.models.tta import predict_logits


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "genspot.cli", *map(str, args)], capture_output=True, text=True, timeout=300)


def _member(seed: int, **kw) -> torch.nn.Module:
    torch.manual_seed(seed)
    m = create_model("spot_resnet_s", **kw)
    for mod in m.modules():  # untrained BN statistics make every eval output alike; vary them
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.normal_()
            mod.running_var.uniform_(0.5, 2.0)
    return m.eval()


def _config(**data) -> dict:
    return {"model": "spot_resnet_s", "class_names": ["REAL", "FAKE"], "positive_class": "FAKE", "input_size": 32,
            "mean": [0.5] * 3, "std": [0.5] * 3, "tta": "flip", "temperature": 0.7,
            "data": {"fingerprint": "zip-x", "protocol": "full", "split_seed": 0, "val_fraction": 0.1, **data},
            "training": {"seed": 0}}  # fmt: skip


def test_merged_logits_are_the_members_mean_and_cam_is_their_mean():
    a, b = _member(0), _member(1, widths=[16, 32, 64, 96])
    ens = merge([a, b]).eval()
    x = torch.randn(5, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(ens(x), (a(x) + b(x)) / 2, atol=1e-5)
        target = torch.tensor([1, 0, 1, 1, 0])
        raw = [torch.einsum("bc,bchw->bhw", m.head[-1].weight[target], m.forward_features(x)) for m in (a, b)]
        want = (raw[0] + raw[1]) / 2
        got = torch.einsum("bc,bchw->bhw", ens.head[-1].weight[target], ens.forward_features(x))
    assert torch.allclose(got, want, atol=1e-5)
    assert class_activation_map(ens, "spot_resnet_ensemble", x, target)[0].shape == (5, 32, 32)
    with pytest.raises(ValueError, match="at least two"):
        merge([a])
    with pytest.raises(ValueError, match="spot_resnet"):
        merge([a, create_model("cifake_cnn")])


def test_a_highpass_member_merges_and_round_trips(tmp_path):
    a, b = _member(0), _member(1, stem="highpass")
    ens = merge([a, b]).eval()
    assert ens.members[0] == {"widths": [16, 32, 64, 128], "blocks": [1, 1, 1]}  # rgb members: no "stem" key
    assert ens.members[1]["stem"] == "highpass"
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(ens(x), (a(x) + b(x)) / 2, atol=1e-5)
    dirs = [save_model_dir(a, _config(), tmp_path / "m0"),
            save_model_dir(b, {**_config(), "model_kwargs": {"stem": "highpass"}}, tmp_path / "m1")]  # fmt: skip
    model, _ = load_model_dir(make_ensemble_dir([str(d) for d in dirs], tmp_path / "ens"))
    with torch.no_grad():
        assert torch.allclose(model.eval()(x), ens(x), atol=1e-5)


def test_ensemble_dir_scores_like_its_members_and_explains(tmp_path):
    dirs = []
    for i in range(2):
        dirs.append(save_model_dir(_member(i), _config(), tmp_path / f"m{i}"))
    out = make_ensemble_dir([str(d) for d in dirs], tmp_path / "ens")
    model, cfg = load_model_dir(out)
    assert cfg["model"] == "spot_resnet_ensemble" and cfg["temperature"] == 1.0 and cfg["tta"] == "flip"
    assert [e["source"] for e in cfg["ensemble"]] == [str(d) for d in dirs]
    x = torch.randn(3, 3, 32, 32)
    members = [load_model_dir(d)[0] for d in dirs]
    with torch.no_grad():
        want = sum(predict_logits(m, cfg.tta, x) for m in members) / 2
        assert torch.allclose(predict_logits(model, cfg.tta, x), want, atol=1e-5)
    for method in ("cam", "gradcam"):
        r = explain_batch(model, cfg, x, method=method, target="fake")
        assert r["layer"] in ("stages", "stages.-1")  # both: the stacked 8x8 maps of the members
        assert r["maps"].shape == (3, 32, 32) and np.isfinite(r["maps"]).all()
    from genspot import Detector

    r = Detector.load(str(out)).predict(np.zeros((40, 50, 3), np.uint8))
    assert 0.0 <= r.p_fake <= 1.0


def test_members_must_share_split_and_input(tmp_path):
    a = save_model_dir(_member(0), _config(), tmp_path / "a")
    b = save_model_dir(_member(1), _config(split_seed=1), tmp_path / "b")
    with pytest.raises(GenspotError, match="data.split_seed"):
        make_ensemble_dir([str(a), str(b)], tmp_path / "ens")
    c = save_model_dir(_member(2), {**_config(), "tta": "none"}, tmp_path / "c")
    r = _cli("ensemble", a, c, "--out", tmp_path / "ens")
    assert r.returncode == 2 and "differs" in r.stderr and "tta" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "ens").exists()
    r = _cli("ensemble", a, "--out", tmp_path / "ens")
    assert r.returncode == 2 and "at least two" in r.stderr
    json.loads((a / "config.json").read_text())  # members untouched


def test_an_ensemble_is_not_merged_again(tmp_path):
    dirs = [str(save_model_dir(_member(i), _config(), tmp_path / f"m{i}")) for i in range(2)]
    ens = make_ensemble_dir(dirs, tmp_path / "ens")
    with pytest.raises(GenspotError, match="already an ensemble; merge the run directories of its members"):
        make_ensemble_dir([str(ens), dirs[0]], tmp_path / "ens2")
    assert not (tmp_path / "ens2").exists()
