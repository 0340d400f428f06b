"""The tiny-autoencoder family (TAESD; TAEF2 for FLUX.2's 32-channel latents), rebuilt from its
description (shared/weights/README.md) and loaded strictly from safetensors, never unpickled.

Each weights file is the state dict of one nn.Sequential: the number before a key's first dot is
the position in it. Encoder: RGB in [0, 1] -> latents at 1/8 the size; decoder: latents -> RGB,
clamped to [0, 1]. Sides must be multiples of 8 (round_trip pads by reflection and crops back).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from genspot.errors import GenspotError

ENCODER_FILE = "encoder.safetensors"
DECODER_FILE = "decoder.safetensors"
FACTOR = 8  # the latent grid is 1/8 of the image on each side


def conv(c_in: int, c_out: int, stride: int = 1, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=bias)


class Block(nn.Module):
    """conv-ReLU-conv-ReLU-conv added to the input, then ReLU; with `pool`, a global branch first:
    1x1 conv 64->256, GroupNorm(4) over the whole image, ReLU, 1x1 conv 256->64, added to the input."""

    def __init__(self, c: int = 64, pool: bool = False) -> None:
        super().__init__()
        self.conv = nn.Sequential(conv(c, c), nn.ReLU(), conv(c, c), nn.ReLU(), conv(c, c))
        self.pool = (nn.Sequential(nn.Conv2d(c, 4 * c, 1, bias=False), nn.GroupNorm(4, 4 * c, eps=1e-5), nn.ReLU(),
                                   nn.Conv2d(4 * c, c, 1, bias=False)) if pool else None)  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            x = x + self.pool(x)
        return F.relu(self.conv(x) + x)


class SoftClamp(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x / 3) * 3


def encoder(latent: int = 32, pooled: int = 3) -> nn.Sequential:
    """RGB [0, 1] -> latent x H/8 x W/8; the last `pooled` blocks carry the global branch."""
    layers: list[nn.Module] = [conv(3, 64), Block()]
    for stage in range(3):
        layers += [conv(64, 64, stride=2, bias=False)] + [Block(pool=stage == 2 and pooled > 0) for _ in range(3)]
    return nn.Sequential(*layers, conv(64, latent))


def decoder(latent: int = 32) -> nn.Sequential:
    """latent -> RGB (clamp to [0, 1] outside): soft clamp, conv, ReLU, then three x2 nearest upsamplings."""
    layers: list[nn.Module] = [SoftClamp(), conv(latent, 64), nn.ReLU(), *[Block(pool=True) for _ in range(3)]]
    for n in (3, 3, 1):
        layers += [nn.Upsample(scale_factor=2, mode="nearest"), conv(64, 64, bias=False)] + [Block() for _ in range(n)]
    return nn.Sequential(*layers, conv(64, 3))


def _load_strict(net: nn.Module, path: Path) -> nn.Module:
    """Load a safetensors state dict, every tensor accounted for; a mismatch names the file and the tensor."""
    from safetensors.torch import load_file

    if not path.is_file():
        raise GenspotError(f"no weights file at {path}")
    try:
        sd = load_file(str(path))
    except Exception as e:  # noqa: BLE001 - a truncated or foreign file: whatever safetensors raises
        raise GenspotError(f"{path} is not a readable safetensors file ({str(e).splitlines()[0][:120]})") from None
    own = net.state_dict()
    missing = [k for k in own if k not in sd]
    if missing:
        raise GenspotError(f"{path} lacks tensor {missing[0]!r} {tuple(own[missing[0]].shape)} (and {len(missing) - 1} more)"
                           if len(missing) > 1 else f"{path} lacks tensor {missing[0]!r} {tuple(own[missing[0]].shape)}")  # fmt: skip
    extra = [k for k in sd if k not in own]
    if extra:
        raise GenspotError(f"{path} has tensor {extra[0]!r} that this architecture does not (is it a tiny autoencoder's?)")
    for k, v in own.items():
        if tuple(sd[k].shape) != tuple(v.shape):
            raise GenspotError(f"{path}: tensor {k!r} is {tuple(sd[k].shape)}, expected {tuple(v.shape)}")
    net.load_state_dict({k: t.float() for k, t in sd.items()}, strict=True)  # fp16 on disk, fp32 here
    return net.eval().requires_grad_(False)


class TinyAutoencoder(nn.Module):
    """A tiny autoencoder from a folder holding encoder.safetensors and decoder.safetensors."""

    def __init__(self, latent: int = 32) -> None:
        super().__init__()
        self.encoder, self.decoder = encoder(latent), decoder(latent)

    @classmethod
    def load(cls, folder: str | Path) -> TinyAutoencoder:
        folder = Path(folder).expanduser()
        if not folder.is_dir():
            raise GenspotError(f"no autoencoder folder at {folder} (it holds {ENCODER_FILE} and {DECODER_FILE})")
        from safetensors import safe_open

        enc = folder / ENCODER_FILE
        if not enc.is_file():
            raise GenspotError(f"no weights file at {enc}")
        try:
            with safe_open(str(enc), "pt") as f:
                last = max((k for k in f.keys() if k.endswith(".weight")), key=lambda k: int(k.split(".")[0]))
                latent = f.get_slice(last).get_shape()[0]  # the encoder's last conv gives the latent channels
        except Exception as e:  # noqa: BLE001
            raise GenspotError(f"{enc} is not a readable safetensors file ({str(e).splitlines()[0][:120]})") from None
        ae = cls(int(latent))
        _load_strict(ae.encoder, enc)
        _load_strict(ae.decoder, folder / DECODER_FILE)
        return ae

    @torch.inference_mode()
    def round_trip(self, x: torch.Tensor) -> torch.Tensor:
        """float (B, 3, H, W) in [0, 1] -> the decoder's rendering of the encoder's latents, same size.
        Sides that are not multiples of 8 are padded by reflection and cropped back."""
        h, w = x.shape[-2:]
        ph, pw = (-h) % FACTOR, (-w) % FACTOR
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="reflect" if min(h, w) > max(ph, pw) else "replicate")
        y = self.decoder(self.encoder(x)).clamp(0, 1)
        return y[..., :h, :w]
