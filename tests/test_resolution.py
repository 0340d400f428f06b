"""Resolution as a property of the model directory: --image-size S and the crop input policy."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import torch
from PIL import Image

from conftest import jpeg_bytes, write_zip


def run(*args, **kw):
    return subprocess.run([sys.executable, "-m", "genspot.cli", *map(str, args)], capture_output=True, text=True, timeout=600, **kw)


def test_crop_is_the_centre_at_native_resolution_and_small_images_are_upscaled():
    from genspot.data.decode import crop_array, input_array

    a = np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    c = crop_array(Image.fromarray(a), 32)
    assert np.array_equal(c.transpose(1, 2, 0), a[14:46, 24:56])  # the exact pixels: nothing resampled
    small = crop_array(Image.fromarray(a[:20, :30]), 32)
    assert small.shape == (3, 32, 32)
    assert input_array(Image.fromarray(a), 32, "resize").shape == (3, 32, 32)


def test_a_model_trained_at_48_px_with_crops_scores_by_its_own_policy(tmp_path):
    from genspot import Detector
    from genspot.data.decode import crop_array

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


def test_a_model_directory_without_the_new_keys_resizes_as_before():
    from genspot import Detector

    det = Detector.load("default")
    assert "input_policy" not in det.config and det.policy == "resize" and det.size == 32
