"""Training: a LightningModule over genspot's tensor batches, and `fit`, which writes a
model directory (best epoch on validation) plus `metrics.jsonl`, and resumes a killed run.

Outputs in the run directory:
  model.safetensors, config.json   the best epoch so far (rewritten whenever val accuracy improves)
  metrics.jsonl                    one line per finished epoch
  run.json                         the options of the run (what --resume continues with)
  checkpoints/last.ckpt            full state after the last finished epoch (for --resume)
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import math
import os
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import (
    Callback,
    EarlyStopping,
    EMAWeightAveraging,
    RichProgressBar,
)

from genspot import __version__
from genspot.data import LABELS, Splits, load_dataset, make_splits
from genspot.data.batches import Batches, scoring_batch
from genspot.errors import GenspotError
from genspot.models import IMAGENET_MEAN, IMAGENET_STD, count_parameters, create_model
from genspot.models.registry import sized_kwargs
from genspot.models.io import save_model_dir
from genspot.models.spec import ModelSpec
from genspot.progress import console
from genspot.train_config import LIGHTNING_PRECISIONS, TrainConfig  # noqa: F401 - TrainConfig is train's API too



class EMA(EMAWeightAveraging):
    """An exponential moving average of the weights, updated after every optimizer step.
    Lightning swaps the average in for validation, so the logged val metrics, the exported
    model and checkpoints' `state_dict` are the average's.

    BatchNorm statistics are not averaged but recomputed for the averaged weights before each
    validation, over the first `bn_batches` training batches of the epoch: an average of
    running statistics does not match averaged weights (measured on CIFAKE, epoch 3 of a 0.999
    run: 57.7% with averaged statistics, 95.95% with recomputed ones, same weights)."""

    def __init__(self, decay: float, bn_batches: int = 100) -> None:
        super().__init__(decay=decay, use_buffers=False)
        self.bn_batches = bn_batches

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # The average is a deep copy of pl_module: hold its data shards (the whole image set)
        # and this callback aside meanwhile, so that only the network is copied.
        held = pl_module.shards, pl_module.ema
        pl_module.shards, pl_module.ema = (), None
        try:
            super().setup(trainer, pl_module, stage)
        finally:
            pl_module.shards, pl_module.ema = held

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_epoch_start(trainer, pl_module)  # the average in, the training weights aside
        if self._average_model is not None and pl_module.shards:
            recompute_bn(pl_module.model, pl_module.shards[0], self.bn_batches)
        if trainer.world_size > 1 and torch.distributed.is_initialized():
            # Under DDP each rank's BatchNorm statistics differ (plain DDP re-broadcasts rank 0's before
            # every forward; here each rank recomputed the average's on its own shard, and the weights
            # held aside get no sync): validate both with rank 0's, the ones that are saved.
            for m in (pl_module, self.other()):
                for buf in m.buffers():
                    torch.distributed.broadcast(buf.data, src=0)

    def other(self) -> torch.nn.Module:
        """The zoo model held aside: the average outside validation, the training weights
        during it (the two are swapped in place). Always in eval mode: it is only scored."""
        assert self._average_model is not None, "EMA.other() before fit began"
        return self._average_model.module.model.eval()


def recompute_bn(model: torch.nn.Module, batches: Batches, n_batches: int) -> None:
    """BatchNorm running statistics of `model` as they are for its current weights: the plain
    mean over up to `n_batches` batches in train mode (torch's `update_bn`, which puts momentum
    and mode back as they were)."""
    torch.optim.swa_utils.update_bn(itertools.islice(batches, n_batches), model)


class Classifier(L.LightningModule):
    """Cross-entropy training of any zoo model; logs val loss and accuracy per epoch (and with
    an EMA, the accuracy of the training weights beside the average's)."""

    def __init__(self, model: torch.nn.Module, cfg: TrainConfig, steps_per_epoch: int, shards: tuple = ()) -> None:
        super().__init__()
        self.model, self.cfg, self.steps_per_epoch = model, cfg, steps_per_epoch
        self.shards = shards  # the train and val Batches, sharded per rank in setup()
        self.ema: EMA | None = None
        self._val: list[torch.Tensor] = []
        self._train_loss: list[torch.Tensor] = []
        # SAM takes two forward-backward passes per step, which Lightning's automatic loop cannot express.
        self.automatic_optimization = cfg.sam <= 0
        self._sam_parts: tuple[list, list] | None = None  # (trainable parameters, BatchNorm layers)
        # --profile: seconds per part of this epoch's steps (CPU wall clock; on CUDA the parts are
        # not synchronised, so only their sum means much there)
        self.times: dict[str, float] = dict.fromkeys(("forward", "backward", "optimizer"), 0.0)
        self._t_backward = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def _loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.model(x), y, label_smoothing=self.cfg.label_smoothing)

    def training_step(self, batch, _idx):
        x, y = batch
        t0 = time.perf_counter()
        if self.cfg.sam > 0:
            loss = self._sam_step(x, y)  # both passes and the step: counted as forward under --profile
        else:
            loss = self._loss(x, y)
        self.times["forward"] += time.perf_counter() - t0
        self._train_loss.append(loss.detach())
        return loss

    def on_before_backward(self, loss: torch.Tensor) -> None:
        self._t_backward = time.perf_counter()

    def on_after_backward(self) -> None:
        self.times["backward"] += time.perf_counter() - self._t_backward

    def optimizer_step(self, epoch, batch_idx, optimizer, optimizer_closure=None) -> None:
        # Lightning runs the closure (forward and backward) inside the optimizer's step: the
        # optimizer's own share is the step's time less theirs.
        inside = self.times["forward"] + self.times["backward"]
        t0 = time.perf_counter()
        super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        self.times["optimizer"] += time.perf_counter() - t0 - (self.times["forward"] + self.times["backward"] - inside)

    def _sam_step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One step of sharpness-aware minimisation (Foret et al. 2021): the gradient is taken at
        the worst point within an L2 ball of radius rho around the weights, then applied to the
        weights themselves. Costs two forward-backward passes per batch."""
        opt, sched = self.optimizers(), self.lr_schedulers()
        if self._sam_parts is None:  # found once: the module walk is not per step
            self._sam_parts = (
                [p for p in self.model.parameters() if p.requires_grad],
                [m for m in self.model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)],
            )
        params, bns = self._sam_parts
        loss = self._loss(x, y)
        self.manual_backward(loss)
        with torch.no_grad():
            grads = [p.grad for p in params]
            norm = torch.norm(torch.stack([g.norm(2) for g in grads if g is not None]), 2)
            scale = self.cfg.sam / (norm + 1e-12)
            # An overflowed fp16 gradient (inf) would perturb the weights to NaN: skip the ascent
            # then, and let the grad scaler skip the step as it does without SAM.
            ok = bool(torch.isfinite(norm))
            eps = [g * scale if g is not None and ok else None for g in grads]
            for p, e in zip(params, eps):
                if e is not None:
                    p.add_(e)
        opt.zero_grad()
        # BatchNorm's running statistics keep the first pass's batch only: the second pass sees
        # perturbed weights, whose activations are not the model's.
        momenta = [m.momentum for m in bns]
        for m in bns:
            m.momentum = 0.0
        self.manual_backward(self._loss(x, y))
        for m, mom in zip(bns, momenta):
            m.momentum = mom
        with torch.no_grad():
            for p, e in zip(params, eps):
                if e is not None:
                    p.sub_(e)
        opt.step()
        opt.zero_grad()
        if sched is not None:
            sched.step()
        return loss

    def on_train_epoch_start(self) -> None:
        self._train_loss.clear()
        self.times = dict.fromkeys(self.times, 0.0)
        if self.shards:
            self.shards[0].seconds = 0.0

    def validation_step(self, batch, _idx):
        x, y = batch
        logits = self.model(x).float()
        loss = F.cross_entropy(logits, y, reduction="sum")
        correct = (logits.argmax(1) == y).sum()
        # With an EMA, also score the training weights (held aside during validation) on the
        # same images: what the average bought, paired, at the cost of a second forward pass.
        raw_correct = (self.ema.other()(x).argmax(1) == y).sum() if self.ema is not None else correct
        n = torch.tensor(float(len(y)), device=loss.device)
        self._val.append(torch.stack([loss, correct.float(), n, raw_correct.float()]))

    def on_validation_epoch_start(self) -> None:
        self._val.clear()

    def setup(self, stage: str) -> None:
        # DDP: each rank trains and validates on its own shard of the seeded order.
        for b in self.shards:
            b.shard(self.global_rank, self.trainer.world_size)

    def on_validation_epoch_end(self) -> None:
        local = torch.stack(self._val).sum(0) if self._val else torch.zeros(4, device=self.device)
        # Sum the shards' (loss, correct, n, raw_correct) over ranks: exact accuracy, whatever the shard sizes.
        loss, correct, n, raw_correct = self.all_gather(local).reshape(-1, 4).sum(0)
        self.log("val_loss", loss / n)
        self.log("val_acc", correct / n, prog_bar=True)
        if self.ema is not None:
            self.log("val_acc_raw", raw_correct / n)
        if self._train_loss:
            self.log("train_loss", torch.stack(self._train_loss).mean(), sync_dist=True)

    def configure_optimizers(self):
        cfg = self.cfg
        decay, no_decay = [], []
        for p in self.model.parameters():
            if p.requires_grad:
                # Weight decay on norms and biases only hurts; the usual split.
                (no_decay if p.ndim <= 1 else decay).append(p)
        groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        lr = cfg.learning_rate
        if cfg.optimizer == "sgd":
            opt = torch.optim.SGD(groups, lr=lr, momentum=0.9, nesterov=True)
        elif cfg.optimizer == "adamw":
            opt = torch.optim.AdamW(groups, lr=lr)
        else:
            opt = torch.optim.Adam(groups, lr=lr)
        total = cfg.epochs * (len(self.shards[0]) if self.shards else self.steps_per_epoch)
        if cfg.schedule == "onecycle" and total >= 8:
            # Warm up over a quarter of the run (at least 2 steps: OneCycleLR divides by the phase length).
            sched = torch.optim.lr_scheduler.OneCycleLR(
                opt, max_lr=lr, total_steps=total, pct_start=max(0.25, 3.0 / total), div_factor=10.0, final_div_factor=100.0
            )
        elif cfg.schedule in ("cosine", "onecycle"):  # a run too short for a warm-up: cosine decay
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
        else:
            return opt
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class EpochLog(Callback):
    """Appends one JSON line per finished epoch to metrics.jsonl (rank 0 only)."""

    def __init__(self, path: Path, n_train: int, profile: bool = False) -> None:
        self.path, self.n_train, self.profile = path, n_train, profile
        self._t0 = self._t_val = 0.0
        self._checked = False
        self._steps = 0  # steps this epoch: fewer than the epoch's when --time-budget cut it

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if not self._checked:
            # The first epoch of this process: a resumed run redoes the epoch that was
            # interrupted, so drop any line already written for it (or later ones).
            self._checked = True
            if trainer.is_global_zero and self.path.exists():
                start = trainer.current_epoch
                keep = [ln for ln in self.path.read_text().splitlines() if ln and json.loads(ln)["epoch"] < start]
                self.path.write_text("".join(ln + "\n" for ln in keep))
        self._t0 = time.perf_counter()
        self._t_val = 0.0
        self._steps = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._steps += 1

    def on_validation_start(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self._t_val = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        now = time.perf_counter()
        train_s = (self._t_val or now) - self._t0
        m = trainer.callback_metrics
        per_epoch = trainer.num_training_batches  # this rank's steps per epoch (DDP shards the batches)
        share = min(1.0, self._steps / per_epoch) if isinstance(per_epoch, int) and per_epoch > 0 else 1.0
        row = {
            "epoch": trainer.current_epoch,
            "train_loss": _f(m.get("train_loss")),
            "val_loss": _f(m.get("val_loss")),
            "val_accuracy": _f(m.get("val_acc")),
            **({"val_accuracy_raw": _f(m["val_acc_raw"])} if "val_acc_raw" in m else {}),
            "lr": _f(trainer.optimizers[0].param_groups[0]["lr"]),
            "epoch_seconds": round(now - self._t0, 3),
            "train_seconds": round(train_s, 3),
            "images_per_second": round(share * self.n_train / train_s, 1) if train_s > 0 else None,
            **({"epoch_share": round(share, 4)} if share < 1.0 else {}),  # a cut epoch: the share of its steps that ran
            "finished_at": round(time.time(), 3),  # unix time: minutes-to-accuracy counts from the command's start
        }
        if self.profile:
            parts = {"batches": pl_module.shards[0].seconds if pl_module.shards else 0.0, **pl_module.times}
            parts["other"] = train_s - sum(parts.values())  # Lightning's loop, logging, zero_grad, the LR schedule
            parts["validation"] = now - self._t0 - train_s
            row["profile"] = {k: round(v, 3) for k, v in parts.items()}
        if trainer.is_global_zero:
            with self.path.open("a") as f:
                f.write(json.dumps(row) + "\n")


class ExportBest(Callback):
    """Writes model.safetensors + config.json whenever validation accuracy improves: the weights
    that were validated, i.e. the EMA's when there is one."""

    def __init__(self, out: Path, spec: ModelSpec, ema: EMA | None = None) -> None:
        self.out, self.spec, self.ema = out, spec, ema
        self.best = -1.0

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        acc = _f(trainer.callback_metrics.get("val_acc"))
        if acc is None or acc <= self.best:
            return
        self.best = acc
        if trainer.is_global_zero:
            best = {"epoch": trainer.current_epoch, "val_accuracy": acc, "val_loss": _f(trainer.callback_metrics.get("val_loss"))}
            cfg = self.spec.to_config(best=best)
            # By on_validation_end Lightning has swapped the training weights back into pl_module.
            model = self.ema.other() if self.ema is not None else pl_module.model
            save_model_dir(getattr(model, "_orig_mod", model), cfg, self.out)  # unwrap torch.compile

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best = state_dict["best"]


