"""Plain ViTs in timm's ``vit_*_patch16_224`` layout: the MAE encoder's export and the fine-tuned classifier.

Every pfvit classifier follows timm's contract: ``forward_features(x)`` → what the head reads,
``forward_head(features, pre_logits=False)`` → logits, or with ``pre_logits=True`` the (B, D) vector the head
classifies (what retrieval compares), ``cam_target_layers()`` → (the layers Grad-CAM hooks, the reshape of their
output to a map or None), and ``img_size``: the side of the square faces it takes, from its constructor config (what
the preprocessing resizes to).
"""

from __future__ import annotations

import json
from functools import partial

import torch
import torch.nn as nn
from timm.models.vision_transformer import VisionTransformer

from ..data.transforms import imagenet_preprocess
from .geometry import arch_name
from .mae import ARCHS
from .registry import register, register_variant

ENCODER_KEYS = ("img_size", "patch_size", "embed_dim", "depth", "num_heads")


def token_grid(vit: VisionTransformer):
    """Grad-CAM's reshape of a ViT block's tokens (B, prefix + g·g, D) into a map (B, D, g, g)."""
    grid, prefix = vit.patch_embed.grid_size, vit.num_prefix_tokens

    def reshape(tokens: torch.Tensor) -> torch.Tensor:
        return tokens[:, prefix:].reshape(tokens.shape[0], *grid, tokens.shape[-1]).permute(0, 3, 1, 2)

    return reshape


class ViT(VisionTransformer):
    """timm's ViT (same keys, same forward) with the classifier contract's CAM layer and input size."""

    @property
    def img_size(self) -> int:
        return self.patch_embed.img_size[0]

    def cam_target_layers(self):
        return [self.blocks[-1].norm1], token_grid(self)


@register("vit")
def build_vit(img_size: int = 224, patch_size: int = 16, embed_dim: int = 192, depth: int = 12, num_heads: int = 3,
              mlp_ratio: float = 4.0, num_classes: int = 0, global_pool: str = "token",
              drop_path_rate: float = 0.0) -> ViT:
    """A timm ViT with MAE's choices (qkv bias, LayerNorm ε 1e-6). ``num_classes=0``: features only (the
    encoder); otherwise a linear head on [CLS] (``global_pool="token"``, the paper's baseline) or on the mean of
    the patch tokens after ``fc_norm`` (``"avg"``, MAE's fine-tuning default)."""
    return ViT(img_size=img_size, patch_size=patch_size, embed_dim=embed_dim, depth=depth, num_heads=num_heads,
               mlp_ratio=mlp_ratio, qkv_bias=True, num_classes=num_classes, global_pool=global_pool,
               drop_path_rate=drop_path_rate, norm_layer=partial(nn.LayerNorm, eps=1e-6))


def encoder_config(config: dict) -> dict:
    """The ``build_vit`` config of a MAE's encoder (no head)."""
    return {k: config[k] for k in ENCODER_KEYS}


def timm_config(config: dict, label_names=None, preprocess: dict | None = None) -> str:
    """The timm ``config.json`` of a ``vit`` checkpoint folder: ``timm.create_model("local-dir:<folder>",
    pretrained=True)`` rebuilds it with its weights and head, and ``timm.data.resolve_data_config`` gives the
    preprocessing it was trained with (``preprocess``: the checkpoint's record; the ImageNet one by default) instead
    of timm's defaults for the architecture (mean and std 0.5, crop 0.9)."""
    preprocess = preprocess or imagenet_preprocess()
    num_classes = config.get("num_classes", 0)
    size = config["img_size"]
    model_args = {**{k: config[k] for k in ENCODER_KEYS}, "num_classes": num_classes,
                  "global_pool": config.get("global_pool", "token"), "mlp_ratio": config.get("mlp_ratio", 4.0),
                  "qkv_bias": True}
    pretrained_cfg = {"input_size": [3, size, size], "fixed_input_size": True,
                      "interpolation": preprocess["interpolation"], "mean": preprocess["mean"],
                      "std": preprocess["std"], "crop_pct": 1.0, "crop_mode": "center", "num_classes": num_classes,
                      "first_conv": "patch_embed.proj", "classifier": "head"}
    if label_names:
        pretrained_cfg["label_names"] = list(label_names)
    # Any registered ViT entry point: model_args set every size; the nearest name is kept for readers.
    architecture = f"{arch_name(config) or 'vit_base'}_patch16_224"
    return json.dumps({"architecture": architecture, "num_classes": num_classes,
                       "num_features": config["embed_dim"], "model_args": model_args,
                       "pretrained_cfg": pretrained_cfg}, indent=2)


for _arch, _sizes in ARCHS.items():  # vit_tiny …: the encoder of mae_vit_tiny …, at 224 px with 16 px patches
    register_variant(_arch, "vit", **encoder_config({"img_size": 224, "patch_size": 16, **_sizes}))
