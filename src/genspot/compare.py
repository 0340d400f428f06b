"""`genspot compare`: train every model of the study, plus genspot's candidate, under one
protocol and seed, one after another, and write the study's table (and beat it).

Each model trains in `OUT/models/<name>/` as an ordinary `genspot train` run directory, so
a killed compare resumes: models with a `result.json` are not retrained, and the model in
flight continues from its last finished epoch.
"""

from __future__ import annotations

import dataclasses
import gc
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
PROTOCOLS = ("study", "full", "aligned")

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
    budget: float | None = None  # minutes of wall clock per model, validations included (plan_epochs)
    image_size: int | None = None  # the aligned protocol's input size (default 256)


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
    options = dict(recipe_for(model, cfg.protocol, cfg.epochs, cfg.image_size).options)  # the study-<model> recipe (recipes.py)
    kwargs = dict(options.pop("model_kwargs", {}))
    if pretrained and model == "vgg16":
        kwargs["freeze_blocks"] = 4  # the study's transfer set-up: only block 5 and the head learn
    options.setdefault("protocol", cfg.protocol)  # the aligned recipe names the split protocol it trains under
    options.update(model=model, data=cfg.data, out=str(run_dir), seed=cfg.seed, device=cfg.device,
                   pretrained=pretrained, model_kwargs=kwargs, progress=cfg.progress, train_sources=cfg.train_sources,
                   time_budget=cfg.budget or 0.0)  # fmt: skip
    options.update({k: v for k, v in (("batch_size", cfg.batch_size), ("precision", cfg.precision)) if v})  # compare's overrides
    return TrainConfig(**options)


# An epoch's estimate is padded by this much before epochs are fitted into a budget: the probe times
# the network alone, not the batches' augmentation (JPEG re-encodes under --augment aligned). Measured
# on the aligned protocol, one core per model, two side by side (2026-12-07): real epochs took 1.07x
# (vit_p2) to 1.34x (efficientnet_b0) the estimate, median 1.25; with 1.1, one run of seven was cut.
ESTIMATE_MARGIN = 1.3


@dataclass
class Plan:
    """What a budget allows one model: epochs of a full schedule, from a probe of its speed."""

    epochs: int
    step_seconds: float  # one training step at the recipe's batch and input
    val_image_seconds: float  # one validation image at the full input size
    train_steps: int  # per epoch
    val_images: int
    estimated_epoch_seconds: float

    def row(self) -> dict[str, Any]:
        return asdict(self)


