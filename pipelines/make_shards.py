r"""Stage 1: a raw data set → aligned faces in webdataset shards with a manifest and wids indexes.

    python pipelines/make_shards.py --source synthetic --num 4000 --identities 120 --out shards/synthetic
    python pipelines/make_shards.py --source folder --root CK+48 --dataset ckplus48 \
        --subject-regex '^(S\d+)_' --out shards/ckplus48
    python pipelines/make_shards.py --source fer2013_folder --root train.tar publictest.tar --out shards/fer2013
    python pipelines/make_shards.py --source fer2013_csv --root fer2013.csv --ferplus fer2013new.csv --out shards/ferplus
    python pipelines/make_shards.py --source rafdb --root RAF-DB/basic --out shards/rafdb
    python pipelines/make_shards.py --source affectnet --root AffectNet --val-fraction 0.02 --workers 16 --out shards/affectnet
    python pipelines/make_shards.py --verify shards/synthetic

Output: OUT/{split}-%06d.tar, OUT/manifest.json, OUT/{split}.wids.json (see pfvit/data/shards.py).
Several machines shard one data set with --rank/--world (defaults: torchrun's RANK/WORLD_SIZE or SLURM's);
a killed run resumes where it stopped.
"""

from __future__ import annotations

import argparse
import sys

from pfvit.data.shards import default_rank_world, log_line, verify, write_shards
from pfvit.data.sources.dispatch import SOURCE_KEYS, SOURCES, SourceOptions, source_specs
from pfvit.errors import UserError, cli_entry


def parse_args(argv=None) -> argparse.Namespace:
    rank, world = default_rank_world()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", choices=SOURCES, default="synthetic",
                   help="data set reader")
    p.add_argument("--root", nargs="+", help="folder: ROOT/<class>/<image> (or ROOT/{train,val,test}/<class>/<image>); "
                   "fer2013_csv: fer2013.csv; fer2013_folder: Kaggle folders or tars (train.tar publictest.tar …)")
    p.add_argument("--ferplus", help="fer2013_csv: FER+ fer2013new.csv, joined by row order (labels from its votes)")
    p.add_argument("--ferplus-mode", choices=["majority", "probability", "multi_target"], default="majority",
                   help="fer2013_csv with --ferplus: how votes become the label (default: %(default)s)")
    p.add_argument("--dataset", default="folder", help="folder: data set name recorded in every sample")
    p.add_argument("--class-map", help="folder: extra class-folder names, e.g. 'ang=anger,joy=happy'")
    p.add_argument("--align", choices=["none", "mtcnn", "yunet"], default="none",
                   help="folder: a detector (mtcnn, yunet) finds and aligns faces in photos, 'none' resizes crops; "
                   "rafdb: a detector reads Image/original, 'none' Image/aligned")
    p.add_argument("--faces", choices=["largest", "all"], default="largest",
                   help="folder --align mtcnn: the largest face of a photo, or every face (one sample each)")
    p.add_argument("--val-fraction", type=float, default=0.1,
                   help="rafdb, affectnet: seeded share of the training set used as the validation split")
    p.add_argument("--keep-unlabeled", action="store_true",
                   help="affectnet: keep expression codes 8-10 as cls -1 instead of rejecting them")
    p.add_argument("--subject-regex", help="folder: regex whose group 1 is the subject id (subject-disjoint splits)")
    p.add_argument("--out", default="shards/synthetic", help="output folder (default: %(default)s)")
    p.add_argument("--num", type=int, default=4000, help="synthetic: number of samples over all splits")
    p.add_argument("--identities", type=int, default=120, help="synthetic: number of identities (split disjointly)")
    p.add_argument("--disturbance", type=float, default=1.0,
                   help="synthetic: strength of pose, lighting, background, noise and occluders, 0 to 1 "
                        "(default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="synthetic: family seed; folder: split seed")
    p.add_argument("--size", type=int, default=224, help="output face size in pixels")
    p.add_argument("--quality", type=int, default=95, help="JPEG quality")
    p.add_argument("--maxcount", type=int, default=1000, help="samples per shard")
    p.add_argument("--workers", type=int, default=1, help="worker processes on this machine")
    p.add_argument("--rank", type=int, default=rank, help="this machine's rank (default from the environment)")
    p.add_argument("--world", type=int, default=world, help="number of machines sharding together")
    p.add_argument("--verify", metavar="DIR", help="re-hash the shards of DIR against its manifest and exit")
    return p.parse_args(argv)


@cli_entry
def main(argv=None) -> int:
    args = parse_args(argv)
    if args.verify:
        bad = verify(args.verify)
        if bad:
            raise UserError(f"{len(bad)} shard(s) of {args.verify} differ from the manifest: {', '.join(bad)}; "
                            "re-create them (delete them and their .done.json, then rerun make_shards.py)")
        log_line(f"{args.verify}: every shard matches its manifest")
        return 0
    for name in ("num", "identities", "size", "maxcount", "workers"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name} must be at least 1, got {getattr(args, name)}")
    specs, info = source_specs(SourceOptions(**{k: getattr(args, k) for k in SOURCE_KEYS}))
    # The command is recorded without --rank/--world, so every rank writes the same manifest.
    command = [a for a in sys.argv if not a.startswith(("--rank", "--world"))] if argv is None else list(argv)
    manifest = write_shards(args.out, specs, maxcount=args.maxcount, workers=args.workers, rank=args.rank,
                            world=args.world, command=command, source_info=info, progress=log_line)
    if manifest is None:
        log_line(f"rank {args.rank}: done; the manifest is written when the other ranks finish")
        return 0
    for split, entry in manifest["splits"].items():
        log_line(f"{split}: {entry['count']} samples in {len(entry['shards'])} shard(s), "
                 f"{entry['rejected']} rejected {entry['reject_reasons'] or ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
