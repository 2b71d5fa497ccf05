"""Difficulty probes for a labelled image set: is it learnable, and is it more than memorising pixels?

* :func:`nearest_neighbour_accuracy` — 1-NN on raw pixels. Across disjoint identities it should stay far below
  100%: a high number means the labels can be read off by matching whole images (identity or background leaks).
* :func:`cnn_probe_accuracy` — a small strided CNN trained for a fixed number of steps. It should land well
  above chance: the expression signal is there to be learned.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
from PIL import Image


def to_tensor_batch(images: Sequence[Image.Image]) -> torch.Tensor:
    """PIL RGB images of one size → float tensor (N, 3, H, W) in [0, 1]."""
    arr = np.stack([np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0 for img in images])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()


def nearest_neighbour_accuracy(x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor,
                               y_test: torch.Tensor) -> float:
    dist = torch.cdist(x_test.flatten(1), x_train.flatten(1))
    return (y_train[dist.argmin(dim=1)] == y_test).float().mean().item()


def _block(cin: int, cout: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


def train_probe(net: nn.Module, x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor,
                y_test: torch.Tensor, steps: int, max_lr: float, batch_size: int = 64, weight_decay: float = 0.01,
                seed: int = 0) -> float:
    """Train ``net`` with AdamW and a one-cycle schedule for ``steps`` steps of random batches; test accuracy."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(net.parameters(), lr=max_lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=steps)
    net.train()
    for _ in range(steps):
        idx = torch.randint(0, len(x_train), (batch_size,), generator=gen)
        loss = nn.functional.cross_entropy(net(x_train[idx]), y_train[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    net.eval()
    with torch.no_grad():
        pred = torch.cat([net(chunk).argmax(dim=1) for chunk in x_test.split(256)])
    return (pred == y_test).float().mean().item()


def cnn_probe_accuracy(x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor,
                       num_classes: int, steps: int = 900, batch_size: int = 64, seed: int = 0) -> float:
    """Train a 4-layer strided CNN with a one-cycle schedule for ``steps`` steps; test accuracy."""
    torch.manual_seed(seed)
    net = nn.Sequential(_block(3, 24), _block(24, 48), _block(48, 64), _block(64, 96), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(96, num_classes))
    return train_probe(net, x_train, y_train, x_test, y_test, steps, max_lr=6e-3, batch_size=batch_size, seed=seed)
