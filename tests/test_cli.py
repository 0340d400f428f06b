"""The command line, run as a user runs it: real processes, stdout and exit codes."""

import json
import subprocess
import sys

import pytest

from conftest import write_zip


def run(*args, **kw):
    return subprocess.run([sys.executable, "-m", "genspot.cli", *map(str, args)], capture_output=True, text=True, timeout=600, **kw)


def test_data_info_json_is_pure_json(toy_zip_with_test):
    r = run("data", "info", toy_zip_with_test, "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["splits"]["train"]["REAL"] == 600 and info["splits"]["test"]["FAKE"] == 600
    assert info["skipped"] == 0
    r2 = run("data", "info", toy_zip_with_test, "--json", "--split", "test")
    assert list(json.loads(r2.stdout)["splits"]) == ["test"]


def test_models_json_lists_parameter_counts():
    r = run("models", "--json")
    assert r.returncode == 0, r.stderr
    rows = {m["name"]: m for m in json.loads(r.stdout)}
    assert rows["vgg16"]["parameters"] == 14_715_714 and rows["vgg16"]["kind"] == "architecture"
    assert rows["default"]["kind"] == rows["pristine"]["kind"] == "detector"
    assert {"cifake_cnn", "efficientnet_b0", "efficientnetv2_b0", "vit_p2", "spot_resnet"} <= set(rows)


@pytest.mark.parametrize(
    "args, message",
    [
        (("data", "info", "/nonexistent/x.zip"), "no such file"),
        (("evaluate", "/nonexistent/model", "--data", "/nonexistent/x.zip"), "not a model directory"),
        (("train", "nonet", "--data", "X", "--out", "Y"), None),
        (("train", "cifake_cnn", "--data", "/nonexistent", "--optimizer", "rmsprop"), "unknown optimizer"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(args, message, tmp_path):
    r = run(*args, cwd=tmp_path)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout
    if message:
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        assert len(lines) == 1 and message in lines[0], r.stderr


def test_train_and_evaluate_cli(toy_zip_with_test, tmp_path):
    out = tmp_path / "m"
    r = run("train", "cifake_cnn", "--data", toy_zip_with_test, "--out", out, "--epochs", "2", "--batch-size", "64", "--device", "cpu")
    assert r.returncode == 0, r.stderr[-3000:]
    assert (out / "model.safetensors").exists() and (out / "config.json").exists()
    r = run("evaluate", out, "--data", toy_zip_with_test, "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout)
    for key in ("accuracy", "accuracy_ci95", "precision", "recall", "f1", "roc_auc", "n", "confusion_matrix"):
        assert key in res
    assert res["n"] == 1200


def test_evaluate_on_a_test_only_archive(toy_zip_with_test, tmp_path):
    import zipfile

    out = tmp_path / "m"
    assert run("train", "cifake_cnn", "--data", toy_zip_with_test, "--out", out, "--epochs", "1", "--device", "cpu").returncode == 0
    with zipfile.ZipFile(toy_zip_with_test) as z:
        members = {n: z.read(n) for n in z.namelist() if n.startswith("test/")}
    only_test = write_zip(tmp_path / "test-only.zip", members)
    r = run("evaluate", out, "--data", only_test, "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout)["n"] == 1200


@pytest.mark.slow
def test_quickstart_runs_the_whole_slice(tmp_path):
    """The README's first command, on its generated toy archive."""
    r = run("quickstart", "--out", tmp_path / "qs", "--epochs", "1", "--limit", "1000", "--sample", "500")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "accuracy" in r.stdout and (tmp_path / "qs" / "cifake_cnn" / "model.safetensors").exists()
    for n in range(1, 5):
        assert f"{n}/4 " in r.stdout
    res = json.loads((tmp_path / "qs" / "default-evaluation.json").read_text())
    assert res["n"] == 500 and res["split"].startswith("test; a seeded sample of 500")  # the toy set's test split
    assert "never meant for them" in r.stdout  # and it says the toy set is not what the detector is for
    again = run("quickstart", "--out", tmp_path / "qs", "--epochs", "1", "--limit", "1000", "--sample", "500")
    assert again.returncode == 0 and "replacing the earlier quickstart run" in again.stderr


def test_serve_refuses_a_missing_model(tmp_path):
    r = run("serve", "--model", tmp_path / "nope")
    assert r.returncode == 2 and "not a model directory" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1  # one line, however long the path
