"""Dataset layouts as people download them (GenImage, CNNDetection, REAL/FAKE), each record's source,
and evaluation per source. The tests build small archives in each layout themselves."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import jpeg_bytes, write_zip


def run(*args, **kw):
    return subprocess.run([sys.executable, "-m", "genspot.cli", *map(str, args)], capture_output=True, text=True, timeout=600, **kw)


def _img(seed: int) -> bytes:
    return jpeg_bytes(np.random.default_rng(seed).integers(0, 255, (32, 32, 3), dtype=np.uint8))


def _archive(path, names):
    return write_zip(path, {n: _img(i) for i, n in enumerate(names)})


GENIMAGE = [f"{g}/{s}/{c}/{i}.jpg" for g in ("sdv4", "midjourney") for s in ("train", "val") for c in ("ai", "nature") for i in range(6)]
CNNDET = ([f"progan/{k}/{c}/{i}.jpg" for k in ("airplane", "cat") for c in ("0_real", "1_fake") for i in range(5)]
          + [f"stylegan/{c}/{i}.jpg" for c in ("0_real", "1_fake") for i in range(5)])  # fmt: skip


@pytest.mark.parametrize("wrapper", ["", "GenImage/"])
def test_genimage_layout(tmp_path, wrapper):
    from genspot.data.sources import open_source

    z = _archive(tmp_path / "g.zip", [wrapper + n for n in GENIMAGE])
    recs = {r.path: r for r in open_source(z).records()}
    assert len(recs) == len(GENIMAGE)
    r = recs[wrapper + "sdv4/train/ai/0.jpg"]
    assert (r.label, r.split, r.source) == (1, "train", "sdv4")
    r = recs[wrapper + "midjourney/val/nature/3.jpg"]
    assert (r.label, r.split, r.source) == (0, "val", "midjourney")  # a generator's photos belong to its source


def test_cnndetection_layout_with_and_without_class_folders(tmp_path):
    from genspot.data.sources import open_source

    z = _archive(tmp_path / "c.zip", ["train/" + n for n in CNNDET])
    recs = {r.path: r for r in open_source(z).records()}
    assert recs["train/progan/cat/1_fake/2.jpg"].label == 1 and recs["train/progan/cat/1_fake/2.jpg"].source == "progan"
    assert recs["train/stylegan/0_real/0.jpg"].label == 0 and recs["train/stylegan/0_real/0.jpg"].source == "stylegan"
    assert {r.split for r in recs.values()} == {"train"}


def test_cifake_layout_sources_are_real_and_fake(toy_zip):
    from genspot.data import load_dataset

    ds = load_dataset(toy_zip, progress=False)
    assert set(ds.sources.tolist()) == {"real", "fake"}
    assert all(s == ("real" if y == 0 else "fake") for s, y in zip(ds.sources, ds.labels.tolist()))


def test_data_info_counts_per_source(tmp_path):
    z = _archive(tmp_path / "g.zip", GENIMAGE)
    r = run("data", "info", z, "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["sources"]["sdv4"]["splits"]["train"] == {"REAL": 6, "FAKE": 6, "total": 12}
    assert info["sources"]["midjourney"]["image_sizes"] == {"32x32": 24}
    table = run("data", "info", z)
    assert "per source" in table.stdout and "midjourney" in table.stdout


def test_an_unknown_layout_is_one_line_naming_the_layouts_genspot_reads(tmp_path):
    z = _archive(tmp_path / "u.zip", ["photos/a.jpg", "renders/b.jpg"])
    r = run("data", "info", z)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    line = r.stderr.strip()
    assert "GenImage" in line and "CNNDetection" in line and "REAL/FAKE" in line and len(line.splitlines()) == 1


def test_evaluate_reports_every_source_and_says_when_one_has_a_single_class(tmp_path, make_model_dir):
    names = GENIMAGE + [f"dalle/val/ai/{i}.jpg" for i in range(4)]  # a fake-only source
    z = _archive(tmp_path / "g.zip", names)
    m = make_model_dir(tmp_path / "m", "cifake_cnn")
    r = run("evaluate", m, "--data", z, "--split", "all", "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    rows = {x["source"]: x for x in json.loads(r.stdout)["per_source"]}
    assert set(rows) == {"sdv4", "midjourney", "dalle"}
    assert rows["sdv4"]["n"] == 24 and rows["sdv4"]["roc_auc"] is not None and rows["sdv4"]["ap"] is not None
    d = rows["dalle"]
    assert d["n_fake"] == 4 and d["roc_auc"] is None and d["real_correct"] is None and "only FAKE" in d["note"]
    assert 0 <= d["fake_detected"] <= 1 and d["accuracy"] == d["fake_detected"]
    table = run("evaluate", m, "--data", z, "--split", "all")
    assert "per source" in table.stdout and "dalle" in table.stdout


def test_the_cross_generator_table_trains_on_one_source_and_tests_on_each(tmp_path):
    """NPR's and GenImage's protocol on a generated three-generator archive in the GenImage layout."""
    rng = np.random.default_rng(0)
    members = {}
    for g, shift in (("sdv4", 0), ("midj", 60), ("wukong", 120)):
        for split, n in (("train", 60), ("val", 20)):
            for c in ("ai", "nature"):
                for i in range(n):
                    a = rng.integers(0, 120, (32, 32, 3), dtype=np.uint8)
                    if c == "ai":
                        a = (a + shift + 40).astype(np.uint8)  # each generator's fakes are bright in their own way
                    members[f"{g}/{split}/{c}/{i}.jpg"] = jpeg_bytes(a)
    z = write_zip(tmp_path / "gen.zip", members)
    out = tmp_path / "bench"
    r = run("benchmark", "--data", z, "--train-sources", "sdv4", "--models", "cifake_cnn", "--epochs", "2", "--device", "cpu",
            "--out", out)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads((out / "benchmark.json").read_text())
    m = s["models"][0]
    by = {x["source"]: x for x in m["sources"]}
    assert set(by) == {"sdv4", "midj", "wukong"} and by["sdv4"]["trained_on"] and not by["midj"]["trained_on"]
    assert all(x["n"] == 40 and x["chosen"] == "val split" for x in by.values())  # each generator's own val folder
    assert m["mean_accuracy"] == pytest.approx(np.mean([x["accuracy"] for x in by.values()]))
    assert m["mean_unseen_accuracy"] == pytest.approx(np.mean([by["midj"]["accuracy"], by["wukong"]["accuracy"]]))
    cfg = json.loads((out / "models" / "cifake_cnn" / "config.json").read_text())
    assert cfg["data"]["sources"] == ["sdv4"] and cfg["data"]["n_train"] + cfg["data"]["n_val"] == 120  # sdv4's train folder only
    table = (out / "benchmark.md").read_text()
    assert "| model | midj | sdv4* | wukong | mean | mean unseen |" in table  # a column per generator, the trained one starred
