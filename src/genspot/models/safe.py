"""SAFE: Simple Preserved and Augmented FEatures (Li et al., "Improving Synthetic Image Detection
Towards Generalization: An Image Transformation Perspective", KDD 2025).

SAFE's claim is that the detector's preprocessing, not its size, decides whether it generalises:
crop instead of resize (resizing wipes out the pixel-level traces; genspot's `--input-policy crop`),
and feed the network the image's highest-frequency wavelet band. Its network is NPR's (the stem and
ResNet-50 stages 1-2, 1.44M parameters, from scratch), with the input replaced by the diagonal
detail (HH) band of a one-level discrete wavelet transform, resized back to the input size.

The paper's code takes the band from a bior1.3 transform. bior1.3's high-pass decomposition
filter is Haar's, (-1, 1) / sqrt 2, so its HH band is Haar's diagonal detail: here a fixed 2x2,
stride-2 convolution per colour channel, (a - b - c + d) / 2 over each 2x2 block, then bilinear
up-sampling to the input size as the original does. The original's symmetric border extension adds
two coefficients on each side before the resize, which this omits (a shift of under a pixel).
The paper's other training-time parts (colour jitter, random rotation, random patch masking) are
augmentations, not the model; genspot's --augment options stand in for them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from genspot.models.npr import NPR
from genspot.models.registry import register_model


def haar_hh(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H/2, W/2): the one-level Haar (and bior1.3) diagonal detail band."""
    c = x.shape[1]
    k = torch.tensor([[1.0, -1.0], [-1.0, 1.0]], dtype=x.dtype, device=x.device) / 2
    return F.conv2d(x, k.expand(c, 1, 2, 2), stride=2, groups=c)


class SAFE(NPR):
    def artefacts(self, x: torch.Tensor) -> torch.Tensor:
        # fp32 even under bf16 autocast: the band is a difference of neighbours, mostly rounding in bf16
        with torch.autocast(x.device.type, enabled=False):
            hh = haar_hh(x.float())
            return F.interpolate(hh, size=x.shape[-2:], mode="bilinear", align_corners=False)


# Explained as npr is: layer2 feeds the pooling and one linear layer.
@register_model("safe", "SAFE: wavelet HH band (crop, no resize) into ResNet-50 stages 1-2", "Li et al. 2025",
                target_layer="layer2", cam=("layer2", "head.-1"))
def safe(num_classes: int = 2, **kwargs) -> nn.Module:
    """SAFE (KDD 2025), from scratch; train it with --input-policy crop, as the paper does."""
    return SAFE(num_classes=num_classes, **kwargs)
