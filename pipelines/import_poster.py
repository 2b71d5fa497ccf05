"""Thin entry point of pfvit/cli/import_poster.py (`pfvit import_poster` runs the same): see --help."""

import sys

from pfvit.cli.import_poster import main

if __name__ == "__main__":
    sys.exit(main())
