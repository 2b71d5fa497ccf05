"""Webdataset shards: deterministic, resumable, rank-split writing; a manifest; a wids index per split.

Layout (design.md, Shards)::

    OUT/{split}-%06d.tar        samples: __key__ (no dots), jpg, cls, json [, neutral.jpg]
    OUT/{split}-%06d.done.json  per-shard sidecar: sample count, per-class counts, rejects, sha256 (marks completion)
    OUT/{split}.wids.json       wids index (map-style, exact evaluation)
    OUT/manifest.json           per-split counts per class, rejects with reasons, shard list with sha256, command
    OUT/shard_params.json       what decides the shards' contents (source options, maxcount, split sizes)

Shard ``i`` of a split always holds items ``[i·maxcount, (i+1)·maxcount)`` of the source's fixed item order, so
the output does not depend on how many processes or machines wrote it: rank ``r`` of ``world`` writes the shards
with ``i % world == r``, a finished shard (sidecar present) is never rewritten, and a killed run resumes where it
stopped and ends byte-identical to an unbroken one (tar entries carry ``mtime=0`` and fixed owner names). A resume
with other parameters is refused: it would mix shards of two datasets under one manifest.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import multiprocessing as mp
import os
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from PIL import Image

from .. import __version__
from ..config import changed_keys
from ..errors import UserError
from ..labels import CANONICAL

MANIFEST = "manifest.json"
SHARD_PATTERN = "{split}-{index:06d}.tar"


@dataclass
class Reject:
    """An input that did not become a sample, and why (kept in the manifest)."""

    key: str
    source: str
    reason: str


@dataclass
class ShardSpec:
    """What one split of a source provides: an ordered item list and a function that turns an item into a
    sample dict (``__key__``, ``jpg`` bytes, ``cls``, ``json`` and extra byte fields), a list of them (every face
    of a photo), or a :class:`Reject`."""

    split: str
    items: Sequence[Any]
    make_sample: Callable[[Any], dict | Reject]
    extra: dict = field(default_factory=dict)


def mixed_order(items: Sequence[Any], seed: int = 0) -> list[Any]:
    """``items`` in a seeded random order, for sources that list files class by class (folder layouts): the
    training sampler shuffles within shards and a streaming reader within a buffer, so shards holding one class
    each would give single-class batches (a ViT on FER2013 collapsed to its majority class that way)."""
    order = list(items)
    random.Random(seed).shuffle(order)
    return order


def encode_jpeg(image: Image.Image, quality: int = 95) -> bytes:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _non_finite_key(value: Any, key: str = "json") -> str | None:
    """The dotted key of the first NaN or infinite number in a JSON-like value, if any."""
    if isinstance(value, float) and not math.isfinite(value):
        return key
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, (list, tuple)) else ()
    for k, v in items:
        found = _non_finite_key(v, f"{key}.{k}" if isinstance(value, dict) else f"{key}[{k}]")
        if found:
            return found
    return None


def sample_problem(sample: dict) -> str | None:
    """Why a made sample must not enter a shard, whatever its source: a face that is one flat colour (landmarks
    that coincide, a box outside the image: the warp or crop saw no pixels) or a non-finite number in its json."""
    with Image.open(io.BytesIO(sample["jpg"])) as img:
        lo, hi = zip(*img.convert("RGB").getextrema())
    if max(h - lo_ for lo_, h in zip(lo, hi)) < 3:
        return "the aligned face is one flat colour (degenerate landmarks or box); fix or drop the input"
    bad = _non_finite_key(sample.get("json", {}))
    return f"{bad} is not a finite number" if bad else None


def shard_count(num_items: int, maxcount: int) -> int:
    return max(1, -(-num_items // maxcount))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _sidecar(out: Path, split: str, index: int) -> Path:
    return out / f"{split}-{index:06d}.done.json"


def _write_one_shard(out: Path, spec: ShardSpec, index: int, maxcount: int) -> None:
    name = SHARD_PATTERN.format(split=spec.split, index=index)
    final, tmp = out / name, out / f".{name}.tmp-{os.getpid()}"
    try:
        written, counts, unlabeled, rejects = _write_tar(tmp, spec, index, maxcount)
        os.replace(tmp, final)
    finally:  # a full disk, a kill or an error must not leave the partial tar behind (a full disk stays full)
        tmp.unlink(missing_ok=True)
    done = {"shard": name, "count": written, "per_class": dict(zip(CANONICAL, counts)), "unlabeled": unlabeled,
            "rejects": rejects, "sha256": _sha256(final), "bytes": final.stat().st_size}
    _atomic_write_json(_sidecar(out, spec.split, index), done)


def _write_tar(tmp: Path, spec: ShardSpec, index: int, maxcount: int) -> tuple[int, list[int], int, list[dict]]:
    """Make shard ``index`` of ``spec`` into ``tmp``: (samples written, per-class counts, unlabeled, rejects)."""
    import webdataset as wds

    counts = [0] * len(CANONICAL)
    unlabeled, rejects, written, keys = 0, [], 0, set()
    # The writer closes on every path: one left open on an error writes to its closed file when collected.
    with open(tmp, "wb") as fh, wds.TarWriter(fh, user="pfvit", group="pfvit", mtime=0) as writer:
        made = (spec.make_sample(item) for item in spec.items[index * maxcount:(index + 1) * maxcount])
        for sample in (s for m in made for s in (m if isinstance(m, list) else [m])):
            if isinstance(sample, Reject):
                rejects.append(vars(sample))
                continue
            if "." in sample["__key__"]:
                raise ValueError(f"sample key {sample['__key__']!r} contains a dot; webdataset would split it")
            source = sample.get("json", {}).get("source", "")
            if sample["__key__"] in keys:  # readers would merge the two samples into one
                rejects.append(vars(Reject(sample["__key__"], source, "duplicate sample key in this shard")))
                continue
            problem = sample_problem(sample)
            if problem:
                rejects.append(vars(Reject(sample["__key__"], source, problem)))
                continue
            keys.add(sample["__key__"])
            writer.write(sample)
            written += 1
            label = int(sample["cls"])
            if label >= 0:
                counts[label] += 1
            else:
                unlabeled += 1
    return written, counts, unlabeled, rejects


def _worker(args):
    out, spec, index, maxcount = args
    _write_one_shard(out, spec, index, maxcount)
    return spec.split, index


def _claim(out: Path, params: dict) -> None:
    """Record ``params`` in ``OUT/shard_params.json``, or refuse when the folder already holds shards of others."""
    params = json.loads(json.dumps(params))
    path = out / "shard_params.json"
    if path.exists():
        changed = changed_keys(json.loads(path.read_text()), params, one_sided=True)
        if changed:
            raise UserError(f"{out} holds shards made with other parameters (changed: {', '.join(changed)}); "
                            "delete the folder or choose another --out")
        return
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(params, indent=1, sort_keys=True))
    os.replace(tmp, path)


def write_shards(out: str | Path, specs: Sequence[ShardSpec], *, maxcount: int = 1000, workers: int = 1,
                 rank: int = 0, world: int = 1, command: Sequence[str] | None = None,
                 source_info: dict | None = None, progress: Callable[[str], None] | None = None) -> dict | None:
    """Write this rank's unfinished shards, then the manifest and wids indexes once every shard exists.

    Returns the manifest, or ``None`` when other ranks still have shards to write.
    """
    if not 0 <= rank < world:
        raise UserError(f"--rank {rank} is outside 0..{world - 1} (--world {world})")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _claim(out, {"source": source_info or {}, "maxcount": maxcount,
                 "split_sizes": {spec.split: len(spec.items) for spec in specs}})
    jobs = []
    for spec in specs:
        for index in range(shard_count(len(spec.items), maxcount)):
            if index % world == rank and not _sidecar(out, spec.split, index).exists():
                jobs.append((out, spec, index, maxcount))
    total = sum(shard_count(len(s.items), maxcount) for s in specs)
    if progress:
        progress(f"{len(jobs)} of {total} shards to write on rank {rank}/{world} with {workers} worker(s)")
    if workers > 1 and len(jobs) > 1:
        with mp.get_context("fork").Pool(workers) as pool:
            for n, (split, index) in enumerate(pool.imap_unordered(_worker, jobs), 1):
                if progress:
                    progress(f"shard {split}-{index:06d} done ({n}/{len(jobs)})")
    else:
        for n, job in enumerate(jobs, 1):
            _worker(job)
            if progress:
                progress(f"shard {job[1].split}-{job[2]:06d} done ({n}/{len(jobs)})")
    return finalize(out, specs, maxcount, command=command, source_info=source_info)


def finalize(out: Path, specs: Sequence[ShardSpec], maxcount: int, command: Sequence[str] | None = None,
             source_info: dict | None = None) -> dict | None:
    """Build ``manifest.json`` and the wids indexes from the sidecars, if all shards are done (idempotent)."""
    manifest: dict[str, Any] = {"format": "pfvit-shards-v1", "version": __version__,
                                "command": list(command or []), "source": source_info or {}, "splits": {}}
    for spec in specs:
        shards = []
        for index in range(shard_count(len(spec.items), maxcount)):
            side = _sidecar(out, spec.split, index)
            if not side.exists():
                return None
            shards.append(json.loads(side.read_text()))
        per_class = {name: sum(s["per_class"][name] for s in shards) for name in CANONICAL}
        rejects = [r for s in shards for r in s["rejects"]]
        reasons: dict[str, int] = {}
        for r in rejects:
            reasons[r["reason"]] = reasons.get(r["reason"], 0) + 1
        manifest["splits"][spec.split] = {
            "count": sum(s["count"] for s in shards), "inputs": len(spec.items), "per_class": per_class,
            "unlabeled": sum(s["unlabeled"] for s in shards), "rejected": len(rejects),
            "reject_reasons": reasons, "rejects": rejects, **spec.extra,
            "shards": [{"name": s["shard"], "count": s["count"], "sha256": s["sha256"],
                        **({"bytes": s["bytes"]} if "bytes" in s else {})} for s in shards],
        }
        index = {"__kind__": "wids-shard-index-v1", "wids_version": 1, "name": spec.split,
                 "shardlist": [{"url": s["shard"], "nsamples": s["count"]} for s in shards if s["count"] > 0]}
        _atomic_write_json(out / f"{spec.split}.wids.json", index)
    _atomic_write_json(out / MANIFEST, manifest)
    return manifest


def _atomic_write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------------------------
# Reading


def read_manifest(shard_dir: str | Path) -> dict:
    path = Path(shard_dir) / MANIFEST
    if not path.is_file():
        raise UserError(f"{path} not found: {shard_dir} is not a finished shard folder "
                        "(run pipelines/make_shards.py first, or let all ranks finish)")
    return json.loads(path.read_text())


def split_urls(shard_dir: str | Path, split: str) -> list[str]:
    """Paths of the non-empty shards of ``split``, from the manifest."""
    manifest = read_manifest(shard_dir)
    if split not in manifest["splits"]:
        raise UserError(f"{shard_dir} has no split {split!r}; it has: {', '.join(manifest['splits'])}")
    urls = [str(Path(shard_dir) / s["name"]) for s in manifest["splits"][split]["shards"] if s["count"] > 0]
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
                            "(make_shards.py --verify DIR lists the damaged shards)") from None
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
            if not path.is_file() or _sha256(path) != shard["sha256"]:
                bad.append(shard["name"])
    return bad


def check_shard_files(shard_dir: str | Path, split: str, rehash: bool = False) -> None:
    """Before a split is read: every shard exists with the size its manifest records (a stat each), and with
    ``rehash`` the same sha256. A damaged shard is one error naming it, instead of a reader's crash mid-run."""
    for shard in read_manifest(shard_dir)["splits"][split]["shards"]:
        path = Path(shard_dir) / shard["name"]
        fix = f"re-create it (delete it and {path.name[:-4]}.done.json, rerun make_shards.py)"
        if not path.is_file():
            raise UserError(f"{path} is missing; {fix}")
        size = path.stat().st_size
        if "bytes" in shard and size != shard["bytes"]:
            raise UserError(f"{path} is {size} bytes but its manifest records {shard['bytes']}: it was truncated or "
                            f"changed after it was written; {fix}")
        if rehash and _sha256(path) != shard["sha256"]:
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
        split_urls(shard_dir, split)  # clear errors for a missing manifest or split
        check_shard_files(shard_dir, split)
        entry = read_manifest(shard_dir)["splits"][split]
        self.shard_sizes = [s["count"] for s in entry["shards"] if s["count"] > 0]
        self.shard_paths = [str(Path(shard_dir) / s["name"]) for s in entry["shards"] if s["count"] > 0]
        # No string transformations (deprecated in wids): fields come back as bytes and are decoded here. wids
        # announces every dataset it opens on stderr; that line is noise in training logs.
        with contextlib.redirect_stderr(io.StringIO()):
            self._ds = wids.ShardListDataset(str(index), localname=lambda url: url, keep=True, transformations=[])
        if len(self._ds) != entry["count"]:
            raise UserError(f"{index} lists {len(self._ds)} samples but the manifest counts {entry['count']}; "
                            "the shards changed after they were written (run make_shards.py --verify)")

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
                            "(make_shards.py --verify DIR lists the damaged ones)") from None


