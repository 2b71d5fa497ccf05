"""Import an official facebookresearch/mae or MAE-SFER checkpoint (a `{'model': state_dict}` .pth).

    python pipelines/import_mae.py mae_pretrain_vit_base.pth runs/imported_vit_base --arch vit_base

Writes OUT/checkpoint (pfvit MAE, safetensors + JSON) and OUT/encoder (timm vit_*_patch16_224 layout), and
prints how many tensors were loaded, missing and unexpected. Files that need pickles beyond tensors are refused.
"""

import argparse
import sys
from typing import get_args

from pfvit.errors import cli_entry
from pfvit.schemas.choices import Arch


@cli_entry
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="official or MAE-SFER .pth file")
    p.add_argument("out", help="output folder")
    p.add_argument("--arch", choices=get_args(Arch), default="vit_base")
    p.add_argument("--img-size", type=int, default=224)
    args = p.parse_args(argv)
    # Imported after the parsing, so that --help and a bad flag answer without loading torch.
    from pfvit.models.convert import import_official_mae

    report = import_official_mae(args.checkpoint, args.out, args.arch, args.img_size)
    print(f"{args.checkpoint}: {report}; wrote {args.out}/checkpoint and {args.out}/encoder")
    return 0


if __name__ == "__main__":
    sys.exit(main())
