"""`genspot explain-eval --localise`: does a heat map point at the part of the image that was generated?

A splice (`genspot synth --op splice:...`) is a real photo with one region re-rendered by a
generator's decoder, and its mask says where: a ground truth no faithfulness score has. Over the
splices a model calls FAKE at its own threshold, each method's map for FAKE is scored against
the mask (binarised at 128):

- pointing game: is the map's maximum inside the mask (ties share the hit: a flat map scores the
  mask's area);
- mass inside: the share of the map's mass inside the mask, on the map before any per-image
  rescaling (ReLU'd and bilinearly resized only: a min-max would move mass);
- pixel ROC-AUC: how well the map's values separate mask pixels from the others;
- top-k IoU: IoU of the map's k most relevant pixels with the mask, k = the mask's area.

Each is a mean over splices with a 95% percentile bootstrap interval, beside two maps that know
nothing: a random map (i.i.d. uniform pixels, seeded) and a centred Gaussian (sigma S/4), the
centre bias every photo has. `patch` is the map of a model trained on patches (`--patch`): each
window of that size (stride half of it) scored on its own, a pixel's value the mean P(FAKE) of the
windows over it. Score-CAM (a forward pass per channel) runs on a seeded subsample, as do the
old faithfulness scores (deletion / insertion, ROAD), whose ranking of the methods is compared
with localisation's (Spearman over methods).
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch

from genspot.controls import auc
from genspot.data.batches import normalize
from genspot.errors import GenspotError
from genspot.evaluate import bootstrap_ci, predict_scores
from genspot.explain.methods import METHODS, applicable_methods, explain_batch
from genspot.progress import progress_bar, warn

METRICS = ("pointing_game", "mass_inside", "pixel_auc", "topk_iou")
BASELINES = ("random", "centre")
PATCH = "patch"
# The methods whose cost is one forward (and one backward) pass: the candidates for a model's
# default, if their measured time is within the latency bar (LATENCY_BAR x a prediction).
SINGLE_PASS = ("cam", "gradcam", "gradcam++", "layercam", "eigencam", "rollout")
LATENCY_BAR = 2.5
GRID_ROWS = 6
PRIMARY = "pointing_game"  # what picks the default (ties: pixel_auc), and what the page states


# -- masks ------------------------------------------------------------------------------------------
def mask_array(data: bytes, size: tuple[int, int], input_size: int, policy: str) -> np.ndarray:
    """A mask file -> bool (S, S) under the model's input policy, as its image is cropped or resized;
    an error if it cannot be read or is not the image's size."""
    from PIL import Image

    from genspot.data.image import input_array

    with Image.open(io.BytesIO(data)) as im:
        im.load()
        if im.size != tuple(size):
            raise GenspotError(f"mask is {im.size[0]}x{im.size[1]}, its image {size[0]}x{size[1]}")
        grey = im.convert("L")
    return input_array(grey.convert("RGB"), input_size, policy)[0] >= 128


class MaskIndex:
    """Where each splice's mask is: `<source>/masks/<stem>.png` beside the splice's class folder in
    its own archive, or, with `masks`, a folder or zip of `<stem>.png` or `masks/<stem>.png`."""

    def __init__(self, data_source, masks: str | Path | None = None) -> None:
        from genspot.data.sources import open_source

        self.own = data_source
        self.extra = open_source(masks) if masks is not None else None
        names = self.extra.names() if self.extra is not None else data_source.names()
        self.by_stem: dict[str, list[str]] = {}
        self.dirs: set[str] = set()
        for n in names:
            p = PurePosixPath(n)
            if p.suffix.lower() != ".png":
                continue
            if self.extra is None and p.parent.name.lower() != "masks":
                continue
            self.by_stem.setdefault(p.stem, []).append(n)
            if p.parent.name.lower() == "masks":
                self.dirs.add(str(p.parent.parent))

    def close(self) -> None:
        if self.extra is not None:
            self.extra.close()

    def has_masks(self, member: str) -> bool:
        """Whether a FAKE member is a splice, i.e. is expected to have a mask."""
        if self.extra is not None:
            return True
        return str(PurePosixPath(member).parent.parent) in self.dirs

    def find(self, member: str) -> tuple[bytes | None, str]:
        p = PurePosixPath(member)
        if self.extra is None:
            name = str(p.parent.parent / "masks" / f"{p.stem}.png")
            name = name[2:] if name.startswith("./") else name
            if name not in self.by_stem.get(p.stem, []):
                return None, "no mask"
            return self.own.read(name), name
        found = self.by_stem.get(p.stem, [])
        if len(found) > 1:  # the same stem under several folders: the one beside this member's source
            top = str(p.parent.parent)
            found = [f for f in found if str(PurePosixPath(f).parent.parent) == top or str(PurePosixPath(f).parent) == top]
        if len(found) != 1:
            return None, "no mask" if not found else f"{len(found)} masks match its stem"
        return self.extra.read(found[0]), found[0]


