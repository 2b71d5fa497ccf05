"""A small strided CNN for expressions: the difficulty probe of the synthetic faces and the independent judge of
the poker faces (no part of PF-ViT in it)."""

from __future__ import annotations

import torch.nn as nn

from .registry import register


def _block(cin: int, cout: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class ExpressionCNN(nn.Module):
    """Strided 3x3 conv + BatchNorm + ReLU blocks (each halves the size), global average pooling, a linear head.
    Any input size runs (the pooling is global); ``img_size`` is the one it is trained at, which its preprocessing
    resizes to. Images in [0, 1]."""

    def __init__(self, num_classes: int = 8, widths: tuple[int, ...] | list[int] = (24, 48, 64, 96),
                 img_size: int = 32):
        super().__init__()
        self.img_size = img_size
        chans = [3, *widths]
        self.features = nn.Sequential(*[_block(a, b) for a, b in zip(chans, chans[1:])], nn.AdaptiveAvgPool2d(1),
                                      nn.Flatten())
        self.head = nn.Linear(chans[-1], num_classes)
        self.num_classes = num_classes

    def forward_features(self, x):
        return self.features(x)

    def forward_head(self, x, pre_logits: bool = False):
        return x if pre_logits else self.head(x)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))

    def cam_target_layers(self):
        return [self.features[-3]], None  # the last conv block, before the pooling and the flatten


@register("expression_cnn")
def build_expression_cnn(num_classes: int = 8, widths: tuple[int, ...] | list[int] = (24, 48, 64, 96),
                         img_size: int = 32) -> ExpressionCNN:
    return ExpressionCNN(num_classes, tuple(widths), img_size)