def plan_epochs(tcfg: TrainConfig, budget_minutes: float) -> Plan:
    """How many epochs of `tcfg` fit in the budget, validations included: a probe times a few
    training steps and a validation batch of the network on random input at the recipe's sizes,
    and the run's own split gives the number of steps and validation images. Zero epochs means the
    model cannot finish one in the budget, and it is reported as such instead of trained."""
    from genspot.train import dataset_and_splits

    _, splits = dataset_and_splits(dataclasses.replace(tcfg, progress=False))
    steps = max(1, len(splits.train) // tcfg.batch_size)
    step_s, val_s = probe_seconds(tcfg.model, tcfg.image_size, tcfg.patch or tcfg.image_size, tcfg.batch_size, tcfg.precision,
                                  tcfg.model_kwargs)  # fmt: skip
    est = steps * step_s + len(splits.val) * val_s
    epochs = int(60 * budget_minutes // (ESTIMATE_MARGIN * est))
    return Plan(epochs, round(step_s, 4), round(val_s, 5), steps, len(splits.val), round(est, 3))


def probe_seconds(model: str, image_size: int, train_size: int, batch: int, precision: str = "32",
                  kwargs: dict[str, Any] | None = None) -> tuple[float, float]:
    """Seconds per training step (batch x train_size^2, forward, backward and an AdamW step; best of
    3 after a warm-up) and per validation image (image_size^2, a batch of 8) of a fresh `model`."""
    import torch
    import torch.nn.functional as F

    from genspot.models import create_model
    from genspot.models.registry import sized_kwargs

    m = create_model(model, num_classes=2, **sized_kwargs(model, image_size, kwargs)).to(memory_format=torch.channels_last).train()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-4)
    cl = torch.channels_last
    x, y = torch.randn(batch, 3, train_size, train_size).contiguous(memory_format=cl), torch.randint(0, 2, (batch,))
    bf16 = precision == "bf16"
    times = []
    for _ in range(4):
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(m(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t)
    m.eval()
    v = torch.randn(8, 3, image_size, image_size).contiguous(memory_format=cl)
    val = []
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for _ in range(2):
            t = time.perf_counter()
            m(v)
            val.append((time.perf_counter() - t) / len(v))
    return min(times[1:]), val[-1]


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
        if result.get("test") and "roc_curve" not in result["test"] and (run_dir / "model.safetensors").exists():
            # A result from before ROC points were recorded: re-score its test split (no retraining).
            ev = evaluate(run_dir, cfg.data, split="auto", progress=False)
            result["test"]["roc_curve"] = ev["roc_curve"]
            result_file.write_text(json.dumps(result, indent=2) + "\n")
        return result
    tcfg = _train_config(model, cfg, run_dir, pretrained)
    resume = (run_dir / "checkpoints" / "last.ckpt").exists()
    plan = None
    if resume:
        saved = load_run_config(run_dir)
        saved.progress = cfg.progress
        tcfg = saved
        console.print(f"  {model}: resuming from its last finished epoch")
    else:
        if run_dir.exists():
            shutil.rmtree(run_dir)  # killed before its first epoch ended: nothing worth keeping
        if cfg.budget:
            plan = plan_epochs(tcfg, cfg.budget)
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "plan.json").write_text(json.dumps(plan.row(), indent=2) + "\n")
            if plan.epochs == 0:
                return _over_budget(row, model, pretrained, cfg, tcfg, plan, run_dir)
            tcfg.epochs = plan.epochs
            console.print(f"  {model}: {plan.epochs} epochs fit {cfg.budget:g} minutes (an epoch estimated at "
                          f"{plan.estimated_epoch_seconds / 60:.1f} min)")  # fmt: skip
    if cfg.budget and plan is None and (run_dir / "plan.json").exists():
        plan = Plan(**json.loads((run_dir / "plan.json").read_text()))
    summary = fit(tcfg, resume=resume)
    ev = evaluate(run_dir, cfg.data, split="auto", progress=False)
    rows = [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines() if ln]
    r = recipe_for(model, cfg.protocol, cfg.epochs, cfg.image_size)
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
        "recipe": r.row() | {"precision": tcfg.precision, "model_kwargs": tcfg.model_kwargs, "epochs": tcfg.epochs},
        "val_curve": [x["val_accuracy"] for x in rows],
        "run_dir": str(run_dir),
        "trained": True,
    }
    if cfg.budget:
        result["budget"] = {"minutes": cfg.budget, "plan": plan.row() if plan else None,
                            "stopped_by_budget": summary.get("stopped_by_budget"),
                            "fit_minutes": round(sum(x["epoch_seconds"] for x in rows) / 60, 2)}  # fmt: skip
    result_file.write_text(json.dumps(result, indent=2) + "\n")
    return result


