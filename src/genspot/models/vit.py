"""The study's small ViT: 32x32 input, 2x2 patches (256 tokens), embedding 128, 8 heads.

At other input sizes (`img_size`, which genspot train passes from --image-size) the patch grows
with the image, S/16, so the model keeps the study's 16x16 grid of 256 tokens and its cost: a
256-px ViT reads 16x16 patches (ViT-B/16's patch), each token a 16x16-pixel square.

Depth 6 and MLP ratio 2 are genspot's choices (the study did not fix them for us): deep
enough to learn, cheap enough for 2 CPU cores. No class token; tokens are average-pooled,
so the 256 tokens map one-to-one onto a 16x16 grid (what explanations reshape to).
"""

from timm.models.vision_transformer import VisionTransformer
from torch import nn

from genspot.models.layers import tokens_to_map
from genspot.models.registry import register_model


# Built for one input size (patch S/16 keeps 256 tokens). Grad-CAM at the last block's norm1, its
# 256 tokens as a 16x16 map (no class token); attention rollout applies; no CAM (no pooled maps).
@register_model("vit_p2", "ViT img 32, patch 2, dim 128, 8 heads, depth 6", "Dosovitskiy et al. 2021", sized=True,
                target_layer="blocks.-1.norm1", reshape=tokens_to_map, rollout=True)
def vit_p2(num_classes: int = 2, depth: int = 6, mlp_ratio: float = 2.0, drop_rate: float = 0.0, img_size: int = 32,
           patch_size: int | None = None, **kwargs) -> nn.Module:  # fmt: skip
    patch = patch_size or max(1, img_size // 16)
    if img_size % patch:
        raise ValueError(f"img_size {img_size} is not a multiple of the patch size {patch}")
    return VisionTransformer(
        img_size=img_size,
        patch_size=patch,
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
