"""ONNX export and ONNX Runtime scoring: the same verdicts as PyTorch, and bad files refused in one line."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from genspot.errors import GenspotError  # noqa: E402
from genspot.export import export_onnx  # noqa: E402
from genspot.predict import Detector  # noqa: E402


def _images(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (n, 3, size, size), dtype=np.uint8))


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "genspot.cli", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("name,tta", [("spot_resnet_s", "flip"), ("spot_resnet_s", "d4"), ("cifake_cnn", "none"), ("vit_p2", "flip")])
def test_export_round_trips_scores_and_domain_features(tmp_path, make_model_dir, name, tta):
    d = make_model_dir(tmp_path / name, name)
    cfg = json.loads((d / "config.json").read_text())
    # a temperature that is not 1 must be applied once, not twice or never; a calibrated threshold travels too
    cfg.update(tta=tta, temperature=0.7, threshold={"margin": 0.05})
    (d / "config.json").write_text(json.dumps(cfg))
    info = export_onnx(d, tmp_path / "m.onnx")
    assert info["opset"] == 17 and info["tta"] == tta and (tmp_path / "m.onnx").is_file()
    x = _images(64)
    t, o = Detector.load(d), Detector.load(d, runtime="onnx", onnx_file=tmp_path / "m.onnx")
    assert o.runtime == "onnx" and t.runtime == "torch"
    lt, lo = t.logits(x), o.logits(x)
    assert lt.shape == lo.shape and torch.allclose(lt, lo, atol=1e-4)
    assert np.abs(t.p_fake(x) - o.p_fake(x)).max() < 1e-4
    # the graph's own calibrated output (for use without genspot) is softmax(logits / T)
    import onnxruntime as ort

    s = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    logits, p, feats, is_fake = s.run(None, {"images": x.numpy()})
    assert np.abs(p - t.p_fake(x)).max() < 1e-4
    assert info["threshold"] == t.spec.fake_threshold != 0.5
    margin = (lt[:, 1] - lt[:, 0]).numpy()
    clear = np.abs(margin - 0.05) > 1e-4  # away from the cut, where float noise cannot flip a verdict
    assert np.array_equal(is_fake[clear], margin[clear] >= 0.05)
    assert feats.shape[0] == 64 and feats.ndim == 2
    meta = s.get_modelmeta().custom_metadata_map
    assert json.loads(meta["genspot_config"])["tta"] == tta


def test_ensemble_and_npr_at_64_px_export(tmp_path, make_model_dir):
    from genspot.models import create_model
    from genspot.models.io import save_model_dir

    cfg = json.loads((make_model_dir(tmp_path / "base", "npr") / "config.json").read_text())
    cfg.update(model="npr", input_size=64, input_policy="crop")
    torch.manual_seed(1)
    d = save_model_dir(create_model("npr").eval(), cfg, tmp_path / "npr64")
    export_onnx(d, d / "model.onnx")  # found in the directory without --onnx
    x = _images(16, 64)
    assert np.abs(Detector.load(d).p_fake(x) - Detector.load(d, runtime="onnx").p_fake(x)).max() < 1e-4
    e = make_model_dir(tmp_path / "ens", "spot_resnet_ensemble")
    export_onnx(e, tmp_path / "ens.onnx")
    x = _images(16)
    a = Detector.load(e).p_fake(x)
    assert np.abs(a - Detector.load(e, runtime="onnx", onnx_file=tmp_path / "ens.onnx").p_fake(x)).max() < 1e-4


def test_runtime_onnx_without_a_file_exports_once_into_the_cache(tmp_path, make_model_dir, monkeypatch):
    d = make_model_dir(tmp_path / "m", "spot_resnet_s")
    o = Detector.load(d, runtime="onnx")
    assert o.onnx.path.is_file() and o.onnx.path.parent.name == "onnx"  # under the cache, not in the model directory
    assert not (d / "model.onnx").exists()
    first = o.onnx.path.stat().st_mtime_ns
    assert Detector.load(d, runtime="onnx").onnx.path.stat().st_mtime_ns == first  # reused, not exported again


def test_predict_and_serve_with_runtime_onnx_agree_with_torch(tmp_path, make_model_dir):
    d = make_model_dir(tmp_path / "m", "spot_resnet_s")
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    rng = np.random.default_rng(3)
    for i in range(5):
        Image.fromarray(rng.integers(0, 256, (40 + 7 * i, 50, 3), dtype=np.uint8)).save(imgs / f"{i}.jpg")
    (imgs / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    r = _cli("export", str(d), "--out", str(tmp_path / "m.onnx"))
    assert r.returncode == 0 and "opset 17" in r.stderr + r.stdout, r.stderr
    rows = {}
    for runtime in ("torch", "onnx"):
        extra = ["--runtime", "onnx", "--onnx", str(tmp_path / "m.onnx")] if runtime == "onnx" else []
        r = _cli("predict", str(imgs), "--model", str(d), "--format", "json", *extra)
        assert r.returncode == 1, r.stderr  # the broken file is an error row; the five others are scored
        rows[runtime] = {x["path"]: x for x in json.loads(r.stdout)}
    assert rows["torch"].keys() == rows["onnx"].keys() and len(rows["onnx"]) == 6
    for k, a in rows["torch"].items():
        b = rows["onnx"][k]
        assert (a["error"] is None) == (b["error"] is None) and a["label"] == b["label"] and a["domain"] == b["domain"]
        if a["p_fake"] is not None:
            assert abs(a["p_fake"] - b["p_fake"]) < 1e-4

    from fastapi.testclient import TestClient

    from genspot.serve.app import create_app

    client = TestClient(create_app(d, runtime="onnx", onnx_file=tmp_path / "m.onnx"))
    assert client.get("/healthz").json()["runtime"] == "onnx"
    data = (imgs / "0.jpg").read_bytes()
    got = client.post("/v1/predict", files=[("files", ("0.jpg", data, "image/jpeg"))]).json()
    p = got["results"][0]["p_fake"]
    assert abs(p - rows["torch"][str(imgs / "0.jpg")]["p_fake"]) < 1e-4
    # explanations still work: the maps come from the torch model beside ONNX Runtime
    e = Detector.load(d, runtime="onnx", onnx_file=tmp_path / "m.onnx").explain(imgs / "0.jpg")
    assert e["map"].shape == (32, 32)


def test_corrupt_foreign_and_mismatched_onnx_files_are_refused_before_any_image(tmp_path, make_model_dir):
    a = make_model_dir(tmp_path / "a", "spot_resnet_s")
    b = make_model_dir(tmp_path / "b", "cifake_cnn")
    export_onnx(b, tmp_path / "b.onnx")
    import onnx
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])  # fmt: skip
    onnx.save(helper.make_model(g), tmp_path / "foreign.onnx")
    good = (tmp_path / "b.onnx").read_bytes()
    (tmp_path / "truncated.onnx").write_bytes(good[: len(good) // 2])
    (tmp_path / "random.onnx").write_bytes(np.random.default_rng(0).bytes(4096))
    (tmp_path / "empty.onnx").write_bytes(b"")
    img = tmp_path / "x.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(img)
    cases = {"b.onnx": "other weights", "foreign.onnx": "not exported by genspot", "truncated.onnx": "not a readable ONNX model",
             "random.onnx": "not a readable ONNX model", "empty.onnx": "not a readable ONNX model", "missing.onnx": "no ONNX file"}  # fmt: skip
    for name, words in cases.items():
        with pytest.raises(GenspotError, match=words):
            Detector.load(a, runtime="onnx", onnx_file=tmp_path / name)
    r = _cli("predict", str(img), "--model", str(a), "--runtime", "onnx", "--onnx", str(tmp_path / "truncated.onnx"), "--format", "json")
    assert r.returncode == 2 and r.stdout == "" and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "not a readable ONNX model" in r.stderr
    r = _cli("predict", str(img), "--model", str(a), "--runtime", "tensorrt")
    assert r.returncode == 2 and "choose torch or onnx" in r.stderr and "Traceback" not in r.stderr
    r = _cli("predict", str(img), "--model", str(a), "--runtime", "onnx", "--precision", "bf16")
    assert r.returncode == 2 and "fp32" in r.stderr
    r = _cli("export", str(a), "--out", str(tmp_path / "x.onnx"), "--format", "tflite")
    assert r.returncode == 2 and "choose onnx" in r.stderr
    r = _cli("export", str(a), "--out", str(tmp_path / "no" / "x.onnx"))
    assert r.returncode == 2 and "does not exist" in r.stderr and "Traceback" not in r.stderr


def test_without_the_extra_the_command_names_it(tmp_path, make_model_dir, monkeypatch):
    import importlib

    real = importlib.import_module

    def fake(name, *a, **k):
        if name in ("onnx", "onnxruntime"):
            raise ImportError(f"No module named {name!r}")
        return real(name, *a, **k)

    monkeypatch.setattr(importlib, "import_module", fake)
    d = make_model_dir(tmp_path / "m", "spot_resnet_s")
    with pytest.raises(GenspotError, match=r"pip install -e '\.\[onnx\]'"):
        Detector.load(d, runtime="onnx")
    with pytest.raises(GenspotError, match=r"onnx extra"):
        export_onnx(d, tmp_path / "m.onnx")


@pytest.mark.realdata
@pytest.mark.slow
def test_exported_default_gives_the_same_verdicts_on_1000_validation_images(tmp_path):
    from conftest import SHARED_ZIP

    if not SHARED_ZIP.exists():
        pytest.skip(f"{SHARED_ZIP} not present")
    from genspot.data import load_dataset
    from genspot.evaluate import select_indices

    export_onnx("default", tmp_path / "default.onnx")
    t = Detector.load("default")
    o = Detector.load("default", runtime="onnx", onnx_file=tmp_path / "default.onnx")
    ds = load_dataset(SHARED_ZIP, progress=False)
    idx, _ = select_indices(ds, t.spec, "val")
    idx = np.sort(np.random.default_rng(0).choice(idx, 1000, replace=False))
    x = ds.images[torch.as_tensor(idx)]
    pt = np.concatenate([t.p_fake(x[i : i + 250]) for i in range(0, 1000, 250)])
    po = np.concatenate([o.p_fake(x[i : i + 250]) for i in range(0, 1000, 250)])
    assert len(pt) == 1000
    assert np.array_equal(pt >= 0.5, po >= 0.5)
    assert np.abs(pt - po).max() < 1e-4


def test_a_model_the_exporter_cannot_trace_is_refused_in_one_line(tmp_path):
    from torch import nn

    from genspot.models.io import save_model_dir
    from genspot.models.registry import register_model

    class Turns(nn.Module):  # torch.rot90 has no ONNX export at opset 17
        def __init__(self, num_classes: int = 2) -> None:
            super().__init__()
            self.head = nn.Linear(3, num_classes)

        def forward(self, x):
            return self.head(torch.rot90(x, 1, (2, 3)).mean((2, 3)))

    register_model("test_turns", "a model with an operator ONNX lacks")(lambda num_classes=2, **kw: Turns(num_classes))
    cfg = {"model": "test_turns", "model_kwargs": {}, "class_names": ["REAL", "FAKE"], "positive_class": "FAKE", "input_size": 32,
           "mean": [0.5] * 3, "std": [0.5] * 3, "temperature": 1.0, "tta": "none"}  # fmt: skip
    d = save_model_dir(Turns(), cfg, tmp_path / "turns")
    try:
        with pytest.raises(GenspotError, match=r"cannot export 'test_turns' to ONNX: .*rot90") as e:
            export_onnx(d, tmp_path / "t.onnx")
    finally:
        from genspot.models.registry import _REGISTRY

        _REGISTRY.pop("test_turns")  # no other test sees it
    assert "\n" not in str(e.value) and not (tmp_path / "t.onnx").exists() and not list(tmp_path.glob("*.tmp"))
