"""genspot explain-eval --localise: heat maps scored against splice masks, with baselines, bad masks
skipped and counted, not-applicable rows, and the measured best stored as the model's default."""

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchmetrics.functional.classification import binary_auroc

from genspot.explain.localise import LocaliseConfig, evaluate_localisation, localisation_scores, pixel_auc, store_default


def _png(mask: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8), "L").save(buf, "PNG")
    return buf.getvalue()


def _splice_zip(tmp_path: Path, n: int = 12, masks_inside: bool = True) -> tuple[Path, dict[str, bytes]]:
    """Photos with a bright square spliced in, their masks, and a few bad masks."""
    from conftest import jpeg_bytes, write_zip

    rng = np.random.default_rng(0)
    members, masks = {}, {}
    for k in range(n):
        photo = rng.integers(60, 120, (32, 32, 3), dtype=np.uint8)
        mask = np.zeros((32, 32), np.uint8)
        y, x = rng.integers(0, 20, 2)
        mask[y : y + 12, x : x + 12] = 255
        fake = photo.copy()
        fake[mask > 0] = 250
        members[f"splice:ae:x/0_real/p{k:02d}.jpg"] = jpeg_bytes(photo)
        members[f"splice:ae:x/1_fake/p{k:02d}.jpg"] = jpeg_bytes(fake)
        members[f"ae:x/1_fake/p{k:02d}.jpg"] = jpeg_bytes(fake)  # no masks: not splices
        masks[f"p{k:02d}"] = _png(mask)
    masks["p00"] = _png(np.zeros((16, 16)))  # wrongly sized
    masks["p01"] = _png(np.zeros((32, 32)))  # all zero
    masks["p02"] = _png(np.full((32, 32), 255))  # all one
    del masks["p03"]  # missing
    if masks_inside:
        members |= {f"splice:ae:x/masks/{s}.png": b for s, b in masks.items()}
    return write_zip(tmp_path / "splices.zip", members), masks


def _model_dir(tmp_path: Path, **extra) -> Path:
    """An untrained spot_resnet_s that calls everything FAKE (threshold margin far below any logit gap)."""
    from genspot.models import create_model
    from genspot.models.io import save_model_dir

    torch.manual_seed(0)
    cfg = {"model": "spot_resnet_s", "input_size": 32, "input_policy": "resize", "threshold": {"margin": -1e6}} | extra
    return save_model_dir(create_model("spot_resnet_s", num_classes=2), cfg, tmp_path / "model")


def test_scores_of_perfect_inverted_and_flat_maps():
    rng = np.random.default_rng(0)
    mask = np.zeros((1, 20, 20), bool)
    mask[0, 5:10, 2:12] = True  # area 50 / 400
    perfect = localisation_scores(mask.astype(np.float32), mask)
    assert all(perfect[k][0] == pytest.approx(1.0) for k in perfect)
    inverted = localisation_scores((~mask).astype(np.float32), mask)
    assert all(inverted[k][0] == pytest.approx(0.0) for k in inverted)
    flat = localisation_scores(np.ones((1, 20, 20), np.float32), mask)
    assert flat["pointing_game"][0] == pytest.approx(0.125) and flat["mass_inside"][0] == pytest.approx(0.125)
    assert flat["pixel_auc"][0] == pytest.approx(0.5)
    # the pixel AUC counts ties one half, as torchmetrics does
    v = np.round(rng.random((20, 20)) + 0.5 * mask[0], 1)
    assert pixel_auc(v, mask[0]) == pytest.approx(float(binary_auroc(torch.from_numpy(v).flatten(), torch.from_numpy(mask[0]).flatten().long())), abs=1e-6)
    # mass is measured before any rescaling: adding a constant moves mass out of the mask, a min-max would not show it
    peaked = mask.astype(np.float32) * 10
    assert localisation_scores(peaked + 1, mask)["mass_inside"][0] < localisation_scores(peaked, mask)["mass_inside"][0]


def test_localise_table_with_baselines_bad_masks_and_not_applicable_rows(tmp_path):
    data, _ = _splice_zip(tmp_path)
    model = _model_dir(tmp_path)
    cfg = LocaliseConfig(model_dir=str(model), data=str(data), out=str(tmp_path / "loc"), methods=["cam", "gradcam", "eigencam", "scorecam", "rollout", "patch"],
                         scorecam_n=3, faithfulness_n=2, progress=False)  # fmt: skip
    r = evaluate_localisation(cfg)
    c = r["counts"]
    # 12 splices (the ae:x fakes have no masks: not splices); one mask missing, one wrongly sized, one all-zero, one all-one
    assert (c["splices"], c["missing_mask"], c["bad_mask"], c["empty_mask"], c["full_mask"]) == (12, 1, 1, 1, 1)
    assert c["usable"] == 8 and c["called_fake"] == 8 and c["sample"] == 8
    rows = r["methods"]
    assert set(rows) == {"cam", "gradcam", "eigencam", "scorecam", "random", "centre"}
    assert rows["scorecam"]["n"] == 3 and rows["gradcam"]["n"] == 8
    assert set(r["not_applicable"]) == {"rollout", "patch"}
    for m, row in rows.items():
        for k in ("pointing_game", "mass_inside", "pixel_auc", "topk_iou"):
            lo, hi = row[k]["ci"]
            assert 0 <= lo <= row[k]["mean"] <= hi <= 1, (m, k)
        assert row["old"]["deletion_auc"] is not None and row["old"]["road_combined"] is not None
    assert rows["centre"]["pixel_auc"]["mean"] != pytest.approx(0.5)  # the Gaussian knows where the centre is
    assert r["best"]["method"] in ("cam", "gradcam", "eigencam")
    md = (tmp_path / "loc" / "localise.md").read_text()
    assert "| random |" in md and "| centre |" in md and "not applicable" in md and "Spearman" in md
    assert json.loads((tmp_path / "loc" / "localise.json").read_text())["counts"]["usable"] == 8
    assert Image.open(tmp_path / "loc" / "grid.png").size[0] == 128 * (2 + 4)


