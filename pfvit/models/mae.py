"""Masked autoencoder (He et al., 2022) on timm's ``PatchEmbed`` and ``Block``.

State-dict keys are those of facebookresearch/mae (``patch_embed.proj``, ``cls_token``, ``pos_embed``,
``blocks.N.*``, ``norm``, ``decoder_embed``, ``mask_token``, ``decoder_pos_embed``, ``decoder_blocks.N.*``,
``decoder_norm``, ``decoder_pred``), so official and MAE-SFER releases import with :mod:`pfvit.models.convert`.
Attention runs through ``scaled_dot_product_attention`` (timm's fused attention). ``qk_scale``, which timm no
longer accepts, is not passed.
"""

from __future__ import annotations

from functools import partial
from typing import get_args

import numpy as np
import torch
import torch.nn as nn
from timm.layers import PatchEmbed
from timm.models.vision_transformer import Block

from ..errors import ConfigError
from ..schemas.choices import Arch
from .registry import register, register_variant

# Encoder dim/depth/heads and the MAE decoder dim/depth/heads of the PF-ViT paper (seed 004, Table 1), under the
# names of ``Arch`` (the type a config's ``model.arch`` is checked against when it is parsed).
_VIT_TINY = dict(embed_dim=192, depth=12, num_heads=3, decoder_embed_dim=128, decoder_depth=8, decoder_num_heads=4)
ARCHS = {
    "vit_tiny": _VIT_TINY,
    # not the paper's: ViT-T with half its blocks, twice the fine-tune steps a minute on a CPU (FER2013 CPU recipe)
    "vit_tiny_d6": {**_VIT_TINY, "depth": 6},
    "vit_small": dict(embed_dim=384, depth=12, num_heads=6, decoder_embed_dim=256, decoder_depth=8, decoder_num_heads=8),
    "vit_base": dict(embed_dim=768, depth=12, num_heads=12, decoder_embed_dim=512, decoder_depth=8,
                     decoder_num_heads=16),
}
assert set(get_args(Arch)) == set(ARCHS)


