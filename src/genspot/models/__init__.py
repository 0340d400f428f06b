"""Model zoo: every model of the study and genspot's own, built by name."""

from genspot.models.registry import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    count_parameters,
    create_model,
    list_models,
    load_pretrained,
    model_entry,
    register_model,
)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "count_parameters",
    "create_model",
    "list_models",
    "load_pretrained",
    "model_entry",
    "register_model",
]
