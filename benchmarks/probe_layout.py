"""The small expression CNN (the judge, the learnability probe) trained in the contiguous and the channels_last
memory layout: optimizer steps per second on one thread at 32 and 64 px, batch 64, and the ratio.

    python benchmarks/probe_layout.py [--steps 150]
"""

from __future__ import annotations

import argparse
import time

import torch

from common import report
from pfvit.eval.probe import train_probe
from pfvit.models.cnn import ExpressionCNN


def steps_per_second(size: int, steps: int, channels_last: bool) -> float:
    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(512, 3, size, size, generator=gen), torch.randint(0, 8, (512,), generator=gen)
    torch.manual_seed(0)
    start = time.perf_counter()
    train_probe(ExpressionCNN(8), x, y, steps, max_lr=6e-3, channels_last=channels_last)
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=150, help="optimizer steps per measurement")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for size in (32, 64):
        # Each layout run twice, the better kept: a background blip slows one run, not the comparison.
        rates = {cl: max(steps_per_second(size, args.steps, cl) for _ in range(2)) for cl in (False, True)}
        rows.append([size, f"{rates[False]:.1f}", f"{rates[True]:.1f}", f"{rates[True] / rates[False]:.2f}"])
    report("Expression CNN: contiguous vs channels_last training", ["size (px)", "steps/s contiguous",
           "steps/s channels_last", "ratio"], rows,
           f"One thread, batch 64, {args.steps} steps of pfvit.eval.probe.train_probe per run, best of two.")


if __name__ == "__main__":
    main()
