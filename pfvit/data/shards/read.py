"""Reading shards: the manifest, the shard checks, the webdataset stream and wids random access."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from PIL import Image

from ...errors import UserError

MANIFEST = "manifest.json"
SHARD_PATTERN = "{split}-{index:06d}.tar"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(shard_dir: str | Path) -> dict:
    path = Path(shard_dir) / MANIFEST
    if not path.is_file():
        raise UserError(f"{path} not found: {shard_dir} is not a finished shard folder "
                        "(run pipelines/make_shards.py first, or let all ranks finish)")
    try:
        manifest = json.loads(path.read_text())
        if not isinstance(manifest, dict) or not isinstance(manifest.get("splits"), dict):
            raise ValueError("no 'splits' table")
    except ValueError as err:
        raise UserError(f"{path} is not a shard manifest ({err}); re-create {shard_dir} with make_shards.py") from None
    return manifest


def split_entry(shard_dir: str | Path, split: str) -> dict:
    """The manifest's entry of ``split`` (its count and shards); a split the folder lacks is one error naming
    those it has."""
    splits = read_manifest(shard_dir)["splits"]
    if split not in splits:
        raise UserError(f"{shard_dir} has no split {split!r}; it has: {', '.join(splits)}")
    return splits[split]


def split_urls(shard_dir: str | Path, split: str) -> list[str]:
    """Paths of the non-empty shards of ``split``, from the manifest."""
    urls = [str(Path(shard_dir) / s["name"]) for s in split_entry(shard_dir, split)["shards"] if s["count"] > 0]
    if not urls:
        raise UserError(f"split {split!r} of {shard_dir} holds no samples")
    return urls


def split_index(shard_dir: str | Path, split: str) -> tuple[list[str], list[int]]:
    """The key and ``cls`` of every sample of a split, in reading (wids index) order, from the tar headers and the
    small ``.cls`` members only: no image is decoded."""
    import tarfile

    keys, labels = [], []
    check_shard_files(shard_dir, split)
    for url in split_urls(shard_dir, split):
        try:
            with tarfile.open(url) as tar:
                for member in tar:
                    if member.name.endswith(".cls"):
                        keys.append(member.name[:-len(".cls")])
                        labels.append(int(tar.extractfile(member).read()))
        except (tarfile.TarError, ValueError, OSError) as err:
            raise UserError(f"{url} cannot be read ({type(err).__name__}: {err}); re-create it with make_shards.py "
                            "(make_shards.py verify=true out=DIR lists the damaged shards)") from None
    return keys, labels


def shard_class_skew(shard_sizes: Sequence[int], labels: Sequence[int]) -> float:
    """How far the shards' class mixes are from the split's: the mean (weighted by shard size) total-variation
    distance between each shard's label histogram and the whole split's, over labelled samples (``labels`` in
    reading order). Near 0 when every shard is a sample of the split; 2/3 for three classes in one shard each."""
    import numpy as np

    labels = np.asarray(labels)
    known = labels[labels >= 0]
    if known.size == 0:
        return 0.0
    bins = int(known.max()) + 1
    overall = np.bincount(known, minlength=bins) / known.size
    distances, weights, start = [], [], 0
    for size in shard_sizes:
        part = labels[start:start + size]
        start += size
        part = part[part >= 0]
        if part.size:
            distances.append(0.5 * np.abs(np.bincount(part, minlength=bins) / part.size - overall).sum())
            weights.append(part.size)
    return float(np.average(distances, weights=weights))


def verify(shard_dir: str | Path) -> list[str]:
    """Re-hash every shard against the manifest; the names of those that changed or are missing."""
    manifest = read_manifest(shard_dir)
    bad = []
    for split in manifest["splits"].values():
        for shard in split["shards"]:
            path = Path(shard_dir) / shard["name"]
            if not path.is_file() or sha256_file(path) != shard["sha256"]:
                bad.append(shard["name"])
    return bad


def check_shard_files(shard_dir: str | Path, split: str, rehash: bool = False) -> None:
    """Before a split is read: every shard exists with the size its manifest records (a stat each), and with
    ``rehash`` the same sha256. A damaged shard is one error naming it, instead of a reader's crash mid-run."""
    for shard in split_entry(shard_dir, split)["shards"]:
        path = Path(shard_dir) / shard["name"]
        fix = f"re-create it (delete it and {path.name[:-4]}.done.json, rerun make_shards.py)"
        if not path.is_file():
            raise UserError(f"{path} is missing; {fix}")
        size = path.stat().st_size
        if "bytes" in shard and size != shard["bytes"]:
            raise UserError(f"{path} is {size} bytes but its manifest records {shard['bytes']}: it was truncated or "
                            f"changed after it was written; {fix}")
        if rehash and sha256_file(path) != shard["sha256"]:
            raise UserError(f"{path} differs from its manifest's sha256: it changed after it was written; {fix}")


