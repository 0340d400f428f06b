"""genspot's own detector family: a CIFAR-style residual net for 32x32 forensics.

Design choices, and why:
- A 3x3 stem at full resolution and no early striding: generator artefacts are
  pixel-scale, and ImageNet stems (7x7 stride 2 + pool) throw them away first.
- Downsampling by max pooling between stages (as in airbench), residual blocks of two
  3x3 convs with batch norm, GELU.
- Global average pooling into one linear layer, so CAM (Zhou et al. 2016) applies exactly.
- `stem="highpass"`: the stem sees only fixed high-pass residuals of each colour channel
  (steganalysis' SRM-style filters), never the raw pixels. A member that cannot read
  content directly makes other mistakes than the RGB models, which is what an ensemble needs.
Stage maps at 32x32 input are 32, 16 and 8 pixels wide: every stage gives a usable CAM.
"""

import torch
from torch import nn

from genspot.models.registry import register_model


def _conv_bn(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.GELU())


def _highpass_kernels() -> torch.Tensor:
    """Six zero-sum 5x5 filters: first and second differences both ways, KV 3x3 and KV 5x5."""
    k = torch.zeros(6, 5, 5)
    k[0, 2, 2:4] = torch.tensor([-1.0, 1.0])
    k[1, 2:4, 2] = torch.tensor([-1.0, 1.0])
    k[2, 2, 1:4] = torch.tensor([1.0, -2.0, 1.0]) / 2
    k[3, 1:4, 2] = torch.tensor([1.0, -2.0, 1.0]) / 2
    k[4, 1:4, 1:4] = torch.tensor([[-1.0, 2, -1], [2, -4, 2], [-1, 2, -1]]) / 4
    k[5] = torch.tensor([[-1.0, 2, -2, 2, -1], [2, -6, 8, -6, 2], [-2, 8, -12, 8, -2],
                         [2, -6, 8, -6, 2], [-1, 2, -2, 2, -1]]) / 12  # fmt: skip
    return k


class HighPass(nn.Module):
    """Fixed (not learned) depthwise high-pass filter bank: 3 channels in, 18 out."""

    def __init__(self, channels: int = 3) -> None:
        super().__init__()
        k = _highpass_kernels()
        self.register_buffer("weight", k.repeat(channels, 1, 1).unsqueeze(1), persistent=False)
        self.channels = channels
        self.out_channels = channels * k.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # fp32 even under bf16 autocast: bf16 keeps 8 bits of mantissa, about half a grey level
        # at these magnitudes, so the differences of neighbours would be mostly rounding.
        # Replicate padding: a zero border would be an edge of the padding, not of the image.
        with torch.autocast(x.device.type, enabled=False):
            x = nn.functional.pad(x.float(), (2, 2, 2, 2), mode="replicate")
            return nn.functional.conv2d(x, self.weight.float(), groups=self.channels)


class Residual(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c, c, 3, padding=1, bias=False),
            nn.BatchNorm2d(c),
            nn.GELU(),
            nn.Conv2d(c, c, 3, padding=1, bias=False),
            nn.BatchNorm2d(c),
        )
        self.act = nn.GELU()

    def forward(self, x):
        return self.act(x + self.body(x))


class SpotResNet(nn.Module):
    def __init__(
        self,
        num_classes: int = 2,
        widths: tuple[int, ...] = (32, 64, 128, 256),
        blocks: tuple[int, ...] = (1, 1, 1),
        dropout: float = 0.0,
        stem: str = "rgb",
    ) -> None:
        super().__init__()
        if len(widths) != len(blocks) + 1:
            raise ValueError("widths needs one entry for the stem plus one per stage")
        if stem not in ("rgb", "highpass"):
            raise ValueError(f"stem must be 'rgb' or 'highpass', not {stem!r}")
        self.widths, self.blocks, self.stem_kind = tuple(widths), tuple(blocks), stem  # for ensemble.merge
        if stem == "highpass":
            hp = HighPass(3)
            self.stem = nn.Sequential(hp, *_conv_bn(hp.out_channels, widths[0]))
        else:
            self.stem = _conv_bn(3, widths[0])
        stages = []
        for i, n in enumerate(blocks):
            layers: list[nn.Module] = [_conv_bn(widths[i], widths[i + 1])]
            if i > 0:
                layers.insert(0, nn.MaxPool2d(2))
            layers += [Residual(widths[i + 1]) for _ in range(n)]
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(widths[-1], num_classes))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.forward_features(x)))


# Explained at the last stage (8x8 at 32 px), which feeds the global pooling and the one linear layer.
RESNET_FACTS = {"target_layer": "stages.-1", "cam": ("stages", "head.-1")}


@register_model("spot_resnet", "genspot CIFAR-style ResNet, full-res stem (default candidate)", "genspot", **RESNET_FACTS)
def spot_resnet(num_classes: int = 2, **kwargs) -> nn.Module:
    for k in ("widths", "blocks"):
        if k in kwargs:
            kwargs[k] = tuple(kwargs[k])
    return SpotResNet(num_classes=num_classes, **kwargs)


@register_model("spot_resnet_s", "small spot_resnet: widths 16-32-64-128", "genspot", **RESNET_FACTS)
def spot_resnet_s(num_classes: int = 2, **kwargs) -> nn.Module:
    kwargs.setdefault("widths", (16, 32, 64, 128))
    return spot_resnet(num_classes=num_classes, **kwargs)
