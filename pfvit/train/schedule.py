"""Learning-rate schedules and optimizer parameter groups."""

from __future__ import annotations

import math

import torch.nn as nn
from timm.optim import param_groups_weight_decay

# Tokens and position tables are not decayed (MAE's recipe; 1-D tensors and biases are excluded by timm).
NO_DECAY_NAMES = ("cls_token", "mask_token", "pos_embed", "decoder_pos_embed")


def warmup_cosine(step: float, total_steps: float, warmup_steps: float, base_lr: float, min_lr: float = 0.0) -> float:
    """MAE's per-iteration schedule: linear warmup from 0, then a half-cycle cosine down to ``min_lr``."""
    if step < warmup_steps:
        return base_lr * step / warmup_steps
    progress = (step - warmup_steps) / max(1e-8, total_steps - warmup_steps)
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def weight_decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: decayed weights, and norms / biases / tokens / position tables without decay."""
    names = {name for name, _ in model.named_parameters() if name.split(".")[-1] in NO_DECAY_NAMES}
    return param_groups_weight_decay(model, weight_decay, no_weight_decay_list=names)


def effective_lr(blr: float, effective_batch: int) -> float:
    """lr = blr × effective batch / 256 (the MAE scaling rule)."""
    return blr * effective_batch / 256
