"""The two backbone families of the POSTER heads, behind one contract: ``forward(x)`` → ``(image, landmarks)``,
each a tuple of three (B, C, H, W) maps from shallow to deep (``landmarks`` is ``None`` when the backbone has no
landmark stream).

* :class:`FaceBackbone` — the papers': a trainable IR-50 (stages 1–3 at 112×112) and a frozen MobileFaceNet
  landmark regressor, both from user-given weights.
* :class:`EncoderBackbone` — the pipeline's own: the MAE / PF-ViT encoder E (optionally with PF-ViT's separator S,
  giving the expression tokens V_e as the deepest map); the token grids after blocks ⌈d/3⌉, ⌈2d/3⌉ and d are the
  three maps, so the whole chain runs with no external weights.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..pfvit import TokenSeparator
from ..vit import build_vit
from .ir50 import IR50
from .mobilefacenet import MobileFaceNetLandmarks

IR50_CHANNELS = (64, 128, 256)
LANDMARK_CHANNELS = (64, 128, 512)


class FaceBackbone(nn.Module):
    """IR-50 maps (64×56², 128×28², 256×14²) and landmark maps (64×28², 128×14², 512×7²)."""

    image_channels = IR50_CHANNELS
    landmark_channels = LANDMARK_CHANNELS
    img_size = 224  # the released IR-50 and landmark MobileFaceNet take 224 px faces (their maps above)

    def __init__(self):
        super().__init__()
        self.image_net = IR50()
        self.landmark_net = MobileFaceNetLandmarks()
        self.landmark_net.requires_grad_(False)

    def forward(self, x: torch.Tensor):
        return self.image_net(x), self.landmark_net(x)

    def cam_target_layers(self):
        return [self.image_net.body3[-1]], None


class EncoderBackbone(nn.Module):
    """Three token grids of the ViT encoder, each (B, D, g, g) with g = img_size / patch_size."""

    landmark_channels = None

    def __init__(self, img_size: int, patch_size: int, embed_dim: int, depth: int, num_heads: int,
                 separator: bool = False, se_reduction: int = 4, drop_path_rate: float = 0.0):
        super().__init__()
        self.encoder = build_vit(img_size=img_size, patch_size=patch_size, embed_dim=embed_dim, depth=depth,
                                 num_heads=num_heads, num_classes=0, drop_path_rate=drop_path_rate)
        self.separator = TokenSeparator(embed_dim, se_reduction) if separator else None
        self.taps = (-(-depth // 3) - 1, -(-2 * depth // 3) - 1)
        self.image_channels = (embed_dim,) * 3
        self.grid = self.encoder.patch_embed.grid_size
        self.img_size = self.encoder.img_size

    def forward(self, x: torch.Tensor):
        z, maps = self.encoder.forward_intermediates(x, indices=list(self.taps), norm=False, output_fmt="NCHW")
        if self.separator is not None:
            z = z * self.separator(z)  # V_e (PF-ViT Eq. 2): the expression part of the final tokens
        b, d = z.shape[0], z.shape[-1]
        deepest = z[:, self.encoder.num_prefix_tokens:].transpose(1, 2).reshape(b, d, *self.grid)
        return (maps[0], maps[1], deepest), None

    def cam_target_layers(self):
        return self.encoder.cam_target_layers()
