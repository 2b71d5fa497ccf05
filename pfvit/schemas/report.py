"""Keys of the finished-run report (pipelines/report.py)."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import PositiveInt


@dataclass
class ReportConfig:
    run: str = "runs/demo"  # a chain run's folder (the Makefile's demo or study)
    title: str = "pfvit demo on synthetic faces"  # the report's heading
    split: str = "test"  # the evaluated split whose metrics are reported
    checkpoint: str = "best"  # the folder the chain evaluated (best, or last where nothing was selected)
    speed_batch: PositiveInt = 32  # batch of the throughput measurement
    speed_repeats: PositiveInt = 3  # timed batches of the throughput measurement