class EvalDataset(IndexedShards):
    """Every sample of a split exactly once, map-style, for exact evaluation across processes."""

    def __init__(self, shard_dir: str | Path, split: str, transform: Callable[[dict], Any]):
        super().__init__(shard_dir, split)
        self.transform = transform

    def __getitem__(self, i: int):
        return self.transform(self.sample(i))


class EpochBatchSampler:
    """Endless, seeded batches of ``(epoch, index)`` pairs over a split, disjoint across ranks.

    Epoch ``e`` permutes the shard order and the samples inside each shard (shard-local shuffling keeps reads
    local) with a generator seeded by ``(seed, e)``; rank ``r`` takes the ``r``-th contiguous block of
    ``batches_per_epoch × batch_size`` indices, so ranks never share a sample within an epoch and all ranks run
    the same number of steps. Batch ``b`` is a pure function of ``(seed, b, rank, world)``: resuming at
    ``start_batch`` skips index lists, not data, and continues exactly where an unbroken run would be.
    ``batches_per_epoch``: the training loop's epoch in micro-batches (``StepPlan.micro_batches_per_epoch``), so
    that reshuffles fall on its epoch ends with any ``grad_accum_steps``; by default every full batch.
    """

    def __init__(self, shard_sizes: Sequence[int], batch_size: int, *, seed: int, rank: int = 0, world: int = 1,
                 start_batch: int = 0, keep: Sequence[bool] | None = None, weights: Sequence[float] | None = None,
                 batches_per_epoch: int | None = None):
        import numpy as np

        self.keep = None if keep is None else np.asarray(keep, dtype=bool)
        # Class-balanced (or any weighted) sampling draws an epoch's worth with replacement from these weights.
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float64)
        if self.weights is not None:
            if self.keep is not None:
                self.weights = self.weights * self.keep
            self.weights = self.weights / self.weights.sum()
        total = int(self.keep.sum()) if self.keep is not None else sum(shard_sizes)
        full = total // (world * batch_size)
        if full < 1:
            raise UserError(f"{total} samples cannot fill one batch of {batch_size} on each of {world} process(es); "
                            "lower data.batch_size or add data")
        if batches_per_epoch is not None and not 1 <= batches_per_epoch <= full:
            raise ValueError(f"an epoch of {batches_per_epoch} batches does not fit {total} samples in batches of "
                             f"{batch_size} on {world} process(es) (at most {full})")
        self.batches_per_epoch = full if batches_per_epoch is None else batches_per_epoch
        self.shard_sizes, self.batch_size = list(shard_sizes), batch_size
        self.seed, self.rank, self.world, self.start_batch = seed, rank, world, start_batch

    def epoch_indices(self, epoch: int) -> list[int]:
        import numpy as np

        rng = np.random.default_rng([self.seed, epoch])
        per_rank = self.batches_per_epoch * self.batch_size
        if self.weights is not None:
            flat = rng.choice(len(self.weights), size=per_rank * self.world, replace=True, p=self.weights)
        else:
            offsets = np.concatenate([[0], np.cumsum(self.shard_sizes)[:-1]])
            order = [offsets[s] + rng.permutation(self.shard_sizes[s])
                     for s in rng.permutation(len(self.shard_sizes))]
            flat = np.concatenate(order)
            if self.keep is not None:
                flat = flat[self.keep[flat]]
        return flat[self.rank * per_rank:(self.rank + 1) * per_rank].tolist()

    def __iter__(self):
        batch = self.start_batch
        while True:
            epoch, within = divmod(batch, self.batches_per_epoch)
            indices = self.epoch_indices(epoch)
            for b in range(within, self.batches_per_epoch):
                yield [(epoch, i) for i in indices[b * self.batch_size:(b + 1) * self.batch_size]]
            batch = (epoch + 1) * self.batches_per_epoch


