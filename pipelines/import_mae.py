"""Import an official facebookresearch/mae or MAE-SFER checkpoint (a `{'model': state_dict}` .pth).

    python pipelines/import_mae.py mae_pretrain_vit_base.pth runs/imported_vit_base --arch vit_base

Writes OUT/checkpoint (pfvit MAE, safetensors + JSON) and OUT/encoder (timm vit_*_patch16_224 layout), and
prints how many tensors were loaded, missing and unexpected. Files that need pickles beyond tensors are refused.
"""

import argparse
import sys

from pfvit.errors import cli_entry
from pfvit.models.convert import import_official_mae
from pfvit.models.mae import ARCHS


@cli_entry
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="official or MAE-SFER .pth file")
    p.add_argument("out", help="output folder")
    p.add_argument("--arch", choices=sorted(ARCHS), default="vit_base")
    p.add_argument("--img-size", type=int, default=224)
    args = p.parse_args(argv)
    report = import_official_mae(args.checkpoint, args.out, args.arch, args.img_size)
    print(f"{args.checkpoint}: {report}; wrote {args.out}/checkpoint and {args.out}/encoder")
    return 0


if __name__ == "__main__":
    sys.exit(main())
