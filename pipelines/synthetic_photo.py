"""Thin entry point of pfvit/cli/synthetic_photo.py (`pfvit synthetic_photo` runs the same): see --help."""

import sys

from pfvit.cli.synthetic_photo import main

if __name__ == "__main__":
    sys.exit(main())
