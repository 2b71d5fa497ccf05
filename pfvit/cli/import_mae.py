"""Import an official facebookresearch/mae or MAE-SFER checkpoint (a `{'model': state_dict}` .pth).

    python pipelines/import_mae.py checkpoint=mae_pretrain_vit_base.pth out=runs/imported_vit_base arch=vit_base

Writes OUT/checkpoint (pfvit MAE, safetensors + JSON) and OUT/encoder (timm vit_*_patch16_224 layout), and
prints how many tensors were loaded, missing and unexpected. Files that need pickles beyond tensors are refused.
The positional spelling of earlier releases (`import_mae.py FILE OUT --arch …`) still works, with a deprecation line.
"""

from ..config import parse_stage_args, require
from ..errors import cli_entry
from ..schemas.imports import IMPORT_LEGACY, MAEImportConfig


@cli_entry
def main(argv=None) -> int:
    cfg = parse_stage_args(MAEImportConfig, argv, __doc__, legacy=IMPORT_LEGACY)
    require(cfg, "checkpoint", "out")
    # Imported after the parsing, so that --help, --print-config and a bad key answer without loading torch.
    from ..models.convert import import_official_mae

    report = import_official_mae(cfg.checkpoint, cfg.out, cfg.arch, cfg.img_size)
    print(f"{cfg.checkpoint}: {report}; wrote {cfg.out}/checkpoint and {cfg.out}/encoder")
    return 0
