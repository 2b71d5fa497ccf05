"""Any ``ImageFolder``-style tree of pre-aligned faces (CK+48, FER2013's Kaggle folders, your own crops).

``ROOT/<class>/<file>`` with class folder names mapped to canonical labels (aliases such as ``angry`` or
``sadness`` are understood; ``class_map=name=canonical`` adds more). When ``ROOT`` has ``train/`` (and ``val/``,
``test/``) sub-folders those are the splits; otherwise a seeded split is drawn, by subject when a subject pattern
is given (CK+'s ``S010_…`` file names: ``subject_regex='^(S\\d+)_'``), so no person is in two splits.

Pre-aligned mode: every image is decoded, EXIF-rotated, converted to RGB (grey, palette, RGBA, CMYK and 16-bit
files included) and resized to the output size. An unreadable, empty or truncated file is rejected with its reason.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ...errors import UserError
from ...labels import CANONICAL, NAME_ALIASES
from ..shards import Reject, ShardSpec, encode_jpeg, mixed_order

SPLIT_DIRS = ("train", "val", "test")
# A pre-aligned crop smaller than this holds no expression to learn (FER2013's and CK+'s crops are 48 px).
MIN_CROP_SIDE = 16


# The files that predict and retrieval read as photos (anything else under a folder is counted as skipped).
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"}


@dataclass(frozen=True)
class FolderItem:
    path: str          # absolute path
    relative: str      # path under the root, recorded in json
    label: int
    original_label: str
    subject: str | None
    error: str | None = None  # a problem found while listing (bad label, missing file): the item becomes a reject


def load_rgb(source: str | Path | bytes) -> Image.Image:
    """Decode any common image file (a path, or its bytes) into RGB; raises ``ValueError`` with a reason a person
    can act on."""
    if isinstance(source, bytes):
        if not source:
            raise ValueError("empty file")
        fh = io.BytesIO(source)
    else:
        if Path(source).stat().st_size == 0:
            raise ValueError("empty file")
        fh = source
    try:
        with Image.open(fh) as img:
            img.load()
            img = ImageOps.exif_transpose(img)
    except Exception as err:  # PIL raises many types for damaged files
        raise ValueError(f"cannot decode image ({type(err).__name__}: {err})") from None
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit grey: scale to 8 bits
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if arr.max() > 255 else 255.0
        img = Image.fromarray((arr / top * 255.0 + 0.5).clip(0, 255).astype(np.uint8), "L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        background = Image.new("RGB", img.size, (255, 255, 255))
        background.paste(img, mask=img.getchannel("A"))
        return background
    return img.convert("RGB")


def crop_too_small(img: Image.Image) -> str | None:
    """Why a pre-aligned crop cannot be a face (a side under ``MIN_CROP_SIDE``), or None."""
    if min(img.size) < MIN_CROP_SIDE:
        return f"image {img.width}x{img.height} is smaller than {MIN_CROP_SIDE} px: too small to be a face crop"
    return None


def _open(item: FolderItem) -> tuple[str, Image.Image | Reject]:
    """The sample key of an item and its decoded image, or a :class:`Reject` with the reason."""
    key = re.sub(r"[^A-Za-z0-9_-]", "_", item.relative.rsplit(".", 1)[0])
    if item.error:
        return key, Reject(key, item.relative, item.error)
    try:
        return key, load_rgb(item.path)
    except (ValueError, OSError) as err:
        return key, Reject(key, item.relative, str(err))


@dataclass
class PreAlignedMaker:
    """Resizes an already-aligned face crop (picklable, for worker processes)."""

    dataset: str
    size: int = 224
    quality: int = 95

    def __call__(self, item: FolderItem) -> dict | Reject:
        key, img = _open(item)
        if isinstance(img, Reject):
            return img
        if crop_too_small(img):
            return Reject(key, item.relative, crop_too_small(img))
        original_size = list(img.size)
        img = img.resize((self.size, self.size), Image.BICUBIC)
        meta = {"dataset": self.dataset, "source": item.relative, "original_label": item.original_label,
                "label_name": CANONICAL[item.label], "subject": item.subject, "original_size": original_size,
                "aligned": "pre-aligned (resized)", "size": self.size}
        return {"__key__": key, "jpg": encode_jpeg(img, self.quality), "cls": item.label, "json": meta}


@dataclass
class AligningMaker:
    """Detects the largest face with MTCNN and aligns it onto the 5-point template (for photos that are not face
    crops). The detector is built lazily, once per worker process."""

    dataset: str
    size: int = 224
    quality: int = 95
    min_face: int = 20
    faces: str = "largest"  # or "all": every face of a photo becomes a sample (key suffix _f0, _f1, …)
    detector: str = "mtcnn"

    def __post_init__(self):
        self._aligner = None

    def __getstate__(self):
        return {k: v for k, v in vars(self).items() if k != "_aligner"} | {"_aligner": None}

    def __call__(self, item: FolderItem) -> dict | Reject:
        from ..align import FaceAligner

        key, img = _open(item)
        if isinstance(img, Reject):
            return img
        if self._aligner is None:
            # On the CPU whatever the machine: shards are byte-reproducible, and GPU kernels may move a landmark.
            self._aligner = FaceAligner(self.size, keep=self.faces, min_face=self.min_face, device="cpu",
                                        detector=self.detector)
        try:
            faces = self._aligner(img)
        except ValueError as err:  # too small for detection, or landmarks without a geometry
            return Reject(key, item.relative, str(err))
        if not faces:
            return Reject(key, item.relative, f"no face found ({self.detector}, faces of at least {self.min_face} px)")
        samples = []
        for n, face in enumerate(faces):
            meta = {"dataset": self.dataset, "source": item.relative, "original_label": item.original_label,
                    "label_name": CANONICAL[item.label], "subject": item.subject, "original_size": list(img.size),
                    "aligned": f"{self.detector} 5-point similarity (ArcFace template)", "size": self.size, "face_index": n,
                    "landmarks": [[round(float(v), 2) for v in p] for p in face.landmarks],
                    "box": [round(v, 1) for v in face.face.box], "probability": round(face.face.probability, 4)}
            samples.append({"__key__": key if self.faces == "largest" else f"{key}_f{n}",
                            "jpg": encode_jpeg(face.image, self.quality), "cls": item.label, "json": meta})
        return samples if self.faces == "all" else samples[0]


def parse_class_map(text: str | None) -> dict[str, str]:
    """``a=anger,b=happy`` → {"a": "anger", "b": "happy"}."""
    mapping = {}
    for part in filter(None, (text or "").split(",")):
        if "=" not in part:
            raise UserError(f"class_map entry {part!r} is not folder=class")
        folder, name = (s.strip() for s in part.split("=", 1))
        if name.lower() not in NAME_ALIASES:
            raise UserError(f"class_map {part!r}: {name!r} is not an expression; known: {', '.join(CANONICAL)}")
        mapping[folder] = name
    return mapping


def _scan(root: Path, class_map: dict[str, str], subject_regex: str | None, base: Path) -> list[FolderItem]:
    items, unknown = [], []
    pattern = re.compile(subject_regex) if subject_regex else None
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        name = class_map.get(class_dir.name, class_dir.name)
        if name.lower() not in NAME_ALIASES:
            unknown.append(class_dir.name)
            continue
        label = CANONICAL.index(NAME_ALIASES[name.lower()])
        for file in sorted(p for p in class_dir.rglob("*") if p.is_file()):
            subject = None
            if pattern is not None:
                match = pattern.search(file.name)
                subject = match.group(1) if match else None
            items.append(FolderItem(str(file), str(file.relative_to(base)), label, class_dir.name, subject))
    if unknown:
        raise UserError(f"{root}: class folders {unknown} are no expression names; map them with "
                        f"class_map={unknown[0]}=<one of {', '.join(CANONICAL)}>")
    if not items:
        raise UserError(f"{root} holds no class folders with files (expected ROOT/<class>/<image>)")
    return items


def _split_by_group(items: list[FolderItem], seed: int, fractions=(0.8, 0.1, 0.1)) -> dict[str, list[FolderItem]]:
    """Seeded split of subjects (or of files when no subject is known) into train / val / test."""
    groups = sorted({it.subject or it.relative for it in items})
    order = np.random.default_rng(seed).permutation(len(groups))
    n_val = max(1, round(len(groups) * fractions[1]))
    n_test = max(1, round(len(groups) * fractions[2]))
    assign = {}
    for rank, g in enumerate(order):
        assign[groups[g]] = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
    return {split: [it for it in items if assign[it.subject or it.relative] == split] for split in SPLIT_DIRS}


def folder_specs(root: str | Path, dataset: str = "folder", size: int = 224, quality: int = 95, seed: int = 0,
                 class_map: dict[str, str] | None = None, subject_regex: str | None = None,
                 align: str | None = None, faces: str = "largest") -> list[ShardSpec]:
    """``align``: a detector (``mtcnn`` / ``yunet``) that finds and aligns faces in photos (the largest, or every
    one with ``faces="all"``); ``None``: the files are pre-aligned crops (resized)."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"root={root} is not a folder")
    class_map = class_map or {}
    split_roots = [root / s for s in SPLIT_DIRS if (root / s).is_dir()]
    if split_roots:
        splits = {p.name: _scan(p, class_map, subject_regex, root) for p in split_roots}
        how = "the data set's own split folders"
    else:
        splits = _split_by_group(_scan(root, class_map, subject_regex, root), seed)
        how = f"seeded split by {'subject' if subject_regex else 'file'} (seed {seed})"
    maker = AligningMaker(dataset, size, quality, faces=faces, detector=align) if align \
        else PreAlignedMaker(dataset, size, quality)
    return [ShardSpec(split, mixed_order(items, seed), maker,
                      extra={"split_rule": how, "aligned": align or "pre-aligned",
                             "subjects": sorted({i.subject for i in items if i.subject})})
            for split, items in splits.items()]
