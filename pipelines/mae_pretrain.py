"""Thin entry point of pfvit/cli/mae_pretrain.py (`pfvit mae_pretrain` runs the same): see --help."""

import sys

from pfvit.cli.mae_pretrain import main

if __name__ == "__main__":
    sys.exit(main())
