"""Thin entry point of pfvit/cli/train_judge.py (`pfvit train_judge` runs the same): see --help."""

import sys

from pfvit.cli.train_judge import main

if __name__ == "__main__":
    sys.exit(main())
