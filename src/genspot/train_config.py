"""TrainConfig: every option of a training run, with its default, in one place.

The CLI (`genspot train`'s option defaults are read from here), the recipes (recipes.py: only what
they change), the study's comparison and the quick start all derive from these fields. Kept free of
heavy imports, so that the command line can read the defaults without loading torch or Lightning.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from genspot.errors import GenspotError

OPTIMIZERS = ("sgd", "adamw", "adam")
SCHEDULES = ("onecycle", "cosine", "constant")
LIGHTNING_PRECISIONS = {"32": "32-true", "fp32": "32-true", "bf16": "bf16-mixed", "16": "16-mixed", "fp16": "16-mixed"}
DEFAULT_LR = {"sgd": 0.05, "adamw": 2e-3, "adam": 1e-3}


@dataclass
class TrainConfig:
    model: str
    data: str
    out: str
    epochs: int = 10
    batch_size: int = 256
    lr: float | None = None  # None: the optimizer's default (DEFAULT_LR)
    optimizer: str = "sgd"
    schedule: str = "onecycle"
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0
    augment: str = "flip-crop"
    seed: int = 0
    split_seed: int | None = None  # None: `seed`; set it to train ensemble members on one split
    protocol: str = "full"
    limit: int | None = None
    val_fraction: float = 0.1
    source_split: str | None = None
    train_sources: list[str] | None = None  # train (and validate) on these sources' images only
    device: str = "auto"
    precision: str = "32"
    channels_last: bool = True
    early_stopping: int = 0  # patience in epochs; 0 = off
    pretrained: str | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    image_size: int = 32
    patch: int = 0  # train on random patch x patch crops of the input (fully convolutional models); 0: the whole input
    input_policy: str | None = None  # resize | crop; None: resize at 32 px (CIFAKE's way), crop above
    workers: int | None = None  # decode processes
    tta: str = "none"  # test-time augmentation written into config.json: none | flip
    devices: int = 1  # processes (CPU) or GPUs per node
    strategy: str = "auto"  # auto | ddp | ddp_spawn
    num_nodes: int = 1
    teacher: str | None = None  # model directory whose probabilities the targets mix in (distill.py)
    distill: float = 0.5  # the teacher's share of each training target
    ema: float = 0.0  # decay of a moving average of the weights that validation and export use; 0 = off
    sam: float = 0.0  # sharpness-aware minimisation: radius rho of the weight perturbation; 0 = off
    compile: bool = False  # torch.compile the model (pays on CUDA for long runs)
    cache: str = "disk"  # disk: decode once into the on-disk cache | none: decode every batch from the archive (data/stream.py)
    profile: bool = False  # time each epoch's parts into metrics.jsonl (StepProfile) and print them
    time_budget: float = 0.0  # minutes of wall clock for the whole fit, validations included; 0: off (TimeBudget)
    group_by: str = "auto"  # auto: by photo (file stem) on an aligned archive, else none | stem | none
    recipe: str | None = None  # the named recipe (recipes.py) the options started from; recorded only
    progress: bool = True

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise GenspotError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise GenspotError(f"unknown schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}")
        from genspot.data.batches import AUGMENTS
        from genspot.models.tta import TTA_MODES

        if self.augment not in AUGMENTS:
            raise GenspotError(f"unknown augmentation {self.augment!r}; choose one of {', '.join(AUGMENTS)}")
        if self.precision not in LIGHTNING_PRECISIONS:
            raise GenspotError(f"unknown precision {self.precision!r}; choose one of 32, bf16, 16")
        if self.epochs < 1 or self.batch_size < 1:
            raise GenspotError("epochs and batch size must be at least 1")
        if self.tta not in TTA_MODES:
            raise GenspotError(f"unknown test-time augmentation {self.tta!r}; choose one of {', '.join(TTA_MODES)}")
        if self.devices < 1 or self.num_nodes < 1:
            raise GenspotError("--devices and --num-nodes must be at least 1")
        if self.strategy not in ("auto", "ddp", "ddp_spawn"):
            raise GenspotError(f"unknown strategy {self.strategy!r}; choose auto, ddp or ddp_spawn")
        if self.teacher and not 0.0 < self.distill <= 1.0:
            raise GenspotError("--distill must be in (0, 1]: the teacher's share of each training target")
        if not 0.0 <= self.ema < 1.0:
            raise GenspotError("--ema must be in [0, 1): the decay of the weights' moving average (0: off)")
        if self.sam < 0:
            raise GenspotError("--sam must be at least 0: the radius of the weight perturbation (0: off)")
        if self.sam > 0 and self.ema > 0:
            raise GenspotError("--sam and --ema cannot be combined (the average is not defined for SAM's two-step update)")
        if self.time_budget < 0:
            raise GenspotError(f"--time-budget must be at least 0 minutes (0: off), got {self.time_budget}")
        if self.group_by not in ("auto", "stem", "none"):
            raise GenspotError(f"unknown --group-by {self.group_by!r}; choose auto, stem or none")
        if self.cache not in ("disk", "none"):
            raise GenspotError(f"unknown --cache {self.cache!r}; choose disk or none")
        if self.patch and not 8 <= self.patch <= self.image_size:
            raise GenspotError(f"--patch must be between 8 and --image-size ({self.image_size}), got {self.patch}")
        if self.device not in ("auto", "cpu", "cuda", "mps"):
            raise GenspotError(f"unknown device {self.device!r}; choose auto, cpu, cuda or mps")

    @property
    def data_seed(self) -> int:
        return self.seed if self.split_seed is None else self.split_seed

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.optimizer]


def defaults() -> dict[str, Any]:
    """Each TrainConfig field's default (the required model, data and out excluded)."""
    out = {}
    for f in dataclasses.fields(TrainConfig):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            out[f.name] = f.default_factory()  # type: ignore[misc]
    return out
