"""MobileFaceNet trained as a 68-point landmark regressor (136 outputs): POSTER's frozen landmark stream.

Parameter names follow the released ``mobilefacenet_model_best.pth.tar`` (cunjian/pytorch_face_landmark, also
used by py-feat). The GDC regression head is not built — POSTER discards its output — so the checkpoint's
``output_layer.*`` tensors are expected leftovers. ``forward`` returns the maps POSTER taps.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

INPUT_SIZE = 112


class ConvBlock(nn.Module):
    """conv → BN → PReLU (``prelu=False``: conv → BN, the linear projection)."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, padding: int = 0, groups: int = 1,
                 prelu: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.prelu = nn.PReLU(cout) if prelu else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        return self.prelu(x) if self.prelu is not None else x


class DepthWise(nn.Module):
    """Inverted bottleneck: 1×1 expand to ``groups`` channels → depth-wise 3×3 (stride) → linear 1×1 project."""

    def __init__(self, cin: int, cout: int, groups: int, stride: int = 2, residual: bool = False):
        super().__init__()
        self.conv = ConvBlock(cin, groups)
        self.conv_dw = ConvBlock(groups, groups, 3, stride, 1, groups=groups)
        self.project = ConvBlock(groups, cout, prelu=False)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.conv_dw(self.conv(x)))
        return x + y if self.residual else y


class Residual(nn.Module):
    def __init__(self, channels: int, blocks: int, groups: int):
        super().__init__()
        self.model = nn.Sequential(*[DepthWise(channels, channels, groups, stride=1, residual=True)
                                     for _ in range(blocks)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class MobileFaceNetLandmarks(nn.Module):
    """Any input is resized to 112×112; returns (B,64,28,28) after ``conv_3``, (B,128,14,14) after ``conv_4`` and
    (B,512,7,7) after ``conv_6_sep``."""

    def __init__(self):
        super().__init__()
        self.conv1 = ConvBlock(3, 64, 3, 2, 1)
        self.conv2_dw = ConvBlock(64, 64, 3, 1, 1, groups=64)
        self.conv_23 = DepthWise(64, 64, groups=128)
        self.conv_3 = Residual(64, 4, groups=128)
        self.conv_34 = DepthWise(64, 128, groups=256)
        self.conv_4 = Residual(128, 6, groups=256)
        self.conv_45 = DepthWise(128, 128, groups=512)
        self.conv_5 = Residual(128, 2, groups=256)
        self.conv_6_sep = ConvBlock(128, 512)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.conv_23(self.conv2_dw(self.conv1(F.interpolate(x, size=INPUT_SIZE))))
        out3 = self.conv_3(x)
        out4 = self.conv_4(self.conv_34(out3))
        return out3, out4, self.conv_6_sep(self.conv_5(self.conv_45(out4)))

    def train(self, mode: bool = True):
        """Frozen: always in eval mode, so its BatchNorm statistics never drift (the references' bug: they only set
        ``requires_grad=False`` and call ``model.train()``)."""
        return super().train(False)
