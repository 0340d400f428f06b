"""Named training recipes: a model, its schedule, batch size, precision and augmentation in one
place, each number with its reason (airbench's way). The one recipe system: `genspot train
--recipe NAME` starts from one (any option given on the command line still overrides it), and
`genspot compare` / `genspot benchmark` train each model of the study by its `study-<model>`
recipe. Whatever a recipe does not name is TrainConfig's default (train.py), the one set of
training options that the CLI, the quick start and compare all derive from.

Figures behind the reasons are this project's, on CIFAKE (docs/results/default/experiments.md,
docs/results/study/ and the time-to-accuracy runs in docs/benchmarks.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
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


# The study's protocol (10k training images): every model of `genspot compare` fitted into 2 hours
# on 2 CPU cores. bf16 where it is faster on this CPU (plain convs), fp32 where it is not
# (depthwise convs, attention). Reasons common to every study recipe:
_STUDY_COMMON = {
    "batch_size": (128, "the study runs' batch: small enough for 10k images to give ~80 steps an epoch"),
    "schedule": ("onecycle", "a quarter of the run warming up, then annealing: robust across these models"),
    "augment": ("flip-crop", "flips and 4-px translations, the CIFAR default every study model was tuned with"),
}


def _study(model: str, epochs: int, why_epochs: str, optimizer: str, lr: float, why_lr: str, precision: str = "32",
           weight_decay: float = 5e-4, label_smoothing: float = 0.0, **extra: tuple[Any, str]) -> dict[str, tuple[Any, str]]:
    adamw = optimizer == "adamw"
    return {
        "model": (model, "the study's model of this name (genspot models)"),
        "epochs": (epochs, why_epochs),
        "optimizer": (optimizer, "AdamW: depthwise convs and attention train poorly with plain SGD from scratch" if adamw
                      else "Nesterov SGD, momentum 0.9: what CIFAR-style convnets train with"),
        "lr": (lr, why_lr),
        "weight_decay": (weight_decay, "AdamW's decoupled decay, the usual 0.05" if adamw else "on conv and linear weights only"),
        "label_smoothing": (label_smoothing, "a little smoothing steadies the largest model's short run" if label_smoothing
                            else "none: the study trained with hard labels"),
        "precision": (precision, "bfloat16 autocast: faster for plain convs on this CPU" if precision == "bf16"
                      else "fp32: bf16 is slower than fp32 for depthwise convs and attention on this CPU"),
        **_STUDY_COMMON, **extra,
    }  # fmt: skip


RECIPES.update({
    "study-cifake_cnn": _study("cifake_cnn", 40, "tiny net: many cheap epochs", "sgd", 0.05, "peak of the one-cycle at batch 128", "bf16"),
    "study-vgg16": _study("vgg16", 12, "the slowest conv net here: 12 epochs fit the budget", "sgd", 0.01,
                          "no batch norm: a low peak after warm-up (Kaiming init), higher diverges", "bf16"),
    "study-efficientnet_b0": _study("efficientnet_b0", 20, "the study's architecture as is (1x1 last map); 20 epochs fit the budget",
                                    "adamw", 1e-3, "AdamW's usual rate from scratch", weight_decay=0.05),
    "study-efficientnetv2_b0": _study("efficientnetv2_b0", 45, "15 epochs gave 92.9%, 30 gave 93.8%, short of the study's 93.97%",
                                      "adamw", 1e-3, "AdamW's usual rate from scratch", weight_decay=0.05,
                                      model_kwargs=({"stem_stride": 1}, "CIFAR-style stem (stride 1): a 2x2 last map at 32 px instead of 1x1")),
    "study-vit_p2": _study("vit_p2", 10, "slowest model (256 tokens): epochs cut to fit", "adamw", 1e-3, "AdamW's usual rate for a small ViT",
                           weight_decay=0.05, label_smoothing=0.1),
    "study-spot_resnet_s": _study("spot_resnet_s", 25, "genspot's candidate: the curve flattens by 25", "sgd", 0.05,
                                  "peak of the one-cycle at batch 128", "bf16", label_smoothing=0.05),
    "study-spot_resnet": _study("spot_resnet", 15, "the wide candidate: 15 epochs fit the budget", "sgd", 0.05,
                                "peak of the one-cycle at batch 128", "bf16", label_smoothing=0.05),
})  # fmt: skip
# What each recipe is for, in one line (compare's table prints it beside the numbers).
ABOUT = {"fast": "97% validation on CIFAKE in under 15 minutes of 2 CPU cores", "default": "the shipped default's own options",
         "study-cifake_cnn": "tiny net: many cheap epochs", "study-vgg16": "no batch norm: low peak LR after warm-up, Kaiming init",
         "study-efficientnet_b0": "the study's architecture as is (1x1 last map)",
         "study-efficientnetv2_b0": "CIFAR-style stem (stride 1): 2x2 last map instead of 1x1; 15 epochs gave 92.9%, 30 gave 93.8%, short of the study",
         "study-vit_p2": "slowest model: epochs cut to fit", "study-spot_resnet_s": "genspot candidate", "study-spot_resnet": "genspot candidate"}  # fmt: skip
# The full protocol has 9x the study's training images per epoch: fewer epochs for the same curve.
FULL_EPOCHS = {"cifake_cnn": 10, "vgg16": 4, "efficientnet_b0": 6, "efficientnetv2_b0": 6, "vit_p2": 2,
               "spot_resnet_s": 8, "spot_resnet": 5}  # fmt: skip


def recipe(name: str) -> dict[str, Any]:
    """The TrainConfig options of a named recipe (values only)."""
    if name not in RECIPES:
        raise GenspotError(f"unknown recipe {name!r}; the recipes are: {', '.join(sorted(RECIPES))}")
    return {k: v for k, (v, _why) in RECIPES[name].items()}


@dataclass(frozen=True)
class Recipe:
    """A recipe's options over TrainConfig's defaults: `r.epochs`, `r.lr`... and `r.why`."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    why: str = ""

    def __getattr__(self, key: str) -> Any:
        from genspot.train_config import TrainConfig

        options = object.__getattribute__(self, "options")
        if key in options:
            return options[key]
        fields = TrainConfig.__dataclass_fields__
        if key not in fields:
            raise AttributeError(key)
        f = fields[key]
        return f.default_factory() if callable(f.default_factory) else f.default  # type: ignore[misc]

    def row(self) -> dict[str, Any]:
        """What compare's results table shows of it."""
        keys = ("epochs", "optimizer", "lr", "weight_decay", "label_smoothing", "augment", "precision", "batch_size",
                "schedule", "model_kwargs", "image_size", "patch")  # fmt: skip
        return {k: getattr(self, k) for k in keys} | {"why": self.why}


