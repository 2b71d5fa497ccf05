"""From the options of ``make_shards.py`` to one source's shard specs and the ``source`` record of the manifest."""

from __future__ import annotations

from ...errors import UserError
from ...schemas.shards import ShardsConfig
from ..shards import ShardSpec

def source_specs(o: ShardsConfig) -> tuple[list[ShardSpec], dict]:
    """(shard specs, the manifest's ``source`` record) for the chosen reader."""
    from .affectnet import affectnet_specs
    from .fer2013 import fer2013_csv_specs, fer2013_folder_specs
    from .folder import folder_specs, parse_class_map
    from .rafdb import rafdb_specs
    from .synthetic import synthetic_specs

    common = {"size": o.img_size, "quality": o.quality}
    if o.source == "synthetic":
        return (synthetic_specs(o.num, o.identities, o.seed, o.img_size, o.quality, o.disturbance),
                {"name": "synthetic", "num": o.num, "identities": o.identities, "seed": o.seed,
                 "disturbance": o.disturbance, **common})
    if not o.root:
        raise UserError(f"source={o.source} needs root=PATH")
    if o.source == "fer2013_folder":
        return fer2013_folder_specs(o.root, o.img_size, o.quality), {"name": "fer2013", "roots": o.root, **common}
    if len(o.root) != 1:
        raise UserError(f"source={o.source} takes one root, got {len(o.root)}: {o.root}")
    root = o.root[0]
    if o.source == "rafdb":
        images = "aligned" if o.align == "none" else "original"
        detector = "mtcnn" if o.align == "none" else o.align
        return (rafdb_specs(root, o.img_size, o.quality, images, o.seed, o.val_fraction, detector),
                {"name": "rafdb", "root": root, "images": images, "seed": o.seed, "val_fraction": o.val_fraction,
                 **common})
    if o.source == "affectnet":
        return (affectnet_specs(root, o.img_size, o.quality, o.seed, o.val_fraction, o.keep_unlabeled),
                {"name": "affectnet", "root": root, "seed": o.seed, "val_fraction": o.val_fraction,
                 "keep_unlabeled": o.keep_unlabeled, **common})
    if o.source == "fer2013_csv":
        return (fer2013_csv_specs(root, o.img_size, o.quality, o.ferplus, o.ferplus_mode),
                {"name": "ferplus" if o.ferplus else "fer2013", "root": root, "ferplus": o.ferplus,
                 "ferplus_mode": o.ferplus_mode if o.ferplus else None, **common})
    specs = folder_specs(root, o.dataset, o.img_size, o.quality, o.seed, parse_class_map(o.class_map), o.subject_regex,
                         align=None if o.align == "none" else o.align, faces=o.keep_faces)
    return specs, {"name": o.dataset, "root": root, "seed": o.seed, "subject_regex": o.subject_regex,
                   "align": o.align, "faces": o.keep_faces, **common}
