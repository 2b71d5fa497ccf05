"""Plain ViTs in timm's ``vit_*_patch16_224`` layout: the MAE encoder's export and the fine-tuned classifier."""

from __future__ import annotations

from functools import partial

import torch.nn as nn
from timm.models.vision_transformer import VisionTransformer

from .registry import register

ENCODER_KEYS = ("img_size", "patch_size", "embed_dim", "depth", "num_heads")


@register("vit")
def build_vit(img_size: int = 224, patch_size: int = 16, embed_dim: int = 192, depth: int = 12, num_heads: int = 3,
              mlp_ratio: float = 4.0, num_classes: int = 0, global_pool: str = "token",
              drop_path_rate: float = 0.0) -> VisionTransformer:
    """A timm ViT with MAE's choices (qkv bias, LayerNorm ε 1e-6). ``num_classes=0``: features only (the
    encoder); otherwise a linear head on [CLS] (``global_pool="token"``, the paper's baseline) or on the mean of
    the patch tokens after ``fc_norm`` (``"avg"``, MAE's fine-tuning default)."""
    return VisionTransformer(img_size=img_size, patch_size=patch_size, embed_dim=embed_dim, depth=depth,
                             num_heads=num_heads, mlp_ratio=mlp_ratio, qkv_bias=True, num_classes=num_classes,
                             global_pool=global_pool, drop_path_rate=drop_path_rate,
                             norm_layer=partial(nn.LayerNorm, eps=1e-6))


def encoder_config(config: dict) -> dict:
    """The ``build_vit`` config of a MAE's encoder (no head)."""
    return {k: config[k] for k in ENCODER_KEYS}