def _over_budget(row: str, model: str, pretrained: str | None, cfg: CompareConfig, tcfg: TrainConfig, plan: Plan,
                 run_dir: Path) -> dict[str, Any]:
    """The row of a model that cannot finish one epoch in the budget: measured speed, no accuracy."""
    from genspot.models import count_parameters, create_model
    from genspot.models.registry import sized_kwargs

    total, trainable = count_parameters(create_model(model, num_classes=2, **sized_kwargs(model, tcfg.image_size, tcfg.model_kwargs)))
    r = recipe_for(model, cfg.protocol, cfg.epochs, cfg.image_size)
    console.print(f"  {model}: cannot finish an epoch in {cfg.budget:g} minutes (estimated "
                  f"{plan.estimated_epoch_seconds / 60:.1f} min); not trained")  # fmt: skip
    result = {
        "model": model, "row": row, "init": _init_text(model, pretrained), "parameters": total, "trainable_parameters": trainable,
        "trained": False, "epochs_run": 0, "median_epoch_seconds": plan.estimated_epoch_seconds, "train_images_per_second": None,
        "best_val_accuracy": None, "best_epoch": None, "test": None, "test_split": None, "inference_images_per_second": None,
        "reported": REPORTED.get(model, {}), "recipe": r.row() | {"precision": tcfg.precision, "model_kwargs": tcfg.model_kwargs},
        "val_curve": [], "run_dir": str(run_dir),
        "budget": {"minutes": cfg.budget, "plan": plan.row(), "stopped_by_budget": None, "fit_minutes": 0.0},
    }  # fmt: skip
    (run_dir / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def _probe_seconds_per_image(model: str, cfg: CompareConfig) -> float:
    """A model's training cost per image under its recipe, for compare's overall ETA."""
    if cfg.budget:
        return cfg.budget  # every model gets the same minutes
    r = recipe_for(model, cfg.protocol, cfg.epochs, cfg.image_size)
    step, _ = probe_seconds(model, r.image_size, r.patch or r.image_size, 32, r.precision, r.model_kwargs)
    return r.epochs * step / 32


def compare(cfg: CompareConfig) -> dict[str, Any]:
    """Train and evaluate every model in turn; write results.json, results.md and the plots."""
    out = Path(cfg.out)
    # Options checked before anything is written to --out.
    if cfg.protocol not in PROTOCOLS:
        raise GenspotError(f"unknown protocol {cfg.protocol[:100]!r}; choose one of {', '.join(PROTOCOLS)}")
    if cfg.protocol == "aligned":
        from genspot.data.sources import is_aligned

        if not is_aligned(cfg.data):
            raise GenspotError(f"--protocol aligned needs an archive made by genspot synth (<source>/0_real, <source>/1_fake); {str(cfg.data)[:200]} is not one")
    if cfg.image_size is not None and cfg.protocol != "aligned":
        raise GenspotError("--image-size applies to the aligned protocol; the study and full protocols are CIFAKE's 32 px")
    if cfg.budget is not None and cfg.budget <= 0:
        raise GenspotError(f"--budget must be a positive number of minutes, got {cfg.budget}")
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
    cost = {m: _probe_seconds_per_image(m, cfg) for m in cfg.models}
    t0 = time.perf_counter()
    results = []
    trained_cost = 0.0  # probed cost of the rows trained by this invocation
    for k, (row, model, pretrained) in enumerate(rows):
        r = recipe_for(model, cfg.protocol, cfg.epochs, cfg.image_size)
        spent = time.perf_counter() - t0
        left_cost = sum(cost[m] for _, m, _ in rows[k:])
        eta = f"; elapsed {spent / 60:.1f} min, ETA {spent / trained_cost * left_cost / 60:.0f} min" if trained_cost else ""
        length = f"{cfg.budget:g} minutes" if cfg.budget else f"{r.epochs} epochs"
        console.rule(f"[bold]compare {k + 1}/{len(rows)}: {row}[/] ({length}, {cfg.protocol} protocol{eta})")
        run_dir = out / "models" / row
        trained_here = not (run_dir / "result.json").exists()
        results.append(_train_one(row, model, pretrained, cfg, run_dir))
        gc.collect()  # Lightning's trainer, module and callbacks hold each other: free one model's run before the next
        if trained_here:
            trained_cost += cost[model]
    summary = {
        "command": cfg.command,
        "protocol": cfg.protocol,
        "seed": cfg.seed,
        "data": cfg.data,
        "wall_seconds_this_invocation": round(time.perf_counter() - t0, 1),
        "budget": cfg.budget,
        "models": results,
    }
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    from genspot.report.compare_report import write_compare_report

    write_compare_report(summary, out)
    return summary
