"""Keys of importing released checkpoints (pipelines/import_mae.py, pipelines/import_poster.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..config import LegacySpelling, PositiveInt
from .choices import Arch


@dataclass
class MAEImportConfig:
    checkpoint: str = ""  # an official facebookresearch/mae or MAE-SFER .pth ({'model': state_dict})
    out: str = ""  # the folder of the pfvit MAE (out/checkpoint) and its encoder (out/encoder, timm layout)
    arch: Arch = "vit_base"  # the release's encoder width
    img_size: PositiveInt = 224  # the face size the imported model runs at (position embeddings are resampled)


@dataclass
class PosterImportConfig:
    checkpoint: str = ""  # a released .pth (a state dict, or {'state_dict': …})
    out: str = ""  # the pfvit checkpoint folder written
    variant: Literal["poster++", "poster-var"] = "poster++"  # POSTER++ (Talented-Q/POSTER_V2) or POSTER-Var
    # The release's class order: rafdb, affectnet7, affectnet8 (pfvit.labels) or comma-separated names.
    labels: str = "rafdb"


IMPORT_LEGACY = LegacySpelling(positional=("checkpoint", "out"))
