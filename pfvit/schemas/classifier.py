"""Keys every classifier stage shares (the ViT baseline, PF-ViT, the POSTER family): labelled data and its
protocol, and training augmentation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from ..config import NonNegativeFloat, NonNegativeInt, PositiveInt, Probability


@dataclass
class ClassifierDataConfig:
    shards: str = "shards/synthetic"  # a shard folder written by make_shards.py (its manifest.json lists the splits)
    train_split: str = "train"  # the split trained on
    val_split: str = "val"  # the split the best epoch is selected on (held-out protocol)
    # heldout: select on val_split (the default, and the only protocol whose test numbers are unbiased); paper: the
    # authors' released code — select the best epoch on test_split and report it (labelled in every output).
    protocol: Literal["heldout", "paper"] = "heldout"
    test_split: str = "test"  # the split the paper protocol selects on
    # Re-hash the shards against their manifest before training (sizes are always checked).
    verify: bool = False
    # How many training samples that cannot be read may be skipped (each counted, with a warning) before the run stops.
    max_bad_samples: NonNegativeInt = 10
    # A protocol class with no training sample (CK+ has no neutral): an error, or allowed — the head keeps the
    # class, never learns it, and evaluation leaves classes without test samples out of its means.
    missing_classes: Literal["error", "allow"] = "error"
    batch_size: PositiveInt = 32  # faces per process and micro-batch
    num_workers: NonNegativeInt = 2  # data-loader processes per training process
    balanced_sampling: bool = False  # draw training faces with class-balanced weights (with replacement)
    class_weighted_loss: bool = False  # weight the loss by inverse class frequency
    # json key holding per-class vote counts (FER+): train on the vote distribution instead of the label.
    soft_labels: Optional[str] = None


@dataclass
class AugConfig:
    """Training augmentation of the classifier stages (timm ``create_transform``)."""
    scale: tuple[float, float] = (0.8, 1.0)  # random-resized-crop area range
    hflip: Probability = 0.5  # horizontal-flip probability
    color_jitter: Optional[NonNegativeFloat] = None  # brightness / contrast / saturation jitter; null: none
    randaugment: Optional[str] = None  # timm RandAugment string, e.g. rand-m9-mstd0.5-inc1; null: none
    reprob: Probability = 0.0  # random-erasing probability


@dataclass
class MixAugConfig(AugConfig):
    """Batch mixing (timm ``Mixup``) on top of the per-image augmentation."""
    mixup: NonNegativeFloat = 0.0  # mixup α; 0: off
    cutmix: NonNegativeFloat = 0.0  # cutmix α; 0: off
