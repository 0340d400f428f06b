"""DDP on the CPU: two processes (gloo) train one model, and that model loads and evaluates."""

import json
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_two_process_ddp_on_cpu(toy_zip_with_test, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "genspot.cli", "train", "cifake_cnn", "--data", str(toy_zip_with_test), "--out", str(out),
           "--epochs", "2", "--batch-size", "64", "--device", "cpu", "--devices", "2", "--strategy", "ddp"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stderr.count("best val accuracy") == 1  # rank 0 reports, once
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in rows] == [0, 1]  # one writer: no line per rank
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["training"]["devices"] == 2
    ev = subprocess.run([sys.executable, "-m", "genspot.cli", "evaluate", str(out), "--data", str(toy_zip_with_test), "--json"],
                        capture_output=True, text=True, timeout=600)  # fmt: skip
    assert ev.returncode == 0, ev.stderr[-2000:]
    res = json.loads(ev.stdout)
    assert res["n"] == 1200 and res["accuracy"] > 0.6
    # validation accuracy was summed exactly over the two shards: it matches a single-process re-evaluation
    best = cfg["best"]["val_accuracy"]
    val = json.loads(subprocess.run([sys.executable, "-m", "genspot.cli", "evaluate", str(out), "--data", str(toy_zip_with_test),
                                     "--split", "val", "--json"], capture_output=True, text=True, timeout=600).stdout)  # fmt: skip
    assert val["accuracy"] == pytest.approx(best, abs=1e-6)


@pytest.mark.slow
def test_ddp_with_ema_validates_with_rank_0s_statistics(toy_zip, tmp_path):
    """Each rank's BatchNorm statistics drift apart under DDP; an EMA run validates the average
    and the training weights with rank 0's, as plain DDP does: the training weights score what a
    plain DDP run scores, and one process re-scoring the saved average finds the logged val loss."""
    from conftest import rescore_val

    def train(out, *extra):
        cmd = [sys.executable, "-m", "genspot.cli", "train", "spot_resnet", "--model-arg", "widths=[4,8,8,8]",
               "--data", str(toy_zip), "--out", str(out), "--epochs", "4", "--batch-size", "32", "--device", "cpu",
               "--devices", "2", "--strategy", "ddp", *extra]  # fmt: skip
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
        return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]

    plain, ema = train(tmp_path / "plain"), train(tmp_path / "ema", "--ema", "0.9")
    assert [x["train_loss"] for x in ema] == [x["train_loss"] for x in plain]
    assert [x["val_accuracy_raw"] for x in ema] == [x["val_accuracy"] for x in plain]
    _, _, nll, cfg = rescore_val(tmp_path / "ema", toy_zip)
    assert float(nll.mean()) == pytest.approx(cfg["best"]["val_loss"], rel=1e-5)
