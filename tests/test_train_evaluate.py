import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from genspot.errors import GenspotError
from genspot.evaluate import bootstrap_ci, classification_metrics, evaluate
from genspot.models.io import load_model_dir
from genspot.train import TrainConfig, fit


def _cfg(data, out, **kw):
    base = dict(model="cifake_cnn", data=str(data), out=str(out), epochs=3, batch_size=64, lr=0.05,
                val_fraction=0.2, progress=False, device="cpu")  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)


def test_train_then_evaluate(toy_zip_with_test, tmp_path):
    summary = fit(_cfg(toy_zip_with_test, tmp_path / "run"))
    rows = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1, 2]
    for key in ("train_loss", "val_loss", "val_accuracy", "epoch_seconds", "images_per_second"):
        assert all(r[key] is not None for r in rows)
    model, cfg = load_model_dir(tmp_path / "run")
    assert cfg["best"]["val_accuracy"] == max(r["val_accuracy"] for r in rows)
    assert cfg["data"]["n_train"] == 960 and cfg["data"]["n_val"] == 240 and cfg["positive_class"] == "FAKE"
    assert summary["best_val_accuracy"] > 0.8, "the toy task is easy: training must learn it"
    res = evaluate(tmp_path / "run", toy_zip_with_test, progress=False)
    assert res["split"] == "test" and res["n"] == 1200
    assert res["accuracy"] > 0.8 and res["accuracy_ci95"][0] <= res["accuracy"] <= res["accuracy_ci95"][1]
    assert sum(map(sum, res["confusion_matrix"])) == 1200
    val = evaluate(tmp_path / "run", toy_zip_with_test, split="val", progress=False)
    assert val["n"] == 240 and val["split"].startswith("validation")
    assert val["accuracy"] == pytest.approx(cfg["best"]["val_accuracy"], abs=1e-6)


