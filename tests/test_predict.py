"""Detector and `genspot predict` on images the tests make themselves, in every mode and format."""

import csv
import io
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from genspot.errors import GenspotError
from genspot.predict import Detector, tile_image


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, toy_zip_with_test):
    from genspot.train import TrainConfig, fit

    out = tmp_path_factory.mktemp("pmodel")
    fit(TrainConfig(model="cifake_cnn", data=str(toy_zip_with_test), out=str(out), epochs=2, batch_size=64,
                    progress=False, device="cpu"))  # fmt: skip
    return out


def _save(img: Image.Image, path, **kw):
    img.save(path, **kw)
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    files = {
        "rgb.jpg": _save(rgb, d / "rgb.jpg"),
        "gray.png": _save(rgb.convert("L"), d / "gray.png"),
        "la.png": _save(rgb.convert("LA"), d / "la.png"),
        "palette.gif": _save(rgb.convert("P"), d / "palette.gif"),
        "rgba.webp": _save(rgb.convert("RGBA"), d / "rgba.webp"),
        "bmp.bmp": _save(rgb, d / "bmp.bmp"),
        "cmyk.tiff": _save(rgb.convert("CMYK"), d / "cmyk.tiff"),
        "i16.png": _save(Image.fromarray((rng.integers(0, 65535, (40, 40))).astype(np.uint16)), d / "i16.png"),
    }
    frames = [Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)) for _ in range(3)]
    frames[0].save(d / "anim.gif", save_all=True, append_images=frames[1:])
    files["anim.gif"] = d / "anim.gif"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees
    rgb.save(d / "exif.jpg", exif=exif)
    files["exif.jpg"] = d / "exif.jpg"
    return files


def test_every_mode_and_format_is_scored(model_dir, images):
    det = Detector.load(model_dir)
    for name, path in images.items():
        p = det.predict(path)
        assert p.error is None and p.label in ("REAL", "FAKE") and 0.0 <= p.p_fake <= 1.0, name
    assert Image.open(images["i16.png"]).mode.startswith("I")
    exif = det.predict(images["exif.jpg"])
    assert (exif.width, exif.height) == (48, 64)  # EXIF orientation applied: 64x48 turned upright


def test_api_accepts_arrays_bytes_and_pil(model_dir, images):
    det = Detector.load(model_dir)
    a = det.predict(images["rgb.jpg"]).p_fake
    b = det.predict(images["rgb.jpg"].read_bytes()).p_fake
    c = det.predict(Image.open(images["rgb.jpg"])).p_fake
    d = det.predict(np.asarray(Image.open(images["rgb.jpg"]).convert("RGB"))).p_fake
    assert a == pytest.approx(b) == pytest.approx(c) == pytest.approx(d)
    batch = det.predict_batch([images["rgb.jpg"], b"junk", images["gray.png"]])
    assert [r.error is None for r in batch] == [True, False, True]
    e = det.explain(images["rgb.jpg"], method="gradcam++")
    assert e["map"].shape == (32, 32) and e["label"] in ("REAL", "FAKE")
    with pytest.raises(GenspotError):
        det.predict(images["rgb.jpg"], mode="zoom")


def test_tiles_on_a_1024_image(model_dir, tmp_path):
    big = Image.fromarray(np.random.default_rng(1).integers(0, 255, (1024, 1024, 3), dtype=np.uint8))
    tiles, grid = tile_image(big)
    assert grid == (32, 32) and tiles.shape == (1024, 3, 32, 32)
    assert np.array_equal(tiles[33].transpose(1, 2, 0), np.asarray(big)[32:64, 32:64])  # row 1, column 1
    det = Detector.load(model_dir)
    p = det.predict(big, mode="tiles")
    assert p.tiles == 1024 and p.tile_grid.shape == (32, 32) and 0 <= p.p_fake <= 1
    huge = Image.new("RGB", (4000, 3000))
    t, g = tile_image(huge)
    assert len(t) <= 1024 and g[0] * g[1] == len(t)


