"""VGG16 as the study used it: the ImageNet conv base (13 conv layers, 5 max pools),
global average pooling and one linear layer: 14,715,714 parameters for 2 classes.

timm's vgg16 carries a 7x7-conv MLP head of 134M parameters; this is the Keras
`VGG16(include_top=False)` + Dense layout instead. Layer indices match torchvision's
`vgg16().features`, so its ImageNet weights load by path. `freeze_blocks=4` freezes
blocks 1-4 as the study did with ImageNet weights. Without batch norm, VGG16 trained
from scratch needs a low learning rate; `batch_norm=True` adds BN (more parameters).
"""

from torch import nn

from genspot.models.registry import register_model

_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


class VGG16(nn.Module):
    def __init__(self, num_classes: int = 2, freeze_blocks: int = 0, batch_norm: bool = False, dropout: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        self.block_ends: list[int] = []  # index in `features` of each block's max pool
        for v in _CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
                self.block_ends.append(len(layers) - 1)
            else:
                layers.append(nn.Conv2d(c_in, v, 3, padding=1))
                if batch_norm:
                    layers.append(nn.BatchNorm2d(v))
                layers.append(nn.ReLU(inplace=True))
                c_in = v
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(512, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
        if not 0 <= freeze_blocks <= 5:
            raise ValueError("freeze_blocks must be between 0 and 5")
        if freeze_blocks:
            for p in self.features[: self.block_ends[freeze_blocks - 1] + 1].parameters():
                p.requires_grad_(False)

    def forward(self, x):
        return self.head(self.pool(self.features(x)))


# Explained at conv4_3's ReLU (4x4 at 32 px), the last map before it shrinks to 2x2.
@register_model("vgg16", "VGG16 conv base + global pool + linear (study layout)", "Simonyan & Zisserman 2015",
                target_layer="features.22", cam=("features", "head.-1"))
def vgg16(num_classes: int = 2, **kwargs) -> nn.Module:
    return VGG16(num_classes=num_classes, **kwargs)
