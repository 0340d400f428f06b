"""Named training recipes: a model, its schedule, batch size, precision and augmentation in one
place, each number with its reason (airbench's way). `genspot train --recipe NAME` starts from
one; any option given on the command line still overrides it.

Figures behind the reasons are this project's, on CIFAKE (docs/results/default/experiments.md
and the time-to-accuracy runs in docs/benchmarks.md).
"""

from __future__ import annotations

from typing import Any

from genspot.errors import GenspotError

RECIPES: dict[str, dict[str, tuple[Any, str]]] = {
    # 97% validation accuracy on CIFAKE in under 15 minutes of a 2-core CPU, decode included.
    "fast": {
        "model": ("spot_resnet_s", "486k parameters, full-resolution 3x3 stem and no early stride: pixel-scale traces "
                  "survive, and it trains at about 1,100 img/s in bf16 on two cores (the wide spot_resnet: ~350)"),
        "epochs": (8, "8 x 90,000 images at ~1,100 img/s is about 11 minutes of steps, leaving room for decode "
                   "and validation inside 15; the one-cycle ends at a low rate wherever it is cut"),
        "batch_size": (256, "twice the default's 128: fewer optimizer steps and Python round trips per epoch "
                       "on a CPU; the rate is scaled with it"),
        "lr": (0.1, "0.05 at batch 128 (the default's), scaled linearly with the batch"),
        "optimizer": ("sgd", "Nesterov SGD, momentum 0.9: what every CIFAR speed run uses"),
        "schedule": ("onecycle", "a quarter of the run warming up, then annealing to 1/1000 of the peak: a short "
                     "run gains most from ending at a low rate"),
        "weight_decay": (5e-4, "on convolution and linear weights only; BatchNorm scales and biases get none"),
        "label_smoothing": (0.05, "as the shipped models: a little smoothing keeps the large early rate stable"),
        "augment": ("flip", "horizontal flips keep CIFAKE's 8x8 JPEG grid in place; translations break it, and "
                    "blur / re-encoding (robust) buys robustness at the cost of clean accuracy in a short run"),
        "precision": ("bf16", "bfloat16 autocast: about 1.5x the fp32 step on CPUs with bf16 units"),
        "tta": ("flip", "the saved model averages the image and its mirror image when it scores"),
    },
    # The shipped `default`'s own options (src/genspot/weights/default/config.json, "training").
    "default": {
        "model": ("spot_resnet", "the wide spot_resnet (widths 32-256)"),
        "epochs": (24, "the curve still rose at 24 epochs; more did not pay for its time"),
        "batch_size": (128, "the shipped runs' batch"),
        "lr": (0.05, "peak rate of the one-cycle at batch 128"),
        "optimizer": ("sgd", "Nesterov SGD, momentum 0.9"),
        "schedule": ("onecycle", "warm-up over a quarter of the run, then annealing"),
        "weight_decay": (5e-4, "on weights only"),
        "label_smoothing": (0.05, "as every shipped run; the temperature fitted afterwards undoes the under-confidence it leaves"),
        "augment": ("robust", "flips plus Wang et al. 2020's random blur and JPEG: robust to resampling and re-encoding"),
        "precision": ("bf16", "bfloat16 autocast"),
        "tta": ("flip", "flip averaging when scoring"),
    },
}


def recipe(name: str) -> dict[str, Any]:
    """The TrainConfig options of a named recipe (values only)."""
    if name not in RECIPES:
        raise GenspotError(f"unknown recipe {name!r}; the recipes are: {', '.join(sorted(RECIPES))}")
    return {k: v for k, (v, _why) in RECIPES[name].items()}
