"""Stage 5: POSTER / POSTER++ / POSTER-Var heads on the papers' IR-50 + MobileFaceNet or on the pipeline's encoder.

    accelerate launch pipelines/finetune_poster.py --config configs/finetune_poster/poster_pp.yaml \
        model.ir50=pretrain/ir50.pth model.mobilefacenet=pretrain/mobilefacenet_model_best.pth.tar
    python pipelines/finetune_poster.py --config configs/finetune_poster/demo_poster_var.yaml

Reads: data.shards (train and val splits); model.ir50 / model.mobilefacenet (face backbone) or model.init (a MAE,
ViT or PF-ViT checkpoint for the encoder backbone).
Writes: run.out/best and run.out/last (classifier checkpoints; selection on the validation split only), state/,
metrics.jsonl, loss.png, config.yaml, result.json. Evaluate with pipelines/evaluate.py checkpoint=run.out/best.
"""

from ..config import parse_stage_args
from ..errors import cli_entry
from ..schemas.poster import PosterConfig


@cli_entry
def main(argv=None) -> int:
    cfg = parse_stage_args(PosterConfig, argv, __doc__, default_config="configs/finetune_poster/poster_pp.yaml")
    # Imported after the parsing, so that --help, --print-config and a bad key answer without loading torch.
    from ..train.poster_train import train

    train(cfg)
    return 0