# The aligned protocol: pairs from `genspot synth` (a photo and its round trip) at native resolution.
# One data recipe for every model, so that only the architecture (and its optimiser) differs:
ALIGNED = {
    "protocol": ("full", "train minus a validation share, split by photo (a photo and its fakes on one side)"),
    "image_size": (256, "the photos' own size: the decoder's trace is pixel-scale, so nothing is resized"),
    "input_policy": ("crop", "native pixels, never resampled"),
    "val_fraction": (0.2, "20% of the photos: ~680 photos and their fakes, intervals of about +-2.5 points"),
    "augment": ("aligned", "a photo and its fake share crop, flip, JPEG and rescale; REAL hard negatives"),
    "batch_size": (64, "the aligned runs' batch: ~85 steps an epoch on 2,700 training pairs"),
    "precision": ("32", "fp32: this CPU emulates bf16 (no AVX-512 BF16)"),
    "epochs": (3, "the aligned pilots' length; `--budget` replaces it with what fits the time"),
}
# Fully convolutional models train on 64-px patches and validate on the whole crop (the aligned runs'
# way: a step costs a sixteenth, and the trace is in every patch); models built for one input size
# (cifake_cnn's dense layer, the ViT's position embeddings) train on the whole 256-px crop.
ALIGNED_PATCH = 64
# Each model's optimiser, rate, decay and smoothing come from its study recipe, the only tuning it
# has; a model without one gets the aligned runs' AdamW 1e-3 cosine. The study's 32-px model options
# (efficientnetv2_b0's stride-1 stem) are dropped: they exist to keep a 32-px map from collapsing.
_OPTIMISER_KEYS = ("optimizer", "lr", "weight_decay", "label_smoothing", "schedule")


def aligned_recipe(model: str, epochs: int | None = None, image_size: int | None = None) -> Recipe:
    """How `genspot compare --protocol aligned` trains `model` at 256 px (or `image_size`)."""
    from genspot.models.registry import model_entry

    study = recipe(f"study-{model}") if f"study-{model}" in RECIPES else {"optimizer": "adamw", "lr": 1e-3, "schedule": "cosine"}
    opts: dict[str, Any] = {"model": model, **{k: v for k, (v, _why) in ALIGNED.items()}}
    opts.update({k: study[k] for k in _OPTIMISER_KEYS if k in study})
    if image_size is not None:
        opts["image_size"] = image_size
    size = opts["image_size"]
    opts["patch"] = size if model_entry(model).sized or size < 2 * ALIGNED_PATCH else ALIGNED_PATCH
    if epochs is not None:
        opts["epochs"] = epochs
    source = f"study-{model}'s optimiser" if f"study-{model}" in RECIPES else "AdamW 1e-3 cosine (the aligned runs')"
    inputs = f"whole {size}-px crops" if opts["patch"] == size else f"{ALIGNED_PATCH}-px patches, validated on {size}-px crops"
    return Recipe(f"aligned-{model}", opts, f"{inputs}; {source}")


def study_recipe(model: str, protocol: str = "study", epochs: int | None = None, image_size: int | None = None) -> Recipe:
    """How `genspot compare` trains `model` under a protocol (study: 10k images; full: the whole
    training split, FULL_EPOCHS; aligned: aligned_recipe), epochs overridden when given. A model
    without a study recipe gets TrainConfig's defaults at batch 128 and 10 study epochs."""
    if protocol == "aligned":
        return aligned_recipe(model, epochs, image_size)
    name = f"study-{model}"
    opts = recipe(name) if name in RECIPES else {"model": model, "epochs": 10, "batch_size": 128}
    if protocol == "full":
        opts["epochs"] = FULL_EPOCHS.get(model, max(2, opts["epochs"] // 4))
    if epochs is not None:
        opts["epochs"] = epochs
    return Recipe(name, opts, ABOUT.get(name, "no study recipe: TrainConfig's defaults"))
