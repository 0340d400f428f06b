"""`genspot compare`: train every model of the study, plus genspot's candidate, under one
protocol and seed, one after another, and write the study's table (and beat it).

Each model trains in `OUT/models/<name>/` as an ordinary `genspot train` run directory, so
a killed compare resumes: models with a `result.json` are not retrained, and the model in
flight continues from its last finished epoch.
"""

from __future__ import annotations

import json
import shutil
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from genspot.errors import GenspotError
from genspot.evaluate import evaluate
from genspot.progress import console
from genspot.recipes import study_recipe as recipe_for
from genspot.train import TrainConfig, fit, load_run_config

STUDY_MODELS = ["cifake_cnn", "vgg16", "efficientnet_b0", "efficientnetv2_b0", "vit_p2"]
CANDIDATE = "spot_resnet_s"
DEFAULT_MODELS = STUDY_MODELS + [CANDIDATE]

# What the study (10k / 5k / 5k subset) and the CIFAKE paper (full test split) reported.
REPORTED: dict[str, dict[str, float]] = {
    "cifake_cnn": {"paper": 0.9298},
    "vgg16": {"study": 0.8665},
    "efficientnet_b0": {"study": 0.7380},
    "efficientnetv2_b0": {"study": 0.9397},
    "vit_p2": {"study": 0.8845},
}


@dataclass
class CompareConfig:
    data: str
    out: str
    protocol: str = "study"
    models: list[str] = field(default_factory=lambda: list(DEFAULT_MODELS))
    epochs: int | None = None  # overrides every recipe
    seed: int = 0
    device: str = "auto"
    pretrained: dict[str, str] = field(default_factory=dict)  # model -> local weights file
    precision: str | None = None  # overrides every recipe (bf16 on a GPU)
    batch_size: int | None = None  # overrides every recipe (larger on a GPU)
    command: str = ""
    progress: bool = True
    train_sources: list[str] | None = None  # train on these sources' images only (genspot benchmark)


def _rows(cfg: CompareConfig) -> list[tuple[str, str, str | None]]:
    """(row name, model, pretrained file): every model from scratch, plus a second row for
    each model given pretrained weights."""
    rows: list[tuple[str, str, str | None]] = []
    for m in cfg.models:
        rows.append((m, m, None))
        if m in cfg.pretrained:
            rows.append((f"{m}+pretrained", m, cfg.pretrained[m]))
    return rows


def _train_config(model: str, cfg: CompareConfig, run_dir: Path, pretrained: str | None) -> TrainConfig:
    options = dict(recipe_for(model, cfg.protocol, cfg.epochs).options)  # the study-<model> recipe (recipes.py)
    kwargs = dict(options.pop("model_kwargs", {}))
    if pretrained and model == "vgg16":
        kwargs["freeze_blocks"] = 4  # the study's transfer set-up: only block 5 and the head learn
    options.update(model=model, data=cfg.data, out=str(run_dir), seed=cfg.seed, protocol=cfg.protocol, device=cfg.device,
                   pretrained=pretrained, model_kwargs=kwargs, progress=cfg.progress, train_sources=cfg.train_sources)  # fmt: skip
    options.update({k: v for k, v in (("batch_size", cfg.batch_size), ("precision", cfg.precision)) if v})  # compare's overrides
    return TrainConfig(**options)


def _init_text(model: str, pretrained: str | None) -> str:
    if not pretrained:
        return "from scratch"
    return f"pretrained ({Path(pretrained).name})" + (", blocks 1-4 frozen" if model == "vgg16" else "")


