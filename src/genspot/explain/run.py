"""`genspot explain`: stream images through a model in batches and write a heat map for each.

Memory stays flat whatever the input size: images are read, decoded, explained and written
one batch at a time. Unreadable inputs are reported and skipped.
"""

from __future__ import annotations

import contextlib
import io
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genspot.data.image import read_input
from genspot.data.inputs import DEFAULT_MAX_FILE_BYTES, count_inputs, iter_inputs
from genspot.explain.render import explanation_panel, safe_stem, save_png
from genspot.progress import progress_bar, warn


@dataclass
class ExplainSummary:
    written: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    rows: list[dict[str, Any]] = field(default_factory=list)


def _batches(paths: list[str], size: int, batch_size: int, summary: ExplainSummary, max_bytes: int, bar, mode: str):
    names: list[tuple[str, str]] = []
    arrays, facts = [], []
    for item in iter_inputs(paths, max_bytes):
        if item.error is None:
            try:  # decoded exactly as Detector.predict decodes, so the scores agree
                arr, f = read_input(item.data, size, mode)  # type: ignore[arg-type]
            except Exception as e:  # noqa: BLE001 - one bad file must not stop the rest
                item.error = f"not a readable image: {e}"
        if item.error is not None:
            warn(f"skipped {item.name}: {item.error}")
            summary.errors.append((item.name, item.error))
            bar.advance(1)
            continue
        names.append((item.name, item.rel))
        arrays.append(arr)
        facts.append(f)
        if len(names) == batch_size:
            yield names, np.stack(arrays), facts
            names, arrays, facts = [], [], []
    if names:
        yield names, np.stack(arrays), facts


def _write_panel(chw: np.ndarray, heat: np.ndarray, caption: str, path: Path) -> None:
    save_png(explanation_panel(chw.transpose(1, 2, 0), heat, caption), path)


def explain_paths(
    paths: list[str],
    detector: Any,
    out: str | Path,
    method: str | None = None,
    target: str = "predicted",
    layer: str | None = None,
    batch_size: int = 64,
    progress: bool = True,
    write_png: bool = True,
    max_bytes: int = DEFAULT_MAX_FILE_BYTES,
    mode: str = "auto",
) -> ExplainSummary:
    """Explain every image under `paths` with a loaded Detector (`detector`); writes
    `<name>_<method>.png` and `.npy` into `out`; `method` None is the model's default. `mode` (auto, resize or crop) says which S x S
    pixels are explained, as in predict.

    Scores and targets come from Detector.explain_arrays: the same p_fake as `genspot predict`."""
    from genspot.errors import GenspotError

    det = detector
    method = method or det.spec.default_method  # the model's measured best, else Grad-CAM
    mode = det.resolve_mode(mode)
    if mode == "tiles":
        raise GenspotError("a heat map explains one S x S input: use mode auto, resize or crop (tiles mode has its tile map)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = ExplainSummary()
    used: dict[str, int] = {}
    t0 = time.perf_counter()
    # PNG encoding releases the GIL: a writer thread overlaps it with the next batch's maps.
    # At most one batch is in flight, so memory stays flat.
    writer = ThreadPoolExecutor(max_workers=2)
    previous: list = []  # PNG writes of the batch before this one
    total = count_inputs(paths) if progress else None
    with writer, progress_bar(f"explaining ({method})", total=total, unit="img", enabled=progress) as bar:
        for names, arr, facts in _batches(paths, det.size, batch_size, summary, max_bytes, bar, mode):
            quiet = contextlib.redirect_stderr(io.StringIO()) if method == "scorecam" else contextlib.nullcontext()
            with quiet:  # Score-CAM draws a tqdm bar per image
                r = det.explain_arrays(torch.from_numpy(arr), method=method, target=target, layer=layer, facts=facts, mode=mode)
            current = []
            for i, (name, rel) in enumerate(names):
                stem = safe_stem(rel or name)
                used[stem] = used.get(stem, 0) + 1
                if used[stem] > 1:
                    stem = f"{stem}-{used[stem]}"
                heat = r["maps"][i]
                np.save(out / f"{stem}_{method}.npy", heat.astype(np.float32))
                p, verdict, tgt = float(r["p_fake"][i]), r["labels"][i], r["targets"][i]
                if write_png:
                    caption = f"{verdict}  p(fake)={p:.3f}   {method} for {tgt}   layer {r['layer']}"
                    current.append(writer.submit(_write_panel, arr[i], heat, caption, out / f"{stem}_{method}.png"))
                dom, why = r["domains"][i]
                summary.rows.append({"path": name, "label": verdict, "p_fake": p, "target": tgt, "file": f"{stem}_{method}",
                                     "domain": dom, "domain_reason": why})  # fmt: skip
            for f in previous:  # bound the queue to one batch (and surface write errors)
                f.result()
            previous = current
            summary.written += len(names)
            bar.advance(len(names))
        for f in previous:
            f.result()
    summary.seconds = time.perf_counter() - t0
    return summary
