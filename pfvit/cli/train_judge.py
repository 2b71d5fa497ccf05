"""The independent expression judge of the poker faces: a small CNN trained on its own shards, saved as a
classifier checkpoint that evaluate.py takes as judge=…

    python pipelines/make_shards.py source=synthetic seed=1 disturbance=0 img_size=32 out=shards/judge
    python pipelines/train_judge.py shards=shards/judge out=runs/judge img_size=32
    python pipelines/evaluate.py checkpoint=runs/pfvit/best shards=… pokerface=true judge=runs/judge

Reads: shards (train split to learn, val split to report). Writes: out (model.safetensors, meta.json with the
validation accuracy). Give it faces no PF-ViT was trained on (another synthetic seed: other identities).
"""

from ..config import parse_stage_args
from ..errors import cli_entry
from ..schemas.evaluate import JudgeConfig


@cli_entry
def main(argv=None) -> int:
    cfg = parse_stage_args(JudgeConfig, argv, __doc__)
    # Imported after the parsing, so that --help, --print-config and a bad key answer without loading torch.
    from ..eval.probe import train_judge

    result = train_judge(cfg)
    print(f"judge in {result['out']}: val accuracy {result['val_accuracy']:.4f} "
          f"({result['train_samples']} training faces)")
    return 0
