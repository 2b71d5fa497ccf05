"""Thin entry point of pfvit/cli/retrieve.py (`pfvit retrieve` runs the same): see --help."""

import sys

from pfvit.cli.retrieve import main

if __name__ == "__main__":
    sys.exit(main())
