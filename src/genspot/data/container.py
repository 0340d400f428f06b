"""The file containers of a dataset's classes compared: formats, sizes, JPEG quality and chroma
subsampling (and bytes per pixel, shown but not judged: it follows the content too).

When photos and generated images reach a dataset by different roads (real JPEGs at quality 75,
fakes saved as PNG or at quality 95; photos of every size, fakes at the generator's one size), a
detector can score well by reading the container instead of the content, and fail on the first
image that came by another road. This audit reads file headers only (nothing is decoded) of a
seeded sample per class and says where the classes differ.
"""

from __future__ import annotations

import io
from collections import Counter
from typing import Any

import numpy as np
from PIL import Image, JpegImagePlugin

from genspot.data.decode import DecodedSet
from genspot.data.sources import open_source

# The IJG (libjpeg) luminance table at quality 50: every encoder that takes a "quality" scales it.
_IJG_LUMA = np.array([16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
                      14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
                      49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], dtype=np.float64)  # fmt: skip
_SAMPLING = {0: "4:4:4", 1: "4:2:2", 2: "4:2:0"}
# Two groups "differ" when their distributions of a property are this far apart (total
# variation distance: the share of images that would have to change value to make them equal).
DIFFERENT_TV = 0.2


def jpeg_quality(img: Image.Image) -> int | None:
    """The IJG quality whose scaled luminance table is closest in mean to this JPEG's (None: not a JPEG)."""
    tables = getattr(img, "quantization", None)
    if not tables:
        return None
    luma = np.asarray(tables[min(tables)], dtype=np.float64)
    scale = 100.0 * luma.sum() / _IJG_LUMA.sum()  # libjpeg: scale = 5000 / q below 50, 200 - 2 q above
    q = 5000.0 / scale if scale > 100 else (200.0 - scale) / 2
    return int(np.clip(round(q), 1, 100))


def header_facts(data: bytes) -> dict[str, Any]:
    """What a file's header says: format, mode, size, JPEG quality and subsampling, bytes per pixel."""
    with Image.open(io.BytesIO(data)) as img:
        w, h = img.size
        q = jpeg_quality(img) if img.format == "JPEG" else None
        sub = _SAMPLING.get(JpegImagePlugin.get_sampling(img), "other") if img.format == "JPEG" else None
        return {"format": img.format or "?", "mode": img.mode, "size": f"{w}x{h}", "jpeg_quality": q,
                "subsampling": sub, "bytes_per_pixel": len(data) / max(1, w * h)}  # fmt: skip


def _tv(a: Counter, b: Counter) -> float:
    na, nb = sum(a.values()), sum(b.values())
    return 0.5 * sum(abs(a[k] / na - b[k] / nb) for k in set(a) | set(b)) if na and nb else 0.0


def shares(counts: dict[str, int], top: int = 3, n: int | None = None) -> str:
    """'JPEG 90%, PNG 10%': the most common values and their shares (of n, default all counted)."""
    n = max(1, n if n is not None else sum(counts.values()))
    return ", ".join(f"{k} {100 * v / n:.0f}%" for k, v in Counter(counts).most_common(top))


PROPERTIES = ("format", "size", "jpeg_quality", "subsampling", "mode")


def _summary(facts: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"n": len(facts)}
    for p in PROPERTIES:
        out[p] = dict(Counter(str(f[p]) for f in facts).most_common(5))
    bpp = np.array([f["bytes_per_pixel"] for f in facts])
    out["bytes_per_pixel_median"] = round(float(np.median(bpp)), 4) if len(bpp) else None
    return out


def container_audit(ds: DecodedSet, per_group: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Per class (and per fake source, where there are several), the containers of a seeded sample
    of up to `per_group` images, and the differences from the real images that a model could
    learn instead of the content."""
    rng = np.random.default_rng(seed)
    labels = ds.labels.numpy()
    sources = ds.sources
    groups = {"REAL": np.flatnonzero(labels == 0), "FAKE": np.flatnonzero(labels == 1)}
    fake_sources = sorted(set(sources[labels == 1].tolist()))
    if len(fake_sources) > 1:
        groups.update({f"FAKE:{s}": np.flatnonzero((labels == 1) & (sources == s)) for s in fake_sources})
    src = open_source(ds.source)
    facts: dict[int, dict[str, Any]] = {}
    sampled: dict[str, np.ndarray] = {}
    try:
        for name, idx in groups.items():
            pick = np.sort(rng.choice(idx, min(per_group, len(idx)), replace=False)) if len(idx) else idx
            sampled[name] = pick
            for i in pick.tolist():
                if i not in facts:
                    try:
                        facts[i] = header_facts(src.read(ds.paths[i]))
                    except Exception:  # noqa: BLE001 - the decode already reported unreadable members
                        facts[i] = None  # type: ignore[assignment]
    finally:
        src.close()
    per = {name: [facts[i] for i in pick.tolist() if facts.get(i)] for name, pick in sampled.items()}
    summary = {name: _summary(f) for name, f in per.items()}
    differences = []
    real = per["REAL"]
    for name, f in per.items():
        if name == "REAL" or not f or not real:
            continue
        for p in PROPERTIES:
            a, b = Counter(str(x[p]) for x in real), Counter(str(x[p]) for x in f)
            tv = _tv(a, b)
            if tv >= DIFFERENT_TV:
                differences.append({"group": name, "property": p, "distance": round(tv, 3),
                                    "text": f"{p.replace('_', ' ')}: REAL {shares(a)}; {name} {shares(b)}"})  # fmt: skip
    return {"per_group": per_group, "seed": seed, "groups": summary, "differences": differences}
