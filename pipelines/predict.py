"""Thin entry point of pfvit/cli/predict.py (`pfvit predict` runs the same): see --help."""

import sys

from pfvit.cli.predict import main

if __name__ == "__main__":
    sys.exit(main())
