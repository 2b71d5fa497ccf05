"""FER2013 and FER+ (``../shared/research/data-formats.md`` §5.3).

* ``fer2013.csv`` (``emotion,pixels,Usage``): each row's 2,304 grey values become a 48x48 image; Usage gives the
  split (Training → train, PublicTest → val, PrivateTest → test). A malformed row is a reject with its row number.
* FER+ (``fer2013new.csv``) joins **by row order** (its image names drift from row 60 on): the ten vote counts are
  kept in ``json`` (canonical order under ``ferplus_votes``, plus ``unknown`` and ``NF``) and ``cls`` comes from a
  label mode of microsoft/FERPlus (``majority`` / ``probability`` / ``multi_target``; single votes are dropped
  first). Rows FER+ rejects as non-faces (no image name) or whose label is unknown are rejects with that reason.
* The Kaggle folder layout (``train/<class>/Training_*.jpg``, ``test/<class>/{PublicTest,PrivateTest}_*.jpg``),
  as folders or as tars read member by member: the split comes from the file-name prefix, the class from the
  folder *name* (never from ImageFolder's alphabetical index, which differs from the csv codes).
"""

from __future__ import annotations

import csv
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ...errors import UserError
from ...labels import CANONICAL, NAME_ALIASES, to_canonical
from ..shards import Reject, ShardSpec, encode_jpeg, mixed_order
from .folder import crop_too_small, load_rgb

USAGE_SPLITS = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
# FER+ vote columns → canonical class index (unknown and NF are kept apart).
FERPLUS_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")
FERPLUS_TO_CANONICAL = [CANONICAL.index(NAME_ALIASES[c]) for c in FERPLUS_COLUMNS]
FERPLUS_MODES = ("majority", "probability", "multi_target")


def ferplus_label(votes: list[int], mode: str) -> tuple[int, list[float]]:
    """(canonical label or -1 for unknown, processed distribution over the 8 canonical classes) from the ten
    FER+ vote counts, as microsoft/FERPlus ``src/ferplus.py`` processes them: single votes are outliers and are
    zeroed; *majority*: the top emotion if it holds more than half of the remaining votes; *probability*: the
    top emotions up to 75 % of the votes (at most three); *multi_target*: every emotion with at least 30 %.
    The label is unknown when the result is empty or unknown / NF wins."""
    if mode not in FERPLUS_MODES:
        raise UserError(f"FER+ label mode {mode!r} is not one of {', '.join(FERPLUS_MODES)}")
    v = np.array([x if x > 1 else 0 for x in votes], dtype=np.float64)
    total = v.sum()
    if total == 0:
        return -1, [0.0] * len(CANONICAL)
    if mode == "majority":
        top = int(v.argmax())
        keep = np.zeros_like(v)
        if v[top] > 0.5 * total:
            keep[top] = v[top]
    elif mode == "probability":
        keep = np.zeros_like(v)
        acc = 0.0
        for idx in np.argsort(-v, kind="stable")[:3]:
            if acc >= 0.75 * total or v[idx] == 0:
                break
            keep[idx] = v[idx]
            acc += v[idx]
    else:
        keep = np.where(v >= 0.3 * total, v, 0.0)
    if keep.sum() == 0 or int(keep.argmax()) >= len(FERPLUS_COLUMNS):
        return -1, [0.0] * len(CANONICAL)
    dist = np.zeros(len(CANONICAL))
    for col, canon in enumerate(FERPLUS_TO_CANONICAL):
        dist[canon] = keep[col]
    dist /= dist.sum()
    return int(dist.argmax()), [round(float(p), 4) for p in dist]


@dataclass(frozen=True)
class FerPlusRow:
    usage: str
    name: str
    votes: tuple[int, ...] | None   # the ten counts; None when the row does not parse (see ``error``)
    error: str | None = None


@dataclass(frozen=True)
class CsvRow:
    row: int               # 0-based data row of fer2013.csv (the key)
    source: str            # file name and 1-based line number, e.g. 'fer2013.csv line 2'
    emotion: str
    pixels: str
    usage: str
    ferplus: FerPlusRow | None = None   # the FER+ row joined by row order
    error: str | None = None


