"""The bad-input corpus (tests/bad_inputs.py) through `genspot predict`, `genspot explain` and the server.

Every kind gets its stated outcome, nothing hangs, nothing prints a traceback, the server never
answers 500, and one bad input never costs another its verdict."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bad_inputs import KINDS, make_corpus, markdown
from genspot.explain.render import safe_stem

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    folder, archives = make_corpus(root)
    return root, folder, archives


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "genspot.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=cwd)  # fmt: skip


def _kind_of(path: str) -> str:
    """The corpus kind a row's path belongs to: an archive's name (`x.zip` or `x.zip:member`), else the file's."""
    m = re.match(r"(.*\.zip)(:.*)?$", path)
    name = Path(m.group(1) if m else path).name
    assert name in {k.name for k in KINDS}, f"row for an input the corpus does not hold: {path}"
    return name


def test_the_corpus_has_at_least_40_kinds_and_the_docs_list_them():
    assert len(KINDS) >= 40 and len({k.name for k in KINDS}) == len(KINDS)
    doc = (ROOT / "docs" / "bad-input.md").read_text()
    assert markdown() in doc, "docs/bad-input.md is out of date: paste `python tests/bad_inputs.py --markdown`"


def test_predict_gives_every_kind_its_outcome(corpus):
    root, folder, archives = corpus
    r = _cli("predict", folder, *archives, "--format", "jsonl", "--out", root / "rows.jsonl", cwd=root)
    assert r.returncode == 1, r.stderr[-2000:]  # some inputs failed: the exit code says so
    assert "Traceback" not in r.stderr + r.stdout
    rows = [json.loads(x) for x in (root / "rows.jsonl").read_text().splitlines()]
    by_kind: dict[str, list[dict]] = {}
    for row in rows:
        by_kind.setdefault(_kind_of(row["path"]), []).append(row)
    for k in KINDS:
        got = by_kind.get(k.name, [])
        if k.outcome == "ignored":
            assert not got, k.name
        elif k.outcome == "scored":
            assert len(got) == 1 and got[0]["error"] is None and got[0]["label"] in ("REAL", "FAKE"), (k.name, got)
            assert 0.0 <= got[0]["p_fake"] <= 1.0
        elif k.outcome == "error":
            assert len(got) == 1 and got[0]["error"] and got[0]["label"] is None and got[0]["p_fake"] is None, (k.name, got)
        else:  # error+scored: an archive with one bad member and one good one
            assert sorted(bool(x["error"]) for x in got) == [False, True], (k.name, got)
    summary = r.stderr.strip().splitlines()[-1]
    n_err = sum(1 for row in rows if row["error"])
    assert f"{n_err} errors;" in summary and summary.startswith(f"{len(rows)} images")


def test_explain_writes_a_map_for_every_image_and_skips_the_rest(corpus):
    root, folder, archives = corpus
    out = root / "maps"
    r = _cli("explain", folder, *archives, "--out", out, cwd=root)
    assert r.returncode == 1, r.stderr[-2000:]
    assert "Traceback" not in r.stderr + r.stdout
    written = {p.name[: -len("_gradcam.npy")] for p in out.glob("*_gradcam.npy")}
    scored = {safe_stem(k.name) for k in KINDS if k.outcome == "scored" and not k.archive}
    assert scored <= written
    assert written - scored == {"bad-crc__ok"}  # the good member of the archive with one corrupt one
    n_errors = sum(1 for k in KINDS if k.outcome in ("error", "error+scored"))
    assert f"; {n_errors:,} skipped" in r.stderr


def test_the_server_never_fails_on_the_corpus(corpus):
    from genspot.serve import create_app

    root, folder, archives = corpus
    with TestClient(create_app("default")) as c:
        for k in KINDS:
            if not k.upload:
                continue
            path = (root / k.name) if k.archive else (folder / k.name)
            data = path.read_bytes()
            r = c.post("/v1/predict", files=[("files", (k.name, data, "application/octet-stream"))])
            assert r.status_code in (200, 413, 415), (k.name, r.status_code, r.text)
            e = c.post("/v1/explain", files={"file": (k.name, data, "application/octet-stream")}, data={"format": "json"})
            assert e.status_code in (200, 413, 415, 422), (k.name, e.status_code, e.text)
            if k.outcome == "scored" and not k.archive:
                row = r.json()["results"][0]
                assert r.status_code == 200 and row["error"] is None and row["label"] in ("REAL", "FAKE"), (k.name, r.text)
                assert e.status_code == 200 and e.json()["label"] == row["label"], (k.name, e.text)
            elif r.status_code == 200:
                assert r.json()["results"][0]["error"], (k.name, r.text)
                assert e.status_code != 200, (k.name, e.text)
        assert c.get("/healthz").json()["status"] == "ok"
