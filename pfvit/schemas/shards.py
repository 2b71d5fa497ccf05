"""Keys of sharding a data set (pipelines/make_shards.py) and of the synthetic group photo
(pipelines/synthetic_photo.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Annotated, Literal, Optional

from ..config import LegacySpelling, NonNegativeInt, PositiveInt, Range

Source = Literal["synthetic", "folder", "fer2013_csv", "fer2013_folder", "rafdb", "affectnet"]


@dataclass
class ShardsConfig:
    source: Source = "synthetic"  # the data set reader
    # folder: ROOT/<class>/<image> (or ROOT/{train,val,test}/<class>/<image>); fer2013_csv: fer2013.csv;
    # fer2013_folder: Kaggle folders or tars ([train.tar, publictest.tar, …]); rafdb, affectnet: the data set folder.
    root: list[str] = field(default_factory=list)
    ferplus: Optional[str] = None  # fer2013_csv: FER+ fer2013new.csv, joined by row order (labels from its votes)
    # fer2013_csv with ferplus: how the votes become the label.
    ferplus_mode: Literal["majority", "probability", "multi_target"] = "majority"
    dataset: str = "folder"  # folder: the data set name recorded in every sample
    class_map: Optional[str] = None  # folder: extra class-folder names, e.g. 'ang=anger,joy=happy'
    # folder: a detector finds and aligns the faces of photos, none resizes crops; rafdb: a detector reads
    # Image/original, none Image/aligned.
    align: Literal["none", "mtcnn", "yunet"] = "none"
    keep_faces: Literal["largest", "all"] = "largest"  # folder with a detector: the largest face of a photo, or all
    # rafdb, affectnet: the seeded share of the training set used as the validation split.
    val_fraction: Annotated[float, Range(0, 1, hi_open=True)] = 0.1
    keep_unlabeled: bool = False  # affectnet: keep expression codes 8-10 as cls -1 instead of rejecting them
    subject_regex: Optional[str] = None  # folder: regex whose group 1 is the subject id (subject-disjoint splits)
    out: str = "shards/synthetic"  # the shard folder written
    num: PositiveInt = 4000  # synthetic: number of samples over all splits
    identities: PositiveInt = 120  # synthetic: number of identities (split disjointly)
    # synthetic: strength of pose, lighting, background, noise and occluders.
    disturbance: Annotated[float, Range(0, 1)] = 1.0
    seed: NonNegativeInt = 0  # synthetic: family seed; folder, rafdb, affectnet: split seed
    img_size: PositiveInt = 224  # the face size written, in pixels
    quality: Annotated[int, Range(1, 100)] = 95  # JPEG quality
    maxcount: PositiveInt = 1000  # samples per shard
    workers: PositiveInt = 1  # worker processes on this machine
    rank: Optional[NonNegativeInt] = None  # this machine's rank; null: torchrun's RANK or SLURM's, else 0
    world: Optional[PositiveInt] = None  # machines sharding together; null: WORLD_SIZE or SLURM's, else 1
    verify: bool = False  # re-hash the shards of out against its manifest and exit


SHARDS_LEGACY = LegacySpelling(renamed={"--size": "img_size", "--faces": "keep_faces",
                                        "--verify": lambda folder: ["verify=true", f"out={json.dumps(folder)}"]})


@dataclass
class SyntheticPhotoConfig:
    out: str = "runs/photo.jpg"  # the image file written
    num_faces: PositiveInt = 4  # faces side by side
    seed: NonNegativeInt = 1  # the faces' family seed


SYNTHETIC_PHOTO_LEGACY = LegacySpelling(positional=("out",), renamed={"--faces": "num_faces"})
