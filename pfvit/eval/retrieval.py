"""Retrieve similar faces: a memory of classifier embeddings with keys, labels and sources, built from a
shard split or a folder of photos / frames; queries return the top-k neighbours by cosine similarity, and a PNG
sheet shows them. The memory folder holds ``vectors.safetensors``, ``items.jsonl`` and ``meta.json``."""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..data.align import FaceAligner, align_to_template
from ..data.sources.folder import IMAGE_SUFFIXES, load_rgb
from ..errors import UserError
from ..inference import Classifier


@dataclass
class MemoryItem:
    key: str
    label: Optional[str]
    source: str                            # shard folder, or the photo / frame file
    index: Optional[int] = None            # sample index in the shard split
    split: Optional[str] = None
    landmarks: Optional[list] = None       # five points in the photo, to re-align it for a sheet


@torch.no_grad()
def embed(classifier: Classifier, faces: Sequence[Image.Image], batch_size: int = 64) -> torch.Tensor:
    """L2-normalised classifier features (N, D), float32 on the CPU, so that inner product = cosine similarity."""
    out = []
    for start in range(0, len(faces), batch_size):
        x = classifier.preprocess(list(faces[start:start + batch_size]))
        out.append(torch.nn.functional.normalize(classifier.features(x).float(), dim=-1).cpu())
    return torch.cat(out)


def shard_faces(shards: str | Path, split: str) -> Iterator[tuple[Image.Image, MemoryItem]]:
    from ..data.shards import IndexedShards
    from ..labels import CANONICAL

    data = IndexedShards(shards, split)
    for i in range(len(data)):
        s = data.sample(i)
        label = CANONICAL[s["cls"]] if 0 <= s["cls"] < len(CANONICAL) else None
        yield s["jpg"], MemoryItem(s["__key__"], label, str(shards), index=i, split=split)


def folder_faces(folder: str | Path, aligner: FaceAligner, skipped: list) -> Iterator[tuple[Image.Image, MemoryItem]]:
    """Every face of every image under ``folder``; unreadable files and images without a face go to ``skipped``
    with the reason."""
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file() and not p.name.startswith(".")):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            skipped.append({"source": str(path), "error": "not an image file"})
            continue
        try:
            image = load_rgb(str(path))
            faces = aligner(image)
        except (ValueError, OSError) as err:  # unreadable, or too small for detection
            skipped.append({"source": str(path), "error": str(err)})
            continue
        if not faces:
            skipped.append({"source": str(path), "error": "no face found"})
        for j, face in enumerate(faces):
            yield face.image, MemoryItem(f"{path.stem}#{j}", None, str(path),
                                         landmarks=np.asarray(face.face.landmarks).tolist())


def query_faces(paths: Sequence[Path], aligner: FaceAligner | None, skipped: list) -> tuple[list, list[str]]:
    """(faces, their sources ``file#n``) of query images: every detected face, or the image itself when
    ``aligner`` is None (aligned faces); failures go to ``skipped``."""
    faces, sources = [], []
    for path in paths:
        try:
            image = load_rgb(str(path))
            found = [image] if aligner is None else [f.image for f in aligner(image)]
        except (ValueError, OSError) as err:  # unreadable, or too small for detection
            skipped.append({"source": str(path), "error": str(err)})
            continue
        if not found:
            skipped.append({"source": str(path), "error": "no face found"})
        faces += found
        sources += [f"{path}#{j}" for j in range(len(found))]
    return faces, sources


