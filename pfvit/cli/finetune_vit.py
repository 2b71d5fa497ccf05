"""Stage 3: the ViT baseline — a pretrained encoder and a linear head on [CLS], fine-tuned on labelled shards.

    accelerate launch pipelines/finetune_vit.py --config configs/finetune_vit/paper.yaml model.init=runs/mae/checkpoint
    python pipelines/finetune_vit.py --config configs/finetune_vit/demo.yaml

Reads: data.shards (train and val splits), model.init (a MAE / encoder checkpoint or an official .pth).
Writes: run.out/best and run.out/last (classifier checkpoints; selection on the validation split only),
state/, metrics.jsonl (with val_* per epoch), loss.png, config.yaml, result.json.
"""

from ..config import parse_stage_args
from ..errors import cli_entry
from ..schemas.finetune import FinetuneConfig


@cli_entry
def main(argv=None) -> int:
    cfg = parse_stage_args(FinetuneConfig, argv, __doc__, default_config="configs/finetune_vit/paper.yaml")
    # Imported after the parsing, so that --help, --print-config and a bad key answer without loading torch.
    from ..train.finetune import train

    train(cfg)
    return 0
