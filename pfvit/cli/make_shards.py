r"""Stage 1: a raw data set → aligned faces in webdataset shards with a manifest and wids indexes.

    python pipelines/make_shards.py source=synthetic num=4000 identities=120 out=shards/synthetic
    python pipelines/make_shards.py source=folder root=CK+48 dataset=ckplus48 subject_regex='^(S\d+)_' \
        out=shards/ckplus48
    python pipelines/make_shards.py source=fer2013_folder root=[train.tar,publictest.tar] out=shards/fer2013
    python pipelines/make_shards.py source=fer2013_csv root=fer2013.csv ferplus=fer2013new.csv out=shards/ferplus
    python pipelines/make_shards.py source=rafdb root=RAF-DB/basic out=shards/rafdb
    python pipelines/make_shards.py source=affectnet root=AffectNet val_fraction=0.02 workers=16 out=shards/affectnet
    python pipelines/make_shards.py verify=true out=shards/synthetic

Output: OUT/{split}-%06d.tar, OUT/manifest.json, OUT/{split}.wids.json (see pfvit/data/shards.py).
Several machines shard one data set with rank= and world= (defaults: torchrun's RANK/WORLD_SIZE or SLURM's);
a killed run resumes where it stopped. The --flag spelling of earlier releases still works, with a deprecation line.
"""

from __future__ import annotations

import sys

from ..config import parse_stage_args
from ..errors import UserError, cli_entry
from ..schemas.shards import SHARDS_LEGACY, ShardsConfig


@cli_entry
def main(argv=None) -> int:
    cfg = parse_stage_args(ShardsConfig, argv, __doc__, legacy=SHARDS_LEGACY)
    from ..data.shards import default_rank_world, log_line, verify, write_shards
    from ..data.sources.dispatch import source_specs

    if cfg.verify:
        bad = verify(cfg.out)
        if bad:
            raise UserError(f"{len(bad)} shard(s) of {cfg.out} differ from the manifest: {', '.join(bad)}; "
                            "re-create them (delete them and their .done.json, then rerun make_shards.py)")
        log_line(f"{cfg.out}: every shard matches its manifest")
        return 0
    rank, world = default_rank_world()
    rank = rank if cfg.rank is None else cfg.rank
    world = world if cfg.world is None else cfg.world
    specs, info = source_specs(cfg)
    # The command is recorded without the rank and world, so every rank writes the same manifest.
    command = [a for a in (sys.argv if argv is None else argv)
               if not a.startswith(("--rank", "--world", "rank=", "world="))]
    manifest = write_shards(cfg.out, specs, maxcount=cfg.maxcount, workers=cfg.workers, rank=rank, world=world,
                            command=command, source_info=info, progress=log_line)
    if manifest is None:
        log_line(f"rank {rank}: done; the manifest is written when the other ranks finish")
        return 0
    for split, entry in manifest["splits"].items():
        log_line(f"{split}: {entry['count']} samples in {len(entry['shards'])} shard(s), "
                 f"{entry['rejected']} rejected {entry['reject_reasons'] or ''}")
    return 0
