"""AffectNet, both official packagings (``../shared/research/data-formats.md`` §5.1).

* ``Manually_Annotated_file_lists/{training,validation}.csv`` + ``Manually_Annotated_Images/``: nine columns
  (path, face box, 68 landmarks as ``;``-separated floats, expression, valence, arousal); the header is detected,
  not assumed. Faces are aligned from the data set's own landmarks (five points from the 68) onto the template;
  without usable landmarks the face box is cropped (recorded in ``json``).
* ``train_set|val_set/{images/N.jpg, annotations/N_exp.npy, _val.npy, _aro.npy, _lnd.npy}``: 224x224 face crops,
  pre-aligned (resized).

Expression codes 8–10 (None, Uncertain, No-Face) are rejects with that reason, or kept with ``cls = -1``
(``keep_unlabeled``); valence and arousal go into ``json``. The test set was never published: the official
validation set is ``test``, and a seeded, recorded share of the training set is ``val``. Rows with ``NULL`` or too
few fields, bad numbers and missing images are rejects naming their csv line.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ...errors import UserError
from ...labels import CANONICAL, to_canonical
from ..align import align_to_template, five_from_68
from ..shards import Reject, ShardSpec, encode_jpeg
from . import carve_val
from .folder import load_rgb

CSV_DIR = "Manually_Annotated_file_lists"
CSV_SPLITS = {"training.csv": "train", "validation.csv": "test"}
NPY_SPLITS = {"train_set": "train", "val_set": "test"}
NON_CLASS = {8: "None", 9: "Uncertain", 10: "No-Face"}


@dataclass(frozen=True)
class AffectNetItem:
    key: str
    source: str            # e.g. 'training.csv line 12' or 'train_set/images/12.jpg'
    image: str             # absolute image path
    expression: int | None = None
    valence: float | None = None
    arousal: float | None = None
    box: tuple[int, int, int, int] | None = None
    landmarks: tuple[float, ...] | None = None
    error: str | None = None


def _parse_row(fields: list[str], where: str, image_root: Path) -> AffectNetItem:
    key = "affectnet_" + where.replace(".csv line ", "_")  # a csv may list one image twice: the line is the key
    if len(fields) != 9:
        return AffectNetItem(key, where, "", error=f"{where}: {len(fields)} fields, not 9")
    null = [i for i, f in enumerate(fields) if f.strip().upper() in ("NULL", "")]
    if any(i in (0, 6) for i in null):
        return AffectNetItem(key, where, "", error=f"{where}: NULL or empty path or expression")
    try:
        expression = int(fields[6])
        valence, arousal = float(fields[7]), float(fields[8])
    except ValueError:
        return AffectNetItem(key, where, "", error=f"{where}: expression/valence/arousal are not numbers")
    if not 0 <= expression <= 10:
        return AffectNetItem(key, where, "", error=f"{where}: expression {expression} is not an AffectNet code 0-10")
    box = landmarks = None
    try:
        box = tuple(int(float(v)) for v in fields[1:5])
        if box[2] <= 0 or box[3] <= 0 or min(box[:2]) < 0:
            box = None
    except ValueError:
        box = None
    try:
        values = tuple(float(v) for v in fields[5].split(";"))
        landmarks = values if len(values) == 136 else None
    except ValueError:
        landmarks = None
    return AffectNetItem(key, where, str(image_root / fields[0]), expression, valence, arousal, box, landmarks)


@dataclass
class AffectNetMaker:
    size: int = 224
    quality: int = 95
    keep_unlabeled: bool = False

    def __call__(self, item: AffectNetItem) -> dict | Reject:
        if item.error:
            return Reject(item.key, item.source, item.error)
        if item.expression in NON_CLASS and not self.keep_unlabeled:
            return Reject(item.key, item.source, f"expression {item.expression} ({NON_CLASS[item.expression]}) is "
                                                 "no emotion class (keep it as -1 with keep_unlabeled=true)")
        try:
            img = load_rgb(item.image)
        except FileNotFoundError:
            return Reject(item.key, item.source, f"image {item.image} does not exist")
        except (ValueError, OSError) as err:
            return Reject(item.key, item.source, str(err))
        meta = {"dataset": "affectnet", "source": item.source, "image": item.image,
                "original_label": item.expression, "valence": item.valence, "arousal": item.arousal,
                "original_size": list(img.size), "size": self.size}
        if item.landmarks is not None:
            points = five_from_68(item.landmarks)
            outside = ~((points >= 0) & (points < np.array(img.size))).all(1)
            if np.isfinite(points).all() and outside.all():
                return Reject(item.key, item.source, f"every landmark lies outside the {img.width}x{img.height} "
                                                     "image; fix or drop the row")
            try:
                img, five = align_to_template(img, points, self.size)
            except ValueError as err:
                return Reject(item.key, item.source, f"{err}; fix or drop the row")
            meta.update(aligned="5 points from the data set's 68 landmarks",
                        landmarks=[[round(float(v), 2) for v in p] for p in five])
        elif item.box is not None:
            x, y, w, h = item.box
            if x >= img.width or y >= img.height:
                return Reject(item.key, item.source, f"face box {list(item.box)} lies outside the "
                                                     f"{img.width}x{img.height} image; fix or drop the row")
            img = img.crop((x, y, min(x + w, img.width), min(y + h, img.height)))
            img = img.resize((self.size, self.size), Image.BICUBIC)
            meta["aligned"] = "face box crop (no usable landmarks)"
        else:
            img = img.resize((self.size, self.size), Image.BICUBIC)
            meta["aligned"] = "pre-aligned (resized)"
        label = to_canonical("affectnet", item.expression)
        meta["label_name"] = CANONICAL[label] if label >= 0 else None
        if item.box is not None:
            meta["box"] = list(item.box)
        return {"__key__": item.key, "jpg": encode_jpeg(img, self.quality), "cls": label, "json": meta}


def _image_root(root: Path) -> Path:
    for candidate in (root / "Manually_Annotated" / "Manually_Annotated_Images", root / "Manually_Annotated_Images"):
        if candidate.is_dir():
            return candidate
    raise UserError(f"{root}: no Manually_Annotated/Manually_Annotated_Images (or Manually_Annotated_Images) folder")


def _csv_items(path: Path, image_root: Path) -> list[AffectNetItem]:
    items = []
    with open(path, newline="") as fh:
        for line_no, fields in enumerate(csv.reader(fh), start=1):
            if line_no == 1 and fields and fields[0].startswith("subDirectory_filePath"):
                continue  # the header some copies have
            if fields:
                items.append(_parse_row(fields, f"{path.name} line {line_no}", image_root))
    return items


def _npy_items(split_dir: Path) -> list[AffectNetItem]:
    items = []
    for image in sorted((split_dir / "images").glob("*.jpg"), key=lambda p: (len(p.stem), p.stem)):
        n, ann = image.stem, split_dir / "annotations"
        where = f"{split_dir.name}/images/{image.name}"
        try:
            expression = int(np.load(ann / f"{n}_exp.npy"))
            valence = float(np.load(ann / f"{n}_val.npy"))
            arousal = float(np.load(ann / f"{n}_aro.npy"))
        except (OSError, ValueError) as err:
            items.append(AffectNetItem(f"affectnet_{split_dir.name}_{n}", where, str(image),
                                       error=f"{where}: annotations unreadable ({err})"))
            continue
        items.append(AffectNetItem(f"affectnet_{split_dir.name}_{n}", where, str(image), expression, valence, arousal))
    return items


def affectnet_specs(root: str | Path, size: int = 224, quality: int = 95, seed: int = 0, val_fraction: float = 0.1,
                    keep_unlabeled: bool = False) -> list[ShardSpec]:
    """Either packaging, detected from the folder's content."""
    root = Path(root)
    splits: dict[str, list[AffectNetItem]] = {}
    if (root / CSV_DIR).is_dir():
        image_root = _image_root(root)
        for name, split in CSV_SPLITS.items():
            if (root / CSV_DIR / name).is_file():
                splits[split] = _csv_items(root / CSV_DIR / name, image_root)
        packaging = "csv"
    elif any((root / d).is_dir() for d in NPY_SPLITS):
        for name, split in NPY_SPLITS.items():
            if (root / name).is_dir():
                splits[split] = _npy_items(root / name)
        packaging = "npy"
    else:
        raise UserError(f"{root}: neither {CSV_DIR}/ (csv packaging) nor train_set/ and val_set/ (npy packaging)")
    if not splits.get("train"):
        raise UserError(f"{root}: no training list found")
    splits["train"], splits["val"] = carve_val(splits["train"], val_fraction, seed)
    maker = AffectNetMaker(size, quality, keep_unlabeled)
    rule = f"{packaging} packaging; official validation = test; val = seeded {val_fraction:.0%} of train (seed {seed})"
    return [ShardSpec(split, items, maker, extra={"split_rule": rule}) for split, items in splits.items() if items]
