"""Keys of the ViT baseline stage (pipelines/finetune_vit.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal, Optional

from ..config import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, Probability, Range
from .choices import Arch, NumClasses, SelectMetric
from .classifier import ClassifierDataConfig, MixAugConfig
from .run import RunConfig


@dataclass
class FTModelConfig:
    # Geometry: null inherits model.init's (a pfvit checkpoint), else vit_tiny, 224, 16, 7 (models/geometry.py).
    arch: Optional[Arch] = None
    img_size: Optional[PositiveInt] = None  # another size than model.init's resamples its position table
    patch_size: Optional[PositiveInt] = None  # must be model.init's
    num_classes: Optional[NumClasses] = None  # the protocol: 7 (basic + neutral) or 8 (+ contempt)
    # The head reads [CLS] (token, the paper's) or the mean of the patch tokens (avg, MAE's fine-tuning default).
    global_pool: Literal["token", "avg"] = "token"
    drop_path: Annotated[float, Range(0, 1, hi_open=True)] = 0.0  # stochastic depth, rising to this at the last block
    # A pfvit MAE / encoder checkpoint folder or an official / MAE-SFER .pth; null trains from scratch (warned).
    init: Optional[str] = None
    # Std of the head's init over a loaded encoder: MAE's 2e-5 suits long runs; in a few hundred steps over a brief
    # MAE it keeps the trunk's gradients near zero and the run at chance (short.yaml uses timm's 0.02).
    head_init_std: PositiveFloat = 2e-5


@dataclass
class FTAugConfig(MixAugConfig):
    label_smoothing: Annotated[float, Range(0, 1, hi_open=True)] = 0.0  # of the hard-label cross-entropy


@dataclass
class FTOptimConfig:
    # paper: Adam without decay at a constant lr, ×plateau_factor when validation stalls; mae: AdamW over
    # layer-decayed groups, linear warm-up, then a half cosine to min_lr.
    recipe: Literal["paper", "mae"] = "paper"
    lr: Optional[PositiveFloat] = None  # paper: 1e-4; mae: blr × effective batch / 256 when unset
    blr: PositiveFloat = 5e-4  # mae recipe: the base lr
    layer_decay: Annotated[float, Range(0, 1, lo_open=True)] = 0.75  # mae recipe: lr × decay per block from the top
    weight_decay: NonNegativeFloat = 0.05  # mae recipe: AdamW weight decay (not on norms, biases and tokens)
    epochs: PositiveFloat = 100.0  # passes over the training split (a fraction ends mid-epoch)
    warmup_epochs: NonNegativeFloat = 5.0  # mae recipe: linear warm-up before the cosine
    min_lr: NonNegativeFloat = 1e-6  # mae recipe: the lr the cosine ends at
    plateau_patience: NonNegativeInt = 30  # paper recipe: epochs without improvement before the lr drops
    plateau_factor: Annotated[float, Range(0, 1, lo_open=True, hi_open=True)] = 0.1  # paper recipe: the lr's drop
    clip_grad: Optional[PositiveFloat] = None  # gradient-norm clip; null: none
    # Decay of an exponential moving average of the weights (timm ModelEmaV3, with its warm-up), which is what gets
    # validated and saved in best/ and last/; null: off. A resumed run restarts the average from the resumed weights.
    ema_decay: Optional[Annotated[float, Range(0, 1, lo_open=True, hi_open=True)]] = None
    max_steps: Optional[PositiveInt] = None  # stop after this many optimizer steps (demo, tests)


@dataclass
class DistillConfig:
    # Knowledge distillation (Hinton et al. 2015) from one of the project's classifiers: a `vit` or exported
    # `pfvit_classifier` folder of the same classes, size and preprocessing; null: off. Never the fer judge.
    teacher: Optional[str] = None
    weight: Probability = 0.5  # w in (1 − w)·cross-entropy + w·T²·KL(teacher ‖ student), both at temperature T
    temperature: PositiveFloat = 2.0  # T: above 1 the teacher's smaller probabilities weigh more


@dataclass
class FinetuneConfig:
    run: RunConfig = field(default_factory=lambda: RunConfig(out="runs/vit"))
    model: FTModelConfig = field(default_factory=FTModelConfig)
    data: ClassifierDataConfig = field(default_factory=ClassifierDataConfig)
    aug: FTAugConfig = field(default_factory=FTAugConfig)
    optim: FTOptimConfig = field(default_factory=FTOptimConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    select_metric: SelectMetric = "accuracy"  # the validation metric the best epoch is selected on
