import json
import os
import signal
import subprocess
import sys
import time

import pytest

from genspot.compare import DEFAULT_MODELS, STUDY_MODELS, CompareConfig, compare, recipe_for
from genspot.errors import GenspotError

MODELS = ["cifake_cnn", "spot_resnet_s"]


def _check_results(out, models):
    summary = json.loads((out / "results.json").read_text())
    assert [r["model"] for r in summary["models"]] == models
    for r in summary["models"]:
        for key in ("parameters", "trainable_parameters", "median_epoch_seconds", "train_images_per_second", "epochs_run",
                    "best_val_accuracy", "inference_images_per_second", "recipe", "reported", "init"):  # fmt: skip
            assert r[key] is not None, key
        for key in ("accuracy", "accuracy_ci95", "f1", "roc_auc", "n"):
            assert key in r["test"]
        assert r["test"]["n"] > 0 and len(r["val_curve"]) == r["epochs_run"]
    md = (out / "results.md").read_text()
    assert md.splitlines()[2] == "```bash" and "genspot compare" in md
    assert all(f"| {m} |" in md for m in models)
    assert (out / "learning_curves.png").stat().st_size > 1000 and (out / "tradeoff.png").stat().st_size > 1000
    return summary


def test_compare_two_fast_models(toy_zip, tmp_path):
    cfg = CompareConfig(data=str(toy_zip), out=str(tmp_path / "c"), models=MODELS, epochs=2, progress=False, device="cpu")
    summary = compare(cfg)
    _check_results(tmp_path / "c", MODELS)
    assert summary["models"][0]["reported"] == {"paper": 0.9298}
    assert summary["models"][0]["test_split"].startswith("study-protocol test")
    # Rerunning the finished comparison retrains nothing.
    before = (tmp_path / "c" / "models" / "cifake_cnn" / "metrics.jsonl").read_text()
    compare(cfg)
    assert (tmp_path / "c" / "models" / "cifake_cnn" / "metrics.jsonl").read_text() == before
    with pytest.raises(GenspotError, match="other settings"):
        compare(CompareConfig(data=str(toy_zip), out=str(tmp_path / "c"), models=MODELS, epochs=3, progress=False))


def test_recipes_cover_every_default_model():
    assert set(STUDY_MODELS) < set(DEFAULT_MODELS)
    for m in DEFAULT_MODELS:
        study, full = recipe_for(m, "study"), recipe_for(m, "full")
        assert study.epochs >= 1 and full.epochs >= 1 and study.why
    assert recipe_for("vit_p2", "study", epochs=3).epochs == 3


@pytest.mark.slow
def test_killed_compare_resumes(toy_zip, tmp_path):
    out = tmp_path / "c"
    cmd = [sys.executable, "-m", "genspot.cli", "compare", "--data", str(toy_zip), "--out", str(out),
           "--models", ",".join(MODELS), "--epochs", "4", "--device", "cpu"]  # fmt: skip
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    second = out / "models" / MODELS[1]
    deadline = time.time() + 300
    while time.time() < deadline and not (second / "checkpoints" / "last.ckpt").exists():
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    first_metrics = (out / "models" / MODELS[0] / "metrics.jsonl").read_text()
    assert (out / "models" / MODELS[0] / "result.json").exists()
    assert not (second / "result.json").exists(), "the second model must be in flight when killed"
    done_before = len((second / "metrics.jsonl").read_text().splitlines())
    assert 1 <= done_before < 4
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "not retrained" in r.stderr and "resuming" in r.stderr
    assert (out / "models" / MODELS[0] / "metrics.jsonl").read_text() == first_metrics
    assert [json.loads(l)["epoch"] for l in (second / "metrics.jsonl").read_text().splitlines()] == [0, 1, 2, 3]
    _check_results(out, MODELS)


def test_pretrained_vgg16_adds_the_studys_frozen_row(tmp_path):
    from safetensors.torch import save_file

    from genspot.data.synthetic import make_toy_archive
    from genspot.models import create_model

    # the rows' names, inits and parameter counts are checked, not accuracy: a small set keeps VGG16's two runs short
    toy_zip = make_toy_archive(tmp_path / "small.zip", 80, splits=("train",), seed=3)
    weights = tmp_path / "vgg16-imagenet.safetensors"
    save_file(create_model("vgg16").state_dict(), str(weights))
    # fp32: the recipe's bf16 autocast is emulated on CPUs without bf16 units, several times slower
    cfg = CompareConfig(data=str(toy_zip), out=str(tmp_path / "c"), models=["vgg16"], epochs=1, progress=False,
                        device="cpu", precision="32", pretrained={"vgg16": str(weights)})  # fmt: skip
    summary = compare(cfg)
    rows = {r["row"]: r for r in summary["models"]}
    assert set(rows) == {"vgg16", "vgg16+pretrained"}
    assert rows["vgg16"]["init"] == "from scratch"
    assert rows["vgg16+pretrained"]["init"] == "pretrained (vgg16-imagenet.safetensors), blocks 1-4 frozen"
    assert rows["vgg16+pretrained"]["trainable_parameters"] == 3 * (512 * 512 * 9 + 512) + 1026
    assert rows["vgg16"]["trainable_parameters"] == 14_715_714
    with pytest.raises(GenspotError, match="not being compared"):
        compare(CompareConfig(data=str(toy_zip), out=str(tmp_path / "d"), models=["cifake_cnn"], pretrained={"vgg16": str(weights)}))
