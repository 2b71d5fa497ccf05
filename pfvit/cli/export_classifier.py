"""Export PF-ViT's classifier (encoder E, separator S, head C) for deployment; the generator and discriminator
are dropped.

    python pipelines/export_classifier.py checkpoint=runs/pfvit/best out=runs/pfvit/classifier

Reads: a pfvit checkpoint (run.out/best or run.out/last of pfvit_train.py).
Writes: out/ — a classifier checkpoint for evaluate.py, predict.py and pfvit.inference.load_classifier.
"""

from ..config import parse_stage_args
from ..errors import cli_entry
from ..schemas.pokerface import ExportConfig


@cli_entry
def main(argv=None) -> int:
    cfg = parse_stage_args(ExportConfig, argv, __doc__)
    # Imported after the parsing, so that --help, --print-config and a bad key answer without loading torch.
    from ..export import export_classifier

    print(f"exported {export_classifier(cfg.checkpoint, cfg.out)}")
    return 0
