"""Exact, resumable training order over a split: the seeded epoch sampler, seeded augmentation and the loader."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path
from typing import Any, Callable, Sequence

from ...errors import UserError
from .read import IndexedShards, log_line


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
        # The transforms draw from the CPU generator only, so only it is seeded (and restored): torch.manual_seed
        # would also queue a lazy GPU seed with a formatted stack trace on every call (up to ms a sample, most of
        # an in-process CPU run's data time) and reseed a GPU generator that fork_rng(devices=[]) does not restore.
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(hash((self.seed, epoch, i)) & 0x7FFFFFFF)
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