def decode_image(data: bytes, key: str = "") -> Image.Image:
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.convert("RGB")
    except Exception as err:  # PIL raises several types for damaged data
        raise UserError(f"sample {key}: image cannot be decoded ({err}); re-create the shard") from None


def _decode_sample(sample: dict) -> dict:
    out = {"__key__": sample["__key__"], "cls": int(sample["cls"]), "json": json.loads(sample["json"])}
    for name, value in sample.items():
        if name.endswith("jpg"):
            out[name] = decode_image(value, sample["__key__"])
    return out


def train_stream(urls: Sequence[str], transform: Callable[[dict], Any], batch_size: int, *, seed: int,
                 shuffle_buffer: int = 1000, num_workers: int = 0, batches_per_epoch: int = 100,
                 collate: Callable | None = None):
    """An endless training stream over ``urls``: shards resampled with replacement, split by node and worker,
    shuffled in a buffer, decoded and transformed in the workers, cut into epochs of ``batches_per_epoch``."""
    import torch
    import webdataset as wds
    from torch.utils.data import default_collate

    rank = int(os.environ.get("RANK", "0"))
    dataset = (wds.WebDataset(list(urls), resampled=True, nodesplitter=wds.split_by_node, shardshuffle=False,
                              seed=seed + 1000 * rank, handler=wds.reraise_exception)
               .shuffle(shuffle_buffer, rng=None)
               .map(lambda s: transform(_decode_sample(s)))
               .batched(batch_size, collation_fn=collate or default_collate, partial=False))
    loader = wds.WebLoader(dataset, batch_size=None, num_workers=num_workers,
                           persistent_workers=num_workers > 0, pin_memory=torch.cuda.is_available())
    return loader.with_epoch(batches_per_epoch)


class IndexedShards:
    """Random access to every sample of a split (wids, map-style), checked against the manifest's count."""

    def __init__(self, shard_dir: str | Path, split: str):
        import wids

        index = Path(shard_dir) / f"{split}.wids.json"
        entry = split_entry(shard_dir, split)
        check_shard_files(shard_dir, split)
        self.shard_sizes = [s["count"] for s in entry["shards"] if s["count"] > 0]
        self.shard_paths = [str(Path(shard_dir) / s["name"]) for s in entry["shards"] if s["count"] > 0]
        # No string transformations (deprecated in wids): fields come back as bytes and are decoded here. wids
        # announces every dataset it opens on stderr; that line is noise in training logs.
        with contextlib.redirect_stderr(io.StringIO()):
            self._ds = wids.ShardListDataset(str(index), localname=lambda url: url, keep=True, transformations=[])
        if len(self._ds) != entry["count"]:
            raise UserError(f"{index} lists {len(self._ds)} samples but the manifest counts {entry['count']}; "
                            "the shards changed after they were written (run make_shards.py verify=true out=DIR)")

    def __len__(self) -> int:
        return len(self._ds)

    def shard_of(self, i: int) -> str:
        import bisect

        import numpy as np

        return self.shard_paths[bisect.bisect_right(np.cumsum(self.shard_sizes).tolist(), i)]

    def sample(self, i: int) -> dict:
        """Sample ``i``, decoded; a sample that cannot be read is a :class:`UserError` naming its shard."""
        try:
            raw = self._ds[i]
            key = raw["__key__"]
            sample = {"__key__": key, "cls": int(raw[".cls"].getvalue()),
                      "json": json.loads(raw[".json"].getvalue())}
            for name, value in raw.items():
                if name.endswith("jpg"):
                    sample[name.lstrip(".")] = decode_image(value.getvalue(), key)
            return sample
        except Exception as err:  # wids, tarfile, json and PIL each raise their own types for damaged bytes
            reason = str(err) if isinstance(err, UserError) else f"{type(err).__name__}: {err}"
            raise UserError(f"sample {i} of {self.shard_of(i)} cannot be read ({reason}); re-create that shard "
                            "(make_shards.py verify=true out=DIR lists the damaged ones)") from None


class EvalDataset(IndexedShards):
    """Every sample of a split exactly once, map-style, for exact evaluation across processes."""

    def __init__(self, shard_dir: str | Path, split: str, transform: Callable[[dict], Any]):
        super().__init__(shard_dir, split)
        self.transform = transform

    def __getitem__(self, i: int):
        return self.transform(self.sample(i))


def log_line(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