class SeededTrainDataset(IndexedShards):
    """Training samples whose random augmentation is seeded by ``(seed, epoch, index)``: the same batch gets the
    same pixels in any process, worker or resumed run, and the caller's RNG is left untouched."""

    def __init__(self, shard_dir: str | Path, split: str, transform: Callable[[dict], Any], seed: int,
                 max_bad: int = 10):
        super().__init__(shard_dir, split)
        self.transform, self.seed, self.max_bad = transform, seed, max_bad
        self.bad = mp.get_context("fork").Value("i", 0)  # shared with the loader's (forked) workers

    def __getitem__(self, epoch_index: tuple[int, int]):
        """The transformed sample, or ``None`` for one that cannot be read (skipped and counted; past ``max_bad``
        the run stops with the shard's name)."""
        import torch

        epoch, i = epoch_index
        try:
            sample = self.sample(i)
        except UserError as err:
            with self.bad.get_lock():
                self.bad.value += 1
                count = self.bad.value
            if count > self.max_bad:
                raise UserError(f"{count} training samples could not be read, more than data.max_bad_samples="
                                f"{self.max_bad}; the last: {err}") from None
            log_line(f"warning: skipped a training sample ({count} of at most {self.max_bad}): {err}")
            return None
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(hash((self.seed, epoch, i)) & 0x7FFFFFFF)
            return self.transform(sample)