class LastCheckpoint(Callback):
    """Saves the full training state after every finished epoch, atomically, for --resume.

    Runs after EpochLog: if a kill lands between the two, the resumed run redoes that
    epoch and EpochLog drops its stale line.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        tmp = self.path.with_suffix(".tmp")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        trainer.save_checkpoint(str(tmp))
        if trainer.is_global_zero:
            os.replace(tmp, self.path)


class TimeBudget(Callback):
    """Stops the fit at the first training step past a wall-clock budget (seconds counted from the
    start of this process's fit, validations included). Lightning then validates the weights where
    they stopped, so the cut epoch gets a metrics line like any other; `stopped_in_epoch` says which."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._t0 = 0.0
        self.stopped_in_epoch: int | None = None
        self.steps_in_epoch = 0  # steps the cut epoch ran

    def on_train_start(self, trainer, pl_module) -> None:
        self._t0 = time.perf_counter()

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.steps_in_epoch = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.steps_in_epoch += 1
        if self.stopped_in_epoch is None and time.perf_counter() - self._t0 >= self.seconds:
            trainer.should_stop = True
            self.stopped_in_epoch = trainer.current_epoch


def _f(v) -> float | None:
    if v is None:
        return None
    return float(v.item() if torch.is_tensor(v) else v)


def _quiet_lightning() -> None:
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*The number of training batches.*")
    warnings.filterwarnings("ignore", message=".*treat_as_fastvaluemodule.*")
    warnings.filterwarnings("ignore", message=".*Checkpoint directory .* exists and is not empty.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise GenspotError("--device cuda was asked for, but no CUDA device is available")
    return device


def input_policy(cfg: TrainConfig) -> str:
    """How images become the model's input: resize at 32 px, as CIFAKE was made; above it, the
    centre crop at native resolution, since resampling erases the traces a detector reads."""
    return cfg.input_policy or ("resize" if cfg.image_size == 32 else "crop")


def crop_margin(cfg: TrainConfig) -> int:
    """Pixels stored beyond the crop on each side for training's random crops: S/8 under the crop
    policy (a 1.25 S square, centred, so its centre S square is what evaluation and prediction see),
    none under resize (the CIFAKE way, unchanged)."""
    if cfg.patch:  # patches are cut from the input itself: no margin needed
        return 0
    return cfg.image_size // 8 if input_policy(cfg) == "crop" else 0


def group_by(cfg: TrainConfig) -> str | None:
    """How the split groups images beyond byte-identical copies: by file stem on an aligned archive
    (genspot synth: a photo and every fake made from it on one side), else not at all."""
    if cfg.group_by == "auto":
        from genspot.data.sources import is_aligned

        return "stem" if is_aligned(cfg.data) else None
    return None if cfg.group_by == "none" else cfg.group_by


def model_config(cfg: TrainConfig, splits: Splits, fingerprint: str, source: str) -> dict[str, Any]:
    """The config.json that travels with the weights."""
    return {
        "genspot_version": __version__,
        "model": cfg.model,
        "model_kwargs": cfg.model_kwargs,
        "class_names": list(LABELS),
        "positive_class": "FAKE",
        "input_size": cfg.image_size,
        "input_policy": input_policy(cfg),
        "mean": list(IMAGENET_MEAN),
        "std": list(IMAGENET_STD),
        "channels_last": cfg.channels_last,
        "temperature": 1.0,
        "tta": cfg.tta,
        "data": {
            "source": source,
            "fingerprint": fingerprint,
            "protocol": cfg.protocol,
            "split_seed": cfg.data_seed,
            "val_fraction": cfg.val_fraction,
            "limit": cfg.limit,
            "source_split": splits.info.get("pool_split"),
            "sources": cfg.train_sources,
            "n_train": int(len(splits.train)),
            "n_val": int(len(splits.val)),
            "n_test": int(len(splits.test)) if splits.test is not None else 0,
            "group_by": splits.info.get("group_by"),  # "stem": a photo and all made from it on one side
        },
        "training": {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("model_kwargs", "progress", "out")},
    }


def dataset_and_splits(cfg: TrainConfig):
    """The decoded images (from the cache, or indexed for streaming) and the run's split."""
    if not 16 <= cfg.image_size <= 512:
        raise GenspotError(f"--image-size must be between 16 and 512, got {cfg.image_size}")
    policy = input_policy(cfg)
    margin = crop_margin(cfg)
    if margin and cfg.teacher:
        raise GenspotError("--teacher is not supported with the crop input policy yet (the teacher would see the stored margin)")
    if cfg.cache == "none":
        if cfg.teacher:
            raise GenspotError("--teacher needs the decode cache (the teacher scores every training image first); drop --cache none")
        from genspot.data.stream import index_dataset

        ds = index_dataset(cfg.data, size=cfg.image_size, policy=policy, margin=margin, workers=cfg.workers, progress=cfg.progress)
    else:
        ds = load_dataset(cfg.data, size=cfg.image_size, workers=cfg.workers, progress=cfg.progress, policy=policy, margin=margin)
    splits = make_splits(
        ds, cfg.protocol, seed=cfg.data_seed, val_fraction=cfg.val_fraction, limit=cfg.limit, source_split=cfg.source_split,
        sources=cfg.train_sources, group_by=group_by(cfg),
    )
    return ds, splits


def fit(cfg: TrainConfig, resume: bool = False) -> dict[str, Any]:
    """Train `cfg.model` on `cfg.data`; returns a summary (best epoch, val accuracy, timings)."""
    out = Path(cfg.out)
    ckpt = out / "checkpoints" / "last.ckpt"
    if resume and not ckpt.exists():
        raise GenspotError(f"nothing to resume in {out}: no checkpoints/last.ckpt (the first epoch never finished)")
    if resume:
        check_checkpoint(ckpt)
    if not resume and (out / "metrics.jsonl").exists():
        raise GenspotError(f"{out} already holds a training run; use --resume to continue it or another --out")
    out.mkdir(parents=True, exist_ok=True)
    _quiet_lightning()
    device = resolve_device(cfg.device)
    L.seed_everything(cfg.seed, workers=False, verbose=False)

    ds, splits = dataset_and_splits(cfg)
    # Models built for one input size (cifake_cnn, vit_p2) get it as img_size, and config.json records
    # it in model_kwargs, so that every consumer builds the same network again.
    cfg.model_kwargs = sized_kwargs(cfg.model, cfg.image_size, cfg.model_kwargs)
    if cfg.patch and cfg.patch < cfg.image_size and "img_size" in cfg.model_kwargs:
        raise GenspotError(f"{cfg.model} is built for one input size; --patch needs a fully convolutional model")
    model = create_model(cfg.model, num_classes=len(LABELS), pretrained=cfg.pretrained, **cfg.model_kwargs)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    spec = ModelSpec.from_config(model_config(cfg, splits, ds.fingerprint, ds.source))
    train_targets = ds.labels  # or (N, 2) soft targets, for a student
    if cfg.teacher:
        from genspot.distill import teacher_targets

        train_targets = teacher_targets(cfg.teacher, ds, splits, spec.data, cfg.distill, out, device, cfg.progress)
    if device == "cuda" and cfg.cache != "none":
        # The whole uint8 set goes to the GPU once (100k CIFAKE images: 300 MB); batches are
        # gathered, normalised and augmented there, with no per-step host-to-device copies.
        ds.images, ds.labels, train_targets = ds.images.to("cuda"), ds.labels.to("cuda"), train_targets.to("cuda")
    common = dict(mean=IMAGENET_MEAN, std=IMAGENET_STD, channels_last=cfg.channels_last, crop=cfg.image_size)
    # --augment aligned keeps a photo and its fakes together: grouped by file stem when the split is
    # (an aligned archive), else every image on its own (stems repeat across CIFAKE's classes by chance)
    pair_groups = None
    if cfg.augment == "aligned" and splits.info.get("group_by") == "stem":
        from genspot.data.pairs import stem_groups

        pair_groups = stem_groups(ds.paths)
    train_b = Batches(
        ds.images, train_targets, splits.train, batch_size=cfg.batch_size, shuffle=True, augment=cfg.augment,
        seed=cfg.seed, drop_last=len(splits.train) > cfg.batch_size, groups=pair_groups,
        **{**common, "crop": cfg.patch or cfg.image_size},
    )  # fmt: skip
    val_b = Batches(ds.images, ds.labels, splits.val, batch_size=scoring_batch(cfg.image_size, floor=cfg.batch_size), **common)
    (out / "run.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2) + "\n")

    ema = EMA(cfg.ema) if cfg.ema > 0 else None
    callbacks: list[Callback] = [
        *([ema] if ema else []),
        EpochLog(out / "metrics.jsonl", len(train_b) * cfg.batch_size if train_b.drop_last else len(splits.train), cfg.profile),
        ExportBest(out, spec, ema),
        LastCheckpoint(ckpt),
    ]
    if cfg.progress:
        callbacks.append(RichProgressBar(leave=True, console_kwargs={"stderr": True}))
    if cfg.early_stopping > 0:
        callbacks.append(EarlyStopping("val_acc", mode="max", patience=cfg.early_stopping))
    spent = 0.0  # a resumed run's budget counts the epochs it already ran
    if cfg.time_budget > 0 and resume and (out / "metrics.jsonl").exists():
        spent = sum(json.loads(ln)["epoch_seconds"] for ln in (out / "metrics.jsonl").read_text().splitlines() if ln)
    budget = TimeBudget(max(0.0, 60 * cfg.time_budget - spent)) if cfg.time_budget > 0 else None
    if budget:
        callbacks.append(budget)
    if device == "cpu" and cfg.devices > 1:
        # Each CPU process gets its share of the cores instead of all of them (no oversubscription).
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // cfg.devices))
    strategy = cfg.strategy
    if strategy == "auto" and cfg.devices * cfg.num_nodes > 1:
        strategy = "ddp"  # gloo on CPU, NCCL on CUDA: Lightning picks the backend
    trainer = L.Trainer(
        accelerator=device,
        devices=cfg.devices,
        num_nodes=cfg.num_nodes,
        strategy=strategy,
        precision=LIGHTNING_PRECISIONS[cfg.precision],
        max_epochs=cfg.epochs,
        logger=False,
        callbacks=callbacks,
        enable_progress_bar=cfg.progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        deterministic=False,
        default_root_dir=str(out),
        enable_checkpointing=False,  # LastCheckpoint and ExportBest write what a run keeps
    )
    module = Classifier(model, cfg, steps_per_epoch=len(train_b), shards=(train_b, val_b))
    module.ema = ema
    if cfg.compile:
        module.model = torch.compile(module.model)
    total, trainable = count_parameters(model)
    if cfg.progress:
        console.print(
            f"[bold]{cfg.model}[/]: {total:,} parameters ({trainable:,} trainable); "
            f"train {len(splits.train):,} / val {len(splits.val):,} images; {cfg.epochs} epochs on {device} "
            f"({cfg.precision}); data {'streamed from the archive (--cache none)' if cfg.cache == 'none' else 'from cache' if ds.from_cache else f'decoded in {ds.decode_seconds:.1f} s'}",
            highlight=False,
        )
    t0 = time.perf_counter()
    trainer.fit(module, train_dataloaders=train_b, val_dataloaders=val_b, ckpt_path=str(ckpt) if resume else None,
                weights_only=True)  # fmt: skip
    rows = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines() if ln]
    if cfg.profile and cfg.progress and trainer.is_global_zero:
        print_profile(rows)
    best = max(rows, key=lambda r: (r["val_accuracy"] or 0.0)) if rows else None
    return {
        "model": cfg.model,
        "out": str(out),
        "parameters": total,
        "trainable_parameters": trainable,
        "epochs_run": len(rows),
        "best_epoch": best["epoch"] if best else None,
        "best_val_accuracy": best["val_accuracy"] if best else None,
        "median_epoch_seconds": float(np.median([r["epoch_seconds"] for r in rows])) if rows else None,
        "median_images_per_second": float(np.median([r["images_per_second"] for r in rows])) if rows else None,
        "wall_seconds": round(time.perf_counter() - t0, 2),
        # --time-budget cut the run in this epoch (0-based), after this many of its steps
        "stopped_by_budget": None if budget is None or budget.stopped_in_epoch is None
        else {"epoch": budget.stopped_in_epoch, "steps": budget.steps_in_epoch, "steps_per_epoch": trainer.num_training_batches},
        "global_rank": trainer.global_rank,
        "world_size": trainer.world_size,
    }


PROFILE_PARTS = ("batches", "forward", "backward", "optimizer", "other", "validation")


def print_profile(rows: list[dict[str, Any]]) -> None:
    """The --profile table: seconds per part of each epoch, and each part's share of the whole run."""
    from rich.table import Table

    rows = [r for r in rows if "profile" in r]
    if not rows:
        return
    t = Table(title="where the time went (seconds per epoch; batches = gather, augment and normalise; val = validation)")
    t.add_column("epoch", justify="right")
    for p in PROFILE_PARTS:
        t.add_column("val" if p == "validation" else p, justify="right")
    t.add_column("img/s", justify="right")
    for r in rows:
        t.add_row(str(r["epoch"]), *(f"{r['profile'][p]:.1f}" for p in PROFILE_PARTS), f"{r['images_per_second'] or 0:,.0f}")
    total = {p: sum(r["profile"][p] for r in rows) for p in PROFILE_PARTS}
    whole = sum(total.values()) or 1.0
    t.add_row("share", *(f"{100 * total[p] / whole:.0f}%" for p in PROFILE_PARTS), "")
    console.print(t)


def load_run_config(out: str | os.PathLike) -> TrainConfig:
    """The options a run was started with (for --resume)."""
    p = Path(out) / "run.json"
    if not p.exists():
        raise GenspotError(f"nothing to resume in {out}: no run.json")
    try:
        options = json.loads(p.read_text())
        if not isinstance(options, dict):
            raise ValueError("not a JSON object")
        return TrainConfig(**options)
    except (ValueError, TypeError, UnicodeDecodeError) as e:
        raise GenspotError(f"cannot resume from {p}: it is not a genspot run file ({e}); start a new run with another --out") from None


def check_checkpoint(path: Path) -> None:
    """Refuse a checkpoint that is unreadable, or that would need more than tensors and plain
    data to load, before Lightning touches it. weights_only=True is passed explicitly: torch's
    default can be switched off from the environment (TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD), and
    an unpickled checkpoint can run any code."""
    fix = "train into another --out to start over"
    if path.stat().st_size == 0:
        raise GenspotError(f"cannot resume: {path} is empty (0 bytes); {fix}")
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncated, random or foreign bytes: whatever torch raises
        text = str(e)
        if "GLOBAL" in text:  # a pickle that names code to run ("Unsupported global", "unsupported GLOBAL")
            what = next(ln for ln in text.splitlines() if "GLOBAL" in ln).strip()
            raise GenspotError(f"refusing to resume from {path}: it asks to load more than tensors and plain data ({what}); {fix}") from None
        first = (text.strip().splitlines() or [type(e).__name__])[0].split(". ")[0]
        raise GenspotError(f"cannot resume: {path} is not a readable checkpoint ({first}); {fix}") from None
