"""Thin entry point of pfvit/cli/pfvit_train.py (`pfvit pfvit_train` runs the same): see --help."""

import sys

from pfvit.cli.pfvit_train import main

if __name__ == "__main__":
    sys.exit(main())
