"""The web page in a real browser (Playwright driving Debian's chromium): upload, verdict, overlay.

`.ci/run` installs chromium and sets GENSPOT_REQUIRE_BROWSER=1, so there a missing browser fails
the test instead of skipping it. GENSPOT_SCREENSHOT=PATH keeps the screenshot (the README's).
"""

import os
import shutil
import socket
import threading
import time

import numpy as np
import pytest
from PIL import Image

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


def _need_browser():
    try:
        import playwright  # noqa: F401
    except ImportError:
        if os.environ.get("GENSPOT_REQUIRE_BROWSER"):
            raise
        pytest.skip("playwright is not installed")
    if not os.path.exists(CHROMIUM):
        if os.environ.get("GENSPOT_REQUIRE_BROWSER"):
            pytest.fail(f"chromium not found at {CHROMIUM}")
        pytest.skip("chromium is not installed (apt-get install chromium)")


@pytest.fixture(scope="module")
def server(tmp_path_factory, make_model_dir):
    import uvicorn

    from genspot.models.io import default_model_dir
    from genspot.serve import create_app

    model = "default"
    if not (default_model_dir() / "model.safetensors").is_file():
        model = make_model_dir(tmp_path_factory.mktemp("b") / "m", "spot_resnet_s")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(create_app(model), host="127.0.0.1", port=port, log_level="warning"))
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    while not srv.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    t.join(10)


def test_upload_shows_verdict_and_overlay(server, tmp_path):
    _need_browser()
    from playwright.sync_api import expect, sync_playwright

    paths = []
    rng = np.random.default_rng(0)
    for i in range(3):
        p = tmp_path / f"upload{i}.jpg"
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(p)
        paths.append(str(p))
    gray = tmp_path / "gray.png"
    Image.fromarray(rng.integers(0, 255, (32, 32), dtype=np.uint8)).save(gray)
    paths.append(str(gray))
    (tmp_path / "notes.txt").write_text("not an image")
    paths.append(str(tmp_path / "notes.txt"))
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1000, "height": 900})
        page.goto(server)
        page.set_input_files("#files", paths)
        verdicts = page.locator(".verdict")
        expect(verdicts).to_have_count(5, timeout=30_000)
        texts = verdicts.all_inner_texts()
        assert texts[4] == "could not read"
        # out of domain: a neutral headline, never a green REAL or red FAKE, and the reason below it;
        # in domain: the verdict (noise images may fall either way)
        cannot = "out of domain: this detector cannot tell"
        assert texts[3] == cannot
        for k in range(3):
            out_here = page.locator(".card").nth(k).locator(".domain.out").count() == 1
            assert texts[k] == cannot if out_here else texts[k] in ("REAL", "FAKE")
        gray_card = page.locator(".card").nth(3)
        expect(gray_card.locator(".domain.out")).to_contain_text("grayscale")
        grey = gray_card.locator(".verdict").evaluate("e => getComputedStyle(e).color")
        assert grey not in ("rgb(185, 28, 28)", "rgb(21, 128, 61)")
        overlay = page.locator(".card .heat").first
        expect(overlay).to_be_visible(timeout=30_000)
        assert overlay.get_attribute("src").startswith("data:image/png;base64,")
        expect(page.locator("#batch tbody tr")).to_have_count(5)
        assert page.locator("#batch thead th").nth(3).inner_text() == "domain"
        assert page.locator("#batch tbody tr").nth(3).locator("td").nth(1).inner_text() == "cannot tell"
        # every header on one line ("verdict", never "verdic" over "t"), also at a phone's width
        page.set_viewport_size({"width": 390, "height": 900})
        heights = page.locator("#batch thead th").evaluate_all("ths => ths.map(t => t.getBoundingClientRect().height)")
        assert max(heights) - min(heights) < 1
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.set_viewport_size({"width": 1000, "height": 900})
        page.locator("#opacity").fill("80")
        assert float(overlay.evaluate("e => getComputedStyle(e).opacity")) == pytest.approx(0.8)
        page.wait_for_function("document.querySelectorAll('.card .heat:not([hidden])').length === 4", timeout=30_000)
        # the page says which method it shows by default and what is known of how well it localises
        expect(page.locator("#localisation")).to_contain_text("Grad-CAM")
        expect(page.locator("#localisation")).to_contain_text("not measured")
        expect(page.locator(".card .explain-note").first).to_contain_text("Grad-CAM for")
        shot = os.environ.get("GENSPOT_SCREENSHOT") or str(tmp_path / "page.png")
        page.screenshot(path=shot, full_page=True)
        mobile = browser.new_page(viewport={"width": 390, "height": 800})
        mobile.goto(server)
        assert mobile.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling on a phone
        browser.close()
    assert Image.open(shot).size[0] == 1000


def test_api_docs_render_offline(server):
    """Swagger UI and ReDoc draw the API from the package's own files: every request that leaves
    the server's address is refused, and the pages still show the endpoints."""
    _need_browser()
    from playwright.sync_api import expect, sync_playwright

    outside = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page()

        def gate(route):
            if route.request.url.startswith(server):
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort()

        page.route("**/*", gate)
        page.goto(server + "/docs")
        expect(page.locator(".opblock-summary-path", has_text="/v1/predict").first).to_be_visible(timeout=30_000)
        page.goto(server + "/redoc")
        expect(page.get_by_text("/v1/explain").first).to_be_attached(timeout=30_000)
        browser.close()
    assert not outside, outside