class SkipUnreadable:
    """A collate function that leaves out the ``None`` of samples that could not be read."""

    def __init__(self, collate: Callable | None = None):
        self.collate = collate

    def __call__(self, batch: list):
        from torch.utils.data import default_collate

        return (self.collate or default_collate)([b for b in batch if b is not None])


def indexed_train_loader(shard_dir: str | Path, split: str, transform: Callable[[dict], Any], batch_size: int, *,
                         seed: int, rank: int = 0, world: int = 1, start_batch: int = 0, num_workers: int = 0,
                         collate: Callable | None = None, keep: Sequence[bool] | None = None,
                         weights: Sequence[float] | None = None, max_bad: int = 10,
                         batches_per_epoch: int | None = None):
    """An endless, exactly resumable training loader (see :class:`EpochBatchSampler`); returns (loader, sampler).
    Up to ``max_bad`` samples that cannot be read are skipped (counted, each with a warning line)."""
    import torch
    from torch.utils.data import DataLoader

    dataset = SeededTrainDataset(shard_dir, split, transform, seed, max_bad)
    sampler = EpochBatchSampler(dataset.shard_sizes, batch_size, seed=seed, rank=rank, world=world,
                                start_batch=start_batch, keep=keep, weights=weights,
                                batches_per_epoch=batches_per_epoch)
    # A private generator: creating the loader must not draw from the global RNG (it would shift masking noise).
    # Pinned host memory when a GPU will take the batches: the copy to it can then overlap the step.
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers, collate_fn=SkipUnreadable(collate),
                        persistent_workers=num_workers > 0, generator=torch.Generator().manual_seed(seed),
                        pin_memory=torch.cuda.is_available())
    return loader, sampler


def default_rank_world() -> tuple[int, int]:
    """Rank and world size from torchrun / accelerate or SLURM, else (0, 1)."""
    for rank_var, world_var in (("RANK", "WORLD_SIZE"), ("SLURM_PROCID", "SLURM_NTASKS")):
        if rank_var in os.environ and world_var in os.environ:
            return int(os.environ[rank_var]), int(os.environ[world_var])
    return 0, 1


def log_line(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
