"""genspot benchmark on trained models and an aligned archive: every source scored on the model's
validation photos only, the controls (identity ROC-AUC, hard negatives), other archives sampled."""

import json
from pathlib import Path

import numpy as np
import torch
from torchmetrics.functional.classification import binary_auroc

from genspot.controls import auc, auc_ci, hard_negatives, wilson


def _aligned_zip(tmp_path: Path, n: int = 30) -> Path:
    from conftest import jpeg_bytes, write_zip

    rng = np.random.default_rng(0)
    members = {"genspot-synth.json": b"{}"}
    for k in range(n):
        photo = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
        for src in ("ae:x", "identity", "up:bicubic"):
            members[f"{src}/0_real/p{k:03d}.jpg"] = jpeg_bytes(photo)
            members[f"{src}/1_fake/p{k:03d}.jpg"] = jpeg_bytes(photo // 2 if src == "ae:x" else photo, quality=89)
    return write_zip(tmp_path / "aligned.zip", members)


def _model_dir(tmp_path: Path, data: Path) -> Path:
    """An untrained spot_resnet_s whose config says it trained on `ae:x` of `data`, split by photo."""
    from genspot.data import load_dataset
    from genspot.models import create_model
    from genspot.models.io import save_model_dir

    ds = load_dataset(data, size=32, progress=False)
    torch.manual_seed(0)
    cfg = {"model": "spot_resnet_s", "input_size": 32, "input_policy": "resize",
           "data": {"source": str(data), "fingerprint": ds.fingerprint, "split_seed": 0, "val_fraction": 0.2,
                    "sources": ["ae:x"], "group_by": "stem"},
           "threshold": {"margin": 0.0}}  # fmt: skip
    return save_model_dir(create_model("spot_resnet_s", num_classes=2), cfg, tmp_path / "model")


def test_auc_and_intervals_agree_with_the_references():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 400)
    p = np.round(rng.random(400) + 0.4 * y, 1)  # ties, which count one half
    assert abs(auc(y, p) - float(binary_auroc(torch.tensor(p), torch.tensor(y)))) < 1e-6
    a, lo, hi = auc_ci(y, p)
    assert lo < a < hi and hi - lo < 0.2
    assert wilson(0, 100)[0] == 0.0 and 0.03 < wilson(0, 100)[1] < 0.04  # not the normal interval's [0, 0]


def test_hard_negatives_are_seeded_and_change_every_photo():
    x = torch.from_numpy(np.random.default_rng(0).integers(0, 255, (4, 3, 32, 32), dtype=np.uint8))
    a, b = hard_negatives(x, seed=3), hard_negatives(x, seed=3)
    for k in ("blur", "rescale", "jpeg"):
        assert torch.equal(a[k], b[k]) and a[k].shape == x.shape and not torch.equal(a[k], x)


def test_benchmark_scores_trained_models_on_validation_photos_only(tmp_path):
    from conftest import jpeg_bytes, write_zip

    from genspot.crossgen import BenchmarkConfig, benchmark

    data = _aligned_zip(tmp_path)
    model = _model_dir(tmp_path, data)
    rng = np.random.default_rng(5)
    other = write_zip(tmp_path / "other.zip", {f"train/{c}/{i}.jpg": jpeg_bytes(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
                                               for c in ("REAL", "FAKE") for i in range(9)})  # fmt: skip
    s = benchmark(BenchmarkConfig(data=str(data), out=str(tmp_path / "bench"), models=[], train_sources=[],
                                  model_dirs={"m": str(model)}, test_data={"other": str(other)}, sample=4, progress=False))  # fmt: skip
    (m,) = s["models"]
    by = {r["source"]: r for r in m["sources"]}
    # 20% of 30 photos validate: 6 photos, each a real and a fake in every source, and nothing else
    assert {r["n"] for r in m["sources"]} == {12} and all(r["chosen"] == "the model's validation photos" for r in m["sources"])
    assert by["ae:x"]["trained_on"] and not by["identity"]["trained_on"]
    c = m["controls"]
    assert c["identity_auc"]["n"] == 12 and 0.0 <= c["identity_auc"]["auc"] <= 1.0
    assert c["hard_negatives"]["all"]["n"] == 3 * 6
    t = m["test_data"]["other"]
    assert t["fake_called_fake"]["n"] == 4 and t["real_called_fake"]["n"] == 4
    md = (tmp_path / "bench" / "benchmark.md").read_text()
    assert "## Controls" in md and "other fakes" in md and "hard negatives" in md
    assert json.loads((tmp_path / "bench" / "benchmark.json").read_text())["sample_per_class"] == 4


def test_the_models_split_is_rebuilt_once_per_dataset_not_per_source(tmp_path, monkeypatch):
    import gc

    import genspot.crossgen as crossgen
    import genspot.data.splits as splits
    from genspot.data import load_dataset
    from genspot.models.io import load_model_dir

    data = _aligned_zip(tmp_path)
    _, spec = load_model_dir(_model_dir(tmp_path, data))
    ds = load_dataset(data, size=32, progress=False)
    calls = []
    real = splits.splits_from_config
    monkeypatch.setattr(splits, "splits_from_config", lambda *a, **k: calls.append(1) or real(*a, **k))
    picked = {s: crossgen.eval_indices(ds, spec, s)[0] for s in ("ae:x", "identity", "up:bicubic")}
    assert len(calls) == 1 and all(len(v) for v in picked.values())
    stems = {s: {ds.paths[i].rsplit("/", 1)[1] for i in v} for s, v in picked.items()}
    assert stems["ae:x"] == stems["identity"] == stems["up:bicubic"]  # one set of validation photos
    key = id(ds)
    del ds
    gc.collect()
    assert key not in crossgen._SPLITS  # released with its dataset
