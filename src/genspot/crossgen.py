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
"""

from __future__ import annotations

import json
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


def eval_indices(ds, spec: ModelSpec, source: str) -> tuple[np.ndarray, str]:
    """The held-out images of one source for a model, and how they were chosen (see the module's docstring)."""
    from genspot.data.splits import splits_from_config

    pool_split = spec.data.source_split
    mine = ds.sources == source
    held = [s for s in ("test", "val") if s in set(ds.splits.tolist()) and s != pool_split]
    if held:
        return np.flatnonzero(mine & np.isin(ds.splits, held)), "/".join(held) + " split"
    if source in (spec.data.sources or ()):
        val = splits_from_config(ds, spec.data).val
        return val[ds.sources[val] == source], "the model's validation split"
    return np.flatnonzero(mine), "all its images (not trained on)"


def score_sources(model_dir: str | Path, ds, sources: list[str]) -> list[dict[str, Any]]:
    from genspot.evaluate import per_source_metrics, predict_scores
    from genspot.models.io import load_model_dir

    model, cfg = load_model_dir(model_dir)
    rows = []
    for src in sources:
        idx, how = eval_indices(ds, cfg, src)
        if len(idx) == 0:
            rows.append({"source": src, "n": 0, "accuracy": None, "note": "no held-out images of this source", "chosen": how})
            continue
        p = predict_scores(model, cfg, ds, idx)
        row = per_source_metrics(ds.sources[idx], ds.labels.numpy()[idx], p)[0]
        row["chosen"] = how
        row["trained_on"] = src in (cfg.data.sources or ())
        rows.append(row)
    return rows


def benchmark(cfg: BenchmarkConfig) -> dict[str, Any]:
    from genspot.compare import _train_one
    from genspot.data import load_dataset

    ds = load_dataset(cfg.data, progress=cfg.progress)
    known = sorted(set(ds.sources.tolist()))
    tests = cfg.test_sources or known
    missing = sorted((set(tests) | set(cfg.train_sources)) - set(known))
    if missing:
        raise GenspotError(f"no source {', '.join(missing)} in {cfg.data}; it has: {', '.join(known)}")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    compare_cfg = _compare_config(cfg)
    results = []
    for model in cfg.models:
        console.print(f"[bold]{model}[/]: train on {', '.join(cfg.train_sources)}", highlight=False)
        trained = _train_one(model, model, None, compare_cfg, out / "models" / model)
        rows = score_sources(out / "models" / model, ds, tests)
        scored = [r["accuracy"] for r in rows if r["accuracy"] is not None]
        unseen = [r["accuracy"] for r in rows if r["accuracy"] is not None and not r.get("trained_on")]
        results.append({"model": model, "parameters": trained["parameters"], "best_val_accuracy": trained["best_val_accuracy"],
                        "sources": rows, "mean_accuracy": float(np.mean(scored)) if scored else None,
                        "mean_unseen_accuracy": float(np.mean(unseen)) if unseen else None})  # fmt: skip
    summary = {"data": cfg.data, "train_sources": cfg.train_sources, "test_sources": tests, "protocol": cfg.protocol,
               "seed": cfg.seed, "command": cfg.command, "models": results}  # fmt: skip
    (out / "benchmark.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "benchmark.md").write_text(benchmark_markdown(summary))
    return summary


def _compare_config(cfg: BenchmarkConfig):
    from genspot.compare import CompareConfig

    return CompareConfig(data=cfg.data, out=cfg.out, protocol=cfg.protocol, models=cfg.models, epochs=cfg.epochs, seed=cfg.seed,
                         device=cfg.device, precision=cfg.precision, batch_size=cfg.batch_size, command=cfg.command,
                         progress=cfg.progress, train_sources=cfg.train_sources)  # fmt: skip


def benchmark_markdown(s: dict[str, Any]) -> str:
    tests = s["test_sources"]
    lines = [f"# Cross-generator benchmark: trained on {', '.join(s['train_sources'])}", "", "```bash", s["command"], "```", "",
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
    return "\n".join(lines)
