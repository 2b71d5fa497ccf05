"""Import a released POSTER++ (Talented-Q/POSTER_V2) or POSTER-Var (lg2578/poster-var) checkpoint.

    python pipelines/import_poster.py rafdb_best.pth runs/imported/poster_pp_rafdb --variant poster++ --labels rafdb
    python pipelines/evaluate.py checkpoint=runs/imported/poster_pp_rafdb shards=shards/rafdb split=test

Keys lose their `module.` prefix and are renamed to pfvit's layout; the parameters the release builds but never
uses are listed, not loaded; every tensor the model needs must be present (a partial match is an error). The
head is re-ordered from the release's class order (--labels: rafdb, affectnet7, affectnet8, or comma-separated
names) into pfvit's canonical order. Files that need pickles beyond tensors are refused (re-save the state dict).
"""

import argparse
import sys

from pfvit.errors import cli_entry
from pfvit.labels import RELEASED_LABEL_ORDERS


@cli_entry
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="released .pth (a state dict, or {'state_dict': …})")
    p.add_argument("out", help="output checkpoint folder")
    p.add_argument("--variant", choices=("poster++", "poster-var"), default="poster++")
    p.add_argument("--labels", default="rafdb",
                   help=f"the release's class order: {', '.join(RELEASED_LABEL_ORDERS)} or comma-separated names")
    args = p.parse_args(argv)
    # Imported after the parsing, so that --help and a bad flag answer without loading torch.
    from pfvit.models.poster.weights import import_released_poster

    order = RELEASED_LABEL_ORDERS.get(args.labels) or tuple(n.strip() for n in args.labels.split(","))
    report = import_released_poster(args.checkpoint, args.out, args.variant, order)
    print(f"{args.checkpoint}: loaded {report['loaded']} tensors, left {report['unused']} unused "
          f"({', '.join(report['unused_examples'])}); wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
