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

Split by concern: :mod:`.write` (writer, sidecars, manifest), :mod:`.read` (manifest reads, checks, the stream,
wids random access), :mod:`.sampling` (the exact training order and its loader).
"""

from .read import (MANIFEST, SHARD_PATTERN, EvalDataset, IndexedShards, check_shard_files, decode_image, log_line,
                   read_manifest, shard_class_skew, sha256_file, split_entry, split_index, split_urls, train_stream,
                   verify)
from .sampling import EpochBatchSampler, SeededTrainDataset, SkipUnreadable, indexed_train_loader
from .write import (Reject, ShardSpec, default_rank_world, encode_jpeg, finalize, mixed_order, sample_problem,
                    shard_count, write_shards)

__all__ = ["MANIFEST", "SHARD_PATTERN", "EpochBatchSampler", "EvalDataset", "IndexedShards", "Reject",
           "SeededTrainDataset", "ShardSpec", "SkipUnreadable", "check_shard_files", "decode_image",
           "default_rank_world", "encode_jpeg", "finalize", "indexed_train_loader", "log_line", "mixed_order",
           "read_manifest", "sample_problem", "shard_class_skew", "sha256_file", "shard_count", "split_entry",
           "split_index", "split_urls", "train_stream", "verify", "write_shards"]
