"""Resolution as a property of the model directory: --image-size S and the crop input policy."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from genspot.data.image import to_array
from genspot.errors import GenspotError

from conftest import jpeg_bytes, write_zip


def run(*args, **kw):
    return subprocess.run([sys.executable, "-m", "genspot.cli", *map(str, args)], capture_output=True, text=True, timeout=600, **kw)


def test_crop_is_the_centre_at_native_resolution_and_small_images_are_upscaled():
    from genspot.data.image import crop_array, input_array

    a = np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    c = crop_array(Image.fromarray(a), 32)
    assert np.array_equal(c.transpose(1, 2, 0), a[14:46, 24:56])  # the exact pixels: nothing resampled
    small = crop_array(Image.fromarray(a[:20, :30]), 32)
    assert small.shape == (3, 32, 32)
    assert input_array(Image.fromarray(a), 32, "resize").shape == (3, 32, 32)


def test_a_model_trained_at_48_px_with_crops_scores_by_its_own_policy(tmp_path):
    from genspot import Detector
    from genspot.data.image import crop_array

    rng = np.random.default_rng(0)
    members = {}
    for c in ("REAL", "FAKE"):
        for i in range(120):
            a = rng.integers(0, 200, (64, 64, 3), dtype=np.uint8)
            if c == "FAKE":
                a[::2, ::2] = 255  # a pixel-scale trace that resizing would blur away
            members[f"train/{c}/{i}.jpg"] = jpeg_bytes(a, quality=95)
    z = write_zip(tmp_path / "d.zip", members)
    out = tmp_path / "m"
    r = run("train", "spot_resnet_s", "--data", z, "--image-size", "48", "--epochs", "4", "--batch-size", "32", "--device", "cpu", "--out", out)
    assert r.returncode == 0, r.stderr[-2000:]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["input_size"] == 48 and cfg["input_policy"] == "crop"
    ev = json.loads(run("evaluate", out, "--data", z, "--json").stdout)
    assert ev["accuracy"] > 0.9  # the trace survives the crop
    big = rng.integers(0, 200, (480, 640, 3), dtype=np.uint8)
    big[::2, ::2] = 255
    det = Detector.load(out)
    p = det.predict(big)
    manual = float(det.p_fake(torch.from_numpy(crop_array(Image.fromarray(big), 48))[None])[0])
    assert abs(p.p_fake - manual) < 1e-6 and p.label == "FAKE"
    assert p.domain == "in" or "resized" not in (p.domain_reason or "")  # a large image is cropped, not squeezed
    assert p.mode == "crop" and det.predict(big, mode="crop").p_fake == p.p_fake  # auto is the model's policy, named
    # resize stays available on a crop model, for experiments: the row says so and the domain check flags it
    r = det.predict(big, mode="resize")
    squeezed = float(det.p_fake(torch.from_numpy(to_array(Image.fromarray(big), 48))[None])[0])
    assert r.mode == "resize" and abs(r.p_fake - squeezed) < 1e-6
    assert r.domain == "out" and "native-resolution crops" in r.domain_reason
    t = det.predict(big, mode="tiles")
    assert t.mode == "tiles" and t.tiles > 1 and t.tile_grid.shape[0] > 1
    e = det.explain(big, method="gradcam")
    assert e["map"].shape == (48, 48) and e["image"].shape == (48, 48, 3) and abs(e["p_fake"] - p.p_fake) < 1e-5
    assert det.explain(big, method="gradcam", mode="resize")["domain"] == "out"
    with pytest.raises(GenspotError, match="auto, resize, crop or tiles"):
        det.predict(big, mode="zoom")
    with pytest.raises(GenspotError, match="tile map"):
        det.explain(big, mode="tiles")
    rows = list(det.predict_paths([str(z)], workers=1, batch_size=64))  # the decode pool crops as well
    assert {row.mode for row in rows} == {"crop"} and len(rows) == 240 and all(row.error is None for row in rows)


def test_a_model_directory_without_the_new_keys_resizes_as_before():
    from genspot import Detector

    det = Detector.load("default")
    assert "input_policy" not in det.config and det.policy == "resize" and det.size == 32
    assert det.resolve_mode("auto") == "resize"  # rows of the shipped detectors keep saying "resize"


def test_the_stored_square_has_room_for_random_crops_and_its_centre_is_the_evaluated_crop():
    from genspot.data.image import crop_array, stored_crop

    rng = np.random.default_rng(1)
    for h, w in [(80, 90), (81, 96), (70, 70), (52, 61), (48, 50), (30, 40)]:  # big, odd, between S and 1.25 S, under S
        img = Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
        s = stored_crop(img, 48, 6)
        assert s.shape == (3, 60, 60)
        assert np.array_equal(s[:, 6:54, 6:54], crop_array(img, 48)), (h, w)  # validation sees what predict sees
        if min(h, w) >= 60:  # room for the margin: every stored pixel is the image's own, none mirrored
            top, left = (h - 60) // 2, (w - 60) // 2
            assert np.array_equal(s.transpose(1, 2, 0), np.asarray(img)[top : top + 60, left : left + 60])


def test_training_crops_are_random_and_inside_the_stored_square_validation_is_the_centre():
    from genspot.data.batches import Batches

    grid = torch.arange(100).view(1, 10, 10).expand(3, 10, 10)  # 100 distinct values: every 6x6 window is unique
    x = torch.stack([grid, grid + 100]).to(torch.uint8)
    kw = dict(batch_size=2, mean=(0.0, 0.0, 0.0), std=(1 / 255, 1 / 255, 1 / 255), crop=6)
    val = next(iter(Batches(x, torch.zeros(2, dtype=torch.int64), [0, 1], **kw)))[0]
    assert torch.equal(val, x[:, :, 2:8, 2:8].float())
    seen = set()
    for epoch in range(20):
        b = Batches(x, torch.zeros(2, dtype=torch.int64), [0, 1], shuffle=True, seed=0, **kw)
        b.set_epoch(epoch)
        out = next(iter(b))[0]
        assert out.shape == (2, 3, 6, 6)
        for img in out:
            k = int(img.max() >= 100)  # which image this crop came from
            src = x[k].float()
            hits = [(dy, dx) for dy in range(5) for dx in range(5) if torch.equal(src[:, dy : dy + 6, dx : dx + 6], img)]
            assert len(hits) == 1  # a true 6x6 window of its image: cropped, never resampled
            seen.add(hits[0])
    assert len(seen) > 5  # many positions, not one


def test_training_at_48_px_decodes_a_margin_once_into_a_memory_mapped_cache(tmp_path, monkeypatch):
    from genspot.data import load_dataset
    from genspot.data.decode import _cache_dir
    from genspot.train import TrainConfig, fit

    rng = np.random.default_rng(2)
    members = {f"train/{c}/{i}.jpg": jpeg_bytes(rng.integers(0, 255, (72, 72, 3), dtype=np.uint8)) for c in ("REAL", "FAKE") for i in range(40)}
    members["train/REAL/broken.jpg"] = b"\xff\xd8 broken"
    data = write_zip(tmp_path / "d.zip", members)
    s = fit(TrainConfig(model="spot_resnet_s", data=str(data), out=str(tmp_path / "r"), epochs=1, batch_size=16,
                        image_size=48, device="cpu", progress=False))  # fmt: skip
    assert s["epochs_run"] == 1
    ds = load_dataset(data, size=48, policy="crop", margin=6, progress=False)
    assert ds.from_cache and ds.margin == 6 and tuple(ds.images.shape[1:]) == (3, 60, 60) and len(ds) == 80
    fp = ds.fingerprint
    assert (_cache_dir(fp, 48, "crop", 6) / "images.npy").stat().st_size >= 80 * 3 * 60 * 60
    assert not list((_cache_dir(fp, 48, "crop", 6).parent).glob("*.tmp*"))  # nothing half-written left behind
    # evaluation reads its own centre-crop cache, and agrees with the training run's last validation
    r = run("evaluate", tmp_path / "r", "--data", data, "--split", "val", "--json")
    assert r.returncode == 0, r.stderr
    logged = json.loads((tmp_path / "r" / "metrics.jsonl").read_text().splitlines()[-1])["val_accuracy"]
    assert abs(json.loads(r.stdout)["accuracy"] - logged) < 1e-6


def test_compacting_drops_failed_rows_on_disk_and_returns_a_memory_map(tmp_path):
    from genspot.data.decode import _compact

    a = np.lib.format.open_memmap(tmp_path / "a.npy", mode="w+", dtype=np.uint8, shape=(2500, 3, 4, 4))
    a[:] = (np.arange(2500) % 251).astype(np.uint8).reshape(-1, 1, 1, 1)
    a.flush()
    del a
    ok = np.ones(2500, dtype=bool)
    ok[[0, 7, 1500, 2499]] = False
    out = _compact(tmp_path / "a.npy", tmp_path / "b.npy", ok, rows=1000)  # in slices smaller than the array
    assert isinstance(out, np.memmap) and out.shape == (2496, 3, 4, 4) and not (tmp_path / "a.npy").exists()
    assert np.array_equal(out[:, 0, 0, 0], (np.flatnonzero(ok) % 251).astype(np.uint8))
    none = np.lib.format.open_memmap(tmp_path / "c.npy", mode="w+", dtype=np.uint8, shape=(3, 3, 4, 4))
    del none
    assert _compact(tmp_path / "c.npy", tmp_path / "d.npy", np.zeros(3, dtype=bool)).shape == (0, 3, 4, 4)
