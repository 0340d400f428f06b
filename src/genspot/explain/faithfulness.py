"""`genspot explain-eval`: which explanation is faithful to the model, measured.

On a fixed, seeded sample of held-out images, for each method (and a random-map baseline):
- ROAD (Rong et al. 2022, via pytorch-grad-cam): change in the target's softmax score when the
  most (MoRF) or least (LeRF) relevant pixels are removed by noisy linear imputation, averaged
  over percentiles; `road_combined` = (LeRF - MoRF) / 2, higher is more faithful.
- Deletion / insertion AUC (Petsiuk et al. 2018): the target's softmax score as pixels are
  removed (set to the dataset mean) or inserted into a blurred image, most relevant first, in
  16 steps; deletion lower is better, insertion higher is better.
- Model randomisation (Adebayo et al. 2018): the Spearman rank correlation between each map
  and the map of the same image under a randomly re-initialised model; a faithful method's
  maps change (correlation near 0), an edge detector's do not.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from genspot.data import load_dataset
from genspot.data.batches import normalize
from genspot.errors import GenspotError
from genspot.evaluate import select_indices
from genspot.explain.methods import METHODS, applicable_methods, explain_batch
from genspot.models.io import load_model_dir
from genspot.progress import progress_bar

STEPS = 16
ROAD_PERCENTILES = (20, 40, 60, 80)
# Higher or lower is better, for the table.
DIRECTION = {"road_combined": "higher", "road_morf": "lower", "road_lerf": "higher", "deletion_auc": "lower",
             "insertion_auc": "higher", "randomization_spearman": "near 0"}  # fmt: skip


def _scores(model: torch.nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.softmax(model(x).float(), 1).gather(1, target.view(-1, 1)).squeeze(1)


def deletion_insertion(model: torch.nn.Module, x: torch.Tensor, maps: np.ndarray, target: torch.Tensor,
                       steps: int = STEPS) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Per-image deletion and insertion AUC (mean score over the steps, trapezoidal)."""
    b, c, h, w = x.shape
    # Rank pixels by relevance; a tiny seeded jitter breaks ties (flat maps) without bias.
    g = torch.Generator().manual_seed(0)
    m = torch.from_numpy(maps).reshape(b, -1) + 1e-6 * torch.rand(b, h * w, generator=g)
    order = m.argsort(1, descending=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(h * w).expand(b, -1))
    baseline = torch.zeros_like(x)  # the dataset mean after normalisation
    blurred = F.avg_pool2d(F.pad(x, (4, 4, 4, 4), mode="reflect"), 9, stride=1)
    dels, ins = [], []
    for k in range(steps + 1):
        n_px = round(k / steps * h * w)
        mask = (rank < n_px).view(b, 1, h, w).to(x.dtype)  # 1 where the most relevant n_px pixels are
        dels.append(_scores(model, x * (1 - mask) + baseline * mask, target))
        ins.append(_scores(model, blurred * (1 - mask) + x * mask, target))
    d = torch.stack(dels, 1).numpy()
    i = torch.stack(ins, 1).numpy()
    return np.trapezoid(d, dx=1 / steps, axis=1), np.trapezoid(i, dx=1 / steps, axis=1)


