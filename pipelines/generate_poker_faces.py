"""Poker faces from a PF-ViT checkpoint: of shard samples, or of pre-aligned face images (a file or a folder).

    python pipelines/generate_poker_faces.py checkpoint=runs/pfvit/best shards=shards/synthetic split=test limit=16
    python pipelines/generate_poker_faces.py checkpoint=runs/pfvit/best images=my_aligned_faces/ out=runs/poker

Reads: a pfvit checkpoint (run.out/best or last of pfvit_train.py); shards or images (aligned faces, e.g. crops
written by make_shards.py; any size, mode or EXIF orientation).
Writes: out/<name>_poker.png per face, out/sheet.png (input | poker face | reconstruction), out/skipped.json
(files that could not be read, with the reason).
"""

import sys
from dataclasses import dataclass
from typing import Optional

from pfvit.config import parse_stage_args
from pfvit.errors import cli_entry
from pfvit.eval.pokerface import generate_poker_faces


@dataclass
class GenerateConfig:
    checkpoint: str = "runs/pfvit/best"
    shards: Optional[str] = None
    split: str = "test"
    images: Optional[str] = None
    out: str = "runs/pfvit/poker_faces"
    limit: Optional[int] = 16
    batch_size: int = 32
    device: str = "auto"  # auto: CUDA when there is one, else the CPU


@cli_entry
def main(argv=None) -> int:
    cfg = parse_stage_args(GenerateConfig, argv, __doc__)
    summary = generate_poker_faces(cfg.checkpoint, cfg.out, shards=cfg.shards, split=cfg.split, images=cfg.images,
                                   limit=cfg.limit, batch_size=cfg.batch_size, device=cfg.device)
    print(f"{summary['generated']} poker faces in {cfg.out} ({len(summary['skipped'])} files skipped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
