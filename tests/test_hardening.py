"""Hostile input and first-time-user defects, one test each (issue 24). The tests make their own
hostile files: the bomb streamed, the FIFO with os.mkfifo, the sparse file with truncate."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bad_inputs import _png_syntax_error
from conftest import jpeg_bytes


def run(*args, timeout=300, **kw):
    return subprocess.run([sys.executable, "-m", "genspot.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, **kw)  # fmt: skip


def one_line_error(r, *needles):
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr + r.stdout
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), r.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def rows_of(r) -> list[dict]:
    return [json.loads(x) for x in r.stdout.splitlines() if x.strip()]


def img(path: Path, seed: int = 0, size=(32, 32)) -> Path:
    path.write_bytes(jpeg_bytes(np.random.default_rng(seed).integers(0, 255, (*size, 3), dtype=np.uint8)))
    return path


# -- 1, 2: what the CLI reads is bounded ---------------------------------------------------------


def test_a_zip_member_inflating_to_1_gib_is_refused_unread(tmp_path):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z, z.open("FAKE/x.png", "w", force_zip64=True) as f:
        block = b"\0" * 2**22
        for _ in range(256):  # 1 GiB of zeros, streamed: about 1 MB on disk
            f.write(block)
    with zipfile.ZipFile(bomb, "a") as z:
        z.writestr("REAL/ok.jpg", jpeg_bytes(np.zeros((32, 32, 3), np.uint8)))
    assert bomb.stat().st_size < 2 * 2**20
    code = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
            "sys.stdout.write(r.stdout); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")  # fmt: skip
    r = subprocess.run([sys.executable, "-c", code, sys.executable, "-m", "genspot.cli", "predict", bomb, "--format", "jsonl"],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    *lines, rss_kib = r.stdout.strip().splitlines()
    rows = [json.loads(x) for x in lines]
    assert "over the limit" in rows[0]["error"] and rows[0]["label"] is None
    assert rows[1]["error"] is None and rows[1]["label"] in ("REAL", "FAKE")
    assert int(rss_kib) < 1_500_000  # never near the 1 GiB the member would inflate to (plus torch)


def test_a_fifo_a_sparse_file_and_a_device_get_error_rows_and_nothing_hangs(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    img(d / "a.jpg")
    os.mkfifo(d / "p.jpg")
    with open(d / "s.jpg", "wb") as f:
        f.truncate(8 * 2**30)
    os.symlink("/dev/zero", d / "z.jpg")
    r = run("predict", d, d / "p.jpg", "--format", "jsonl", timeout=120)  # the FIFO named by path too
    assert r.returncode == 1 and "Traceback" not in r.stderr
    rows = {Path(x["path"]).name + ("" if i < 4 else "#2"): x for i, x in enumerate(rows_of(r))}
    assert rows["a.jpg"]["label"] in ("REAL", "FAKE")
    assert "FIFO" in rows["p.jpg"]["error"] and "FIFO" in rows["p.jpg#2"]["error"]
    assert "over the limit of 20.0 MB" in rows["s.jpg"]["error"]
    assert "character device" in rows["z.jpg"]["error"]


def test_max_file_mb_applies_to_files_and_members(tmp_path):
    from genspot.data.inputs import iter_inputs

    big = img(tmp_path / "big.jpg", size=(400, 400))
    z = tmp_path / "a.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_STORED) as zz:
        zz.write(big, "FAKE/big.jpg")
    cap = big.stat().st_size - 1
    items = list(iter_inputs([big, z], max_bytes=cap))
    assert all(i.data is None and "over the limit" in i.error for i in items), items
    assert all(i.data is not None for i in iter_inputs([big, z], max_bytes=cap + 1))


# -- 3, 4: decoding: off the event loop, and every failure is the image's --------------------------


def test_a_png_that_makes_pillow_raise_syntaxerror_is_an_error_row_everywhere(tmp_path, make_model_dir):
    from fastapi.testclient import TestClient

    from genspot import Detector
    from genspot.serve import create_app

    m = make_model_dir(tmp_path / "m", "cifake_cnn")
    bad = _png_syntax_error()
    det = Detector.load(m)
    rows = det.predict_batch([bad, jpeg_bytes(np.zeros((32, 32, 3), np.uint8))])
    assert "broken PNG" in rows[0].error and rows[0].label is None and rows[1].label is not None
    (tmp_path / "bad.png").write_bytes(bad)
    assert "broken PNG" in det.predict_batch([tmp_path / "bad.png"])[0].error
    with TestClient(create_app(m)) as c:
        r = c.post("/v1/explain", files={"file": ("bad.png", bad, "image/png")})
        assert r.status_code == 422 and "broken PNG" in r.json()["detail"]
        r = c.post("/v1/predict", files=[("files", ("bad.png", bad, "image/png"))])
        assert r.status_code == 200 and "broken PNG" in r.json()["results"][0]["error"]


def test_the_server_opens_and_decodes_images_off_the_event_loop(tmp_path, make_model_dir, monkeypatch):
    from fastapi.testclient import TestClient

    import genspot.predict
    import genspot.serve.app as app_module

    seen = []

    def on_loop() -> bool:
        try:
            asyncio.get_running_loop()
            return True
        except RuntimeError:
            return False

    for mod in (app_module, genspot.predict):
        for name in ("open_image", "image_from_bytes"):
            if hasattr(mod, name):
                real = getattr(mod, name)
                monkeypatch.setattr(mod, name, lambda *a, _real=real, **k: (seen.append(on_loop()), _real(*a, **k))[1])
    m = make_model_dir(tmp_path / "m", "cifake_cnn")
    slow = b"\xff\xd8\xff\xe0" + b"\0" * 2**20
    with TestClient(app_module.create_app(m)) as c:
        files = [("files", ("a.jpg", jpeg_bytes(np.zeros((32, 32, 3), np.uint8)), "image/jpeg")), ("files", ("z.jpg", slow, "image/jpeg"))]
        assert c.post("/v1/predict", files=files).status_code == 200
        assert c.post("/v1/explain", files={"file": ("z.jpg", slow, "image/jpeg")}).status_code == 422
    assert seen and not any(seen), seen  # every open and decode ran in a worker thread


# -- 5: one rule for archives ------------------------------------------------------------------------


def test_a_jpeg_with_a_zip_appended_is_scored_as_the_jpeg_by_name_and_in_a_folder(tmp_path):
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("other.png", b"x")
    d = tmp_path / "d"
    d.mkdir()
    poly = d / "poly.jpg"
    poly.write_bytes(jpeg_bytes(np.full((32, 32, 3), 128, np.uint8)) + buf.getvalue())
    assert zipfile.is_zipfile(poly)  # what used to make it an archive
    by_name, in_folder = rows_of(run("predict", poly, "--format", "jsonl")), rows_of(run("predict", d, "--format", "jsonl"))
    assert [r["path"] for r in by_name] == [str(poly)] and [r["path"] for r in in_folder] == [str(poly)]
    assert by_name[0]["p_fake"] == in_folder[0]["p_fake"] and by_name[0]["error"] is None


# -- 6, 8: one line, never a traceback; checkpoints loaded as weights only --------------------------


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, toy_zip):
    out = tmp_path_factory.mktemp("run") / "r"
    r = run("train", "cifake_cnn", "--data", toy_zip, "--out", out, "--epochs", "1", "--device", "cpu", "--limit", "400")
    assert r.returncode == 0, r.stderr[-2000:]
    return out


def _copy_run(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("content", ["truncated", "random", "empty"])
def test_resume_on_a_broken_checkpoint_is_one_line(trained_run, tmp_path, content):
    d = _copy_run(trained_run, tmp_path / "r")
    ck = d / "checkpoints" / "last.ckpt"
    good = ck.read_bytes()
    ck.write_bytes({"truncated": good[: len(good) // 3], "random": os.urandom(5000), "empty": b""}[content])
    one_line_error(run("train", "--resume", "--out", d), "cannot resume", str(ck))


def test_resume_refuses_a_checkpoint_that_would_run_code_even_when_torch_is_told_to_allow_it(trained_run, tmp_path):
    import torch

    d = _copy_run(trained_run, tmp_path / "r")
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"state_dict": Payload()}, d / "checkpoints" / "last.ckpt")
    r = run("train", "--resume", "--out", d, env={**os.environ, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"})
    one_line_error(r, "refusing to resume", "GLOBAL")
    assert not marker.exists()


def test_a_good_checkpoint_still_resumes_under_weights_only(trained_run, tmp_path):
    d = _copy_run(trained_run, tmp_path / "r")
    cfg = json.loads((d / "run.json").read_text())
    cfg["epochs"] = 2
    (d / "run.json").write_text(json.dumps(cfg))
    r = run("train", "--resume", "--out", d, env={**os.environ, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    assert len((d / "metrics.jsonl").read_text().splitlines()) == 2


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"model": "cifake_cnn"}'])
def test_resume_on_a_corrupt_run_json_is_one_line(trained_run, tmp_path, content):
    d = _copy_run(trained_run, tmp_path / "r")
    (d / "run.json").write_text(content)
    one_line_error(run("train", "--resume", "--out", d), "cannot resume from", "run.json")


def test_predict_into_a_missing_folder_is_one_line(tmp_path):
    one_line_error(run("predict", img(tmp_path / "a.jpg"), "--out", tmp_path / "no" / "such" / "o.jsonl", "--format", "jsonl"),
                   "no such folder")  # fmt: skip


# -- 7, 9, 10: the server's limits, timeouts and docs -------------------------------------------------


def test_a_chunked_body_over_the_limit_gets_413(tmp_path, make_model_dir):
    from fastapi.testclient import TestClient

    from genspot.serve import Limits, create_app

    m = make_model_dir(tmp_path / "m", "cifake_cnn")
    with TestClient(create_app(m, Limits(max_request_bytes=100_000))) as c:
        boundary = b"xyz"

        def body():  # no Content-Length: httpx sends it chunked
            yield b"--xyz\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
            for _ in range(50):
                yield b"\xff" * 10_000
            yield b"\r\n--xyz--\r\n"

        r = c.post("/v1/predict", content=body(), headers={"content-type": f"multipart/form-data; boundary={boundary.decode()}"})
        assert r.status_code == 413, r.text
        assert "over the limit" in r.json()["detail"]
        assert c.get("/healthz").status_code == 200


@pytest.fixture
def live_server(tmp_path, make_model_dir, monkeypatch):
    """The real serving stack (uvicorn + genspot's protocol) on a free loopback port, short timeouts."""
    import uvicorn

    import genspot.serve.protocol as protocol
    from genspot.serve import create_app

    monkeypatch.setattr(protocol, "_timeouts", protocol.Timeouts(keep_alive=1.0, headers=1.0, body=1.5))
    m = make_model_dir(tmp_path / "m", "cifake_cnn")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(create_app(m), host="127.0.0.1", port=port, http=protocol.TimedH11Protocol, timeout_keep_alive=1,
                            log_level="warning")  # fmt: skip
    server = uvicorn.Server(config)
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    assert server.started
    yield port
    server.should_exit = True
    t.join(10)


def _closed_after(port: int, payload: bytes, limit: float = 10.0) -> float | None:
    """Send payload and wait: seconds until the server closes the connection (None: still open at limit)."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(payload)
        s.settimeout(limit)
        t = time.time()
        try:
            while s.recv(4096):
                pass
        except TimeoutError:
            return None
        return time.time() - t


def test_slow_clients_are_cut_off_and_whole_requests_still_served(live_server):
    port = live_server
    heads = [b"GET /healthz HTTP/1.1\r\nHost: x\r\n"] * 5  # five slow-loris connections, the head never finished
    closed = [_closed_after(port, h) for h in heads]
    assert all(c is not None for c in closed), closed
    body = b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 1000\r\n\r\n--b"
    assert _closed_after(port, body) is not None  # a body that never arrives
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 200")


def test_api_docs_are_served_from_the_package(tmp_path, make_model_dir):
    import re

    from fastapi.testclient import TestClient

    from genspot.serve import create_app

    with TestClient(create_app(make_model_dir(tmp_path / "m", "cifake_cnn"))) as c:
        for page in ("/docs", "/redoc"):
            html = c.get(page).text
            assert not re.search(r"(src|href)=[\"']https?://", html), html  # no CDN, no web fonts
            for asset in re.findall(r"(?:src|href)=\"(/static/[^\"]+)\"", html):
                assert c.get(asset).status_code == 200, asset
        assert c.get("/static/docs/swagger-ui-bundle.js").status_code == 200
        assert c.get("/static/docs/redoc.standalone.js").status_code == 200


# -- 11: small ------------------------------------------------------------------------------------------


def test_an_empty_zip_and_an_empty_folder_get_a_row(tmp_path):
    zipfile.ZipFile(tmp_path / "e.zip", "w").close()
    (tmp_path / "empty").mkdir()
    rows = rows_of(run("predict", tmp_path / "e.zip", tmp_path / "empty", "--format", "jsonl"))
    assert len(rows) == 2 and "no image files in this zip" in rows[0]["error"] and "no image files in this folder" in rows[1]["error"]


def test_weights_get_the_same_mode_as_the_config(tmp_path, make_model_dir):
    d = make_model_dir(tmp_path / "m", "cifake_cnn")
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    assert mode(d / "model.safetensors") == mode(d / "config.json")


# -- 12: one scoring path ---------------------------------------------------------------------------------


def test_explain_predict_and_the_api_agree_on_p_fake(tmp_path):
    from genspot import Detector

    d = tmp_path / "imgs"
    d.mkdir()
    img(d / "small.jpg", 1)
    img(d / "big.jpg", 2, size=(700, 900))  # large JPEGs were decoded another way by explain
    Image.fromarray(np.random.default_rng(3).integers(0, 255, (64, 48), dtype=np.uint8)).save(d / "gray.png")
    pred = {Path(r["path"]).name: r["p_fake"] for r in rows_of(run("predict", d, "--format", "jsonl"))}
    r = run("explain", d, "--out", tmp_path / "maps")
    assert r.returncode == 0, r.stderr[-2000:]
    det = Detector.load()
    for name, p in pred.items():
        caption_p = det.explain(d / name)["p_fake"]
        assert abs(caption_p - p) < 1e-6, (name, caption_p, p)
        assert abs(det.predict(d / name).p_fake - p) < 1e-6
    from genspot.explain.run import explain_paths

    rows = {Path(x["path"]).name: x["p_fake"] for x in explain_paths([str(d)], Detector.load("default"), tmp_path / "m2", progress=False).rows}
    assert all(abs(rows[n] - p) < 1e-6 for n, p in pred.items()), (rows, pred)


# -- 13: the quickstart ---------------------------------------------------------------------------------


def test_quickstart_never_deletes_what_it_did_not_make(tmp_path):
    (tmp_path / "qs" / "cifake_cnn").mkdir(parents=True)
    (tmp_path / "qs" / "cifake_cnn" / "mine.txt").write_text("a user's file")
    one_line_error(run("quickstart", "--out", tmp_path / "qs", "--epochs", "1", "--limit", "200"), "was not made by the quickstart")
    assert (tmp_path / "qs" / "cifake_cnn" / "mine.txt").exists()


# -- 14, 15, 16: progress, start-up, small things ------------------------------------------------------


def test_progress_has_a_total(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    for i in range(3):
        img(d / f"{i}.jpg", i)
    r = run("predict", d, "--format", "jsonl", "--out", tmp_path / "o.jsonl")
    assert "3/3" in r.stderr and "/?" not in r.stderr
    from genspot.data.inputs import count_inputs

    assert count_inputs([d, d / "0.jpg", tmp_path / "nope.jpg"]) == 5


def test_the_command_line_starts_without_torch():
    code = "import sys, genspot.cli; print(sorted(m for m in ('torch', 'timm', 'lightning', 'pytorch_grad_cam') if m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "[]", r.stdout + r.stderr
    r = run("--help")
    assert r.returncode == 0 and "<bool>" not in r.stdout and "--help" in r.stdout


def test_models_lists_whole_names_and_the_shipped_detectors():
    r = run("models", env={**os.environ, "COLUMNS": "80"})
    assert r.returncode == 0, r.stderr
    for name in ("spot_resnet_ensemble", "efficientnetv2_b0", "default", "pristine"):
        assert name in r.stdout, name


def test_one_image_is_singular_and_tile_maps_are_named_like_explain_with_a_scale(tmp_path):
    d = tmp_path / "deep" / "folder"
    d.mkdir(parents=True)
    img(d / "photo.jpg", size=(64, 96))
    r = run("predict", tmp_path / "deep", "--mode", "tiles", "--heatmaps", tmp_path / "hm", "--out", tmp_path / "t.csv", "--format", "csv")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "1 image:" in r.stderr and "1 images" not in r.stderr
    maps = list((tmp_path / "hm").iterdir())
    assert [p.name for p in maps] == ["folder__photo_tiles.png"]  # relative to the argument, as explain names it
    assert Image.open(maps[0]).height > 64  # the colour scale under the image