def _run(*args):
    return subprocess.run([sys.executable, "-m", "genspot.cli", *map(str, args)], capture_output=True, text=True, timeout=300)


def test_cli_formats_corrupt_file_and_exit_code(model_dir, images, tmp_path, toy_zip_with_test):
    folder = images["rgb.jpg"].parent
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff not really")
    r = _run("predict", folder, tmp_path / "bad.jpg", "--model", model_dir, "--format", "json")
    assert r.returncode == 1  # one input failed
    rows = json.loads(r.stdout)
    assert len(rows) == len(images) + 1
    bad = [x for x in rows if x["error"]]
    assert len(bad) == 1 and bad[0]["path"].endswith("bad.jpg") and bad[0]["label"] is None
    assert all({"path", "label", "p_fake", "model", "error"} <= set(x) for x in rows)
    r = _run("predict", images["rgb.jpg"], "--model", model_dir, "--format", "jsonl")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 1
    r = _run("predict", images["rgb.jpg"], images["gray.png"], "--model", model_dir, "--format", "csv", "--out", tmp_path / "o.csv")
    assert r.returncode == 0
    assert len(list(csv.DictReader(io.StringIO((tmp_path / "o.csv").read_text())))) == 2
    r = _run("predict", toy_zip_with_test, "--model", model_dir)
    assert r.returncode == 0 and "2,400 images" in r.stdout and "0 errors" in r.stdout
    r = _run("predict", str(folder / "*.png"), "--model", model_dir, "--format", "jsonl")
    assert len(r.stdout.splitlines()) == 3  # glob: gray, la, i16


def test_cli_heatmaps(model_dir, images, tmp_path):
    r = _run("predict", images["rgb.jpg"], "--model", model_dir, "--explain", "gradcam", "--heatmaps", tmp_path / "h")
    assert r.returncode == 0, r.stderr
    assert len(list((tmp_path / "h").glob("*_gradcam.png"))) == 1
    r = _run("predict", images["rgb.jpg"], "--model", model_dir, "--mode", "tiles", "--heatmaps", tmp_path / "t")
    assert r.returncode == 0 and len(list((tmp_path / "t").glob("*_tiles.png"))) == 1


def test_decompression_bomb_is_refused(model_dir, tmp_path):
    # A PNG header claiming 100,000 x 100,000 pixels: refused before any pixel is decoded.
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b"")
    (tmp_path / "bomb.png").write_bytes(png)
    r = _run("predict", tmp_path / "bomb.png", "--model", model_dir, "--format", "json")
    assert r.returncode == 1
    row = json.loads(r.stdout)[0]
    assert "too large" in row["error"] and "Traceback" not in r.stderr


def test_bf16_scoring_is_close_to_fp32_and_bad_precision_is_refused(model_dir, images, tmp_path):
    fp32, bf16 = Detector.load(model_dir), Detector.load(model_dir, precision="bf16")
    a = np.array([fp32.predict(p).p_fake for p in images.values()])
    b = np.array([bf16.predict(p).p_fake for p in images.values()])
    assert not np.array_equal(a, b)  # bf16 was really used: the rounding shows in the scores
    assert np.abs(a - b).max() < 0.05
    with pytest.raises(GenspotError, match="precision"):
        Detector.load(model_dir, precision="fp16")
    assert Detector.load(model_dir, precision="32").precision == "fp32"  # train's name for fp32 works too
    r = _run("predict", images["rgb.jpg"], "--model", model_dir, "--precision", "bf16", "--format", "jsonl")
    assert r.returncode == 0 and json.loads(r.stdout)["p_fake"] == pytest.approx(b[0], abs=1e-6)
    r = _run("predict", images["rgb.jpg"], "--model", model_dir, "--precision", "fp16")
    assert r.returncode != 0 and "precision" in r.stderr and "Traceback" not in r.stderr
