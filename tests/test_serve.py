"""`genspot serve`: every endpoint, every limit, and concurrent requests kept apart."""

import asyncio
import base64
import io
import json

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from genspot.serve import Limits, create_app
from genspot.serve.limits import BodyLimit, sniff


@pytest.fixture(scope="module")
def client(tmp_path_factory, make_model_dir):
    d = make_model_dir(tmp_path_factory.mktemp("srv") / "m", "spot_resnet_s")
    (d / "metrics.json").write_text(json.dumps({"validation": {"n": 10, "accuracy": 0.9, "accuracy_ci95": [0.8, 1.0]}}))
    limits = Limits(max_request_bytes=2_000_000, max_file_bytes=500_000, max_files=5, max_pixels=1_000_000)
    with TestClient(create_app(d, limits)) as c:
        yield c


def jpeg(seed: int, size=(32, 32), fmt="JPEG") -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(buf, format=fmt)
    return buf.getvalue()


def test_health_models_and_docs(client):
    assert client.get("/healthz").json()["status"] == "ok"
    m = client.get("/v1/models").json()[0]
    assert m["architecture"] == "spot_resnet_s" and m["parameters"] == 485_906
    assert m["validation"]["accuracy"] == 0.9 and m["tta"] == "flip"
    assert client.get("/docs").status_code == 200
    assert "/v1/predict" in client.get("/openapi.json").json()["paths"]
    page = client.get("/")
    assert page.status_code == 200 and "genspot" in page.text and "/static/app.js" in page.text
    assert client.get("/static/app.js").status_code == 200


def test_predict_many_with_one_bad_file(client):
    files = [("files", ("a.jpg", jpeg(0), "image/jpeg")), ("files", ("b.png", jpeg(1, fmt="PNG"), "image/png")),
             ("files", ("notes.jpg", b"hello, not an image", "image/jpeg")),
             ("files", ("broken.jpg", jpeg(2)[:40], "image/jpeg"))]  # fmt: skip
    r = client.post("/v1/predict", files=files)
    assert r.status_code == 200, r.text
    rows = r.json()["results"]
    assert [x["filename"] for x in rows] == ["a.jpg", "b.png", "notes.jpg", "broken.jpg"]
    for x in rows[:2]:
        assert x["label"] in ("REAL", "FAKE") and 0 <= x["p_fake"] <= 1 and x["error"] is None
    assert "not an image" in rows[2]["error"] and rows[2]["label"] is None
    assert "not a readable image" in rows[3]["error"]


def test_limits(client):
    # not an image by content, whatever the name says: 415
    r = client.post("/v1/predict", files=[("files", ("x.png", b"GIF? no. plain text", "image/png"))])
    assert r.status_code == 415
    # per-file bytes: 413
    big = jpeg(0, size=(600, 600), fmt="BMP")  # ~1 MB
    r = client.post("/v1/predict", files=[("files", ("big.bmp", big[:600_000], "image/bmp"))])
    assert r.status_code == 413 and "file over the limit" in r.json()["detail"]
    # request bytes: 413 before the body is parsed
    r = client.post("/v1/predict", files=[("files", (f"{i}.bmp", big[:450_000], "image/bmp")) for i in range(5)])
    assert r.status_code == 413 and "request body" in r.json()["detail"]
    # files per request: 413
    r = client.post("/v1/predict", files=[("files", (f"{i}.jpg", jpeg(i), "image/jpeg")) for i in range(6)])
    assert r.status_code == 413 and "files" in r.json()["detail"]
    # pixels (a small PNG of a large blank canvas): 413
    buf = io.BytesIO()
    Image.new("L", (2000, 2000)).save(buf, format="PNG")
    assert len(buf.getvalue()) < 500_000
    r = client.post("/v1/predict", files=[("files", ("wide.png", buf.getvalue(), "image/png"))])
    assert r.status_code == 413 and "pixels" in r.json()["detail"]
    # bad mode / method / target / format: 422
    assert client.post("/v1/predict", files=[("files", ("a.jpg", jpeg(0), "image/jpeg"))], data={"mode": "zoom"}).status_code == 422
    for field in ({"method": "magic"}, {"target": "both"}, {"format": "gif"}):
        assert client.post("/v1/explain", files={"file": ("a.jpg", jpeg(0), "image/jpeg")}, data=field).status_code == 422
    assert client.post("/v1/explain", files={"file": ("a.jpg", b"\x00" * 100, "image/jpeg")}).status_code == 415


