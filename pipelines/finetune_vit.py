"""Thin entry point of pfvit/cli/finetune_vit.py (`pfvit finetune_vit` runs the same): see --help."""

import sys

from pfvit.cli.finetune_vit import main

if __name__ == "__main__":
    sys.exit(main())
