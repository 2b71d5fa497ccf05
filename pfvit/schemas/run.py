"""Keys under ``run:``, shared by every training stage."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

from ..config import NonNegativeInt, PositiveInt


@dataclass
class RunConfig:
    """Keys under ``run:`` in every training stage's config."""

    out: str = "runs/default"  # the run's folder: checkpoints, state/, metrics.jsonl, config.yaml, result.json
    seed: NonNegativeInt = 0  # seed of the model init, the data order and the augmentation
    # Used only when no launcher set a precision (plain `python pipelines/...`); the launcher's flag always wins.
    mixed_precision: Optional[Literal["no", "fp16", "bf16"]] = None
    grad_accum_steps: PositiveInt = 1  # micro-batches per optimizer step (the effective batch counts them)
    log_every: PositiveInt = 10  # a step line (loss, lr, img/s) and a metrics.jsonl row every this many steps
    save_every: PositiveInt = 200  # a resumable state under state/ every this many optimizer steps
    keep_states: PositiveInt = 2  # how many of the newest states are kept
    resume: bool = True  # continue from the newest state in out/state when there is one
    # Trackers beside metrics.jsonl: wandb (Weights & Biases; a login, or WANDB_MODE=offline) and tensorboard (event
    # files under out/logs); each needs its package (the wandb and tensorboard extras).
    log_with: list[Literal["wandb", "tensorboard"]] = field(default_factory=list)
    wandb: bool = False  # deprecated spelling of run.log_with=[wandb], kept for one release
    wandb_project: str = "pfvit"  # the W&B project (and the TensorBoard run folder's name)
