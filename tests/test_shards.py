"""Shard writing: manifest counts, byte reproducibility, kill-and-resume, rank splitting, verification, readers."""

import hashlib
import json
import os
import shutil

import pytest
from pfvit.data.shards import EvalDataset, read_manifest, split_urls, train_stream, verify
from pfvit.errors import UserError
from conftest import PYTHON, run_script

ARGS = ["num=120", "identities=9", "img_size=32", "maxcount=20"]


def make(out, *extra):
    proc = run_script([PYTHON, "pipelines/make_shards.py", *ARGS, f"out={out}", *extra])
    assert proc.returncode == 0, proc.stderr
    return proc


def tar_hashes(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.tar"))}


def test_manifest_counts_and_layout(synthetic_shards):
    manifest = read_manifest(synthetic_shards)
    assert set(manifest["splits"]) == {"train", "val", "test"}
    train = manifest["splits"]["train"]
    assert train["count"] == 320 == sum(train["per_class"].values()) and train["rejected"] == 0
    assert [s["name"] for s in train["shards"]][:2] == ["train-000000.tar", "train-000001.tar"]
    assert "make_shards.py" in " ".join(manifest["command"]) and manifest["version"]
    index = json.loads((synthetic_shards / "train.wids.json").read_text())
    assert index["__kind__"] == "wids-shard-index-v1" and sum(s["nsamples"] for s in index["shardlist"]) == 320
    assert verify(synthetic_shards) == []


def test_byte_reproducible_across_worker_counts_and_resumes(tmp_path):
    make(tmp_path / "a")
    make(tmp_path / "b", "workers=2")
    assert tar_hashes(tmp_path / "a") == tar_hashes(tmp_path / "b")
    # Kill-and-resume: a shard never finished (no sidecar) and a leftover temporary file.
    victim = tmp_path / "a" / "train-000002.tar"
    os.remove(tmp_path / "a" / "train-000002.done.json")
    victim.write_bytes(b"half written")
    (tmp_path / "a" / ".train-000003.tar.tmp-999").write_bytes(b"junk")
    log = make(tmp_path / "a").stderr
    assert "1 of 7 shards to write" in log
    assert tar_hashes(tmp_path / "a") == tar_hashes(tmp_path / "b")
    assert read_manifest(tmp_path / "a")["splits"] == read_manifest(tmp_path / "b")["splits"]
    # Resuming into the folder with other parameters would mix two datasets' shards: refused, by name.
    os.remove(tmp_path / "a" / "train-000002.done.json")
    proc = run_script([PYTHON, "pipelines/make_shards.py", *ARGS[:-2], "img_size=48", "maxcount=20",
                       f"out={tmp_path / 'a'}"])
    assert proc.returncode == 2 and "other parameters (changed: source.size)" in proc.stderr, proc.stderr
    assert not (tmp_path / "a" / "train-000002.done.json").exists()


def test_two_ranks_produce_the_same_shards_as_one(tmp_path):
    make(tmp_path / "one")
    first = make(tmp_path / "two", "rank=0", "world=2")
    assert "manifest is written when the other ranks finish" in first.stderr
    assert not (tmp_path / "two" / "manifest.json").exists()
    make(tmp_path / "two", "rank=1", "world=2")
    assert tar_hashes(tmp_path / "one") == tar_hashes(tmp_path / "two")
    assert read_manifest(tmp_path / "one")["splits"] == read_manifest(tmp_path / "two")["splits"]


def test_verify_names_changed_shards_and_eval_dataset_checks_counts(tmp_path):
    make(tmp_path / "s")
    shard = tmp_path / "s" / "val-000000.tar"
    data = bytearray(shard.read_bytes())
    data[-2000] ^= 0xFF
    shard.write_bytes(bytes(data))
    proc = run_script([PYTHON, "pipelines/make_shards.py", "verify=true", f"out={tmp_path / 's'}"])
    assert proc.returncode == 2 and "val-000000.tar" in proc.stderr and "Traceback" not in proc.stderr
    # An index that disagrees with the manifest (a shard replaced after writing) is reported.
    index = json.loads((tmp_path / "s" / "test.wids.json").read_text())
    index["shardlist"][0]["nsamples"] -= 1
    (tmp_path / "s" / "test.wids.json").write_text(json.dumps(index))
    with pytest.raises(UserError, match="lists 11 samples but the manifest counts 12"):
        EvalDataset(tmp_path / "s", "test", lambda s: s)
    with pytest.raises(UserError, match="has no split 'dev'"):
        split_urls(tmp_path / "s", "dev")
    with pytest.raises(UserError, match="not a finished shard folder"):
        read_manifest(tmp_path)


def test_bad_arguments_are_one_line_errors(tmp_path):
    proc = run_script([PYTHON, "pipelines/make_shards.py", "num=0", f"out={tmp_path}"])
    assert proc.returncode == 2 and proc.stderr.strip() == "error: num: expected a value ≥ 1, got 0"
    proc = run_script([PYTHON, "pipelines/make_shards.py", *ARGS, "rank=3", "world=2", f"out={tmp_path}"])
    assert proc.returncode == 2 and "outside 0..1" in proc.stderr


def test_eval_dataset_sees_every_sample_once_and_train_stream_batches(synthetic_shards):
    ds = EvalDataset(synthetic_shards, "val", lambda s: (s["__key__"], s["cls"]))
    keys = [ds[i][0] for i in range(len(ds))]
    assert len(keys) == len(set(keys)) == 40
    loader = train_stream(split_urls(synthetic_shards, "train"),
                          lambda s: (float(s["jpg"].size[0]), s["cls"]),
                          batch_size=8, seed=0, shuffle_buffer=20, batches_per_epoch=3)
    batches = list(loader)
    assert len(batches) == 3 and all(b[1].shape == (8,) for b in batches)


def test_shard_class_skew_flags_one_class_per_shard_not_a_mixed_split():
    import random

    from pfvit.data.shards import shard_class_skew

    grouped = [0] * 50 + [1] * 50 + [2] * 50
    assert shard_class_skew([50, 50, 50], grouped) == pytest.approx(2 / 3)
    mixed = grouped[:]
    random.Random(0).shuffle(mixed)
    assert shard_class_skew([50, 50, 50], mixed) < 0.2
    assert shard_class_skew([150], grouped) == 0.0  # one shard: the sampler mixes it anyway
    assert shard_class_skew([2, 2], [-1, -1, 0, 1]) == 0.0  # unlabelled samples do not count


def test_epoch_sampler_ranks_disjoint_equal_and_resumable():
    import itertools

    from pfvit.data.shards import EpochBatchSampler

    sizes = [50, 50, 30, 7]
    samplers = [EpochBatchSampler(sizes, 8, seed=3, rank=r, world=2) for r in range(2)]
    assert samplers[0].batches_per_epoch == 137 // 16
    per_rank = [list(itertools.islice(iter(s), s.batches_per_epoch)) for s in samplers]
    seen = [{i for batch in batches for _, i in batch} for batches in per_rank]
    assert not seen[0] & seen[1] and len(seen[0]) == len(seen[1]) == 8 * 8
    assert all(len(b) == 8 for b in per_rank[0])
    # Epoch 1 is another permutation; resuming at batch 11 equals the tail of an unbroken iteration.
    unbroken = list(itertools.islice(iter(samplers[0]), 20))
    assert {e for batch in unbroken for e, _ in batch} == {0, 1, 2}
    resumed = list(itertools.islice(iter(EpochBatchSampler(sizes, 8, seed=3, rank=0, world=2, start_batch=11)), 9))
    assert resumed == unbroken[11:]
    with pytest.raises(UserError, match="cannot fill one batch"):
        EpochBatchSampler([5], 8, seed=0)


def test_epoch_sampler_reshuffles_where_the_loops_epoch_ends_with_gradient_accumulation():
    """137 faces, batch 8, 3 micro-batches per step: the loop's epoch is 137 // 24 = 5 steps = 15 micro-batches,
    not the 17 full batches; the sampler's epoch 1 must begin at micro-batch 15."""
    import itertools

    from pfvit.data.shards import EpochBatchSampler
    from pfvit.train.schedule import StepPlan

    plan = StepPlan.of(137, 8, grad_accum_steps=3, processes=1, epochs=2)
    sampler = EpochBatchSampler([137], 8, seed=0, batches_per_epoch=plan.micro_batches_per_epoch)
    epochs = [{e for e, _ in batch} for batch in itertools.islice(iter(sampler), 2 * plan.micro_batches_per_epoch)]
    assert plan.micro_batches_per_epoch == 15 and epochs[14] == {0} and epochs[15] == {1} and epochs[29] == {1}
    with pytest.raises(ValueError, match="at most 17"):
        EpochBatchSampler([137], 8, seed=0, batches_per_epoch=18)