def test_same_seed_same_metrics(toy_zip, tmp_path):
    a = fit(_cfg(toy_zip, tmp_path / "a", epochs=2))
    b = fit(_cfg(toy_zip, tmp_path / "b", epochs=2))
    ra = [json.loads(l)["val_loss"] for l in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    rb = [json.loads(l)["val_loss"] for l in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert ra == rb and a["best_val_accuracy"] == b["best_val_accuracy"]


def test_split_seed_keeps_the_split_so_runs_can_form_an_ensemble(toy_zip, tmp_path):
    from genspot.models.ensemble import make_ensemble_dir

    tiny = dict(model="spot_resnet", model_kwargs={"widths": [4, 8, 8, 8]}, epochs=1, tta="flip")
    fit(_cfg(toy_zip, tmp_path / "a", **tiny))
    fit(_cfg(toy_zip, tmp_path / "b", seed=1, split_seed=0, **tiny))
    fit(_cfg(toy_zip, tmp_path / "c", seed=1, **tiny))
    cfg = {k: load_model_dir(tmp_path / k)[1] for k in "abc"}
    assert cfg["b"]["data"]["split_seed"] == 0 and cfg["c"]["data"]["split_seed"] == 1
    sd = {k: load_model_dir(tmp_path / k)[0].state_dict() for k in "ab"}
    assert not all(np.array_equal(sd["a"][n], sd["b"][n]) for n in sd["a"])  # other init and batches
    make_ensemble_dir([str(tmp_path / "a"), str(tmp_path / "b")], tmp_path / "ab")
    res = evaluate(tmp_path / "ab", toy_zip, split="val", progress=False)
    assert res["n"] == cfg["a"]["data"]["n_val"]
    with pytest.raises(GenspotError, match="split_seed"):
        make_ensemble_dir([str(tmp_path / "a"), str(tmp_path / "c")], tmp_path / "ac")


def test_refuses_to_overwrite_and_to_resume_nothing(toy_zip, tmp_path):
    fit(_cfg(toy_zip, tmp_path / "r", epochs=1))
    with pytest.raises(GenspotError, match="already holds"):
        fit(_cfg(toy_zip, tmp_path / "r", epochs=1))
    with pytest.raises(GenspotError, match="nothing to resume"):
        fit(_cfg(toy_zip, tmp_path / "empty", epochs=1), resume=True)


def _rows(run):
    return [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]


def test_ema_validates_and_exports_the_average_and_leaves_training_alone(toy_zip, tmp_path):
    tiny = dict(model="spot_resnet", model_kwargs={"widths": [4, 8, 8, 8]}, epochs=2)  # with BatchNorm, whose statistics EMA recomputes
    fit(_cfg(toy_zip, tmp_path / "plain", **tiny))
    fit(_cfg(toy_zip, tmp_path / "ema", ema=0.9, **tiny))
    plain, ema = _rows(tmp_path / "plain"), _rows(tmp_path / "ema")
    assert "val_accuracy_raw" not in plain[0]
    # The average does not touch the training weights: the same seed trains the same network,
    # whose accuracy the EMA run logs beside the average's.
    assert [r["val_accuracy_raw"] for r in ema] == [r["val_accuracy"] for r in plain]
    assert [r["train_loss"] for r in ema] == [r["train_loss"] for r in plain]
    model, cfg = load_model_dir(tmp_path / "ema")
    assert cfg["training"]["ema"] == 0.9
    assert cfg["best"]["val_accuracy"] == max(r["val_accuracy"] for r in ema)
    # What was saved is what was validated: the average, not the training weights.
    from conftest import rescore_val

    from genspot.data import load_dataset

    p_fake, y, nll, _ = rescore_val(tmp_path / "ema", toy_zip)
    assert float(nll.mean()) == pytest.approx(cfg["best"]["val_loss"], rel=1e-4)
    assert float(((p_fake > 0.5) == (y == 1)).mean()) == pytest.approx(cfg["best"]["val_accuracy"], abs=1e-6)
    sd_plain = load_model_dir(tmp_path / "plain")[0].state_dict()
    assert not all(np.array_equal(sd_plain[n], v) for n, v in model.state_dict().items())
    # Its BatchNorm statistics are those of the averaged weights, recomputed on that epoch's first
    # training batches (an average of running statistics would not match averaged weights).
    import copy

    from genspot.data import make_splits
    from genspot.data.batches import Batches
    from genspot.train import recompute_bn

    ds = load_dataset(toy_zip, progress=False)
    splits = make_splits(ds, "full", seed=0, val_fraction=0.2)
    train_b = Batches(ds.images, ds.labels, splits.train, batch_size=64, shuffle=True, augment="flip-crop", seed=0,
                      drop_last=True, mean=cfg["mean"], std=cfg["std"], channels_last=True)  # fmt: skip
    train_b.set_epoch(cfg["best"]["epoch"])
    again = copy.deepcopy(model)
    recompute_bn(again, train_b, 100)
    for (name, a), b in zip(model.state_dict().items(), again.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-5), name
    with pytest.raises(GenspotError, match="--ema"):
        _cfg(toy_zip, tmp_path / "bad", ema=1.0)


def test_sam_learns_steps_its_schedule_and_is_deterministic(toy_zip, tmp_path):
    tiny = dict(model="spot_resnet", model_kwargs={"widths": [4, 8, 8, 8]}, epochs=2)
    fit(_cfg(toy_zip, tmp_path / "plain", **tiny))
    a = fit(_cfg(toy_zip, tmp_path / "a", sam=0.05, **tiny))
    fit(_cfg(toy_zip, tmp_path / "b", sam=0.05, **tiny))
    plain, ra, rb = _rows(tmp_path / "plain"), _rows(tmp_path / "a"), _rows(tmp_path / "b")
    assert [r["val_loss"] for r in ra] == [r["val_loss"] for r in rb]  # same seed, same run
    assert [r["train_loss"] for r in ra] != [r["train_loss"] for r in plain]  # the update is not plain SGD's
    assert a["best_val_accuracy"] > 0.8, "the toy task is easy: SAM must learn it too"
    cfg = load_model_dir(tmp_path / "a")[1]
    assert cfg["training"]["sam"] == 0.05
    # Manual optimisation steps the one-cycle schedule itself: once per batch, to the end.
    ck = torch.load(tmp_path / "a" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    steps = ck["global_step"]
    assert steps == 2 * (cfg["data"]["n_train"] // 64) and ck["lr_schedulers"][0]["last_epoch"] == steps
    with pytest.raises(GenspotError, match="--sam"):
        _cfg(toy_zip, tmp_path / "bad", sam=0.05, ema=0.9)


def test_recompute_bn_gives_the_statistics_of_the_current_weights():
    from genspot.data.batches import Batches
    from genspot.train import recompute_bn

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4, momentum=0.1)).eval()
    images = torch.randint(0, 256, (40, 3, 8, 8), dtype=torch.uint8)
    batches = Batches(images, torch.zeros(40, dtype=torch.int64), np.arange(40), batch_size=10, mean=(0.5,) * 3, std=(0.25,) * 3)
    recompute_bn(model, batches, n_batches=3)
    feats = torch.cat([model[0](x) for x, _ in list(batches)[:3]])  # the first 3 batches, no more
    bn = model[1]
    assert torch.allclose(bn.running_mean, feats.mean((0, 2, 3)), atol=1e-5)
    per_batch_var = torch.stack([f.var((0, 2, 3), unbiased=True) for f in feats.split(10)])
    assert torch.allclose(bn.running_var, per_batch_var.mean(0), atol=1e-5)  # mean of the batches' variances
    assert bn.momentum == 0.1 and not model.training


def test_ema_resumes_with_its_average(toy_zip, tmp_path, monkeypatch):
    from genspot import train

    tiny = dict(model="spot_resnet", model_kwargs={"widths": [4, 8, 8, 8]}, epochs=3, ema=0.9)
    fit(_cfg(toy_zip, tmp_path / "ref", **tiny))
    save = train.LastCheckpoint.on_train_epoch_end

    def save_then_die(self, trainer, pl_module):
        save(self, trainer, pl_module)
        if trainer.current_epoch == 1:
            raise RuntimeError("killed")

    monkeypatch.setattr(train.LastCheckpoint, "on_train_epoch_end", save_then_die)
    with pytest.raises(RuntimeError, match="killed"):
        fit(_cfg(toy_zip, tmp_path / "cut", **tiny))
    monkeypatch.setattr(train.LastCheckpoint, "on_train_epoch_end", save)
    assert len(_rows(tmp_path / "cut")) == 2
    fit(_cfg(toy_zip, tmp_path / "cut", **tiny), resume=True)
    ref, cut = _rows(tmp_path / "ref"), _rows(tmp_path / "cut")
    # Had the average restarted from the resumed weights, the last epoch's EMA figures would differ.
    for key in ("val_loss", "val_accuracy", "val_accuracy_raw"):
        assert [r[key] for r in cut] == pytest.approx([r[key] for r in ref], rel=1e-5), key


def _cli(*args, env=None):
    return [sys.executable, "-m", "genspot.cli", *map(str, args)]


@pytest.mark.slow
def test_resume_after_kill_9(toy_zip, tmp_path):
    """kill -9 mid-run, resume: finished epochs are kept and the result equals an uninterrupted run."""
    args = ["train", "cifake_cnn", "--data", toy_zip, "--epochs", "6", "--batch-size", "16", "--lr", "0.02",
            "--val-fraction", "0.2", "--device", "cpu"]  # fmt: skip
    run = tmp_path / "killed"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    p = subprocess.Popen(_cli(*args, "--out", run), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = run / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline:
        if (run / "checkpoints" / "last.ckpt").exists() and metrics.exists() and len(metrics.read_text().splitlines()) >= 2:
            break
        time.sleep(0.02)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    before = metrics.read_text().splitlines()
    assert 2 <= len(before) < 6, "the run must be killed in the middle"
    r = subprocess.run(_cli("train", "--resume", "--out", run), env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    after = metrics.read_text().splitlines()
    assert [json.loads(l)["epoch"] for l in after] == list(range(6))
    kept = min(len(before), 1)  # at least the first finished epoch is never redone
    assert after[:kept] == before[:kept]
    ref = tmp_path / "ref"
    r = subprocess.run(_cli(*args, "--out", ref), env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    ref_rows = [json.loads(l) for l in (ref / "metrics.jsonl").read_text().splitlines()]
    got_rows = [json.loads(l) for l in after]
    assert [x["val_loss"] for x in got_rows] == pytest.approx([x["val_loss"] for x in ref_rows], rel=1e-5)


def test_bootstrap_interval():
    correct = np.array([1] * 90 + [0] * 10)
    lo, hi = bootstrap_ci(correct, n_boot=2000, seed=0)
    assert 0.82 < lo < 0.9 < hi < 0.96
    assert bootstrap_ci(correct, seed=1) != bootstrap_ci(correct, seed=2)


def test_classification_metrics_known_values():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.6, 0.3, 0.9, 0.8, 0.4, 0.7])
    m = classification_metrics(y, p)
    assert m["confusion_matrix"] == [[3, 1], [1, 3]]
    assert m["accuracy"] == 0.75 and m["precision"] == 0.75 and m["recall"] == 0.75 and m["f1"] == 0.75
    assert m["roc_auc"] == pytest.approx(15 / 16)  # 15 of the 16 (FAKE, REAL) pairs are ordered right
    assert m["per_class"]["REAL"]["recall"] == 0.75
