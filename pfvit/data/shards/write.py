"""Writing shards: deterministic, resumable, rank-split, with per-shard sidecars and the manifest."""

from __future__ import annotations

import io
import json
import math
import multiprocessing as mp
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from PIL import Image

from ... import __version__
from ...config import changed_keys
from ...errors import UserError
from ...labels import CANONICAL
from .read import MANIFEST, SHARD_PATTERN, sha256_file


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
            "rejects": rejects, "sha256": sha256_file(final), "bytes": final.stat().st_size}
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
                            "delete the folder or choose another out=")
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
        raise UserError(f"rank={rank} is outside 0..{world - 1} (world={world})")
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


def default_rank_world() -> tuple[int, int]:
    """Rank and world size from torchrun / accelerate or SLURM, else (0, 1)."""
    for rank_var, world_var in (("RANK", "WORLD_SIZE"), ("SLURM_PROCID", "SLURM_NTASKS")):
        if rank_var in os.environ and world_var in os.environ:
            return int(os.environ[rank_var]), int(os.environ[world_var])
    return 0, 1