def sincos_pos_embed_2d(embed_dim: int, grid_hw: tuple[int, int], cls_token: bool = True) -> np.ndarray:
    """Fixed 2-D sin-cos position table, (1+H·W, D) with a zero row for [CLS] — MAE's ``get_2d_sincos_pos_embed``.

    The first half of the channels encodes the column index, the second half the row index; each half is
    ``[sin(p·ω), cos(p·ω)]`` with ``ω_k = 1 / 10000^(k / (D/4))``.
    """
    if embed_dim % 4:
        raise ValueError(f"sin-cos position tables need an embedding width divisible by 4, got {embed_dim}")
    gh, gw = grid_hw
    cols, rows = np.meshgrid(np.arange(gw, dtype=np.float64), np.arange(gh, dtype=np.float64))
    omega = 1.0 / 10000 ** (np.arange(embed_dim // 4, dtype=np.float64) / (embed_dim / 4))

    def one_d(pos):
        out = np.outer(pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    table = np.concatenate([one_d(cols), one_d(rows)], axis=1)
    if cls_token:
        table = np.concatenate([np.zeros((1, embed_dim)), table], axis=0)
    return table.astype(np.float32)


def random_masking(x: torch.Tensor, mask_ratio: float, noise: torch.Tensor | None = None):
    """Per-sample random masking by sorting noise: the smallest ``int(L·(1−r))`` noise values are kept.

    Returns the visible tokens (N, L_keep, D), the binary mask (N, L; 1 = removed, in the original order) and
    ``ids_restore`` (N, L), the permutation that puts shuffled tokens back. Pass ``noise`` (N, L) for a
    deterministic mask (as in Hugging Face's ViTMAE).
    """
    n, length, dim = x.shape
    len_keep = int(length * (1 - mask_ratio))
    if noise is None:
        noise = torch.rand(n, length, device=x.device)
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    ids_keep = ids_shuffle[:, :len_keep]
    x_visible = torch.gather(x, 1, ids_keep.unsqueeze(-1).expand(-1, -1, dim))
    mask = torch.ones(n, length, device=x.device)
    mask[:, :len_keep] = 0
    mask = torch.gather(mask, 1, ids_restore)
    return x_visible, mask, ids_restore


class MaskedAutoencoderViT(nn.Module):
    """ViT encoder + lightweight decoder; loss on the removed patches only."""

    def __init__(self, img_size: int | tuple[int, int] = 224, patch_size: int = 16, in_chans: int = 3,
                 embed_dim: int = 192, depth: int = 12, num_heads: int = 3, decoder_embed_dim: int = 128,
                 decoder_depth: int = 8, decoder_num_heads: int = 4, mlp_ratio: float = 4.0,
                 norm_pix_loss: bool = False, visible_loss_weight: float = 0.0):
        super().__init__()
        norm_layer = partial(nn.LayerNorm, eps=1e-6)
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        self.img_size = self.patch_embed.img_size[0]
        self.grid_size = self.patch_embed.grid_size
        num_patches = self.patch_embed.num_patches
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        # Fixed sin-cos tables; Parameters (not buffers) with requires_grad=False, as in the official code.
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, embed_dim), requires_grad=False)
        self.blocks = nn.ModuleList([Block(embed_dim, num_heads, mlp_ratio, qkv_bias=True, norm_layer=norm_layer)
                                     for _ in range(depth)])
        self.norm = norm_layer(embed_dim)

        self.decoder_embed = nn.Linear(embed_dim, decoder_embed_dim, bias=True)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        self.decoder_pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, decoder_embed_dim), requires_grad=False)
        self.decoder_blocks = nn.ModuleList([
            Block(decoder_embed_dim, decoder_num_heads, mlp_ratio, qkv_bias=True, norm_layer=norm_layer)
            for _ in range(decoder_depth)])
        self.decoder_norm = norm_layer(decoder_embed_dim)
        self.decoder_pred = nn.Linear(decoder_embed_dim, patch_size ** 2 * in_chans, bias=True)

        self.patch_size = patch_size
        self.in_chans = in_chans
        self.norm_pix_loss = norm_pix_loss
        self.visible_loss_weight = visible_loss_weight
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """The official initialisation: sin-cos tables, xavier on the patch projection viewed as a Linear,
        normal(0.02) tokens, xavier Linears with zero bias, unit LayerNorms."""
        self.pos_embed.data.copy_(torch.from_numpy(sincos_pos_embed_2d(self.pos_embed.shape[-1], self.grid_size)))
        self.decoder_pos_embed.data.copy_(
            torch.from_numpy(sincos_pos_embed_2d(self.decoder_pos_embed.shape[-1], self.grid_size)))
        w = self.patch_embed.proj.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)
        self.apply(self._init_module)

    @staticmethod
    def _init_module(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    # -- patches ---------------------------------------------------------------------------------------------
    def patchify(self, imgs: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) → (N, h·w, p·p·C), pixels within a patch ordered row, column, channel."""
        p, c = self.patch_size, self.in_chans
        n, _, height, width = imgs.shape
        h, w = height // p, width // p
        x = imgs.reshape(n, c, h, p, w, p)
        x = torch.einsum("nchpwq->nhwpqc", x)
        return x.reshape(n, h * w, p * p * c)

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        """(N, h·w, p·p·C) → (N, C, H, W); the exact inverse of :meth:`patchify`."""
        p, c = self.patch_size, self.in_chans
        h, w = self.grid_size
        x = x.reshape(x.shape[0], h, w, p, p, c)
        x = torch.einsum("nhwpqc->nchpwq", x)
        return x.reshape(x.shape[0], c, h * p, w * p)

    # -- encoder / decoder -----------------------------------------------------------------------------------
    def forward_encoder(self, imgs: torch.Tensor, mask_ratio: float, noise: torch.Tensor | None = None):
        x = self.patch_embed(imgs) + self.pos_embed[:, 1:, :]
        x, mask, ids_restore = random_masking(x, mask_ratio, noise)
        cls = (self.cls_token + self.pos_embed[:, :1, :]).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1)
        for block in self.blocks:
            x = block(x)
        return self.norm(x), mask, ids_restore

    def forward_features(self, imgs: torch.Tensor) -> torch.Tensor:
        """The encoder on all tokens, no masking: (N, 1+L, D), [CLS] first."""
        x = self.patch_embed(imgs) + self.pos_embed[:, 1:, :]
        cls = (self.cls_token + self.pos_embed[:, :1, :]).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def forward_decoder(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        x = self.decoder_embed(latent)
        n, length = ids_restore.shape
        mask_tokens = self.mask_token.expand(n, length + 1 - x.shape[1], -1)
        tokens = torch.cat([x[:, 1:, :], mask_tokens], dim=1)
        tokens = torch.gather(tokens, 1, ids_restore.unsqueeze(-1).expand(-1, -1, x.shape[2]))
        x = torch.cat([x[:, :1, :], tokens], dim=1) + self.decoder_pos_embed
        for block in self.decoder_blocks:
            x = block(x)
        x = self.decoder_pred(self.decoder_norm(x))
        return x[:, 1:, :]

    def target(self, imgs: torch.Tensor) -> torch.Tensor:
        """Per-patch targets; with ``norm_pix_loss`` each patch is standardised (unbiased variance, as official)."""
        target = self.patchify(imgs)
        if self.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1.0e-6) ** 0.5
        return target

    def forward_loss(self, imgs: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean squared error over the removed patches only: Σ(mask·mse) / Σ mask (MAE). With
        ``visible_loss_weight`` λ > 0 the visible patches count too, each with weight λ (1: every patch equally, the
        MAE paper's "loss on all pixels"), so the decoder also learns to reproduce what it is given — what PF-ViT's
        generator does with every token visible."""
        loss = ((pred.float() - self.target(imgs).float()) ** 2).mean(dim=-1)
        weight = mask if self.visible_loss_weight == 0 else mask + self.visible_loss_weight * (1 - mask)
        return (loss * weight).sum() / weight.sum()

    def forward(self, imgs: torch.Tensor, mask_ratio: float = 0.75, noise: torch.Tensor | None = None):
        latent, mask, ids_restore = self.forward_encoder(imgs, mask_ratio, noise)
        pred = self.forward_decoder(latent, ids_restore)
        return self.forward_loss(imgs, pred, mask), pred, mask

    def pred_to_pixels(self, imgs: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
        """Predictions as an image; with ``norm_pix_loss`` each patch is un-normalised with the input's own
        patch statistics, so reconstructions can be looked at."""
        if self.norm_pix_loss:
            target = self.patchify(imgs)
            mean = target.mean(dim=-1, keepdim=True)
            std = (target.var(dim=-1, keepdim=True) + 1.0e-6) ** 0.5
            pred = pred * std + mean
        return self.unpatchify(pred)


def arch_config(arch: str = "vit_tiny", **overrides) -> dict:
    """The sizes of a named architecture with overrides (e.g. img_size=112): the constructor config of ``mae``
    and of ``pfvit``; the encoder's part sizes ``vit`` and POSTER's encoder backbone."""
    if arch not in ARCHS:
        raise ConfigError(f"model.arch={arch!r} is not one of {', '.join(ARCHS)}")
    return {**ARCHS[arch], **overrides}


@register("mae")
def build_mae(**config) -> MaskedAutoencoderViT:
    return MaskedAutoencoderViT(**config)


for _arch, _sizes in ARCHS.items():
    register_variant(f"mae_{_arch}", "mae", **_sizes)
