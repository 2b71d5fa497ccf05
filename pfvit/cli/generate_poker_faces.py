"""Poker faces from a PF-ViT checkpoint: of shard samples, or of pre-aligned face images (a file or a folder).

    python pipelines/generate_poker_faces.py checkpoint=runs/pfvit/best shards=shards/synthetic split=test limit=16
    python pipelines/generate_poker_faces.py checkpoint=runs/pfvit/best images=my_aligned_faces/ out=runs/poker

Reads: a pfvit checkpoint (run.out/best or last of pfvit_train.py); shards or images (aligned faces, e.g. crops
written by make_shards.py; any size, mode or EXIF orientation).
Writes: out/<name>_poker.png per face, out/sheet.png (input | poker face | reconstruction), out/skipped.json
(files that could not be read, with the reason).
"""

from ..config import parse_stage_args
from ..errors import cli_entry
from ..schemas.pokerface import GenerateConfig


@cli_entry
def main(argv=None) -> int:
    cfg = parse_stage_args(GenerateConfig, argv, __doc__)
    # Imported after the parsing, so that --help, --print-config and a bad key answer without loading torch.
    from ..eval.pokerface import generate_poker_faces

    summary = generate_poker_faces(cfg.checkpoint, cfg.out, shards=cfg.shards, split=cfg.split, images=cfg.images,
                                   limit=cfg.limit, batch_size=cfg.batch_size, device=cfg.device)
    print(f"{summary['generated']} poker faces in {cfg.out} ({len(summary['skipped'])} files skipped)")
    return 0
