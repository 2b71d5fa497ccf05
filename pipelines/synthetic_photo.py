"""Write a "group photo" of built-in synthetic faces, to try predict.py without real photos (make demo uses it).

    python pipelines/synthetic_photo.py runs/demo/photo.jpg --faces 4 --seed 1
"""

import argparse
import sys

from pfvit.data.synthetic import group_photo
from pfvit.errors import cli_entry


@cli_entry
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", help="output image file")
    p.add_argument("--faces", type=int, default=4)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    group_photo(args.seed, args.faces).save(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
