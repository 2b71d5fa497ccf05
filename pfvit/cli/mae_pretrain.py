"""Stage 2: MAE pretraining of a ViT-T/S/B on face shards, without labels.

    accelerate launch pipelines/mae_pretrain.py --config configs/mae_pretrain/vit_tiny.yaml run.out=runs/mae
    python pipelines/mae_pretrain.py --config configs/mae_pretrain/demo.yaml

Reads: data.shards (a make_shards.py output). Writes: run.out/{checkpoint,encoder,state,reconstructions},
metrics.jsonl, loss.png, config.yaml.
"""

from ..config import parse_stage_args
from ..errors import cli_entry
from ..schemas.mae import MAEPretrainConfig


@cli_entry
def main(argv=None) -> int:
    cfg = parse_stage_args(MAEPretrainConfig, argv, __doc__, default_config="configs/mae_pretrain/vit_tiny.yaml")
    # Imported after the parsing, so that --help, --print-config and a bad key answer without loading torch.
    from ..train.mae_pretrain import train

    train(cfg)
    return 0
