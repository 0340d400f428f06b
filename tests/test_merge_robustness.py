"""scripts/merge_robustness.py: one table from several robustness runs, refusing runs that are not comparable."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from merge_robustness import main, merge  # noqa: E402

from genspot.errors import GenspotError  # noqa: E402


def _model(name, accs, n=100):
    rows = [{"perturbation": p, "family": p.split()[0], "strength": "", "level": i, "accuracy": a,
             "accuracy_ci95": [a - 0.01, a + 0.01], "roc_auc": 0.99, "f1": a, "drop_pt": round(100 * (accs[0] - a), 2)}
            for i, (p, a) in enumerate(zip(["clean", "jpeg q30", "blur sigma 1"], accs))]
    return {"model": "spot_resnet", "name": name, "model_dir": name, "split": "validation", "n": n, "rows": rows}


def _run(*models):
    return {"data": "cifake-train.zip", "seed": 0, "models": list(models)}


def test_merge_renames_per_file_and_keeps_shared_model_once():
    a = _run(_model("default", [0.98, 0.96, 0.95]), _model("pristine", [0.98, 0.90, 0.59]))
    a["models"][0]["rows"][0]["seconds"] = 57.5  # timings may differ, results may not
    b = _run(_model("runs/ens", [0.985, 0.95, 0.88]), _model("default", [0.98, 0.96, 0.95]))
    r = merge([("a.json", a), ("b.json", b)], [("a.json", "pristine", "flips-only"), (None, "runs/ens", "pristine")],
              order=["default", "pristine", "flips-only"])
    assert [m["name"] for m in r["models"]] == ["default", "pristine", "flips-only"]
    assert r["models"][1]["rows"][0]["accuracy"] == 0.985 and r["models"][2]["rows"][2]["accuracy"] == 0.59


def test_merge_refuses_incomparable_runs():
    a = _run(_model("default", [0.98, 0.96, 0.95]))
    with pytest.raises(GenspotError, match="different results"):  # same name, other numbers
        merge([("a", a), ("b", _run(_model("default", [0.97, 0.96, 0.95])))], [])
    with pytest.raises(GenspotError, match="other images"):
        merge([("a", a), ("b", _run(_model("x", [0.97, 0.96, 0.95], n=50)))], [])
    with pytest.raises(GenspotError, match="other data"):
        merge([("a", a), ("b", {**_run(_model("x", [0.9, 0.9, 0.9])), "seed": 1})], [])
    with pytest.raises(GenspotError, match="no run has"):
        merge([("a", a)], [], order=["default", "nope"])


def test_cli_writes_json_md_png_and_fails_in_one_line(tmp_path, capsys):
    (tmp_path / "a.json").write_text(json.dumps(_run(_model("default", [0.98, 0.96, 0.95]))))
    (tmp_path / "b.json").write_text(json.dumps(_run(_model("runs/ens", [0.985, 0.95, 0.88]))))
    out = tmp_path / "out"
    assert main([str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--name", "runs/ens=pristine", "--out", str(out)]) == 0
    assert [m["name"] for m in json.loads((out / "robustness.json").read_text())["models"]] == ["default", "pristine"]
    assert "| pristine acc [95% CI] |" in (out / "robustness.md").read_text() and (out / "robustness.png").stat().st_size > 0
    assert main([str(tmp_path / "missing.json"), "--out", str(out)]) == 1
    assert main([str(tmp_path / "a.json"), "--name", "nonsense", "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(e.startswith("error: ") for e in err)
