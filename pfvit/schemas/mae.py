"""Keys of the MAE pretraining stage (pipelines/mae_pretrain.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal, Optional

from ..config import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, Range
from .choices import Arch
from .run import RunConfig


@dataclass
class MAEModelConfig:
    arch: Arch = "vit_tiny"  # encoder width (the decoder follows the paper's Table 1)
    img_size: PositiveInt = 224  # face size in pixels; every later stage inherits it from the checkpoint
    patch_size: PositiveInt = 16  # patch side in pixels (img_size must be a multiple)
    mask_ratio: Annotated[float, Range(0, 1, hi_open=True)] = 0.75  # share of the patches removed per image
    norm_pix_loss: bool = True  # regress per-patch normalised pixels (MAE's better setting)
    # Weight of the visible patches in the loss: 0 is MAE's (masked patches only); PF-ViT's generator reproduces
    # every patch, and a decoder never trained on visible ones starts it far from that (docs/decisions.md).
    visible_loss_weight: NonNegativeFloat = 0.0


@dataclass
class MAEDataConfig:
    shards: str = "shards/synthetic"  # a shard folder written by make_shards.py (labels are not read)
    split: str = "train"  # the split pretrained on
    batch_size: PositiveInt = 64  # faces per process and micro-batch
    num_workers: NonNegativeInt = 2  # data-loader processes per training process
    # indexed: wids random access, exactly resumable, ranks on disjoint samples; stream: resampled webdataset
    # shards read sequentially (for data on slow or remote storage), resumed runs re-seeded.
    reader: Literal["indexed", "stream"] = "indexed"
    shuffle_buffer: PositiveInt = 1000  # stream reader: the shuffle buffer in samples
    crop_scale: tuple[float, float] = (0.2, 1.0)  # random-resized-crop area range (MAE's)
    # Re-hash the shards against their manifest first (sizes are always checked).
    verify: bool = False
    # How many unreadable samples the indexed reader may skip (each counted, with a warning) before the run stops.
    max_bad_samples: NonNegativeInt = 10


@dataclass
class MAEOptimConfig:
    blr: PositiveFloat = 1.5e-4  # base lr: lr = blr × effective batch / 256 (MAE's rule)
    lr: Optional[PositiveFloat] = None  # absolute lr; overrides blr scaling when set
    weight_decay: NonNegativeFloat = 0.05  # AdamW weight decay (not on norms, biases and tokens)
    betas: tuple[float, float] = (0.9, 0.95)  # AdamW betas
    epochs: PositiveFloat = 300.0  # passes over the split (the run's length)
    warmup_epochs: NonNegativeFloat = 40.0  # linear lr warm-up before the half cosine
    min_lr: NonNegativeFloat = 0.0  # the lr the cosine ends at
    clip_grad: Optional[PositiveFloat] = None  # gradient-norm clip; null: none
    max_steps: Optional[PositiveInt] = None  # stop after this many optimizer steps (demo, tests)


@dataclass
class MAEPretrainConfig:
    run: RunConfig = field(default_factory=lambda: RunConfig(out="runs/mae"))
    model: MAEModelConfig = field(default_factory=MAEModelConfig)
    data: MAEDataConfig = field(default_factory=MAEDataConfig)
    optim: MAEOptimConfig = field(default_factory=MAEOptimConfig)
    vis_every: PositiveInt = 500  # a reconstruction sheet under samples/ every this many steps
    compile: bool = False  # torch.compile the model
