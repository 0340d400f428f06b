import subprocess
import sys

import numpy as np
import pytest
import torch

from genspot.errors import GenspotError
from genspot.explain import METHODS, explain_batch
from genspot.explain.layers import default_target_layer, map_shape, resolve_layer, vit_reshape
from genspot.models import create_model
from genspot.models.spec import ModelSpec


def _cfg(name):
    return ModelSpec.from_config({"model": name, "class_names": ["REAL", "FAKE"], "positive_class": "FAKE"})


CASES = [
    ("cifake_cnn", ["gradcam", "gradcam++", "scorecam", "layercam", "eigencam"]),
    ("spot_resnet_s", ["cam", "gradcam", "gradcam++", "layercam", "eigencam"]),
    ("vit_p2", ["gradcam", "rollout"]),
    ("efficientnet_b0", ["gradcam++"]),
]


@pytest.mark.parametrize("name, methods", CASES)
def test_map_shapes_and_ranges(name, methods):
    torch.manual_seed(0)
    m = create_model(name).eval()
    x = torch.randn(3, 3, 32, 32)
    for method in methods:
        r = explain_batch(m, _cfg(name), x, method=method, target="fake")
        maps = r["maps"]
        assert maps.shape == (3, 32, 32) and maps.dtype == np.float32, method
        assert maps.min() >= 0.0 and maps.max() <= 1.0 + 1e-6, method
        assert r["p_fake"].shape == (3,) and set(r["target"].tolist()) == {1}


@pytest.mark.parametrize("name", ["cifake_cnn", "vgg16", "efficientnet_b0", "efficientnetv2_b0", "vit_p2", "spot_resnet"])
def test_default_layers_keep_at_least_4x4(name):
    m = create_model(name).eval()
    path, reshape = default_target_layer(m, name)
    shape = map_shape(m, resolve_layer(m, path), 32, reshape)
    assert min(shape[-2:]) >= 4, (name, path, shape)


def test_efficientnet_stem_stride_1_picks_a_deeper_block():
    a = default_target_layer(create_model("efficientnetv2_b0"), "efficientnetv2_b0")[0]
    b = default_target_layer(create_model("efficientnetv2_b0", stem_stride=1), "efficientnetv2_b0")[0]
    assert int(b.split(".")[1]) > int(a.split(".")[1])


def test_cam_equals_gradcam_on_global_pooling_plus_linear():
    torch.manual_seed(0)
    m = create_model("spot_resnet_s").eval()
    x = torch.randn(4, 3, 32, 32)
    for target in ("fake", "real"):
        cam = explain_batch(m, _cfg("spot_resnet_s"), x, method="cam", target=target)["maps"]
        grad = explain_batch(m, _cfg("spot_resnet_s"), x, method="gradcam", target=target, layer="stages.-1")["maps"]
        assert np.allclose(cam, grad, atol=1e-4)


def test_cam_refuses_models_without_pooling_plus_linear():
    with pytest.raises(GenspotError, match="global pooling followed by one linear layer"):
        explain_batch(create_model("cifake_cnn").eval(), _cfg("cifake_cnn"), torch.randn(1, 3, 32, 32), method="cam")
    with pytest.raises(GenspotError, match="constant"):
        explain_batch(create_model("vgg16").eval(), _cfg("vgg16"), torch.randn(1, 3, 32, 32), method="cam")
    with pytest.raises(GenspotError, match="vit_p2 only"):
        explain_batch(create_model("cifake_cnn").eval(), _cfg("cifake_cnn"), torch.randn(1, 3, 32, 32), method="rollout")


def test_vit_reshape_puts_each_token_on_its_pixels():
    """Change one 2x2 patch of the input: only that patch's cell of the 16x16 grid changes."""
    m = create_model("vit_p2").eval()
    x = torch.randn(1, 3, 32, 32)
    for r, c in [(0, 0), (3, 11), (15, 15), (9, 2)]:
        y = x.clone()
        y[:, :, 2 * r : 2 * r + 2, 2 * c : 2 * c + 2] += 5.0
        with torch.no_grad():
            a = vit_reshape(m.patch_embed(x))
            b = vit_reshape(m.patch_embed(y))
        changed = (a - b).abs().sum(1)[0]  # (16, 16)
        assert changed[r, c] > 0 and changed.sum() == changed[r, c]


def test_rollout_sees_position(tmp_path):
    m = create_model("vit_p2").eval()
    maps = explain_batch(m, _cfg("vit_p2"), torch.randn(2, 3, 32, 32), method="rollout")["maps"]
    assert maps.shape == (2, 32, 32) and maps.std() > 0


