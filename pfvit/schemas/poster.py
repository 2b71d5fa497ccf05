"""Keys of the POSTER family stage (pipelines/finetune_poster.py): POSTER, POSTER++ and POSTER-Var."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal, Optional

from ..config import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, Probability, Range
from .choices import Arch, NumClasses, SelectMetric
from .classifier import ClassifierDataConfig, MixAugConfig
from .run import RunConfig


@dataclass
class PosterModelConfig:
    variant: Literal["poster", "poster++", "poster-var"] = "poster++"  # the network, as released
    # face: IR-50 + landmark MobileFaceNet (the papers'); encoder: a pfvit ViT encoder's token grids instead.
    backbone: Literal["face", "encoder"] = "face"
    # Geometry: null inherits model.init's (encoder backbone, a pfvit checkpoint), else vit_tiny, 224, 16, 7; the
    # face backbone is IR-50's 224 px (models/geometry.py).
    num_classes: Optional[NumClasses] = None
    img_size: Optional[PositiveInt] = None  # encoder backbone: another size than model.init's resamples its table
    # face backbone: the released pretrained files (no download); null → random init, warned.
    ir50: Optional[str] = None
    mobilefacenet: Optional[str] = None  # face backbone: the released landmark MobileFaceNet file
    # encoder backbone: a pfvit MAE / ViT / PF-ViT checkpoint (or an official MAE .pth).
    init: Optional[str] = None
    arch: Optional[Arch] = None  # encoder backbone: null inherits model.init's
    patch_size: Optional[PositiveInt] = None  # encoder backbone: null inherits model.init's
    separator: Optional[bool] = None  # null: PF-ViT's S is used when model.init is a PF-ViT checkpoint
    # fusion width / depth: null → the paper's (POSTER 512 / 8, POSTER++ 768 / 2)
    fusion_dim: Optional[PositiveInt] = None
    fusion_depth: Optional[PositiveInt] = None  # null: the paper's
    lora_r: NonNegativeInt = 0  # > 0: LoRA adapters on the fusion transformer, everything else frozen but SE + head
    lora_alpha: PositiveFloat = 128.0  # LoRA scale α (the update is α / r × B·A)
    lora_dropout: Annotated[float, Range(0, 1, hi_open=True)] = 0.1  # dropout on the LoRA path


@dataclass
class PosterOptimConfig:
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"  # the base optimizer (wrapped by SAM when sam_rho is set)
    lr: PositiveFloat = 3.5e-5  # the released lr
    weight_decay: NonNegativeFloat = 1e-4  # of the base optimizer
    sam_rho: Optional[PositiveFloat] = 0.05  # SAM's neighbourhood radius; null: plain optimizer steps
    gamma: Annotated[float, Range(0, 1, lo_open=True)] = 0.98  # ExponentialLR, stepped per epoch
    epochs: PositiveFloat = 200.0  # passes over the training split (a fraction ends mid-epoch)
    max_steps: Optional[PositiveInt] = None  # stop after this many optimizer steps (demo, tests)
    clip_grad: Optional[PositiveFloat] = None  # gradient-norm clip; null: none


@dataclass
class PosterLossConfig:
    # ce: cross-entropy; lsce: label-smoothed; poster: the release's 2·LSCE + CE; cb_focal: class-balanced focal.
    kind: Literal["ce", "lsce", "poster", "cb_focal"] = "ce"
    smoothing: Annotated[float, Range(0, 1, hi_open=True)] = 0.2  # lsce and poster
    cb_beta: Annotated[float, Range(0, 1, hi_open=True)] = 0.9999  # cb_focal: effective-number β
    focal_gamma: NonNegativeFloat = 2.0  # cb_focal: the focusing γ
    kl_weight: NonNegativeFloat = 0.01  # POSTER-Var: λ of CE + λ·KL(N(μ, σ²) ‖ N(0, I))


@dataclass
class PosterAugConfig(MixAugConfig):
    lighting: NonNegativeFloat = 0.0  # PCA lighting alphastd (POSTER-cv: 0.1); 0 disables
    reprob: Probability = 0.25  # random-erasing probability (the release's)


@dataclass
class PosterConfig:
    run: RunConfig = field(default_factory=lambda: RunConfig(out="runs/poster"))
    model: PosterModelConfig = field(default_factory=PosterModelConfig)
    data: ClassifierDataConfig = field(default_factory=ClassifierDataConfig)
    aug: PosterAugConfig = field(default_factory=PosterAugConfig)
    optim: PosterOptimConfig = field(default_factory=PosterOptimConfig)
    loss: PosterLossConfig = field(default_factory=PosterLossConfig)
    select_metric: SelectMetric = "accuracy"  # the validation metric the best epoch is selected on
