"""Stage 4: PF-ViT — encoder E, separator S, generator G, discriminator D and classifier C trained adversarially.

    accelerate launch pipelines/pfvit_train.py --config configs/pfvit/vit_base.yaml fr.weights=vggface2.pt
    python pipelines/pfvit_train.py --config configs/pfvit/demo.yaml

Reads: data.shards (train and val splits), model.init (a full MAE checkpoint: its encoder becomes E, its decoder G
and D), fr.weights (the frozen face-recognition network of the orthogonality loss).
Writes: run.out/best and run.out/last (pfvit checkpoints; selection on the validation split only),
run.out/discriminator, state/, metrics.jsonl (every loss term), samples/step_*.png, loss.png, config.yaml,
result.json. Export the deployable classifier with pipelines/export_classifier.py.
"""

from ..config import parse_stage_args
from ..errors import cli_entry
from ..schemas.pfvit import PFViTConfig


@cli_entry
def main(argv=None) -> int:
    cfg = parse_stage_args(PFViTConfig, argv, __doc__, default_config="configs/pfvit/vit_tiny.yaml")
    # Imported after the parsing, so that --help, --print-config and a bad key answer without loading torch.
    from ..train.pfvit_train import train

    train(cfg)
    return 0