def test_masks_from_their_own_folder_and_a_fake_only_archive(tmp_path):
    from conftest import write_zip

    data, masks = _splice_zip(tmp_path, masks_inside=False)
    fake_only = write_zip(tmp_path / "fakes.zip", {n: b for n, b in _members(data).items() if n.startswith("splice:ae:x/1_fake/")})
    mdir = tmp_path / "masks" / "masks"
    mdir.mkdir(parents=True)
    for stem, b in masks.items():
        (mdir / f"{stem}.png").write_bytes(b)
    model = _model_dir(tmp_path)
    r = evaluate_localisation(LocaliseConfig(model_dir=str(model), data=str(fake_only), out=str(tmp_path / "loc"), masks=str(tmp_path / "masks"),
                                             methods=["gradcam", "scorecam"], scorecam_n=0, faithfulness_n=0, progress=False))  # fmt: skip
    assert r["counts"]["usable"] == 8 and r["counts"]["missing_mask"] == 1 and not r["rank_agreement"]
    assert "scorecam" not in r["methods"] and "not run" in (tmp_path / "loc" / "localise.md").read_text()


def _members(path: Path) -> dict[str, bytes]:
    import zipfile

    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist()}


def test_the_measured_best_becomes_the_default_of_explain_serve_and_the_page(tmp_path):
    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from genspot.cli import app
    from genspot.predict import Detector
    from genspot.serve.app import create_app

    data, _ = _splice_zip(tmp_path)
    model = _model_dir(tmp_path)
    res = CliRunner().invoke(app, ["explain-eval", "--localise", "--model", str(model), "--data", str(data), "--out", str(tmp_path / "loc"),
                                   "--methods", "cam,gradcam,gradcam++,eigencam", "--faithfulness-n", "0", "--set-default"])  # fmt: skip
    assert res.exit_code == 0, res.output
    best = json.loads((model / "config.json").read_text())["explain"]
    assert best["method"] in ("cam", "gradcam", "gradcam++", "eigencam") and 0 <= best["pointing_game"] <= 1 and best["n"] == 8
    det = Detector.load(model)
    assert det.spec.default_method == best["method"]
    img = Image.fromarray(np.full((32, 32, 3), 90, np.uint8))
    assert det.explain(img)["method"] == best["method"] and det.explain(img, method="gradcam")["method"] == "gradcam"
    client = TestClient(create_app(str(model)))
    info = client.get("/v1/models").json()[0]["explain"]
    assert info["method"] == best["method"] and info["localisation"]["pointing_game"] == best["pointing_game"]
    buf = io.BytesIO()
    img.save(buf, "PNG")
    j = client.post("/v1/explain", files={"file": ("a.png", buf.getvalue(), "image/png")}, data={"format": "json"}).json()
    assert j["method"] == best["method"]
    # a CLI explain without --method writes the default method's maps
    res = CliRunner().invoke(app, ["explain", str(data), "--model", str(model), "--out", str(tmp_path / "maps")])
    assert res.exit_code == 0, res.output
    assert list((tmp_path / "maps").glob(f"*_{best['method']}.npy"))


def test_a_patch_trained_model_has_a_patch_map_and_nothing_to_store_is_an_error(tmp_path):
    from genspot.errors import GenspotError

    data, _ = _splice_zip(tmp_path)
    model = _model_dir(tmp_path, training={"patch": 16})
    r = evaluate_localisation(LocaliseConfig(model_dir=str(model), data=str(data), out=str(tmp_path / "loc"), methods=["patch", "scorecam"],
                                             scorecam_n=2, faithfulness_n=0, progress=False))  # fmt: skip
    assert r["methods"]["patch"]["n"] == 8 and r["best"] is None  # neither is a single-pass method
    with pytest.raises(GenspotError, match="nothing to store"):
        store_default(str(model), r)
    # no splice the model calls FAKE: a clear error
    never = _model_dir(tmp_path / "never", threshold={"margin": 1e6})
    with pytest.raises(GenspotError, match="calls none"):
        evaluate_localisation(LocaliseConfig(model_dir=str(never), data=str(data), out=str(tmp_path / "x"), progress=False))


def test_rank_agreement_averages_ties():
    from genspot.explain.localise import spearman

    # scipy.stats.spearmanr gives 0.5441176...: CAM and Grad-CAM often tie exactly
    assert spearman([1, 1, 2, 3, 5, 4], [2, 3, 3, 1, 5, 6]) == pytest.approx(0.5441176, abs=1e-6)
    assert spearman([1, 2], [2, 1]) is None
