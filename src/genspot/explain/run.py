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

from genspot.data.batches import normalize
from genspot.data.decode import decode_bytes
from genspot.data.inputs import iter_inputs
from genspot.explain.methods import explain_batch
from genspot.explain.render import explanation_panel, safe_stem, save_png
from genspot.models.io import load_model_dir
from genspot.progress import progress_bar, warn


@dataclass
class ExplainSummary:
    written: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    rows: list[dict[str, Any]] = field(default_factory=list)


def _batches(paths: list[str], size: int, batch_size: int, summary: ExplainSummary):
    names: list[tuple[str, str]] = []
    arrays = []
    for item in iter_inputs(paths):
        if item.error is None:
            try:
                arr, _ = decode_bytes(item.data, size)  # type: ignore[arg-type]
            except Exception as e:  # noqa: BLE001 - one bad file must not stop the rest
                item.error = f"not a readable image: {e}"
        if item.error is not None:
            warn(f"skipped {item.name}: {item.error}")
            summary.errors.append((item.name, item.error))
            continue
        names.append((item.name, item.rel))
        arrays.append(arr)
        if len(names) == batch_size:
            yield names, np.stack(arrays)
            names, arrays = [], []
    if names:
        yield names, np.stack(arrays)


def _write_panel(chw: np.ndarray, heat: np.ndarray, caption: str, path: Path) -> None:
    save_png(explanation_panel(chw.transpose(1, 2, 0), heat, caption), path)


def explain_paths(
    paths: list[str],
    model_dir: str | Path,
    out: str | Path,
    method: str = "gradcam",
    target: str = "predicted",
    layer: str | None = None,
    batch_size: int = 64,
    progress: bool = True,
    write_png: bool = True,
) -> ExplainSummary:
    """Explain every image under `paths`; writes `<name>_<method>.png` and `.npy` into `out`."""
    model, cfg = load_model_dir(model_dir)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    size = int(cfg.get("input_size", 32))
    summary = ExplainSummary()
    used: dict[str, int] = {}
    t0 = time.perf_counter()
    # PNG encoding releases the GIL: a writer thread overlaps it with the next batch's maps.
    # At most one batch is in flight, so memory stays flat.
    writer = ThreadPoolExecutor(max_workers=2)
    previous: list = []  # PNG writes of the batch before this one
    with writer, progress_bar(f"explaining ({method})", total=None, unit="img", enabled=progress) as bar:
        for names, arr in _batches(paths, size, batch_size, summary):
            x_u8 = torch.from_numpy(arr)
            x = normalize(x_u8, cfg["mean"], cfg["std"])
            quiet = contextlib.redirect_stderr(io.StringIO()) if method == "scorecam" else contextlib.nullcontext()
            with quiet:  # Score-CAM draws a tqdm bar per image
                r = explain_batch(model, cfg, x, method=method, target=target, layer=layer)
            current = []
            for i, (name, rel) in enumerate(names):
                stem = safe_stem(rel or name)
                used[stem] = used.get(stem, 0) + 1
                if used[stem] > 1:
                    stem = f"{stem}-{used[stem]}"
                heat = r["maps"][i]
                np.save(out / f"{stem}_{method}.npy", heat.astype(np.float32))
                p = float(r["p_fake"][i])
                verdict = "FAKE" if p >= 0.5 else "REAL"
                tgt = cfg["class_names"][int(r["target"][i])]
                if write_png:
                    caption = f"{verdict}  p(fake)={p:.3f}   {method} for {tgt}   layer {r['layer']}"
                    current.append(writer.submit(_write_panel, arr[i], heat, caption, out / f"{stem}_{method}.png"))
                summary.rows.append({"path": name, "label": verdict, "p_fake": p, "target": tgt, "file": f"{stem}_{method}"})
            for f in previous:  # bound the queue to one batch (and surface write errors)
                f.result()
            previous = current
            summary.written += len(names)
            bar.advance(len(names))
        for f in previous:
            f.result()
    summary.seconds = time.perf_counter() - t0
    return summary
