"""Keys of face retrieval (pipelines/retrieve.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

from ..config import LegacySpelling, PositiveInt


@dataclass
class RetrieveConfig:
    action: Literal["build", "query"] = "query"  # build a memory, or query one with photos
    checkpoint: str = ""  # a classifier checkpoint folder: its features are what is compared
    memory: str = ""  # the memory folder (vectors.safetensors, items.jsonl, meta.json)
    shards: Optional[str] = None  # build: a shard folder …
    split: str = "train"  # … and its split
    folder: Optional[str] = None  # build: a folder of photos or video frames (every face is added)
    inputs: list[str] = field(default_factory=list)  # query: photos or folders of them
    k: PositiveInt = 5  # query: neighbours per face
    aligned: bool = False  # query: the inputs are aligned faces (no detection)
    out: Optional[str] = None  # query: results.jsonl and neighbours.png go here; null: memory/query
    device: str = "auto"  # auto: CUDA when there is one, else the CPU


RETRIEVE_LEGACY = LegacySpelling(positional=("action", "inputs"))