@dataclass
class Splices:
    idx: np.ndarray  # dataset indices, in the seeded sample's order
    masks: np.ndarray  # bool (N, S, S)
    counts: dict[str, int] = field(default_factory=dict)
    where: str = ""


def select_splices(ds, spec, masks: str | Path | None, sources: list[str] | None) -> Splices:
    """Every FAKE member with a usable mask among the images the model holds out (its validation
    photos when it was trained on this archive split by photo; else every image); counts of the
    ones skipped and why."""
    from genspot.crossgen import eval_indices
    from genspot.data.sources import open_source

    pool: list[int] = []
    where = "all FAKE images"
    wanted = sources or sorted(set(ds.sources[ds.labels.numpy() == 1].tolist()))
    unknown = [s for s in wanted if s not in set(ds.sources.tolist())]
    if unknown:
        raise GenspotError(f"no source {unknown[0][:100]!r} in {str(ds.source)[:200]}; it has {', '.join(sorted(set(ds.sources.tolist())))}")
    for s in wanted:
        idx, where = eval_indices(ds, spec, s)
        pool += [int(i) for i in idx if int(ds.labels[i]) == 1]
    counts = {"fake_images": 0, "splices": 0, "missing_mask": 0, "bad_mask": 0, "empty_mask": 0, "full_mask": 0}
    keep: list[int] = []
    kept: list[np.ndarray] = []
    src = open_source(ds.source)
    index = MaskIndex(src, masks)
    try:
        for i in sorted(pool):
            counts["fake_images"] += 1
            name = ds.paths[i]
            if not index.has_masks(name):
                continue
            counts["splices"] += 1
            data, why = index.find(name)
            if data is None:
                counts["missing_mask"] += 1
                warn(f"skipped {name}: {why}")
                continue
            try:
                m = mask_array(data, tuple(int(v) for v in ds.sizes[i]), spec.input_size, spec.input_policy)
            except Exception as e:  # noqa: BLE001 - one bad mask is reported, the rest scored
                counts["bad_mask"] += 1
                warn(f"skipped {name}: {why}: {str(e)[:200]}")
                continue
            if not m.any() or m.all():  # no region to find, or no outside to tell it from
                counts["empty_mask" if not m.any() else "full_mask"] += 1
                continue
            keep.append(i)
            kept.append(m)
    finally:
        index.close()
        src.close()
    if not keep:
        raise GenspotError(
            f"no splice with a usable mask in {str(ds.source)[:200]} ({counts['splices']} splices, {counts['missing_mask']} without "
            f"a mask, {counts['bad_mask']} unreadable or wrongly sized, {counts['empty_mask'] + counts['full_mask']} all-zero or all-one)"
        )
    return Splices(np.asarray(keep), np.stack(kept), counts, where)


