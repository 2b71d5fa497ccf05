"""Thin entry point of pfvit/cli/finetune_poster.py (`pfvit finetune_poster` runs the same): see --help."""

import sys

from pfvit.cli.finetune_poster import main

if __name__ == "__main__":
    sys.exit(main())