@dataclass
class CsvRowMaker:
    size: int = 224
    quality: int = 95
    ferplus_mode: str | None = None

    def __call__(self, item: CsvRow) -> dict | Reject:
        key, source = f"fer2013_{item.row:05d}", item.source
        if item.error:
            return Reject(key, source, item.error)
        try:
            original = int(item.emotion)
            label = to_canonical("fer2013_csv", original)
        except (ValueError, UserError):
            return Reject(key, source, f"emotion {item.emotion!r} is not a FER2013 code 0-6")
        values = item.pixels.split()
        if len(values) != 48 * 48:
            return Reject(key, source, f"pixels has {len(values)} values, not 2304")
        try:
            arr = np.array([int(v) for v in values], dtype=np.int64)
        except ValueError:
            return Reject(key, source, "pixels holds a non-integer value")
        if arr.min() < 0 or arr.max() > 255:
            return Reject(key, source, "pixels holds values outside 0-255")
        meta = {"dataset": "fer2013", "source": source, "original_label": original, "usage": item.usage,
                "aligned": "pre-aligned (48x48 grey, resized)", "size": self.size}
        if self.ferplus_mode is not None:
            plus = item.ferplus
            if plus is None:
                return Reject(key, source, "no FER+ row joined")
            if plus.error:
                return Reject(key, source, plus.error)
            if plus.usage != item.usage:
                return Reject(key, source, f"FER+ Usage {plus.usage!r} differs from fer2013.csv Usage {item.usage!r}: "
                                           "the two files are not row-aligned here")
            if not plus.name:
                return Reject(key, source, "FER+ marks this image as not a face (empty image name)")
            label, dist = ferplus_label(list(plus.votes), self.ferplus_mode)
            meta.update(dataset="ferplus", ferplus_name=plus.name, ferplus_mode=self.ferplus_mode,
                        ferplus_votes=_canonical_votes(plus.votes),
                        ferplus_unknown=plus.votes[8], ferplus_nf=plus.votes[9], ferplus_distribution=dist,
                        fer2013_label=to_canonical("fer2013_csv", original))
            if label < 0:
                return Reject(key, source, f"FER+ {self.ferplus_mode} label is unknown (votes {list(plus.votes)})")
        meta["label_name"] = CANONICAL[label]
        img = Image.fromarray(arr.reshape(48, 48).astype(np.uint8), "L").convert("RGB")
        img = img.resize((self.size, self.size), Image.BICUBIC)
        return {"__key__": key, "jpg": encode_jpeg(img, self.quality), "cls": label, "json": meta}


def _canonical_votes(votes: tuple[int, ...]) -> list[int]:
    """The eight emotion vote counts of a FER+ row in canonical class order (for ``data.soft_labels``)."""
    out = [0] * len(CANONICAL)
    for col, canon in enumerate(FERPLUS_TO_CANONICAL):
        out[canon] = votes[col]
    return out


def _read_ferplus(path: Path) -> list[FerPlusRow]:
    rows = []
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if not header or header[:2] != ["Usage", "Image name"]:
            raise UserError(f"{path}: expected the FER+ header 'Usage,Image name,neutral,…', got {header}")
        for line, fields in enumerate(reader, start=2):
            usage, name = (fields + ["", ""])[:2]
            where = f"{path.name} line {line}"
            if len(fields) < 12:
                rows.append(FerPlusRow(usage, name, None, f"{where}: {len(fields)} fields, not 12"))
                continue
            try:
                votes = tuple(int(v) for v in fields[2:12])
            except ValueError:
                bad = next(v for v in fields[2:12] if not v.strip().lstrip("-").isdigit())
                rows.append(FerPlusRow(usage, name, None, f"{where}: vote {bad!r} is not a whole number"))
                continue
            rows.append(FerPlusRow(usage, name, votes))
    return rows


def fer2013_csv_specs(csv_path: str | Path, size: int = 224, quality: int = 95, ferplus: str | Path | None = None,
                      ferplus_mode: str = "majority") -> list[ShardSpec]:
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise UserError(f"root={csv_path} is not a file (expected fer2013.csv)")
    joined = _read_ferplus(Path(ferplus)) if ferplus else None
    splits: dict[str, list[CsvRow]] = {s: [] for s in USAGE_SPLITS.values()}
    with open(csv_path, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header != ["emotion", "pixels", "Usage"]:
            raise UserError(f"{csv_path}: expected the header 'emotion,pixels,Usage', got {header}")
        for row, fields in enumerate(reader):
            usage = fields[2] if len(fields) == 3 else ""
            plus = joined[row] if joined is not None and row < len(joined) else None
            error = None if len(fields) == 3 else f"{len(fields)} fields, not 3"
            if error is None and usage not in USAGE_SPLITS:
                error = f"Usage {usage!r} is not Training, PublicTest or PrivateTest"
            split = USAGE_SPLITS.get(usage, "train")
            splits[split].append(CsvRow(row, f"{csv_path.name} line {row + 2}", fields[0] if fields else "",
                                        fields[1] if len(fields) > 1 else "", usage, plus, error))
    if joined is not None and len(joined) != sum(len(v) for v in splits.values()):
        raise UserError(f"{ferplus} has {len(joined)} rows but {csv_path} has {sum(len(v) for v in splits.values())}; "
                        "FER+ joins by row order, so both must be complete files")
    maker = CsvRowMaker(size, quality, ferplus_mode if ferplus else None)
    rule = "fer2013.csv Usage column" + (f"; FER+ {ferplus_mode} labels joined by row order" if ferplus else "")
    return [ShardSpec(split, items, maker, extra={"split_rule": rule}) for split, items in splits.items() if items]


# ---------------------------------------------------------------------------------------------------------------
# The Kaggle folder layout, as folders or tars

PREFIX_SPLITS = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}