def _train_one(row: str, model: str, pretrained: str | None, cfg: CompareConfig, run_dir: Path) -> dict[str, Any]:
    """Train (or resume, or skip) one model and evaluate it; returns its result row."""
    result_file = run_dir / "result.json"
    if result_file.exists():
        console.print(f"  {model}: finished earlier, not retrained")
        result = json.loads(result_file.read_text())
        if "roc_curve" not in result["test"] and (run_dir / "model.safetensors").exists():
            # A result from before ROC points were recorded: re-score its test split (no retraining).
            ev = evaluate(run_dir, cfg.data, split="auto", progress=False)
            result["test"]["roc_curve"] = ev["roc_curve"]
            result_file.write_text(json.dumps(result, indent=2) + "\n")
        return result
    tcfg = _train_config(model, cfg, run_dir, pretrained)
    resume = (run_dir / "checkpoints" / "last.ckpt").exists()
    if resume:
        saved = load_run_config(run_dir)
        saved.progress = cfg.progress
        tcfg = saved
        console.print(f"  {model}: resuming from its last finished epoch")
    elif run_dir.exists():
        shutil.rmtree(run_dir)  # killed before its first epoch ended: nothing worth keeping
    summary = fit(tcfg, resume=resume)
    ev = evaluate(run_dir, cfg.data, split="auto", progress=False)
    rows = [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines() if ln]
    r = recipe_for(model, cfg.protocol, cfg.epochs)
    result = {
        "model": model,
        "row": row,
        "init": _init_text(model, pretrained),
        "parameters": summary["parameters"],
        "trainable_parameters": summary["trainable_parameters"],
        "epochs_run": len(rows),
        "median_epoch_seconds": statistics.median(x["epoch_seconds"] for x in rows),
        "train_images_per_second": statistics.median(x["images_per_second"] for x in rows),
        "best_val_accuracy": summary["best_val_accuracy"],
        "best_epoch": summary["best_epoch"],
        "test": {k: ev[k] for k in ("n", "accuracy", "accuracy_ci95", "precision", "recall", "f1", "roc_auc", "confusion_matrix", "roc_curve") if k in ev},
        "test_split": ev["split"],
        "inference_images_per_second": ev["images_per_second"],
        "reported": REPORTED.get(model, {}),
        "recipe": r.row() | {"precision": tcfg.precision, "model_kwargs": tcfg.model_kwargs},
        "val_curve": [x["val_accuracy"] for x in rows],
        "run_dir": str(run_dir),
    }
    result_file.write_text(json.dumps(result, indent=2) + "\n")
    return result


def _probe_seconds_per_image(model: str, cfg: CompareConfig) -> float:
    import torch
    import torch.nn.functional as F

    from genspot.models import create_model

    r = recipe_for(model, cfg.protocol, cfg.epochs)
    m = create_model(model, **r.model_kwargs).train()
    x, y = torch.randn(32, 3, 32, 32), torch.randint(0, 2, (32,))
    times = []
    for _ in range(3):
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=r.precision == "bf16"):
            loss = F.cross_entropy(m(x), y)
        loss.backward()
        times.append(time.perf_counter() - t)
    return min(times) / 32


def compare(cfg: CompareConfig) -> dict[str, Any]:
    """Train and evaluate every model in turn; write results.json, results.md and the plots."""
    out = Path(cfg.out)
    unknown = [m for m in cfg.pretrained if m not in cfg.models]
    if unknown:
        raise GenspotError(f"--pretrained names models not being compared: {', '.join(unknown)}")
    state = out / "compare.json"
    settings = {k: v for k, v in asdict(cfg).items() if k not in ("command", "progress", "out")}
    if state.exists():
        before = json.loads(state.read_text())
        if {k: before.get(k) for k in settings} != settings:  # options added since default to None
            raise GenspotError(f"{out} holds a comparison with other settings; use another --out")
    out.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps(settings, indent=2) + "\n")
    from genspot.models import model_entry

    for m in cfg.models:
        model_entry(m)  # fail on a typo before hours of training, not after
    # Overall ETA: a 3-step probe of each model's speed gives relative costs; the ratio of
    # actual to probed time so far scales what is left.
    rows = _rows(cfg)
    cost = {m: recipe_for(m, cfg.protocol, cfg.epochs).epochs * _probe_seconds_per_image(m, cfg) for m in cfg.models}
    t0 = time.perf_counter()
    results = []
    trained_cost = 0.0  # probed cost of the rows trained by this invocation
    for k, (row, model, pretrained) in enumerate(rows):
        r = recipe_for(model, cfg.protocol, cfg.epochs)
        spent = time.perf_counter() - t0
        left_cost = sum(cost[m] for _, m, _ in rows[k:])
        eta = f"; elapsed {spent / 60:.1f} min, ETA {spent / trained_cost * left_cost / 60:.0f} min" if trained_cost else ""
        console.rule(f"[bold]compare {k + 1}/{len(rows)}: {row}[/] ({r.epochs} epochs, {cfg.protocol} protocol{eta})")
        run_dir = out / "models" / row
        trained_here = not (run_dir / "result.json").exists()
        results.append(_train_one(row, model, pretrained, cfg, run_dir))
        if trained_here:
            trained_cost += cost[model]
    summary = {
        "command": cfg.command,
        "protocol": cfg.protocol,
        "seed": cfg.seed,
        "data": cfg.data,
        "wall_seconds_this_invocation": round(time.perf_counter() - t0, 1),
        "models": results,
    }
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    from genspot.report.compare_report import write_compare_report

    write_compare_report(summary, out)
    return summary
