"""Thin entry point of pfvit/cli/export_classifier.py (`pfvit export_classifier` runs the same): see --help."""

import sys

from pfvit.cli.export_classifier import main

if __name__ == "__main__":
    sys.exit(main())