@dataclass(frozen=True)
class FileItem:
    source: str             # path as recorded: 'train.tar:train/angry/Training_1.jpg' or a file path
    archive: str | None     # the tar holding it, or None for a plain file
    offset: int             # data offset inside the tar
    size: int
    folder: str             # class folder name as found
    label: int              # canonical, -1 when the folder is no expression
    error: str | None = None


@dataclass
class FileMaker:
    dataset: str = "fer2013"
    size: int = 224
    quality: int = 95

    def __call__(self, item: FileItem) -> dict | Reject:
        stem = item.source.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        key = "".join(c if c.isalnum() or c in "_-" else "_" for c in f"{self.dataset}_{stem}")
        if item.error or item.label < 0:
            return Reject(key, item.source, item.error or f"class folder {item.folder!r} is no expression class")
        try:
            if item.archive is None:
                img = load_rgb(item.source)
            else:
                with open(item.archive, "rb") as fh:
                    fh.seek(item.offset)
                    data = fh.read(item.size)
                if len(data) != item.size:
                    return Reject(key, item.source, "truncated tar member")
                img = load_rgb(data)
        except (ValueError, OSError) as err:
            return Reject(key, item.source, str(err))
        if crop_too_small(img):
            return Reject(key, item.source, crop_too_small(img))
        original_size = list(img.size)
        img = img.resize((self.size, self.size), Image.BICUBIC)
        meta = {"dataset": self.dataset, "source": item.source, "original_label": item.folder,
                "label_name": CANONICAL[item.label], "original_size": original_size,
                "aligned": "pre-aligned (resized)", "size": self.size}
        return {"__key__": key, "jpg": encode_jpeg(img, self.quality), "cls": item.label, "json": meta}


def _folder_label(folder: str) -> int:
    name = NAME_ALIASES.get(folder.lower())
    return CANONICAL.index(name) if name else -1


def _split_of(name: str) -> str | None:
    for prefix, split in PREFIX_SPLITS.items():
        if name.startswith(prefix + "_"):
            return split
    return None


def fer2013_folder_specs(roots: list[str | Path], size: int = 224, quality: int = 95,
                         dataset: str = "fer2013") -> list[ShardSpec]:
    """Kaggle layout from folders and/or tars; the split of each file comes from its name prefix."""
    splits: dict[str, list[FileItem]] = {"train": [], "val": [], "test": []}
    for root in map(Path, roots):
        if root.is_file() and tarfile.is_tarfile(root):
            with tarfile.open(root) as tar:
                members = [(m.name, m.offset_data, m.size) for m in tar.getmembers() if m.isfile()]
            entries = [(name, str(root), off, sz) for name, off, sz in members]
        elif root.is_dir():
            entries = [(str(p.relative_to(root)), None, 0, 0) for p in sorted(root.rglob("*")) if p.is_file()]
        else:
            raise UserError(f"root={root} is neither a folder nor a tar file")
        for name, archive, offset, sz in sorted(entries):
            parts = name.split("/")
            if len(parts) < 2:
                continue
            folder, file = parts[-2], parts[-1]
            split = _split_of(file)
            error = None if split else "file name has no Training_/PublicTest_/PrivateTest_ prefix"
            source = f"{root.name}:{name}" if archive else str(root / name)
            splits[split or "train"].append(FileItem(source, archive, offset, sz, folder, _folder_label(folder),
                                                     error))
    if not any(splits.values()):
        raise UserError(f"no files under {', '.join(map(str, roots))} (expected train/<class>/Training_*.jpg)")
    maker = FileMaker(dataset, size, quality)
    rule = "file-name prefix (Training/PublicTest/PrivateTest)"
    return [ShardSpec(split, mixed_order(items), maker, extra={"split_rule": rule})
            for split, items in splits.items() if items]
