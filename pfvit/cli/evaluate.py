"""Evaluate a classifier checkpoint on a shard split: metrics.json, confusion.png, predictions.csv.

    python pipelines/evaluate.py checkpoint=runs/vit/best shards=shards/synthetic split=test out=runs/vit/eval_test
    accelerate launch --multi_gpu --num_processes 8 pipelines/evaluate.py checkpoint=… shards=… tta_flip=true
    python pipelines/evaluate.py checkpoint=runs/poster_pp/best shards=… cam=true  # + cam.png, 4 faces per class

Every sample is counted exactly once across processes, and the count is checked against the shard manifest.
"""

from ..config import parse_stage_args
from ..errors import cli_entry
from ..schemas.evaluate import EVAL_LEGACY, EvalConfig


@cli_entry
def main(argv=None) -> int:
    cfg = parse_stage_args(EvalConfig, argv, __doc__, legacy=EVAL_LEGACY)
    # Imported after the parsing, so that --help, --print-config and a bad key answer without loading torch.
    from ..eval.evaluate import evaluate

    evaluate(cfg)
    return 0