# -- maps that know nothing, and the patch map ------------------------------------------------------
def baseline_maps(kind: str, b: int, size: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "random":
        return rng.random((b, size, size)).astype(np.float32)
    c = (np.arange(size) - (size - 1) / 2) / (size / 4)
    g = np.exp(-0.5 * (c[:, None] ** 2 + c[None, :] ** 2)).astype(np.float32)
    return np.broadcast_to(g, (b, size, size)).copy()


def training_patch(spec) -> int:
    """The patch size a model was trained on (0: the whole input)."""
    t = spec.raw.get("training") or {}
    p = int(t.get("patch") or 0)
    return p if 0 < p < spec.input_size else 0


def window_starts(size: int, patch: int, stride: int) -> list[int]:
    starts = list(range(0, size - patch + 1, stride))
    return starts if starts[-1] == size - patch else starts + [size - patch]


@torch.no_grad()
def patch_map(model: torch.nn.Module, spec, x: torch.Tensor, patch: int) -> np.ndarray:
    """(B, S, S): each pixel's mean P(FAKE) over the patch x patch windows (stride patch / 2) that hold it."""
    b, _, s, _ = x.shape
    starts = window_starts(s, patch, max(1, patch // 2))
    total = torch.zeros(b, s, s)
    count = torch.zeros(s, s)
    for top in starts:
        crops = torch.cat([x[:, :, top : top + patch, left : left + patch] for left in starts])  # (len(starts) B, ...)
        p = spec.p_fake(model(crops).float()).view(len(starts), b)
        for j, left in enumerate(starts):
            total[:, top : top + patch, left : left + patch] += p[j].view(b, 1, 1)
            count[top : top + patch, left : left + patch] += 1
    return (total / count).numpy()


# -- the metrics -------------------------------------------------------------------------------------
def pixel_auc(values: np.ndarray, inside: np.ndarray) -> float:
    """ROC-AUC of `values` separating `inside` pixels from the rest (controls.auc: Mann-Whitney, ties one half)."""
    return auc(inside.ravel().astype(np.int64), values.ravel())


def localisation_scores(raw: np.ndarray, masks: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """Per-image scores of (B, S, S) non-negative maps against bool masks."""
    out: dict[str, list[float]] = {k: [] for k in METRICS}
    rng = np.random.default_rng(seed)
    for r, m in zip(raw, masks):
        r = np.asarray(r, dtype=np.float64)
        flat, mf = r.ravel(), m.ravel()
        top = flat >= flat.max() - 1e-12 * max(1.0, abs(flat.max()))
        out["pointing_game"].append(float(mf[top].mean()))
        mass = flat.sum()
        out["mass_inside"].append(float(flat[mf].sum() / mass) if mass > 0 else float(mf.mean()))
        out["pixel_auc"].append(pixel_auc(flat, mf))
        k = int(mf.sum())
        jitter = rng.random(flat.size) * 1e-9 * (flat.std() + 1e-12)  # breaks ties at random, not by position
        chosen = np.argpartition(-(flat + jitter), k - 1)[:k]
        inter = int(mf[chosen].sum())
        out["topk_iou"].append(inter / (2 * k - inter))
    return {k: np.asarray(v) for k, v in out.items()}


def summarise(values: np.ndarray, seed: int) -> dict[str, Any]:
    lo, hi = bootstrap_ci(values, seed=seed)
    return {"mean": float(values.mean()), "ci": [lo, hi]}


def _ranks(v: list[float]) -> np.ndarray:
    """Ranks with ties averaged (CAM and Grad-CAM can give the very same map), as controls.auc ranks."""
    v = np.asarray(v, dtype=np.float64)
    s = np.sort(v)
    return (np.searchsorted(s, v, "left") + np.searchsorted(s, v, "right") + 1) / 2


def spearman(a: list[float], b: list[float]) -> float | None:
    if len(a) < 3:
        return None
    ra, rb = _ranks(a), _ranks(b)
    ra -= ra.mean()
    rb -= rb.mean()
    den = np.sqrt((ra**2).sum() * (rb**2).sum())
    return float((ra * rb).sum() / den) if den > 0 else None


# -- the run -----------------------------------------------------------------------------------------
@dataclass
class LocaliseConfig:
    model_dir: str
    data: str
    out: str
    masks: str | None = None
    sources: list[str] | None = None
    methods: list[str] | None = None  # default: every method in METHODS, plus patch
    n: int = 500  # splices in the seeded sample (of those the model calls FAKE)
    scorecam_n: int = 64
    faithfulness_n: int = 64  # deletion / insertion and ROAD on this many (0: skip)
    road: bool = True
    batch_size: int = 16
    seed: int = 0
    progress: bool = True


def _maps_for(method: str, model, spec, x: torch.Tensor, patch: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(scaled maps for drawing and the old metrics, raw maps for localisation), for FAKE."""
    if method in BASELINES:
        m = baseline_maps(method, x.shape[0], x.shape[-1], rng)
        return m, m
    if method == PATCH:
        raw = patch_map(model, spec, x, patch)
        lo = raw.reshape(len(raw), -1).min(1)[:, None, None]
        hi = raw.reshape(len(raw), -1).max(1)[:, None, None]
        return ((raw - lo) / np.maximum(hi - lo, 1e-12)).astype(np.float32), raw
    quiet = contextlib.redirect_stderr(io.StringIO()) if method == "scorecam" else contextlib.nullcontext()
    with quiet:  # Score-CAM draws a tqdm bar per batch
        r = explain_batch(model, spec, x, method=method, target="fake")
    return r["maps"], r["raw"]


def method_plan(spec, methods: list[str] | None) -> tuple[list[str], dict[str, str]]:
    """(methods that run, {method: why not applicable})."""
    from genspot.models.registry import model_entry

    asked = methods or [*METHODS, PATCH]
    bad = [m for m in asked if m not in (*METHODS, PATCH)]
    if bad:
        raise GenspotError(f"unknown method {bad[0][:100]!r}; choose from {', '.join((*METHODS, PATCH))}")
    ok = set(applicable_methods(spec.model))
    entry = model_entry(spec.model)
    na: dict[str, str] = {}
    run: list[str] = []
    for m in asked:
        if m == PATCH:
            if training_patch(spec):
                run.append(m)
            else:
                na[m] = "not trained on patches (--patch): its score of a small window means nothing"
        elif m in ok:
            run.append(m)
        elif m == "cam":
            na[m] = f"no CAM layer: {entry.cam_why or 'no global pooling followed by one linear layer'}"
        else:
            na[m] = "no attention to roll out" if m == "rollout" else "does not apply to this model"
    return run, na


def evaluate_localisation(cfg: LocaliseConfig) -> dict[str, Any]:
    from genspot.data import load_dataset
    from genspot.explain.faithfulness import deletion_insertion, road_scores
    from genspot.models.io import load_model_dir

    model, spec = load_model_dir(cfg.model_dir)
    model.eval()
    run, not_applicable = method_plan(spec, cfg.methods)
    not_run = {"scorecam": "not run (--scorecam-n 0)"} if "scorecam" in run and cfg.scorecam_n == 0 else {}
    run = [m for m in run if m not in not_run]
    ds = load_dataset(cfg.data, size=spec.input_size, policy=spec.input_policy, progress=cfg.progress)
    sp = select_splices(ds, spec, cfg.masks, cfg.sources)
    # Which of them the model calls FAKE at its own threshold: the maps explain that verdict.
    p = predict_scores(model, spec, ds, sp.idx, batch_size=cfg.batch_size, progress=cfg.progress)
    called = np.asarray([spec.label_of(float(v)) == "FAKE" for v in p])
    rng = np.random.default_rng(cfg.seed)
    order = rng.permutation(np.flatnonzero(called))[: cfg.n]
    counts = sp.counts | {"usable": len(sp.idx), "called_fake": int(called.sum()), "sample": len(order)}
    if not len(order):
        raise GenspotError(f"the model calls none of the {len(sp.idx)} splices FAKE at its threshold: nothing to localise")
    idx, masks = sp.idx[order], sp.masks[order]
    patch = training_patch(spec)
    all_methods = run + list(BASELINES)
    subsample = {m: min(cfg.scorecam_n, len(idx)) if m == "scorecam" else len(idx) for m in all_methods}
    per_image: dict[str, dict[str, list[float]]] = {m: {k: [] for k in METRICS} for m in all_methods}
    seconds = {m: 0.0 for m in all_methods}
    predict_seconds = 0.0
    fn = min(cfg.faithfulness_n, len(idx))
    old: dict[str, dict[str, list[float]]] = {m: {"deletion_auc": [], "insertion_auc": [], "road_combined": []} for m in all_methods}
    shown: dict[str, list[np.ndarray]] = {m: [] for m in run}  # the grid's maps: the first GRID_ROWS, as scored
    total = sum(subsample.values()) + (fn * len(all_methods) if fn else 0)
    with progress_bar("localising", total=total, unit="map", enabled=cfg.progress) as bar:
        for start in range(0, len(idx), cfg.batch_size):
            sel = idx[start : start + cfg.batch_size]
            x = normalize(ds.images[torch.as_tensor(sel)], spec.mean, spec.std)
            mk = masks[start : start + len(sel)]
            t0 = time.perf_counter()
            with torch.no_grad():
                model(x)
            predict_seconds += time.perf_counter() - t0
            for m in all_methods:
                n_here = max(0, min(len(sel), subsample[m] - start))
                if not n_here:
                    continue
                xb = x[:n_here]
                t0 = time.perf_counter()
                scaled, raw = _maps_for(m, model, spec, xb, patch, np.random.default_rng(cfg.seed + start))
                seconds[m] += time.perf_counter() - t0
                if m in shown and start < GRID_ROWS:
                    shown[m] += list(scaled[: GRID_ROWS - start])
                for k, v in localisation_scores(raw, mk[:n_here], cfg.seed + start).items():
                    per_image[m][k] += v.tolist()
                bar.advance(n_here)
                n_old = max(0, min(n_here, fn - start))
                if n_old:
                    target = torch.full((n_old,), spec.positive, dtype=torch.int64)
                    d, ins = deletion_insertion(model, xb[:n_old], scaled[:n_old], target)
                    old[m]["deletion_auc"] += d.tolist()
                    old[m]["insertion_auc"] += ins.tolist()
                    if cfg.road:
                        torch.manual_seed(cfg.seed)  # ROAD's imputation noise: the same for every method
                        morf, lerf = road_scores(model, xb[:n_old], scaled[:n_old], target)
                        old[m]["road_combined"] += ((lerf - morf) / 2).tolist()
                    bar.advance(n_old)
    rows: dict[str, Any] = {}
    predict_ms = 1000 * predict_seconds / len(idx)
    for m in all_methods:
        vals = {k: np.asarray(v) for k, v in per_image[m].items()}
        n_m = len(vals[PRIMARY])
        row: dict[str, Any] = {"n": n_m, "ms_per_image": round(1000 * seconds[m] / max(n_m, 1), 2)}
        row |= {k: summarise(v, cfg.seed) for k, v in vals.items()}
        row["first"] = {k: float(np.mean(v[:fn])) for k, v in vals.items()} if fn else {}  # on the old metrics' subsample
        row["old"] = {k: (float(np.mean(v)) if v else None) for k, v in old[m].items()}
        row["baseline"] = m in BASELINES
        if m not in BASELINES:
            row["latency_ratio"] = round(row["ms_per_image"] / predict_ms, 2) if predict_ms > 0 else None
        rows[m] = row
    result = {
        "model": spec.model,
        "model_dir": str(cfg.model_dir),
        "data": str(cfg.data),
        "masks": cfg.masks,
        "where": sp.where,
        "seed": cfg.seed,
        "counts": counts,
        "threshold": spec.fake_threshold,
        "predict_ms_per_image": round(predict_ms, 2),
        "latency_bar": LATENCY_BAR,
        "primary": PRIMARY,
        "methods": rows,
        "not_applicable": not_applicable,
        "not_run": not_run,
        "faithfulness_n": fn,
        "rank_agreement": rank_agreement(rows, fn),
    }
    result["best"] = best_localising(result)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "localise.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "localise.md").write_text(localise_markdown(result))
    grid_image(ds, idx, masks, shown, out / "grid.png")
    return result


def rank_agreement(rows: dict[str, Any], fn: int) -> dict[str, Any]:
    """Spearman over the (non-baseline) methods between each localisation score and each old score,
    all on the old metrics' subsample; deletion is negated so that higher is better everywhere."""
    # only the methods scored on the whole subsample (Score-CAM's may be smaller): one set of splices
    ms = [m for m, r in rows.items() if not r["baseline"] and r["first"] and r["n"] >= fn and r["old"].get("deletion_auc") is not None]
    if not fn or len(ms) < 3:
        return {}
    olds = {"deletion_auc": lambda r: -r["old"]["deletion_auc"], "insertion_auc": lambda r: r["old"]["insertion_auc"]}
    if all(rows[m]["old"].get("road_combined") is not None for m in ms):
        olds["road_combined"] = lambda r: r["old"]["road_combined"]
    return {"methods": ms, **{f"{loc}~{o}": spearman([rows[m]["first"][loc] for m in ms], [f(rows[m]) for m in ms])
                              for loc in METRICS for o, f in olds.items()}}  # fmt: skip


def best_localising(result: dict[str, Any]) -> dict[str, Any] | None:
    """The single-pass method within the latency bar that localises best (PRIMARY, ties pixel_auc)."""
    ok = {m: r for m, r in result["methods"].items()
          if m in SINGLE_PASS and r.get("latency_ratio") is not None and r["latency_ratio"] <= LATENCY_BAR}  # fmt: skip
    if not ok:
        return None
    m = max(ok, key=lambda k: (ok[k][PRIMARY]["mean"], ok[k]["pixel_auc"]["mean"]))
    r = ok[m]
    return {"method": m, PRIMARY: r[PRIMARY]["mean"], f"{PRIMARY}_ci": r[PRIMARY]["ci"], "pixel_auc": r["pixel_auc"]["mean"],
            "mass_inside": r["mass_inside"]["mean"], "n": r["n"], "latency_ratio": r["latency_ratio"], "data": result["data"]}  # fmt: skip


# -- reports -----------------------------------------------------------------------------------------
def _cell(s: dict[str, Any]) -> str:
    return f"{s['mean']:.3f} [{s['ci'][0]:.3f}, {s['ci'][1]:.3f}]"


def localise_markdown(result: dict[str, Any], command: str | None = None) -> str:
    c = result["counts"]
    lines = [f"# Localisation of heat maps: {result['model']}", ""]
    if command:
        lines += ["```bash", command, "```", ""]
    lines += [
        f"Splices of `{result['data']}` ({result['where']}): {c['splices']} splices, {c['usable']} with a usable mask "
        f"({c['missing_mask']} without one, {c['bad_mask']} unreadable or wrongly sized, {c['empty_mask']} all-zero and "
        f"{c['full_mask']} all-one masks skipped); the model calls {c['called_fake']} of them FAKE at its threshold "
        f"(P(FAKE) >= {result['threshold']:.3f}) and {c['sample']} of those are scored (seed {result['seed']}). "
        "Maps for FAKE; mean per splice with a 95% bootstrap interval. Higher is better in every column; "
        "the best method per column in bold; `random` and `centre` are maps that know nothing.",
        "",
        "| method | n | pointing game | mass inside | pixel ROC-AUC | top-k IoU | ms / image | x predict |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rows = result["methods"]
    best = {k: max((m for m in rows if not rows[m]["baseline"]), key=lambda m: rows[m][k]["mean"], default=None) for k in METRICS}
    for m, r in rows.items():
        cells = [(f"**{_cell(r[k])}**" if best[k] == m else _cell(r[k])) for k in METRICS]
        ratio = "" if r["baseline"] else f"{r['latency_ratio']:.1f}"
        lines.append(f"| {m} | {r['n']} | " + " | ".join(cells) + f" | {r['ms_per_image']:.1f} | {ratio} |")
    for m, why in result["not_applicable"].items():
        lines.append(f"| {m} | - | not applicable: {why} | | | | | |")
    for m, why in result.get("not_run", {}).items():
        lines.append(f"| {m} | - | {why} | | | | | |")
    lines += ["", f"Prediction alone: {result['predict_ms_per_image']:.1f} ms per image (batches of the run)."]
    b = result.get("best")
    if b:
        lines += [
            "",
            f"Best single-pass method within {result['latency_bar']}x a prediction, by {PRIMARY.replace('_', ' ')}: "
            f"**{b['method']}**, pointing inside the generated region in {100 * b[PRIMARY]:.0f}% of {b['n']} splices "
            f"[{100 * b[f'{PRIMARY}_ci'][0]:.0f}, {100 * b[f'{PRIMARY}_ci'][1]:.0f}].",
        ]
    fn = result["faithfulness_n"]
    if fn:
        lines += ["", f"## The old faithfulness scores on the first {fn} splices", "",
                  "| method | pointing game | pixel ROC-AUC | deletion AUC (lower better) | insertion AUC | ROAD combined |",
                  "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
        for m, r in rows.items():
            o = r["old"]
            f = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
            lines.append(f"| {m} | {r['first'][PRIMARY]:.3f} | {r['first']['pixel_auc']:.3f} | {f(o['deletion_auc'])} | "
                         f"{f(o['insertion_auc'])} | {f(o['road_combined'])} |")  # fmt: skip
        ra = result["rank_agreement"]
        if ra:
            lines += ["", f"Spearman over the {len(ra['methods'])} methods ({', '.join(ra['methods'])}) between the localisation "
                      "score (rows) and the old score (columns; deletion negated, so +1 means the same order):", ""]  # fmt: skip
            olds = [k.split("~")[1] for k in ra if k.startswith(f"{PRIMARY}~")]
            lines += ["| | " + " | ".join(olds) + " |", "|---|" + "---:|" * len(olds)]
            for loc in METRICS:
                vals = [ra.get(f"{loc}~{o}") for o in olds]
                lines.append(f"| {loc} | " + " | ".join("-" if v is None else f"{v:+.2f}" for v in vals) + " |")
    lines += ["", "![splices, their masks and each method's map](grid.png)", ""]
    return "\n".join(lines)


def grid_image(ds, idx: np.ndarray, masks: np.ndarray, shown: dict[str, list[np.ndarray]], path: Path) -> None:
    """The first scored splices (rows): the image, its mask, each method's map over the image (the
    maps the table scored; Score-CAM's only where it ran)."""
    from PIL import Image, ImageDraw

    from genspot.explain.render import overlay

    k = min(GRID_ROWS, len(idx))
    rgb = ds.images[torch.as_tensor(idx[:k])].numpy().transpose(0, 2, 3, 1)
    cols = [list(rgb), list(np.repeat((masks[:k, :, :, None] * 255).astype(np.uint8), 3, axis=3))]
    titles = ["splice", "mask"]
    for m, maps in shown.items():
        cols.append([overlay(img, mp) for img, mp in zip(rgb, maps)])
        titles.append(m)
    cell, head = 128, 18
    canvas = Image.new("RGB", (cell * len(cols), cell * k + head), "white")
    draw = ImageDraw.Draw(canvas)
    for j, t in enumerate(titles):
        draw.text((j * cell + 3, 3), t, fill="black")
    for j, col in enumerate(cols):
        for i, a in enumerate(col):
            canvas.paste(Image.fromarray(a).resize((cell, cell), Image.Resampling.BILINEAR), (j * cell, head + i * cell))
    canvas.save(path)


def store_default(model_dir: str, result: dict[str, Any]) -> dict[str, Any]:
    """Write the measured best method into the model directory's config.json ("explain")."""
    from genspot.models.io import read_spec, resolve_model_dir, write_config

    best = result.get("best")
    if not best:
        raise GenspotError(f"no single-pass method ran within {LATENCY_BAR}x a prediction: nothing to store")
    spec = read_spec(model_dir)
    write_config(spec.to_config(explain=best), resolve_model_dir(model_dir))
    return best
