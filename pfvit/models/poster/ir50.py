"""IR-50 (ArcFace's improved residual network), stages 1–3: the image stream of POSTER and POSTER++.

Parameter names follow the face.evoLVe ``Backbone(50, 'ir')`` layout of the released ``ir50.pth``
(``input_layer.*``, units ``body.0`` … ``body.20`` of stages 1–3) except that the units are split per stage into
``body1`` / ``body2`` / ``body3`` as in POSTER++; :func:`remap_ir50_keys` converts. Stage 4 and the embedding layer
are not built: neither POSTER uses them.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

# (in channels, out channels, units) of stages 1–3; the first unit of each stage has stride 2.
IR50_STAGES = ((64, 64, 3), (64, 128, 4), (128, 256, 14))
INPUT_SIZE = 112


class BottleneckIR(nn.Module):
    """BN → 3×3 conv → PReLU → 3×3 conv (stride) → BN, plus a shortcut (identity / strided 1×1 conv + BN)."""

    def __init__(self, in_channels: int, depth: int, stride: int):
        super().__init__()
        if in_channels == depth:
            self.shortcut_layer = nn.MaxPool2d(1, stride)  # a strided identity, parameter-free
        else:
            self.shortcut_layer = nn.Sequential(nn.Conv2d(in_channels, depth, 1, stride, bias=False),
                                                nn.BatchNorm2d(depth))
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(in_channels), nn.Conv2d(in_channels, depth, 3, 1, 1, bias=False), nn.PReLU(depth),
            nn.Conv2d(depth, depth, 3, stride, 1, bias=False), nn.BatchNorm2d(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


def _stage(in_channels: int, depth: int, units: int) -> nn.Sequential:
    return nn.Sequential(*[BottleneckIR(in_channels if i == 0 else depth, depth, 2 if i == 0 else 1)
                           for i in range(units)])


class IR50(nn.Module):
    """Any input is resized to 112×112; returns the stage maps (B,64,56,56), (B,128,28,28), (B,256,14,14)."""

    def __init__(self):
        super().__init__()
        self.input_layer = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64))
        self.body1, self.body2, self.body3 = (_stage(*s) for s in IR50_STAGES)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.input_layer(F.interpolate(x, size=INPUT_SIZE))
        x1 = self.body1(x)
        x2 = self.body2(x1)
        return x1, x2, self.body3(x2)


def remap_ir50_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """face.evoLVe ``body.N.*`` → ``body1/2/3.M.*`` (body.0–2 → body1, 3–6 → body2, 7–20 → body3); units of stage 4
    (body.21+) and ``output_layer.*`` are dropped: POSTER does not build them."""
    starts, out = [], {}
    total = 0
    for _, _, units in IR50_STAGES:
        starts.append(total)
        total += units
    for key, value in state.items():
        if not key.startswith("body."):
            if not key.startswith("output_layer."):
                out[key] = value
            continue
        _, unit, rest = key.split(".", 2)
        unit = int(unit)
        if unit >= total:
            continue
        stage = max(i for i, s in enumerate(starts) if unit >= s)
        out[f"body{stage + 1}.{unit - starts[stage]}.{rest}"] = value
    return out
