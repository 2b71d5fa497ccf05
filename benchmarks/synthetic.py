"""Synthetic faces: images generated per second on one core at 112 and 224 px (target ≥ 500/s at 112), and the
learnability probe (small CNN vs 1-NN on raw 64x64 pixels across disjoint identities).

    python benchmarks/synthetic.py [--probe] [--sheet docs/synthetic_contact_sheet.png]
"""

from __future__ import annotations

import argparse
import time

import torch

from common import report
from pfvit.data.synthetic import contact_sheet, synthetic_samples
from pfvit.eval.probe import cnn_probe_accuracy, nearest_neighbour_accuracy, to_tensor_batch


def throughput(size: int, count: int) -> float:
    samples = synthetic_samples(count, 50, seed=11)["train"]
    samples[0].image(size)  # warm caches
    start = time.perf_counter()
    for sample in samples:
        sample.image(size)
    return len(samples) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--probe", action="store_true", help="also run the learnability probe (about 1 minute)")
    parser.add_argument("--sheet", help="write the contact sheet PNG here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = [[size, f"{throughput(size, 600):.0f}"] for size in (64, 112, 224)]
    report("Synthetic faces: generation on one core", ["size (px)", "images/s (1 process)"], rows,
           "Target: ≥ 500 images/s at 112 px on one core. Rendering is PIL polygons + numpy background/noise.")
    if args.probe:
        torch.set_num_threads(2)
        s = synthetic_samples(4000, 80, seed=1)
        x_tr = to_tensor_batch([x.image(64) for x in s["train"]])
        y_tr = torch.tensor([x.label for x in s["train"]])
        x_te = to_tensor_batch([x.image(64) for x in s["test"]])
        y_te = torch.tensor([x.label for x in s["test"]])
        start = time.perf_counter()
        cnn = cnn_probe_accuracy(x_tr, y_tr, x_te, y_te, num_classes=8, steps=900)
        seconds = time.perf_counter() - start
        nn1 = nearest_neighbour_accuracy(x_tr, y_tr, x_te, y_te)
        report("Synthetic faces: learnability probe (64x64, 3200 train / 400 test faces, disjoint identities)",
               ["probe", "test accuracy", "chance"],
               [[f"4-layer CNN, 900 steps ({seconds:.0f} s)", f"{cnn:.3f}", "0.125"],
                ["1-NN on raw pixels", f"{nn1:.3f}", "0.125"]])
    if args.sheet:
        contact_sheet().save(args.sheet)
        print(f"contact sheet: {args.sheet}")


if __name__ == "__main__":
    main()