@pytest.fixture(scope="module")
def trained_toy(tmp_path_factory, toy_zip_with_test):
    from genspot.train import TrainConfig, fit

    out = tmp_path_factory.mktemp("toymodel")
    fit(TrainConfig(model="spot_resnet_s", data=str(toy_zip_with_test), out=str(out), epochs=2, batch_size=64,
                    lr=0.05, progress=False, device="cpu", model_kwargs={"widths": [8, 16, 16, 32]}))  # fmt: skip
    return out


def test_maps_are_not_constant_on_a_trained_model(trained_toy, toy_zip_with_test):
    from genspot.data import load_dataset
    from genspot.data.batches import normalize
    from genspot.models.io import load_model_dir

    model, cfg = load_model_dir(trained_toy)
    ds = load_dataset(toy_zip_with_test, progress=False)
    x = normalize(ds.images[ds.indices("test")[:16]], cfg["mean"], cfg["std"])
    for method in ("cam", "gradcam", "gradcam++"):
        maps = explain_batch(model, cfg, x, method=method)["maps"]
        per_map_std = maps.reshape(16, -1).std(1)
        assert (per_map_std > 0.05).all(), method
        assert not np.allclose(maps[0], maps[1]), method


def test_explain_cli_writes_png_and_npy_and_skips_bad_input(trained_toy, toy_zip_with_test, tmp_path):
    import zipfile

    folder = tmp_path / "imgs"
    folder.mkdir()
    with zipfile.ZipFile(toy_zip_with_test) as z:
        for n in z.namelist()[:3]:
            (folder / n.replace("/", "_")).write_bytes(z.read(n))
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    out = tmp_path / "maps"
    r = subprocess.run([sys.executable, "-m", "genspot.cli", "explain", str(folder), "--model", str(trained_toy),
                        "--out", str(out), "--method", "gradcam++"], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 1, r.stderr  # one input failed: non-zero exit, the others still explained
    assert "broken.jpg" in r.stderr and "Traceback" not in r.stderr
    npys = sorted(out.glob("*_gradcam++.npy"))
    assert len(npys) == 3 and len(list(out.glob("*_gradcam++.png"))) == 3
    m = np.load(npys[0])
    assert m.shape == (32, 32) and m.dtype == np.float32 and 0 <= m.min() and m.max() <= 1


def test_methods_list():
    assert set(METHODS) == {"cam", "gradcam", "gradcam++", "scorecam", "layercam", "eigencam", "rollout"}


def test_spearman_and_deletion_insertion_basics():
    from genspot.explain.faithfulness import deletion_insertion, spearman_rows

    a = np.arange(20, dtype=float).reshape(2, 10)
    assert np.allclose(spearman_rows(a, a), 1.0) and np.allclose(spearman_rows(a, -a), -1.0)

    class PixelModel(torch.nn.Module):
        """FAKE score driven only by pixel (0, 0): deleting it first must drop the score at once."""

        def forward(self, x):
            v = x[:, 0, 0, 0] * 10
            return torch.stack([-v, v], 1)

    x = torch.zeros(2, 3, 8, 8)
    x[:, :, 0, 0] = 1.0
    good = np.zeros((2, 8, 8), np.float32)
    good[:, 0, 0] = 1.0
    bad = np.ones((2, 8, 8), np.float32)
    bad[:, 0, 0] = 0.0
    t = torch.ones(2, dtype=torch.int64)
    d_good, i_good = deletion_insertion(PixelModel(), x, good, t)
    d_bad, i_bad = deletion_insertion(PixelModel(), x, bad, t)
    assert (d_good < d_bad).all() and (i_good > i_bad).all()


def test_explain_eval_writes_tables_and_grid(trained_toy, toy_zip_with_test, tmp_path):
    import json

    from genspot.explain.faithfulness import evaluate_faithfulness

    r = evaluate_faithfulness(trained_toy, toy_zip_with_test, tmp_path / "f", n=24, batch_size=12, progress=False)
    assert r["n"] == 24 and set(r["methods"]) == {"cam", "gradcam", "gradcam++", "scorecam", "layercam", "eigencam", "random"}
    for m, v in r["methods"].items():
        assert v["deletion_auc"] is not None and v["road_combined"] is not None
        assert (v["randomization_spearman"] is None) == (m == "random")
    saved = json.loads((tmp_path / "f" / "faithfulness.json").read_text())
    assert saved["methods"].keys() == r["methods"].keys()
    md = (tmp_path / "f" / "faithfulness.md").read_text()
    assert "| gradcam++ |" in md and "grid.png" in md
    from PIL import Image

    grid = Image.open(tmp_path / "f" / "grid.png")
    assert grid.height >= 16 * 64 and grid.width >= 7 * 64
