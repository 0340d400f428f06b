"""EfficientNet-B0 and EfficientNetV2-B0 from timm, as the study used them.

At 32x32 input their last feature map is 1x1 (stride 32); they are kept unchanged here so
that the comparison is with the architectures the study ran. `stem_stride=1` is offered
as a CIFAR-style variant that keeps 4x larger maps (at 16x the compute).
"""

import timm
from torch import nn

from genspot.models.layers import deepest_block
from genspot.models.registry import register_model


def _timm(arch: str, num_classes: int, stem_stride: int = 2, drop_rate: float = 0.0, **kwargs) -> nn.Module:
    model = timm.create_model(arch, pretrained=False, num_classes=num_classes, drop_rate=drop_rate, **kwargs)
    if stem_stride != 2:
        model.conv_stem.stride = (stem_stride, stem_stride)
    # timm's TF-style init scales the classifier by 1/sqrt(num_classes): with 2 classes the
    # initial logits are huge (loss ~3) and training from scratch wobbles for epochs.
    nn.init.normal_(model.classifier.weight, std=0.01)
    nn.init.zeros_(model.classifier.bias)
    return model


# Explained at the deepest block that keeps a 4x4 map (found by a dry run, so stem_stride=1
# variants get a deeper block); CAM over bn2, which feeds the pooling and the classifier.
_FACTS = {"target_layer": deepest_block, "cam": ("bn2", "classifier")}


@register_model("efficientnet_b0", "timm efficientnet_b0", "Tan & Le 2019", **_FACTS)
def efficientnet_b0(num_classes: int = 2, **kwargs) -> nn.Module:
    return _timm("efficientnet_b0", num_classes, **kwargs)


@register_model("efficientnetv2_b0", "timm tf_efficientnetv2_b0", "Tan & Le 2021", **_FACTS)
def efficientnetv2_b0(num_classes: int = 2, **kwargs) -> nn.Module:
    return _timm("tf_efficientnetv2_b0", num_classes, **kwargs)
