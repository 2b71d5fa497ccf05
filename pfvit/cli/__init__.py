"""The stages' command lines, one module per stage: ``pfvit <stage> key=value …`` (the console script),
``python -m pfvit <stage> …`` and ``python pipelines/<stage>.py …`` run the same ``main``. ``pfvit --help`` lists
the stages; ``pfvit <stage> --help`` lists a stage's keys. Nothing here imports torch before a stage runs."""

from __future__ import annotations

import importlib
import sys
import textwrap
from typing import Sequence

# In the chain's order, then the tools around it.
STAGES = ("make_shards", "mae_pretrain", "finetune_vit", "pfvit_train", "finetune_poster", "export_classifier",
          "generate_poker_faces", "evaluate", "report", "predict", "retrieve", "train_judge", "import_mae",
          "import_poster", "synthetic_photo")


def _summary(stage: str) -> str:
    """The first paragraph of a stage's docstring, on one line."""
    doc = (importlib.import_module(f"{__name__}.{stage}").__doc__ or "").strip()
    return " ".join(line.strip() for line in doc.split("\n\n")[0].splitlines())


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: pfvit <stage> [--config FILE] [--print-config] [key=value …]   (pfvit <stage> --help: its keys)"
              "\n\nstages:")
        width = max(map(len, STAGES)) + 4
        for stage in STAGES:
            print(textwrap.fill(_summary(stage), 116, initial_indent=f"  {stage:<{width - 2}}",
                                subsequent_indent=" " * width))
        return 0 if argv else 2
    stage = argv[0].replace("-", "_")
    if stage not in STAGES:
        print(f"error: unknown stage {argv[0]!r}; stages: {', '.join(STAGES)}", file=sys.stderr)
        return 2
    return importlib.import_module(f"{__name__}.{stage}").main(argv[1:])
