"""Layers of the POSTER family: cross-attention (with GCViT's relative position bias for POSTER++), the
landmark-query cross-attention of one scale, POSTER's two-stream cross-fusion and pyramid blocks, the SE gate and
POSTER-Var's variational head."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import DropPath, Mlp, trunc_normal_


class CrossAttention(nn.Module):
    """Queries come from one stream as they are (no projection, as in both POSTERs); keys and values are a linear
    map (``kv``) of the other stream. ``softmax(q kᵀ/√d + bias) v`` then ``proj``."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"width {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.kv = nn.Linear(dim, dim * 2, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, queries: torch.Tensor, context: torch.Tensor, bias: torch.Tensor | None = None):
        b, n, c = context.shape
        h = self.num_heads
        k, v = self.kv(context).reshape(b, n, 2, h, c // h).permute(2, 0, 3, 1, 4)
        q = queries.reshape(b, queries.shape[1], h, c // h).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.proj(out.transpose(1, 2).reshape(b, queries.shape[1], c))


def relative_position_index(h: int, w: int) -> torch.Tensor:
    """(h·w, h·w) index into a ((2h-1)(2w-1), heads) bias table for every (query, key) position pair (Swin)."""
    coords = torch.stack(torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)
    return (rel[..., 0] + h - 1) * (2 * w - 1) + rel[..., 1] + w - 1


class LandmarkQueryAttention(nn.Module):
    """One POSTER++ scale: queries from the landmark map, keys/values from the image map at the same grid.

    POSTER++ partitions into windows as large as the map — one window per image — so this is global
    cross-attention with a learned relative position bias (GCViT). Then, with layer-scale γ (init 1e-5) and drop
    path: ``x = LN(img) + γ₁·attn``, ``x = x + γ₂·MLP(LN(x))`` (the shortcut is the normalised map, as released).
    """

    def __init__(self, dim: int, num_heads: int, grid: tuple[int, int], mlp_ratio: float = 4.0,
                 layer_scale: float = 1e-5, drop_path: float = 0.0):
        super().__init__()
        self.grid = grid
        self.norm = nn.LayerNorm(dim)
        self.attn = CrossAttention(dim, num_heads)
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * grid[0] - 1) * (2 * grid[1] - 1),
                                                                     num_heads))
        trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer("relative_position_index", relative_position_index(*grid), persistent=False)
        self.gamma1 = nn.Parameter(layer_scale * torch.ones(dim))
        self.gamma2 = nn.Parameter(layer_scale * torch.ones(dim))
        self.mlp_norm = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, image: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
        b, c, h, w = image.shape
        if (h, w) != self.grid or landmarks.shape[-2:] != image.shape[-2:]:
            raise ValueError(f"maps of {h}x{w} / {tuple(landmarks.shape[-2:])} do not fit the {self.grid} grid")
        x = self.norm(image.flatten(2).transpose(1, 2))
        n = h * w
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(n, n, -1)
        out = self.attn(landmarks.flatten(2).transpose(1, 2), x, bias.permute(2, 0, 1).unsqueeze(0))
        x = x + self.drop_path(self.gamma1 * out)
        x = x + self.drop_path(self.gamma2 * self.mlp(self.mlp_norm(x)))
        return x.transpose(1, 2).reshape(b, c, h, w)


class SEGate(nn.Module):
    """POSTER's SE block on a vector: ``x ⊙ σ(W₂ ReLU(W₁ x))`` with full-width W₁, W₂ (POSTER-Var Eq. 4)."""

    def __init__(self, dim: int):
        super().__init__()
        self.linear1 = nn.Linear(dim, dim)
        self.linear2 = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.linear2(F.relu(self.linear1(x))))


class VariationalHead(nn.Module):
    """POSTER-Var's VICH: μ and log σ² per class; training outputs z = μ + ε·exp(log σ²/2) (Eq. 5) directly as
    logits, evaluation outputs μ."""

    def __init__(self, dim: int, num_classes: int):
        super().__init__()
        self.fc_mu = nn.Linear(dim, num_classes)
        self.fc_logvar = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logits, μ, log σ²)."""
        mu, logvar = self.fc_mu(x), self.fc_logvar(x)
        if not self.training:
            return mu, mu, logvar
        return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar), mu, logvar


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, σ²) ‖ N(0, I)) = −½ Σ_k (1 + log σ²_k − μ²_k − σ²_k), summed over classes, mean over the batch."""
    return (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=-1)).mean()


class CrossFusionBlock(nn.Module):
    """POSTER's two-stream block over [image tokens; landmark tokens] (equal counts): the image stream is updated by
    landmark-query attention over image keys, the landmark stream by image-query attention over landmark keys,
    each followed by its own MLP; a 1×1 Conv1d then mixes all tokens."""

    def __init__(self, dim: int, tokens_per_stream: int, num_heads: int, mlp_ratio: float, drop_path: float):
        super().__init__()
        self.split = tokens_per_stream
        self.norm1, self.norm2, self.norm3, self.norm4 = (nn.LayerNorm(dim, eps=1e-6) for _ in range(4))
        self.attn_img = CrossAttention(dim, num_heads)
        self.attn_lm = CrossAttention(dim, num_heads)
        self.mlp1 = Mlp(dim, int(dim * mlp_ratio))
        self.mlp2 = Mlp(dim, int(dim * mlp_ratio))
        self.conv = nn.Conv1d(2 * tokens_per_stream, 2 * tokens_per_stream, 1)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        img, lm = x[:, :self.split], x[:, self.split:]
        img_n, lm_n = self.norm1(x).split(self.split, dim=1)
        img = img + self.drop_path(self.attn_img(lm_n, img_n))
        img = img + self.drop_path(self.mlp1(self.norm2(img)))
        img_n, lm_n = self.norm3(x).split(self.split, dim=1)
        lm = lm + self.drop_path(self.attn_lm(img_n, lm_n))
        lm = lm + self.drop_path(self.mlp2(self.norm4(lm)))
        return self.conv(torch.cat([img, lm], dim=1))


class PyramidBlock(nn.Module):
    """POSTER's pyramid over the embedding width: cross-fusion blocks at widths D, D/2, D/4, then the small stream
    is upsampled (ConvTranspose1d along the width) into the medium one and the medium into the large one."""

    def __init__(self, dim: int, tokens_per_stream: int, num_heads: int, mlp_ratio: float, drop_path: float):
        super().__init__()
        n = 2 * tokens_per_stream
        self.block_l = CrossFusionBlock(dim, tokens_per_stream, num_heads, mlp_ratio, drop_path)
        self.block_m = CrossFusionBlock(dim // 2, tokens_per_stream, num_heads, mlp_ratio, drop_path)
        self.block_s = CrossFusionBlock(dim // 4, tokens_per_stream, num_heads, mlp_ratio, drop_path)
        self.upsample_m = nn.ConvTranspose1d(n, n, kernel_size=2, stride=2)
        self.upsample_s = nn.ConvTranspose1d(n, n, kernel_size=2, stride=2)

    def forward(self, streams: tuple[torch.Tensor, torch.Tensor, torch.Tensor]):
        x_l, x_m, x_s = self.block_l(streams[0]), self.block_m(streams[1]), self.block_s(streams[2])
        x_m = self.upsample_s(x_s) + x_m
        return x_l + self.upsample_m(x_m), x_m, x_s
