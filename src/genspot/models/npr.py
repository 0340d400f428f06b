"""NPR: Neighbouring Pixel Relationships (Tan et al., "Rethinking the Up-Sampling Operations in
CNN-based Generative Network for Generalizable Deepfake Detection", CVPR 2024).

Generators up-sample: neighbouring output pixels of an up-sampling layer are computed from the
same inputs, which leaves a trace in how each 2x2 neighbourhood relates to itself. NPR feeds the
network only that relation, the image minus its nearest-neighbour down-and-up resample
(x - up(down(x)), with factor 2), and then keeps the network small: the stem and the first two
stages of a ResNet-50 (3 + 4 bottleneck blocks), global pooling and one linear layer, trained
from scratch. As in the paper's code: a 3x3 stride-2 stem, max pooling, and the residual scaled
by 2/3. The classifier gives 2 logits (REAL, FAKE) like every model here, where the paper's gives 1.

It works at any input size divisible by 2 (fully convolutional, global pooling); at 32x32 its last
map is 4x4, the smallest that genspot's CAM methods accept.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import Bottleneck

from genspot.models.registry import register_model


def npr_residual(x: torch.Tensor) -> torch.Tensor:
    """x minus its nearest-neighbour down (every other pixel) and up (each pixel twice) resample."""
    small = F.interpolate(x, scale_factor=0.5, mode="nearest", recompute_scale_factor=True)
    return x - F.interpolate(small, size=x.shape[-2:], mode="nearest")


def _stage(c_in: int, width: int, blocks: int, stride: int) -> nn.Sequential:
    out = width * Bottleneck.expansion
    down = None
    if stride != 1 or c_in != out:
        down = nn.Sequential(nn.Conv2d(c_in, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out))
    layers = [Bottleneck(c_in, width, stride=stride, downsample=down)]
    layers += [Bottleneck(out, width) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class NPR(nn.Module):
    """The stem and ResNet-50 stages 1-2 over a fixed transform of the image (`artefacts`): NPR's
    residual here; SAFE (models/safe.py) puts its wavelet band in the same place."""

    def __init__(self, num_classes: int = 2, blocks: tuple[int, int] = (3, 4)) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = _stage(64, 64, blocks[0], 1)
        self.layer2 = _stage(256, 128, blocks[1], 2)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def artefacts(self, x: torch.Tensor) -> torch.Tensor:
        return npr_residual(x) * 2.0 / 3.0  # the paper code's scale

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(F.relu(self.bn1(self.conv1(self.artefacts(x)))))
        return self.layer2(self.layer1(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


# Explained at layer2, the last stage (S/8: 4x4 at 32 px, 32x32 at 256 px), which feeds the pooling and one linear layer.
@register_model("npr", "NPR: image minus its 2x nearest resample, into ResNet-50 stages 1-2", "Tan et al. 2024",
                target_layer="layer2", cam=("layer2", "head.-1"))
def npr(num_classes: int = 2, **kwargs) -> nn.Module:
    """Neighbouring Pixel Relationships (CVPR 2024), from scratch."""
    return NPR(num_classes=num_classes, **kwargs)
