"""Plain ViT encoders in timm's ``vit_*_patch16_224`` layout (what the MAE encoder exports to)."""

from __future__ import annotations

from functools import partial

import torch.nn as nn
from timm.models.vision_transformer import VisionTransformer

from .registry import register


@register("vit_encoder")
def build_vit_encoder(img_size: int = 224, patch_size: int = 16, embed_dim: int = 192, depth: int = 12,
                      num_heads: int = 3, mlp_ratio: float = 4.0, num_classes: int = 0,
                      global_pool: str = "token") -> VisionTransformer:
    """A timm ViT with MAE's choices (qkv bias, LayerNorm ε 1e-6); ``num_classes=0`` gives features only."""
    return VisionTransformer(img_size=img_size, patch_size=patch_size, embed_dim=embed_dim, depth=depth,
                             num_heads=num_heads, mlp_ratio=mlp_ratio, qkv_bias=True, num_classes=num_classes,
                             global_pool=global_pool, norm_layer=partial(nn.LayerNorm, eps=1e-6))
