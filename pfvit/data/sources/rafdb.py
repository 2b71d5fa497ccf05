"""RAF-DB basic (``../shared/research/data-formats.md`` §5.2): ``EmoLabel/list_patition_label.txt`` lines
``<name> <label 1-7>``; images under ``Image/aligned/<stem>_aligned.jpg`` (pre-aligned 100x100, the default) or
``Image/original/<name>`` (detected and aligned with MTCNN). The split is the name prefix (train / test); RAF-DB has
no validation split, so a seeded, recorded share of the training images becomes ``val``. Labels above 7 (the
compound subset's list), malformed lines and missing files are rejects with their line number."""

from __future__ import annotations

from pathlib import Path

from ...errors import UserError
from ...labels import to_canonical
from ..shards import ShardSpec
from . import carve_val
from .folder import AligningMaker, FolderItem, PreAlignedMaker

LIST_FILE = "EmoLabel/list_patition_label.txt"


def _item(root: Path, line_no: int, line: str, images: str) -> tuple[str, FolderItem]:
    parts = line.split()
    name = parts[0] if parts else f"line_{line_no}"
    split = "test" if name.startswith("test") else "train"
    stem = name.rsplit(".", 1)[0]
    relative = f"Image/aligned/{stem}_aligned.jpg" if images == "aligned" else f"Image/original/{name}"
    error, label = None, -1
    if len(parts) != 2 or not name.startswith(("train", "test")):
        error = f"line {line_no}: expected '<train|test>_NNNN.jpg <label>', got {line.strip()!r}"
    else:
        try:
            code = int(parts[1])
            if not 1 <= code <= 7:
                raise ValueError
            label = to_canonical("rafdb", code)
        except (ValueError, UserError):
            error = f"line {line_no}: label {parts[1]!r} is not a RAF-DB basic label 1-7 (a compound-subset list?)"
    if error is None and not (root / relative).is_file():
        error = f"line {line_no}: {relative} does not exist"
    return split, FolderItem(str(root / relative), relative, label, parts[1] if len(parts) > 1 else "", None, error)


def rafdb_specs(root: str | Path, size: int = 224, quality: int = 95, images: str = "aligned", seed: int = 0,
                val_fraction: float = 0.1, detector: str = "mtcnn") -> list[ShardSpec]:
    root = Path(root)
    if images not in ("aligned", "original"):
        raise UserError(f"RAF-DB images must be 'aligned' or 'original', got {images!r}")
    if not (root / LIST_FILE).is_file():
        raise UserError(f"{root / LIST_FILE} not found; root must be RAF-DB's basic/ folder")
    splits: dict[str, list[FolderItem]] = {"train": [], "val": [], "test": []}
    for line_no, line in enumerate((root / LIST_FILE).read_text().splitlines(), start=1):
        if line.strip():
            split, item = _item(root, line_no, line, images)
            splits[split].append(item)
    splits["train"], splits["val"] = carve_val(splits["train"], val_fraction, seed)
    maker = AligningMaker("rafdb", size, quality, detector=detector) if images == "original" else PreAlignedMaker("rafdb", size, quality)
    rule = f"name prefix; val = seeded {val_fraction:.0%} of train (seed {seed})"
    return [ShardSpec(split, items, maker, extra={"split_rule": rule, "images": images})
            for split, items in splits.items() if items]
