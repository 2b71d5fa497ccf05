"""Thin entry point of pfvit/cli/import_mae.py (`pfvit import_mae` runs the same): see --help."""

import sys

from pfvit.cli.import_mae import main

if __name__ == "__main__":
    sys.exit(main())