class FaceMemory:
    """L2-normalised embeddings (N, D) and their items. An exact search is one matrix product and a top-k: a
    memory of a whole data set (AffectNet's 290 k faces at D = 768 are 0.9 GB of float32) needs no index library."""

    VECTORS = "vectors.safetensors"

    def __init__(self, vectors: torch.Tensor, items: list[MemoryItem], meta: dict):
        self.vectors, self.items, self.meta = vectors, items, meta

    @classmethod
    def build(cls, classifier: Classifier, faces: Iterable[tuple[Image.Image, MemoryItem]], checkpoint: str = "",
              batch_size: int = 64) -> "FaceMemory":
        chunks, items, batch = [], [], []

        def flush():
            chunks.append(embed(classifier, [f for f, _ in batch], batch_size))
            items.extend(item for _, item in batch)
            batch.clear()

        for face, item in faces:
            batch.append((face, item))
            if len(batch) == batch_size:
                flush()
        if batch:
            flush()
        if not chunks:
            raise UserError("the memory would be empty: no face was found in the given source")
        vectors = torch.cat(chunks)
        return cls(vectors, items, {"checkpoint": checkpoint, "count": len(items), "dim": vectors.shape[1],
                                    "img_size": classifier.img_size, "metric": "cosine"})

    def save(self, folder: str | Path) -> Path:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({"vectors": self.vectors.contiguous()}, str(folder / self.VECTORS))
        with open(folder / "items.jsonl", "w") as fh:
            for item in self.items:
                fh.write(json.dumps(asdict(item)) + "\n")
        (folder / "meta.json").write_text(json.dumps(self.meta, indent=2))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "FaceMemory":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        folder = Path(folder)
        if not (folder / cls.VECTORS).is_file() or not (folder / "meta.json").is_file():
            if (folder / "index.faiss").is_file():
                raise UserError(f"{folder} is a face memory of an older pfvit (index.faiss); build it again")
            raise UserError(f"{folder} is not a face memory (no {cls.VECTORS} / meta.json); build one first")
        try:
            vectors = load_file(str(folder / cls.VECTORS))["vectors"]
        except (SafetensorError, KeyError, OSError) as err:
            raise UserError(f"{folder / cls.VECTORS} cannot be read ({err}); build the memory again") from None
        items = [MemoryItem(**json.loads(line)) for line in open(folder / "items.jsonl")]
        meta = json.loads((folder / "meta.json").read_text())
        if len(items) != len(vectors):
            raise UserError(f"{folder}: {len(vectors)} vectors but items.jsonl has {len(items)} rows; rebuild it")
        return cls(vectors, items, meta)

    def search(self, classifier: Classifier, faces: Sequence[Image.Image], k: int = 5
               ) -> list[list[tuple[float, MemoryItem]]]:
        queries = embed(classifier, faces)
        if queries.shape[1] != self.vectors.shape[1]:
            raise UserError(f"the classifier's features are {queries.shape[1]}-d but the memory's "
                            f"{self.vectors.shape[1]}-d; query with the checkpoint that built it "
                            f"({self.meta.get('checkpoint')})")
        scores, ids = (queries @ self.vectors.T).topk(min(k, len(self.items)), dim=1)  # cosine: both are unit
        return [[(float(s), self.items[i]) for s, i in zip(row_s.tolist(), row_i.tolist())]
                for row_s, row_i in zip(scores, ids)]


@functools.lru_cache(maxsize=8)
def _shard_split(source: str, split: str):
    """One open index per shard split, however many neighbours a sheet shows from it."""
    from ..data.shards import IndexedShards

    return IndexedShards(source, split)


def load_face(item: MemoryItem, size: int) -> Image.Image:
    """The face of a memory item again, for display."""
    if item.index is not None:
        return _shard_split(item.source, item.split).sample(item.index)["jpg"].resize((size, size))
    return align_to_template(load_rgb(item.source), np.asarray(item.landmarks), size)[0]


def neighbour_sheet(queries: Sequence[Image.Image], results: list[list[tuple[float, MemoryItem]]],
                    path: str | Path, tile: int = 96) -> Path:
    """One row per query: the query, then its neighbours captioned ``label score``."""
    cols = 1 + max((len(r) for r in results), default=0)
    cap = 12
    sheet = Image.new("RGB", (cols * tile, len(queries) * (tile + cap)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (query, hits) in enumerate(zip(queries, results)):
        y = r * (tile + cap)
        sheet.paste(query.resize((tile, tile)), (0, y))
        draw.text((2, y + tile), "query", fill="black")
        for c, (score, item) in enumerate(hits, start=1):
            sheet.paste(load_face(item, tile), (c * tile, y))
            draw.text((c * tile + 2, y + tile), f"{item.label or item.key[:10]} {score:.2f}", fill="black")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return Path(path)
