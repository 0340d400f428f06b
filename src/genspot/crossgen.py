"""`genspot benchmark`: the field's cross-generator protocol. Train on one generator (or a few),
test on every generator, one row per model and one column per generator plus the mean, as the
tables of NPR (Tan et al., CVPR 2024) and GenImage (Zhu et al., NeurIPS 2023) are laid out. A
single pooled accuracy hides the generator a detector fails on; this table shows it.

Each model trains on the images of `train_sources` only (validation carved from them as in
`genspot train`), in `OUT/models/<name>/`, with the same recipes as `genspot compare`, so a killed
benchmark resumes. Each test source is scored on its held-out images: those in the archive's
`test` or `val` split when it has one (GenImage's `val`, CNNDetection's `test`); else, for a
source the model trained on, its images in the model's validation split, and for any other
source, all of its images.

Models already trained (`--model-dir NAME=DIR`, e.g. on an aligned archive from `genspot synth`)
are scored, not trained, each on the data decoded as it sees it (its input size and policy). A
model trained with `group_by="stem"` is scored on its validation photos only: every source's
members whose stem (the photo they were made from) fell in its validation split, so a probe
(`identity`, `up:*`) is never measured on a photo the model trained on. Such a model also gets
the aligned controls (genspot.controls): the `identity` probe's ROC-AUC against its own photos
with a bootstrap interval, and the share of hard-negative reals called FAKE. `--test-data
NAME=PATH` scores a seeded, class-balanced sample of another labelled archive (CIFAKE, faces256).
Every share is at each model's own decision threshold (config.json "threshold", else 0.5).
"""

from __future__ import annotations

import json
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from genspot.errors import GenspotError
from genspot.models.spec import ModelSpec
from genspot.progress import console


@dataclass
class BenchmarkConfig:
    data: str
    out: str
    models: list[str]
    train_sources: list[str]
    model_dirs: dict[str, str] = field(default_factory=dict)  # NAME -> trained model directory, scored only
    test_data: dict[str, str] = field(default_factory=dict)  # NAME -> another labelled archive, sampled
    sample: int = 250  # images per class drawn from each --test-data archive
    test_sources: list[str] | None = None  # None: every source in the data
    protocol: str = "full"
    epochs: int | None = None
    seed: int = 0
    device: str = "auto"
    precision: str | None = None
    batch_size: int | None = None
    progress: bool = True
    command: str = ""
    extra: dict = field(default_factory=dict)


# The model's split of a dataset, rebuilt once per (dataset, model data spec) rather than once per
# source: eval_indices runs for every source of a benchmark or a localisation run.
# Keyed by id (a DecodedSet is an unhashable dataclass), dropped when the dataset is collected.
_SPLITS: dict[int, dict[str, Any]] = {}


def _model_split(ds, data):
    from genspot.data.splits import splits_from_config

    per_ds = _SPLITS.get(id(ds))
    if per_ds is None:
        per_ds = _SPLITS[id(ds)] = {}
        weakref.finalize(ds, _SPLITS.pop, id(ds), None)
    key = repr(data)
    if key not in per_ds:
        per_ds[key] = splits_from_config(ds, data)
    return per_ds[key]


def eval_indices(ds, spec: ModelSpec, source: str) -> tuple[np.ndarray, str]:
    """The held-out images of one source for a model, and how they were chosen (see the module's docstring)."""
    pool_split = spec.data.source_split
    mine = ds.sources == source
    held = [s for s in ("test", "val") if s in set(ds.splits.tolist()) and s != pool_split]
    if held:
        return np.flatnonzero(mine & np.isin(ds.splits, held)), "/".join(held) + " split"
    if spec.data.group_by == "stem" and spec.data.fingerprint == ds.fingerprint:
        from pathlib import PurePosixPath

        stem = lambda i: PurePosixPath(ds.paths[i]).stem  # noqa: E731
        val_stems = {stem(i) for i in _model_split(ds, spec.data).val}
        idx = np.flatnonzero(mine)
        return idx[np.fromiter((stem(i) in val_stems for i in idx), bool, len(idx))], "the model's validation photos"
    if source in (spec.data.sources or ()):
        val = _model_split(ds, spec.data).val
        return val[ds.sources[val] == source], "the model's validation split"
    return np.flatnonzero(mine), "all its images (not trained on)"


