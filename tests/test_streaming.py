"""Streaming prediction at scale: input order kept, memory flat, errors in place."""

import io
import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from PIL import Image


def _zip(path, n, bad_every=0):
    rng = np.random.default_rng(0)
    tiles = [rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for _ in range(64)]
    blobs = []
    for t in tiles:
        buf = io.BytesIO()
        Image.fromarray(t).save(buf, format="JPEG", quality=90)
        blobs.append(buf.getvalue())
    names = []
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for i in range(n):
            name = f"imgs/{(i * 7919) % n:06d}.jpg"  # member order is not name order
            z.writestr(name, b"broken" if bad_every and i % bad_every == 0 else blobs[i % 64])
            names.append(name)
    return names


def _predict(zip_path, out, workers):
    code = ("import resource, subprocess, sys; "
            "r = subprocess.run(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)")  # fmt: skip
    args = [sys.executable, "-c", code, sys.executable, "-m", "genspot.cli", "predict", str(zip_path), "--model",
            str(out.parent / "m"), "--format", "jsonl", "--out", str(out), "--workers", str(workers)]  # fmt: skip
    r = subprocess.run(args, capture_output=True, text=True, timeout=900)
    return r, int(r.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_50k_images_keep_order_and_flat_memory(tmp_path, make_model_dir):
    make_model_dir(tmp_path / "m", "cifake_cnn")
    small, big = tmp_path / "small.zip", tmp_path / "big.zip"
    _zip(small, 5_000)
    names = _zip(big, 50_000, bad_every=997)
    r_small, rss_small = _predict(small, tmp_path / "small.jsonl", 2)
    assert r_small.returncode == 0, r_small.stderr[-2000:]
    r_big, rss_big = _predict(big, tmp_path / "big.jsonl", 2)
    assert r_big.returncode == 1  # some inputs failed: the exit code says so
    rows = [json.loads(x) for x in (tmp_path / "big.jsonl").read_text().splitlines()]
    assert [row["path"].split(":", 1)[1] for row in rows] == names  # input order, every image once
    errors = [i for i, row in enumerate(rows) if row["error"]]
    assert errors == list(range(0, 50_000, 997))  # the broken ones, in place; all others scored
    assert all(row["label"] in ("REAL", "FAKE") for i, row in enumerate(rows) if i % 997)
    # 10x the images, about the same peak memory (KiB): nothing scales with the input's size
    assert rss_big < rss_small + 150 * 1024, (rss_small, rss_big)
    # decoding in-process gives the same scores in the same order
    r0, _ = _predict(small, tmp_path / "small0.jsonl", 0)
    a = [json.loads(x)["p_fake"] for x in (tmp_path / "small.jsonl").read_text().splitlines()]
    b = [json.loads(x)["p_fake"] for x in (tmp_path / "small0.jsonl").read_text().splitlines()]
    assert a == pytest.approx(b, abs=1e-6)
