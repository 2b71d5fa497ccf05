"""Thin entry point of pfvit/cli/evaluate.py (`pfvit evaluate` runs the same): see --help."""

import sys

from pfvit.cli.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