def test_decompression_bomb_is_refused_before_decoding(client):
    buf = io.BytesIO()
    Image.new("1", (9000, 9000)).save(buf, format="PNG")  # 81 Mpx in a few kB
    r = client.post("/v1/predict", files=[("files", ("bomb.png", buf.getvalue(), "image/png"))])
    assert r.status_code == 413 and "too large" in r.json()["detail"]


def test_chunked_body_over_the_limit_is_cut_off():
    async def app(scope, receive, send):
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    chunks = [{"type": "http.request", "body": b"x" * 600, "more_body": True} for _ in range(5)]
    sent = []

    async def receive():
        return chunks.pop(0)

    async def send(msg):
        sent.append(msg)

    asyncio.run(BodyLimit(app, 1000)({"type": "http", "headers": []}, receive, send))
    assert sent[0]["status"] == 413
    assert len(chunks) == 3  # stopped reading after the limit was passed


def test_explain_png_and_json(client):
    r = client.post("/v1/explain", files={"file": ("a.jpg", jpeg(3), "image/jpeg")}, data={"method": "gradcam++"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(r.content)).width > 3 * 256
    r = client.post("/v1/explain", files={"file": ("a.jpg", jpeg(3), "image/jpeg")},
                    data={"method": "cam", "target": "fake", "format": "json"})  # fmt: skip
    j = r.json()
    assert r.status_code == 200 and j["target"] == "FAKE" and j["method"] == "cam"
    for k in ("overlay_png", "heatmap_png", "image_png"):
        assert Image.open(io.BytesIO(base64.b64decode(j[k]))).size == (256, 256)
    pred = client.post("/v1/predict", files=[("files", ("a.jpg", jpeg(3), "image/jpeg"))]).json()["results"][0]
    assert j["p_fake"] == pytest.approx(pred["p_fake"], abs=1e-6)  # one scorer for both endpoints


def test_cam_on_a_model_without_a_linear_head_is_a_clear_422(tmp_path, make_model_dir):
    d = make_model_dir(tmp_path / "cnn", "cifake_cnn")
    with TestClient(create_app(d)) as c:
        r = c.post("/v1/explain", files={"file": ("a.jpg", jpeg(0), "image/jpeg")}, data={"method": "cam"})
    assert r.status_code == 422 and "CAM" in r.json()["detail"]


def test_concurrent_requests_never_mix_results(client):
    images = {f"img{i}.jpg": jpeg(100 + i) for i in range(12)}
    solo = {}
    for name, data in images.items():
        solo[name] = client.post("/v1/predict", files=[("files", (name, data, "image/jpeg"))]).json()["results"][0]["p_fake"]

    async def run():
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as ac:
            async def one(name, data, method):
                if method:
                    r = await ac.post("/v1/explain", files={"file": (name, data, "image/jpeg")}, data={"method": method, "format": "json"})
                    return name, r.json()["p_fake"]
                r = await ac.post("/v1/predict", files=[("files", (name, data, "image/jpeg"))])
                return name, r.json()["results"][0]["p_fake"]

            jobs = [one(n, d, m) for (n, d) in images.items() for m in (None, "gradcam")]
            return await asyncio.gather(*jobs)

    for name, p in asyncio.run(run()):
        assert p == pytest.approx(solo[name], abs=1e-6), name


def test_sniff():
    assert sniff(jpeg(0)) == "JPEG" and sniff(jpeg(0, fmt="PNG")) == "PNG" and sniff(jpeg(0, fmt="WEBP")) == "WEBP"
    assert sniff(jpeg(0, fmt="GIF")) == "GIF" and sniff(jpeg(0, fmt="BMP")) == "BMP" and sniff(jpeg(0, fmt="TIFF")) == "TIFF"
    assert sniff(b"<html>") is None


def test_bf16_server_scores_close_to_fp32(tmp_path, make_model_dir, monkeypatch):
    from genspot.serve.app import app_from_env

    d = make_model_dir(tmp_path / "m", "spot_resnet_s")
    monkeypatch.setenv("GENSPOT_SERVE_MODEL", str(d))
    monkeypatch.setenv("GENSPOT_SERVE_PRECISION", "bf16")  # what `genspot serve --precision bf16` sets for its workers
    files = [("files", ("a.jpg", jpeg(5), "image/jpeg"))]
    with TestClient(create_app(d)) as c:
        fp32 = c.post("/v1/predict", files=files).json()["results"][0]["p_fake"]
    with TestClient(app_from_env()) as c:
        bf16 = c.post("/v1/predict", files=files).json()["results"][0]["p_fake"]
    assert bf16 != fp32 and abs(bf16 - fp32) < 0.05
