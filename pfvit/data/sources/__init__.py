"""Readers that turn a raw data set into :class:`pfvit.data.shards.ShardSpec` lists, one per split."""

from __future__ import annotations

import numpy as np

from ...errors import UserError


def carve_val(train: list, fraction: float, seed: int) -> tuple[list, list]:
    """(train, val): a seeded share ``fraction`` of a training list held out for validation (model selection),
    for data sets that publish no validation split. Item order is kept within each part."""
    if not 0 <= fraction < 1:
        raise UserError(f"val_fraction must be in [0, 1), got {fraction}")
    order = np.random.default_rng(seed).permutation(len(train))
    val_ids = set(order[:round(len(train) * fraction)].tolist())
    return ([it for i, it in enumerate(train) if i not in val_ids], [it for i, it in enumerate(train) if i in val_ids])
