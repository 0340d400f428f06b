"""The study's small ViT: 32x32 input, 2x2 patches (256 tokens), embedding 128, 8 heads.

Depth 6 and MLP ratio 2 are genspot's choices (the study did not fix them for us): deep
enough to learn, cheap enough for 2 CPU cores. No class token; tokens are average-pooled,
so the 256 tokens map one-to-one onto a 16x16 grid (what explanations reshape to).
"""

from timm.models.vision_transformer import VisionTransformer
from torch import nn

from genspot.models.registry import register_model


@register_model("vit_p2", "ViT img 32, patch 2, dim 128, 8 heads, depth 6", "Dosovitskiy et al. 2021")
def vit_p2(num_classes: int = 2, depth: int = 6, mlp_ratio: float = 2.0, drop_rate: float = 0.0, **kwargs) -> nn.Module:
    return VisionTransformer(
        img_size=32,
        patch_size=2,
        embed_dim=128,
        depth=depth,
        num_heads=8,
        mlp_ratio=mlp_ratio,
        num_classes=num_classes,
        class_token=False,
        global_pool="avg",
        drop_rate=drop_rate,
        **kwargs,
    )
