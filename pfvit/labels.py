"""Canonical expression labels (AffectNet's order) and every dataset's own codes mapped into it.

Neutral is always index 0 (PF-ViT's poker face is the neutral class). The 7-class protocol drops contempt,
which is the last canonical class, so the first seven indices are the same in both protocols.
Cross-walk source: ``shared/research/data-formats.md`` §4.
"""

from __future__ import annotations

from .errors import UserError

CANONICAL = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt")
NEUTRAL = 0
UNLABELED = -1
PROTOCOLS = {7: CANONICAL[:7], 8: CANONICAL}

# Each dataset's own code (int index or folder/column name) → canonical name.
DATASET_CODES: dict[str, dict[int | str, str]] = {
    # fer2013.csv `emotion` column: Angry, Disgust, Fear, Happy, Sad, Surprise, Neutral.
    "fer2013_csv": dict(enumerate(("anger", "disgust", "fear", "happy", "sad", "surprise", "neutral"))),
    # Kaggle folder layout, classes in ImageFolder (alphabetical) order.
    "fer2013_folder": dict(enumerate(("anger", "disgust", "fear", "happy", "neutral", "sad", "surprise"))),
    # FER+ vote columns; unknown (8) and NF (9) have no canonical class.
    "ferplus": dict(enumerate(("neutral", "happy", "surprise", "sad", "anger", "disgust", "fear", "contempt"))),
    # RAF-DB basic `list_patition_label.txt`, 1-based as stored in the file.
    "rafdb": {1: "surprise", 2: "fear", 3: "disgust", 4: "happy", 5: "sad", 6: "anger", 7: "neutral"},
    # AffectNet `expression`: 0..7 are the canonical order; 8 None, 9 Uncertain, 10 No-Face are not classes.
    "affectnet": dict(enumerate(CANONICAL)),
    # CK+ original Emotion/*.txt codes.
    "ckplus": dict(enumerate(("neutral", "anger", "contempt", "disgust", "fear", "happy", "sad", "surprise"))),
}

# Folder and column names seen in the wild → canonical name (FER2013 folders, CK+48, FER+ columns, RAF-DB words).
NAME_ALIASES = {
    "neutral": "neutral", "neutrality": "neutral",
    "happy": "happy", "happiness": "happy", "joy": "happy",
    "sad": "sad", "sadness": "sad",
    "surprise": "surprise", "surprised": "surprise",
    "fear": "fear", "fearful": "fear", "afraid": "fear",
    "disgust": "disgust", "disgusted": "disgust",
    "anger": "anger", "angry": "anger",
    "contempt": "contempt",
}

# Names that are labels of a dataset but no canonical class (FER+ "unknown"/"NF", AffectNet 8–10).
NON_CLASS_NAMES = frozenset({"unknown", "nf", "none", "uncertain", "no-face", "noface"})


def class_names(num_classes: int) -> tuple[str, ...]:
    """Class names of the 7- or 8-class protocol, in canonical order."""
    if num_classes not in PROTOCOLS:
        raise UserError(f"num_classes={num_classes} is not a protocol; use 7 (no contempt) or 8")
    return PROTOCOLS[num_classes]


def index_of(name: str) -> int:
    """Canonical index of a class name or alias (case-insensitive)."""
    key = name.strip().lower()
    if key not in NAME_ALIASES:
        raise UserError(f"unknown expression name {name!r}; known: {', '.join(sorted(NAME_ALIASES))}")
    return CANONICAL.index(NAME_ALIASES[key])


def to_canonical(dataset: str, code: int | str) -> int:
    """Map a dataset's own label code to the canonical index, or :data:`UNLABELED` for its non-class codes.

    Raises :class:`UserError` for a code the dataset does not define.
    """
    if dataset not in DATASET_CODES:
        raise UserError(f"unknown dataset {dataset!r}; known: {', '.join(sorted(DATASET_CODES))}")
    table = DATASET_CODES[dataset]
    if isinstance(code, str) and code.strip().lstrip("-").isdigit():
        code = int(code)
    if code in table:
        return CANONICAL.index(table[code])
    if dataset == "affectnet" and code in (8, 9, 10):
        return UNLABELED
    if dataset == "ferplus" and code in (8, 9):
        return UNLABELED
    raise UserError(f"label {code!r} is not a code of {dataset}; valid codes: {sorted(table, key=str)}")


def outside_protocol(labels, num_classes: int) -> dict[str, int]:
    """How many of ``labels`` (canonical indices) are no class of the protocol, by name (``unlabeled`` for -1)."""
    counts: dict[str, int] = {}
    for y in labels:
        if not 0 <= y < num_classes:
            name = "unlabeled" if y < 0 else CANONICAL[y]
            counts[name] = counts.get(name, 0) + 1
    return counts


def to_protocol(index: int, num_classes: int) -> int:
    """Map a canonical index into a protocol, :data:`UNLABELED` when the protocol drops the class."""
    class_names(num_classes)
    return index if 0 <= index < num_classes else UNLABELED


# POSTER++'s RAF-DB release: ImageFolder over folders 1..7 of the basic list (surprise, fear, disgust, happy, sad,
# anger, neutral); AffectNet releases use AffectNet's own order, which is the canonical one.
RELEASED_LABEL_ORDERS = {
    "rafdb": ("surprise", "fear", "disgust", "happy", "sad", "anger", "neutral"),
    "affectnet7": ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger"),
    "affectnet8": ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt"),
}
