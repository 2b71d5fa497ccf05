"""POSTER (two-stream cross-fusion, pyramid over the embedding width), POSTER++ (landmark-query cross-attention at
three scales, 3×t tokens, a 2-layer ViT, SE head) and POSTER-Var (POSTER++ with GELU embeddings, layer embeddings,
a fusion LayerNorm and the variational head), on either backbone family (:mod:`.backbones`).

Shapes at 224 px with the face backbone (POSTER++): IR-50 56²/28²/14² → strided convs 28²/14²/7², landmark maps
28²/14²/7² (the last through a 3×3 conv 512→256) → three cross-attentions (64, 128, 256 wide; 2, 4, 8 heads) →
each embedded to 768-wide 7×7 tokens → (B, 147, 768) → [CLS] + 2 blocks → SE → head.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn as nn
from timm.layers import trunc_normal_
from timm.models.vision_transformer import Block

from ..mae import arch_config
from ...resources import optional
from ..registry import register
from .backbones import EncoderBackbone, FaceBackbone
from .layers import LandmarkQueryAttention, PyramidBlock, SEGate, VariationalHead

BACKBONES = ("face", "encoder")
FACE_GRIDS = ((28, 28), (14, 14), (7, 7))


def _backbone(backbone: str, encoder: dict | None) -> nn.Module:
    if backbone == "face":
        return FaceBackbone()
    if backbone == "encoder":
        return EncoderBackbone(**(encoder or {}))
    raise ValueError(f"backbone {backbone!r} is not one of {', '.join(BACKBONES)}")


LORA_TARGETS = r".*\.(qkv|kv|proj|fc1|fc2)$"


def apply_lora(model: nn.Module, r: int, alpha: float, dropout: float) -> None:
    """LoRA adapters (peft) on the attention and MLP projections of the fusion transformer (POSTER-cv's recipe);
    everything else is frozen except the SE gate and the head."""
    peft = optional("peft")
    model.requires_grad_(False)
    lora = peft.LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=LORA_TARGETS, bias="none")
    peft.inject_adapter_in_model(lora, model.blocks)
    for module in (model.se_block, model.head):
        module.requires_grad_(True)


def _init_fusion(module: nn.Module) -> None:
    """POSTER++'s ``_init_vit_weights``, applied to the fusion transformer only."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class PosterV2(nn.Module):
    """POSTER++ (``var_fusion``/``layer_embedding``/``variational`` off) and POSTER-Var (all on)."""

    def __init__(self, num_classes: int = 7, backbone: str = "face", encoder: dict | None = None,
                 dims=(64, 128, 256), heads=(2, 4, 8), embed_dim: int = 768, fusion_depth: int = 2,
                 fusion_heads: int = 8, scale_drop_path=(0.0, 0.125, 0.25), var_fusion: bool = False,
                 layer_embedding: bool = False, variational: bool = False, lora_r: int = 0, lora_alpha: float = 128,
                 lora_dropout: float = 0.1):
        super().__init__()
        self.backbone = _backbone(backbone, encoder)
        self.img_size = self.backbone.img_size
        img_ch = self.backbone.image_channels
        if backbone == "face":
            grids = FACE_GRIDS
            # IR-50 maps are twice the landmark maps: a strided 3×3 conv halves them (channels kept).
            self.image_convs = nn.ModuleList(nn.Conv2d(c, c, 3, 2, 1) for c in img_ch)
            self.query_convs = nn.ModuleList([nn.Identity(), nn.Identity(), nn.Conv2d(512, dims[2], 3, 1, 1)])
        else:
            g = self.backbone.grid[0]
            grids = ((2 * g, 2 * g), (g, g), ((g + 1) // 2, (g + 1) // 2))
            # No landmark stream: queries are a second projection of the same encoder maps (docs/decisions.md).
            def to_scales():
                return nn.ModuleList([nn.ConvTranspose2d(img_ch[0], dims[0], 2, 2), nn.Conv2d(img_ch[1], dims[1], 1),
                                      nn.Conv2d(img_ch[2], dims[2], 3, 2, 1)])
            self.image_convs, self.query_convs = to_scales(), to_scales()
        self.cross_attn = nn.ModuleList(LandmarkQueryAttention(d, h, grid, drop_path=dp)
                                        for d, h, grid, dp in zip(dims, heads, grids, scale_drop_path))
        act = nn.GELU if var_fusion else nn.Identity
        e = embed_dim
        self.embed = nn.ModuleList([
            nn.Sequential(nn.Conv2d(dims[0], e, 3, 2, 1), act(), nn.Conv2d(e, e, 3, 2, 1), act()),
            nn.Sequential(nn.Conv2d(dims[1], e, 3, 2, 1), act()),
            nn.Sequential(nn.Conv2d(dims[2], e, 1), act())])
        tokens = 3 * grids[2][0] * grids[2][1]
        self.level_embeds = nn.Parameter(torch.zeros(3, 1, e)) if layer_embedding else None
        self.fusion_norm = nn.LayerNorm(e) if var_fusion else nn.Identity()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, e))
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens + 1, e))
        norm = partial(nn.LayerNorm, eps=1e-6)
        self.blocks = nn.Sequential(*[Block(e, fusion_heads, 4.0, qkv_bias=True, norm_layer=norm)
                                      for _ in range(fusion_depth)])
        self.norm = norm(e)
        self.se_block = SEGate(e)
        self.head = VariationalHead(e, num_classes) if variational else nn.Linear(e, num_classes)
        for m in (self.blocks, self.norm, self.se_block, self.head):
            _init_fusion(m)
        trunc_normal_(self.pos_embed, std=0.02)
        trunc_normal_(self.cls_token, std=0.02)
        self.num_classes = num_classes
        self.variational = variational
        if lora_r:
            apply_lora(self, lora_r, lora_alpha, lora_dropout)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The SE-gated [CLS] feature (B, embed_dim) that the head classifies."""
        image, landmarks = self.backbone(x)
        landmarks = image if landmarks is None else landmarks
        groups = []
        for i in range(3):
            o = self.cross_attn[i](self.image_convs[i](image[i]), self.query_convs[i](landmarks[i]))
            o = self.embed[i](o).flatten(2).transpose(1, 2)
            groups.append(o + self.level_embeds[i] if self.level_embeds is not None else o)
        tokens = self.fusion_norm(torch.cat(groups, dim=1))
        tokens = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1) + self.pos_embed
        return self.se_block(self.norm(self.blocks(tokens))[:, 0])

    def forward_head(self, feat: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if pre_logits:
            return feat
        return self.head(feat)[0] if self.variational else self.head(feat)

    def cam_target_layers(self):
        return self.backbone.cam_target_layers()

    def forward(self, x: torch.Tensor, all_outputs: bool = False):
        """Logits; ``all_outputs=True``: a dict with ``logits`` (and ``mu``, ``logvar`` of the variational head)."""
        feat = self.forward_features(x)
        if not self.variational:
            out = {"logits": self.head(feat)}
        else:
            logits, mu, logvar = self.head(feat)
            out = {"logits": logits, "mu": mu, "logvar": logvar}
        return out if all_outputs else out["logits"]


class Poster(nn.Module):
    """POSTER: image and landmark tokens (t each, plus a mean token per stream) through ``depth`` pyramid blocks
    of two-stream cross-fusion at widths D, D/2, D/4; the image stream's first token → SE → head."""

    def __init__(self, num_classes: int = 7, backbone: str = "face", encoder: dict | None = None, dim: int = 512,
                 depth: int = 8, num_heads: int = 8, mlp_ratio: float = 2.0, drop_path_rate: float = 0.1,
                 lora_r: int = 0, lora_alpha: float = 128, lora_dropout: float = 0.1):
        super().__init__()
        self.backbone = _backbone(backbone, encoder)
        self.img_size = self.backbone.img_size
        if backbone == "face":
            tokens = 49
            # As released: IR-50's 256×14×14 map is viewed as 49 rows of 1024 (a memory reshape, not patches).
            self.image_proj = nn.Linear(1024, dim)
            self.landmark_proj = nn.Identity() if dim == 512 else nn.Linear(512, dim)
        else:
            g = self.backbone.grid
            tokens = g[0] * g[1]
            width = self.backbone.image_channels[2]
            # Landmark-free: the middle encoder map plays the landmark stream (docs/decisions.md).
            self.image_proj = nn.Linear(width, dim)
            self.landmark_proj = nn.Linear(width, dim)
        self.face = backbone == "face"
        n = 2 * (tokens + 1)
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens + 1, dim))
        trunc_normal_(self.pos_embed, std=0.02)
        self.downsample_m = nn.Conv1d(n, n, kernel_size=2, stride=2)
        self.downsample_s = nn.Conv1d(n, n, kernel_size=4, stride=4)
        dpr = torch.linspace(0, drop_path_rate, depth).tolist()
        self.blocks = nn.ModuleList(PyramidBlock(dim, tokens + 1, num_heads, mlp_ratio, dp) for dp in dpr)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.se_block = SEGate(dim)
        self.head = nn.Linear(dim, num_classes)
        self.num_classes = num_classes
        if lora_r:
            apply_lora(self, lora_r, lora_alpha, lora_dropout)

    def _streams(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        image, landmarks = self.backbone(x)
        b = x.shape[0]
        if self.face:
            img = image[2].reshape(b, 49, 1024)
            lm = landmarks[2].flatten(2).transpose(1, 2)
        else:
            img = image[2].flatten(2).transpose(1, 2)
            lm = image[1].flatten(2).transpose(1, 2)
        return self.image_proj(img), self.landmark_proj(lm)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The SE-gated first token of the image stream (B, dim) that the head classifies."""
        img, lm = self._streams(x)
        img = torch.cat([img.mean(1, keepdim=True), img], dim=1) + self.pos_embed
        lm = torch.cat([lm.mean(1, keepdim=True), lm], dim=1)
        x_l = torch.cat([img, lm], dim=1)
        streams = (x_l, self.downsample_m(x_l), self.downsample_s(x_l))
        for block in self.blocks:
            streams = block(streams)
        return self.se_block(self.norm(streams[0])[:, 0])

    def forward_head(self, feat: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return feat if pre_logits else self.head(feat)

    def cam_target_layers(self):
        return self.backbone.cam_target_layers()

    def forward(self, x: torch.Tensor, all_outputs: bool = False):
        logits = self.forward_head(self.forward_features(x))
        return {"logits": logits} if all_outputs else logits


VARIANTS = {
    "poster": ("poster", {}),
    "poster++": ("poster_v2", {}),
    "poster-var": ("poster_v2", {"var_fusion": True, "layer_embedding": True, "variational": True}),
}


def poster_config(variant: str, num_classes: int, backbone: str = "face", arch: str = "vit_tiny",
                  img_size: int = 224, patch_size: int = 16, separator: bool = False,
                  **overrides) -> tuple[str, dict]:
    """(registered model name, build config) of a variant on a backbone; ``arch``/``img_size``/``patch_size``/
    ``separator`` describe the encoder backbone."""
    if variant not in VARIANTS:
        raise ValueError(f"variant {variant!r} is not one of {', '.join(VARIANTS)}")
    if backbone not in BACKBONES:
        raise ValueError(f"backbone {backbone!r} is not one of {', '.join(BACKBONES)}")
    name, flags = VARIANTS[variant]
    config = {"num_classes": num_classes, "backbone": backbone, **flags, **overrides}
    if backbone == "encoder":
        a = arch_config(arch)
        config["encoder"] = {"img_size": img_size, "patch_size": patch_size, "embed_dim": a["embed_dim"],
                             "depth": a["depth"], "num_heads": a["num_heads"], "separator": separator}
    return name, config


@register("poster")
def build_poster(**config) -> Poster:
    return Poster(**config)


@register("poster_v2")
def build_poster_v2(**config) -> PosterV2:
    return PosterV2(**config)
