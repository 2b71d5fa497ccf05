"""Thin entry point of pfvit/cli/make_shards.py (`pfvit make_shards` runs the same): see --help."""

import sys

from pfvit.cli.make_shards import main

if __name__ == "__main__":
    sys.exit(main())
