"""`genspot report` from fixture results: self-contained, every section there and rendered."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def _png(path, seed=0):
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(path)


@pytest.fixture
def results(tmp_path):
    from genspot.evaluate import classification_metrics

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    p = np.clip(y * 0.6 + rng.uniform(0, 0.5, 400), 0, 1)
    test = classification_metrics(y, p)
    cmp_dir = tmp_path / "study"
    cmp_dir.mkdir()
    rows = [{"model": m, "row": m, "init": "from scratch", "parameters": 1000 * (i + 1), "epochs_run": 3,
             "median_epoch_seconds": 1.5, "best_val_accuracy": 0.9, "test": test, "reported": {"study": 0.8}}
            for i, m in enumerate(("cifake_cnn", "spot_resnet_s"))]  # fmt: skip
    (cmp_dir / "results.json").write_text(json.dumps({"protocol": "study", "command": "genspot compare ...", "models": rows}))
    _png(cmp_dir / "learning_curves.png")
    _png(cmp_dir / "tradeoff.png", 1)
    ex = tmp_path / "explain" / "cifake_cnn"
    ex.mkdir(parents=True)
    methods = {m: {"road_combined": v, "road_morf": -v, "road_lerf": 0.0, "deletion_auc": 0.5, "insertion_auc": 0.7 + v,
                   "randomization_spearman": 0.1, "seconds": 1.0} for m, v in (("gradcam", 0.1), ("scorecam", 0.2))}  # fmt: skip
    methods["random"] = {"road_combined": 0.0, "road_morf": 0.0, "road_lerf": 0.0, "deletion_auc": 0.5, "insertion_auc": 0.6, "seconds": 1.0}
    (ex / "faithfulness.json").write_text(json.dumps({"model": "cifake_cnn", "n": 16, "split": "test", "methods": methods}))
    _png(ex / "grid.png", 2)
    rob = tmp_path / "robustness"
    rob.mkdir()
    rrows = [{"perturbation": n, "accuracy": a, "drop_pt": 100 * (0.9 - a)} for n, a in (("clean", 0.9), ("jpeg q30", 0.6))]
    (rob / "robustness.json").write_text(json.dumps({"models": [{"name": "default", "split": "val", "n": 100, "rows": rrows}]}))
    _png(rob / "robustness.png", 3)
    return tmp_path


def test_report_is_self_contained_with_every_section(results, tmp_path):
    out = tmp_path / "report.html"
    r = subprocess.run([sys.executable, "-m", "genspot.cli", "report", "--runs", str(results), "--out", str(out)],
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    page = out.read_text()
    for sid in ("comparison", "explanations", "robustness", "curves", "tradeoff", "confusion", "roc"):
        assert f"id='{sid}'" in page, sid
    assert not re.search(r"""(src|href)=["']https?://""", page)  # nothing external
    assert page.count("data:image/png;base64,") == 5  # curves, trade-off, ROC, grid, robustness
    assert "spot_resnet_s" in page and "scorecam" in page and "jpeg q30" in page


def test_report_refuses_a_missing_folder(tmp_path):
    r = subprocess.run([sys.executable, "-m", "genspot.cli", "report", "--runs", str(tmp_path / "nope")],
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 2 and "no such folder" in r.stderr


def test_report_renders_in_a_browser(results, tmp_path):
    from test_serve_browser import CHROMIUM, FLAGS, _need_browser

    _need_browser()
    from playwright.sync_api import sync_playwright

    from genspot.report.html_report import build_report

    out = tmp_path / "report.html"
    out.write_text(build_report([results]))
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(out.as_uri())
        for sid in ("comparison", "explanations", "robustness"):
            box = page.locator(f"#{sid}").bounding_box()
            assert box and box["height"] > 100, sid
        broken = page.evaluate("Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).length")
        assert broken == 0 and page.evaluate("document.images.length") >= 5
        shot = os.environ.get("GENSPOT_REPORT_SCREENSHOT") or str(tmp_path / "report.png")
        page.screenshot(path=shot, full_page=True)
        browser.close()


def test_committed_report_renders_every_section():
    """docs/report.html, made from docs/results: every section there and drawn in a real browser."""
    from test_serve_browser import CHROMIUM, FLAGS, _need_browser

    report = Path(__file__).resolve().parents[1] / "docs" / "report.html"
    page_text = report.read_text()
    assert not re.search(r"""(src|href)=["']https?://""", page_text)
    for needed in ("efficientnetv2_b0", "vit_p2", "scorecam", "jpeg q30", "pristine", "default"):
        assert needed in page_text, needed
    _need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(report.as_uri())
        for sid in ("comparison", "curves", "tradeoff", "confusion", "roc", "explanations", "robustness"):
            box = page.locator(f"#{sid}").bounding_box()
            assert box and box["height"] > 10, sid
        broken = page.evaluate("Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).length")
        assert broken == 0 and page.evaluate("document.images.length") >= 10  # 6 CAM grids, ROC, curves, ...
        browser.close()
