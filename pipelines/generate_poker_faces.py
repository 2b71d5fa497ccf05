"""Thin entry point of pfvit/cli/generate_poker_faces.py (`pfvit generate_poker_faces` runs the same): see --help."""

import sys

from pfvit.cli.generate_poker_faces import main

if __name__ == "__main__":
    sys.exit(main())
