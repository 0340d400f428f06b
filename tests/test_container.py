"""The classes' file containers compared: the shortcut a detector learns when photos and fakes came by different roads."""

import io
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from genspot.data import load_dataset
from genspot.data.container import container_audit, header_facts, jpeg_quality

from conftest import jpeg_bytes, toy_image, write_zip


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize("q", [30, 50, 75, 90, 95])
def test_jpeg_quality_is_read_back_from_the_quantisation_tables(q, rng):
    data = jpeg_bytes(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8), quality=q)
    with Image.open(io.BytesIO(data)) as img:
        assert abs(jpeg_quality(img) - q) <= 1
    f = header_facts(data)
    assert f["format"] == "JPEG" and f["size"] == "32x32" and f["subsampling"] == "4:2:0"
    assert header_facts(_png(np.zeros((8, 8, 3), np.uint8)))["jpeg_quality"] is None


def test_matched_classes_show_no_difference(tmp_path, rng):
    members = {f"train/{c}/{i}.jpg": jpeg_bytes(toy_image(rng, c == "FAKE"), quality=75) for c in ("REAL", "FAKE") for i in range(40)}
    r = container_audit(load_dataset(write_zip(tmp_path / "m.zip", members), progress=False))
    assert r["differences"] == [] and r["groups"]["REAL"]["jpeg_quality"] == {"75": 40}


def test_fakes_that_came_another_road_are_flagged_per_generator(tmp_path, rng):
    # GenImage's layout: photos as JPEG q75; one generator's fakes as PNG at 64 px, the other's like the photos
    members = {}
    for gen in ("sdv4", "midj"):
        for i in range(30):
            members[f"{gen}/train/nature/{i}.jpg"] = jpeg_bytes(toy_image(rng, False), quality=75)
            fake = toy_image(rng, True)
            members[f"{gen}/train/ai/{i}." + ("png" if gen == "midj" else "jpg")] = (
                _png(np.kron(fake, np.ones((2, 2, 1), np.uint8))) if gen == "midj" else jpeg_bytes(fake, quality=75))
    z = write_zip(tmp_path / "g.zip", members)
    r = container_audit(load_dataset(z, progress=False))
    flagged = {(d["group"], d["property"]) for d in r["differences"]}
    assert {("FAKE:midj", "format"), ("FAKE:midj", "size"), ("FAKE:midj", "jpeg_quality")} <= flagged
    assert not any(g == "FAKE:sdv4" for g, _ in flagged)
    assert r["groups"]["FAKE:midj"]["format"] == {"PNG": 30}
    # the command prints the warning and puts the audit in its JSON
    cmd = [sys.executable, "-m", "genspot.cli", "data", "info", str(z)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "warning" in out.stdout and "PNG 100%" in out.stdout
    j = json.loads(subprocess.run(cmd + ["--json"], capture_output=True, text=True, timeout=300).stdout)
    assert {d["group"] for d in j["container"]["differences"]} == {"FAKE:midj", "FAKE"}
