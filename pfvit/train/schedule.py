"""A run's length in optimizer steps, learning-rate schedules and optimizer parameter groups."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch.nn as nn
from timm.optim import param_groups_weight_decay

# Tokens and position tables are not decayed (MAE's recipe; 1-D tensors and biases are excluded by timm).
NO_DECAY_NAMES = ("cls_token", "mask_token", "pos_embed", "decoder_pos_embed")


@dataclass(frozen=True)
class StepPlan:
    """The one definition of a run's length: an epoch is ``samples // effective batch`` optimizer steps, where the
    effective batch is ``batch × grad_accum_steps × processes``; a resumed run starts at micro-batch
    ``step × grad_accum_steps`` of its loader."""

    effective_batch: int
    per_epoch: int          # optimizer steps per epoch
    total: int              # optimizer steps of the run (``epochs`` of them, capped by ``max_steps``)
    grad_accum_steps: int

    @classmethod
    def of(cls, samples: int, batch_size: int, grad_accum_steps: int, processes: int, epochs: float,
           max_steps: int | None = None) -> "StepPlan":
        effective = batch_size * grad_accum_steps * processes
        per_epoch = max(1, samples // effective)
        total = math.ceil(epochs * per_epoch)
        return cls(effective, per_epoch, total if max_steps is None else min(total, max_steps), grad_accum_steps)

    @property
    def micro_batches_per_epoch(self) -> int:
        """The loader's epoch: the sampler reshuffles where the loop's epoch ends."""
        return self.per_epoch * self.grad_accum_steps

    def first_micro_batch(self, step: int) -> int:
        return step * self.grad_accum_steps

    def epoch_end(self, step: int) -> bool:
        return step % self.per_epoch == 0 or step == self.total


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


def vit_layer_id(name: str, depth: int) -> int:
    """MAE / BEiT layer ids: 0 for the stem (patch_embed, cls_token, pos_embed), k+1 for ``blocks.k``, and depth+1
    for everything after the blocks (norm, fc_norm, head)."""
    if name in ("cls_token", "pos_embed") or name.startswith("patch_embed"):
        return 0
    if name.startswith("blocks."):
        return int(name.split(".")[1]) + 1
    return depth + 1


def layer_decay_groups(model: nn.Module, weight_decay: float, layer_decay: float,
                       no_weight_decay: set[str] | frozenset[str] = frozenset()) -> list[dict]:
    """Parameter groups with ``lr_scale = layer_decay^(depth+1 − layer id)`` (facebookresearch/mae
    ``util/lr_decay.py``) and no weight decay for 1-D tensors and ``no_weight_decay`` names. timm's
    ``param_groups_layer_decay`` scales the final ``norm`` like the last block instead, which changes the
    [CLS]-token baseline (it keeps that norm); hence this rule."""
    depth = len(model.blocks)
    groups: dict[tuple[int, bool], dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        no_decay = param.ndim <= 1 or name in no_weight_decay
        layer = vit_layer_id(name, depth)
        group = groups.setdefault((layer, no_decay), {"params": [], "weight_decay": 0.0 if no_decay else weight_decay,
                                                      "lr_scale": layer_decay ** (depth + 1 - layer)})
        group["params"].append(param)
    return list(groups.values())
