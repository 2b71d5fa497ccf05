"""Thin entry point of pfvit/cli/report.py (`pfvit report` runs the same): see --help."""

import sys

from pfvit.cli.report import main

if __name__ == "__main__":
    sys.exit(main())