def road_scores(model: torch.nn.Module, x: torch.Tensor, maps: np.ndarray, target: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    from pytorch_grad_cam.metrics.road import ROADLeastRelevantFirstAverage, ROADMostRelevantFirstAverage
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    targets = [ClassifierOutputSoftmaxTarget(int(t)) for t in target.tolist()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the library hands numpy a torch tensor
        morf = ROADMostRelevantFirstAverage(list(ROAD_PERCENTILES))(x, maps, targets, model)
        lerf = ROADLeastRelevantFirstAverage(list(ROAD_PERCENTILES))(x, maps, targets, model)
    return np.asarray(morf, dtype=np.float64).reshape(-1), np.asarray(lerf, dtype=np.float64).reshape(-1)


def spearman_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman correlation between matching rows of two (N, D) arrays."""
    ra = a.argsort(1).argsort(1).astype(np.float64)
    rb = b.argsort(1).argsort(1).astype(np.float64)
    ra -= ra.mean(1, keepdims=True)
    rb -= rb.mean(1, keepdims=True)
    den = np.sqrt((ra**2).sum(1) * (rb**2).sum(1))
    return np.where(den > 0, (ra * rb).sum(1) / np.where(den > 0, den, 1), 0.0)


def _maps(model, cfg, x, method, rng: np.random.Generator) -> tuple[np.ndarray, torch.Tensor]:
    if method == "random":
        with torch.no_grad():
            target = model(x).argmax(1)
        return rng.random((x.shape[0], x.shape[2], x.shape[3])).astype(np.float32), target
    quiet = contextlib.redirect_stderr(io.StringIO()) if method == "scorecam" else contextlib.nullcontext()
    with quiet:
        r = explain_batch(model, cfg, x, method=method, target="predicted")
    return r["maps"], torch.from_numpy(r["target"])


def evaluate_faithfulness(
    model_dir: str | Path,
    data: str | Path,
    out: str | Path,
    n: int = 1000,
    methods: list[str] | None = None,
    seed: int = 0,
    batch_size: int = 50,
    road: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    model, cfg = load_model_dir(model_dir)
    name = cfg.model
    methods = methods or applicable_methods(name)
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise GenspotError(f"unknown method(s): {', '.join(bad)}")
    ds = load_dataset(data, size=cfg.input_size, policy=cfg.input_policy, progress=progress)
    idx, split = select_indices(ds, cfg, "auto")
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(idx, size=min(n, len(idx)), replace=False))
    # The randomised model of the sanity check: same architecture, fresh weights.
    torch.manual_seed(seed + 1)
    rand_model = cfg.build().eval()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows: dict[str, dict[str, list]] = {m: {k: [] for k in DIRECTION} for m in methods + ["random"]}
    seconds = {m: 0.0 for m in rows}
    total = len(idx) * len(rows)
    with progress_bar("faithfulness", total=total, unit="img", enabled=progress) as bar:
        for start in range(0, len(idx), batch_size):
            sel = idx[start : start + batch_size]
            x = normalize(ds.images[torch.as_tensor(sel)], cfg.mean, cfg.std)
            for method in rows:
                t0 = time.perf_counter()
                torch.manual_seed(seed)  # ROAD's imputation noise: the same for every method
                maps, target = _maps(model, cfg, x, method, np.random.default_rng(seed + start))
                d, ins = deletion_insertion(model, x, maps, target)
                rows[method]["deletion_auc"] += d.tolist()
                rows[method]["insertion_auc"] += ins.tolist()
                if road:
                    morf, lerf = road_scores(model, x, maps, target)
                    rows[method]["road_morf"] += morf.tolist()
                    rows[method]["road_lerf"] += lerf.tolist()
                    rows[method]["road_combined"] += ((lerf - morf) / 2).tolist()
                if method != "random":
                    rmaps, _ = _maps(rand_model, cfg, x, method, np.random.default_rng(seed + start))
                    rows[method]["randomization_spearman"] += spearman_rows(
                        maps.reshape(len(sel), -1), rmaps.reshape(len(sel), -1)
                    ).tolist()
                seconds[method] += time.perf_counter() - t0
                bar.advance(len(sel))
    result = {
        "model": name,
        "model_dir": str(model_dir),
        "data": str(data),
        "split": split,
        "n": int(len(idx)),
        "seed": seed,
        "deletion_insertion_steps": STEPS,
        "road_percentiles": list(ROAD_PERCENTILES) if road else [],
        "direction": DIRECTION,
        "methods": {
            m: {k: (float(np.mean(v)) if v else None) for k, v in r.items()} | {"seconds": round(seconds[m], 2)}
            for m, r in rows.items()
        },
    }
    (out / "faithfulness.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "faithfulness.md").write_text(faithfulness_markdown(result))
    grid_image(model, cfg, ds, idx, methods, out / "grid.png", seed)
    return result


def best_method(result: dict[str, Any], metric: str = "road_combined") -> str | None:
    vals = {m: r[metric] for m, r in result["methods"].items() if m != "random" and r.get(metric) is not None}
    if not vals:
        return None
    return (min if DIRECTION[metric].startswith("lower") else max)(vals, key=vals.get)


def faithfulness_markdown(result: dict[str, Any], command: str | None = None) -> str:
    metrics = [k for k in DIRECTION if any(r.get(k) is not None for r in result["methods"].values())]
    lines = [f"# Faithfulness of explanations: {result['model']}", ""]
    if command:
        lines += ["```bash", command, "```", ""]
    lines += [
        f"n = {result['n']} images of `{result['data']}` ({result['split']}), seed {result['seed']}; "
        f"maps for the predicted class. Best per column in bold.",
        "",
        "| method | " + " | ".join(f"{k} ({DIRECTION[k]})" for k in metrics) + " | seconds |",
        "|---|" + "---:|" * (len(metrics) + 1),
    ]
    best = {}
    for k in metrics:
        vals = {m: r[k] for m, r in result["methods"].items() if r.get(k) is not None}
        if k == "randomization_spearman":
            best[k] = min(vals, key=lambda m: abs(vals[m])) if vals else None
        else:
            best[k] = (min if DIRECTION[k].startswith("lower") else max)(vals, key=vals.get) if vals else None
    for m, r in result["methods"].items():
        cells = []
        for k in metrics:
            v = r.get(k)
            s = "-" if v is None else f"{v:.4f}"
            cells.append(f"**{s}**" if best[k] == m else s)
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {r['seconds']:.1f} |")
    lines += ["", "![8 REAL and 8 FAKE images, each method](grid.png)", ""]
    return "\n".join(lines)


def grid_image(model, cfg, ds, idx: np.ndarray, methods: list[str], path: Path, seed: int, per_class: int = 8) -> None:
    """8 REAL and 8 FAKE images (rows) x the original and each method's overlay (columns)."""
    from PIL import Image, ImageDraw

    from genspot.explain.render import overlay

    labels = ds.labels.numpy()[idx]
    rng = np.random.default_rng(seed)
    picks = []
    for c in (0, 1):
        pool = idx[labels == c]
        picks += rng.choice(pool, size=min(per_class, len(pool)), replace=False).tolist()
    x_u8 = ds.images[torch.as_tensor(picks)]
    x = normalize(x_u8, cfg.mean, cfg.std)
    cols = [x_u8.numpy().transpose(0, 2, 3, 1)]
    for m in methods:
        maps, _ = _maps(model, cfg, x, m, np.random.default_rng(seed))
        cols.append(np.stack([overlay(img, mp) for img, mp in zip(cols[0], maps)]))
    cell, head = 64, 18
    canvas = Image.new("RGB", (cell * len(cols) + 60, cell * len(picks) + head), "white")
    draw = ImageDraw.Draw(canvas)
    for j, title in enumerate(["image"] + methods):
        draw.text((60 + j * cell + 2, 2), title, fill="black")
    for i in range(len(picks)):
        draw.text((2, head + i * cell + cell // 2 - 6), cfg.class_names[int(ds.labels[picks[i]])], fill="black")
        for j, col in enumerate(cols):
            canvas.paste(Image.fromarray(col[i]).resize((cell, cell), Image.Resampling.NEAREST), (60 + j * cell, head + i * cell))
    canvas.save(path)
