"""Keys of PF-ViT's outputs: poker faces (pipelines/generate_poker_faces.py) and the exported classifier
(pipelines/export_classifier.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..config import PositiveInt


@dataclass
class GenerateConfig:
    checkpoint: str = "runs/pfvit/best"  # a pfvit checkpoint (best or last of pfvit_train.py)
    shards: Optional[str] = None  # a shard folder whose faces get poker faces (or images=)
    split: str = "test"  # the shard split read
    images: Optional[str] = None  # an aligned face image or a folder of them (or shards=)
    out: str = "runs/pfvit/poker_faces"  # where the poker faces, sheet.png and skipped.json go
    limit: Optional[PositiveInt] = 16  # at most this many shard faces; null: all
    batch_size: PositiveInt = 32  # faces per forward pass
    device: str = "auto"  # auto: CUDA when there is one, else the CPU


@dataclass
class ExportConfig:
    checkpoint: str = "runs/pfvit/best"  # a pfvit checkpoint (best or last of pfvit_train.py)
    out: str = "runs/pfvit/classifier"  # the classifier checkpoint folder written