def score_sources(model_dir: str | Path, ds, sources: list[str]) -> list[dict[str, Any]]:
    from genspot.controls import auc_ci
    from genspot.evaluate import FPR_POINTS, per_source_metrics, predict_scores, tpr_at_fpr
    from genspot.models.io import load_model_dir

    model, cfg = load_model_dir(model_dir)
    rows = []
    for src in sources:
        idx, how = eval_indices(ds, cfg, src)
        if len(idx) == 0:
            rows.append({"source": src, "n": 0, "accuracy": None, "note": "no held-out images of this source", "chosen": how})
            continue
        p = predict_scores(model, cfg, ds, idx)
        y = ds.labels.numpy()[idx]
        row = per_source_metrics(ds.sources[idx], y, p, threshold=cfg.fake_threshold)[0]
        if row["roc_auc"] is not None:
            row["roc_auc_ci95"] = list(auc_ci(y, p)[1:])
            row["tpr_at_fpr"] = {f"{f:g}": tpr_at_fpr(y, p, f) for f in FPR_POINTS}
        row["chosen"] = how
        row["trained_on"] = src in (cfg.data.sources or ())
        rows.append(row)
    return rows


def benchmark(cfg: BenchmarkConfig) -> dict[str, Any]:
    from genspot.compare import _train_one
    from genspot.data import load_dataset

    if not cfg.models and not cfg.model_dirs:
        raise GenspotError("nothing to benchmark: name models to train (--models, --train-sources) or trained ones (--model-dir)")
    if cfg.models and not cfg.train_sources:
        raise GenspotError("training --models needs --train-sources")
    datasets: dict[tuple[int, str], Any] = {}

    def data_as(size: int = 32, policy: str = "resize"):
        if (size, policy) not in datasets:  # decoded once per input size and policy
            datasets[size, policy] = load_dataset(cfg.data, size=size, policy=policy, progress=cfg.progress)
        return datasets[size, policy]

    ds = data_as()
    known = sorted(set(ds.sources.tolist()))
    tests = cfg.test_sources or known
    missing = sorted((set(tests) | set(cfg.train_sources)) - set(known))
    if missing:
        raise GenspotError(f"no source {', '.join(missing)} in {cfg.data}; it has: {', '.join(known)}")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    if cfg.models:
        compare_cfg = _compare_config(cfg)
    for model in cfg.models:
        console.print(f"[bold]{model}[/]: train on {', '.join(cfg.train_sources)}", highlight=False)
        trained = _train_one(model, model, None, compare_cfg, out / "models" / model)
        rows = score_sources(out / "models" / model, ds, tests)
        results.append(_result_row(model, trained["parameters"], trained["best_val_accuracy"], rows))
    for name, model_dir in cfg.model_dirs.items():
        from genspot.models.io import load_model_dir

        from genspot.models import count_parameters

        net, spec = load_model_dir(model_dir)
        params = count_parameters(net)[0]
        best = (spec.raw.get("best") or {}).get("val_accuracy")
        console.print(f"[bold]{name}[/]: scoring {model_dir} ({spec.input_size} px, {spec.input_policy})", highlight=False)
        dsm = data_as(spec.input_size, spec.input_policy)
        row = _result_row(name, params, best, score_sources(model_dir, dsm, tests))
        row["model_dir"], row["threshold"] = str(model_dir), spec.fake_threshold
        row["controls"] = aligned_controls(net, spec, dsm, row["sources"], cfg.seed)
        row["test_data"] = {k: score_sample(model_dir, v, cfg.sample, cfg.seed) for k, v in cfg.test_data.items()}
        results.append(row)
    summary = {"data": cfg.data, "train_sources": cfg.train_sources, "test_sources": tests, "protocol": cfg.protocol,
               "seed": cfg.seed, "command": cfg.command, "sample_per_class": cfg.sample if cfg.test_data else None,
               "models": results}  # fmt: skip
    (out / "benchmark.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "benchmark.md").write_text(benchmark_markdown(summary))
    return summary


def _result_row(name: str, parameters: int | None, best_val: float | None, rows: list[dict[str, Any]]) -> dict[str, Any]:
    scored = [r["accuracy"] for r in rows if r["accuracy"] is not None]
    unseen = [r["accuracy"] for r in rows if r["accuracy"] is not None and not r.get("trained_on")]
    return {"model": name, "parameters": parameters, "best_val_accuracy": best_val, "sources": rows,
            "mean_accuracy": float(np.mean(scored)) if scored else None,
            "mean_unseen_accuracy": float(np.mean(unseen)) if unseen else None}  # fmt: skip


def aligned_controls(model, spec: ModelSpec, ds, rows: list[dict[str, Any]], seed: int) -> dict[str, Any] | None:
    """The aligned controls on a stem-grouped model's validation photos: the `identity` probe
    against its own photos (its row of score_sources: ROC-AUC and interval, not scored again)
    and hard-negative reals (share called FAKE)."""
    from genspot.controls import hard_negative_rates

    if spec.data.group_by != "stem" or spec.data.fingerprint != ds.fingerprint:
        return None
    res: dict[str, Any] = {}
    ident = next((r for r in rows if r["source"] == "identity" and r.get("roc_auc") is not None), None)
    if ident is not None:
        a, (lo, hi) = ident["roc_auc"], ident["roc_auc_ci95"]
        res["identity_auc"] = {"auc": a, "ci95": [lo, hi], "n": ident["n"], "holds": bool(a <= 0.55 and lo <= 0.5 <= hi)}
    first = (spec.data.sources or sorted(set(ds.sources.tolist())))[0]  # one copy of each validation photo
    idx, _ = eval_indices(ds, spec, first)
    reals = idx[ds.labels.numpy()[idx] == 0]
    hn = hard_negative_rates(model, spec, ds.images[reals], seed=seed)
    hn["holds"] = bool(hn["all"]["called_fake"] <= 0.05)
    res["hard_negatives"] = hn
    return res


def score_sample(model_dir: str | Path, path: str, n_per_class: int, seed: int) -> dict[str, Any]:
    """A model on a seeded, class-balanced sample of another labelled archive: the share of its
    fakes called FAKE and of its photos called FAKE, with Wilson intervals."""
    from genspot.controls import score_u8, wilson
    from genspot.data.sample import sample_labelled
    from genspot.models.io import load_model_dir

    model, spec = load_model_dir(model_dir)
    s = sample_labelled(path, n_per_class, seed, spec.input_size, spec.input_policy)
    called = score_u8(model, spec, s.images) >= spec.fake_threshold
    res: dict[str, Any] = {"path": path, "skipped": s.skipped}
    for label, key in ((1, "fake_called_fake"), (0, "real_called_fake")):
        m = s.labels == label
        k, n = int(called[m].sum()), int(m.sum())
        res[key] = {"n": n, "share": k / n if n else None, "ci95": list(wilson(k, n))}
    return res


def _compare_config(cfg: BenchmarkConfig):
    from genspot.compare import CompareConfig

    return CompareConfig(data=cfg.data, out=cfg.out, protocol=cfg.protocol, models=cfg.models, epochs=cfg.epochs, seed=cfg.seed,
                         device=cfg.device, precision=cfg.precision, batch_size=cfg.batch_size, command=cfg.command,
                         progress=cfg.progress, train_sources=cfg.train_sources)  # fmt: skip


def benchmark_markdown(s: dict[str, Any]) -> str:
    tests = s["test_sources"]
    trained = f": trained on {', '.join(s['train_sources'])}" if s["train_sources"] else ""
    lines = [f"# Cross-generator benchmark{trained}", "", "```bash", s["command"], "```", "",
             "Accuracy on each source's held-out images (a source the model trained on is marked *); "
             "mean over every source, and over the sources it never saw.", "",
             "| model | " + " | ".join(t + ("*" if t in s["train_sources"] else "") for t in tests) + " | mean | mean unseen |",
             "|---|" + "---:|" * (len(tests) + 2)]  # fmt: skip
    f = lambda v: "-" if v is None else f"{100 * v:.2f}%"  # noqa: E731
    for m in s["models"]:
        by = {r["source"]: r for r in m["sources"]}
        lines.append(f"| {m['model']} | " + " | ".join(f(by[t]["accuracy"]) for t in tests) + f" | {f(m['mean_accuracy'])} | {f(m['mean_unseen_accuracy'])} |")
    lines += ["", "Held-out images per source: " + "; ".join(f"{r['source']}: {r['n']:,} ({r['chosen']})" for r in s["models"][0]["sources"]) + "."
              if s["models"] else "", ""]  # fmt: skip
    aligned = [m for m in s["models"] if m.get("controls") is not None or m.get("test_data")]
    if aligned:
        lines += aligned_markdown(aligned, tests)
    return "\n".join(lines)


def aligned_markdown(models: list[dict[str, Any]], tests: list[str]) -> list[str]:
    """The trained-model section: shares called FAKE at each model's threshold, separation per
    source, and the controls."""
    pct = lambda v: "-" if v is None else f"{100 * v:.1f}%"  # noqa: E731
    ci = lambda lo, hi: f" [{100 * lo:.1f}, {100 * hi:.1f}]"  # noqa: E731
    extra = sorted({k for m in models for k in (m.get("test_data") or {})})
    head = ["photos"] + [f"{t} fakes" for t in tests] + ["hard negatives"] + [f"{k} {c}" for k in extra for c in ("fakes", "photos")]
    lines = ["## Called FAKE at each model's threshold", "",
             "Share of each set called FAKE (fakes: higher is better; photos, hard negatives and the "
             "probes `identity` and `up:*`, which are photos only re-encoded or resampled: lower is better). "
             "Photos are the validation photos' own images; other data is a seeded sample.", "",
             "| model | threshold | " + " | ".join(head) + " |", "|---|---:|" + "---:|" * len(head)]  # fmt: skip
    for m in models:
        by = {r["source"]: r for r in m["sources"]}
        first = next((r for r in m["sources"] if r.get("real_correct") is not None and r.get("trained_on")), None)
        cells = [pct(None if first is None else 1 - first["real_correct"])]
        cells += [pct(by[t].get("fake_detected")) for t in tests]
        hn = (m.get("controls") or {}).get("hard_negatives")
        cells.append("-" if hn is None else pct(hn["all"]["called_fake"]) + ci(*hn["all"]["ci95"]))
        for k in extra:
            d = (m.get("test_data") or {}).get(k)
            for key in ("fake_called_fake", "real_called_fake"):
                cells.append("-" if d is None or d[key]["share"] is None else pct(d[key]["share"]) + ci(*d[key]["ci95"]))
        lines.append(f"| {m['model']} | {m.get('threshold', 0.5):.3g} | " + " | ".join(cells) + " |")
    lines += ["", "## Each source against its own photos", "",
              "ROC-AUC [95% bootstrap interval] and the share of fakes caught when the cut lets 1% / 5% of "
              "those photos through (an oracle's operating point, as the field reports it).", "",
              "| model | " + " | ".join(tests) + " |", "|---|" + "---:|" * len(tests)]  # fmt: skip
    for m in models:
        by = {r["source"]: r for r in m["sources"]}
        cells = []
        for t in tests:
            r = by[t]
            if r.get("roc_auc") is None:
                cells.append("-")
                continue
            tp = r.get("tpr_at_fpr") or {}
            cells.append(f"{r['roc_auc']:.3f} [{r['roc_auc_ci95'][0]:.3f}, {r['roc_auc_ci95'][1]:.3f}]; "
                         f"{pct(tp.get('0.01'))} / {pct(tp.get('0.05'))}")  # fmt: skip
        lines.append(f"| {m['model']} | " + " | ".join(cells) + " |")
    lines += ["", "## Controls", "", "| model | `identity` vs its photos: ROC-AUC (<= 0.55, interval holding 0.5) | "
              "hard negatives called FAKE (<= 5%): blur / rescale / JPEG |", "|---|---|---|"]  # fmt: skip
    for m in models:
        c = m.get("controls") or {}
        ia, hn = c.get("identity_auc"), c.get("hard_negatives")
        a = "-" if ia is None else f"{ia['auc']:.3f} [{ia['ci95'][0]:.3f}, {ia['ci95'][1]:.3f}] ({'holds' if ia['holds'] else 'FAILS'})"
        h = "-" if hn is None else (" / ".join(pct(hn[k]["called_fake"]) for k in ("blur", "rescale", "jpeg"))
                                    + f" ({'holds' if hn['holds'] else 'FAILS'})")  # fmt: skip
        lines.append(f"| {m['model']} | {a} | {h} |")
    return lines + [""]
