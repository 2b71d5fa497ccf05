"""Write a "group photo" of built-in synthetic faces, to try predict.py without real photos (make demo uses it).

    python pipelines/synthetic_photo.py out=runs/demo/photo.jpg num_faces=4 seed=1
"""

from ..config import parse_stage_args
from ..errors import cli_entry
from ..schemas.shards import SYNTHETIC_PHOTO_LEGACY, SyntheticPhotoConfig


@cli_entry
def main(argv=None) -> int:
    cfg = parse_stage_args(SyntheticPhotoConfig, argv, __doc__, legacy=SYNTHETIC_PHOTO_LEGACY)
    from ..data.synthetic import group_photo

    group_photo(cfg.seed, cfg.num_faces).save(cfg.out)
    print(f"wrote {cfg.out}")
    return 0
