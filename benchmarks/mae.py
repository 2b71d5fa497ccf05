"""MAE pretraining speed on this machine: our training step vs a bare PyTorch loop on the same model and batch
(the pipeline's overhead; target ratio ≥ 0.95), and the data path (indexed loader: read + decode + augment, 2
workers) beside them, for ViT-T at 112 and 224.

    python benchmarks/mae.py [--steps 6] [--batch 32]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch

from common import data_path_rate, report
from pfvit.data.shards import write_shards
from pfvit.data.sources.synthetic import synthetic_specs
from pfvit.models.registry import create_model
from pfvit.train.loop import WarmupCosine
from pfvit.train.mae_pretrain import mae_train_step
from pfvit.runtime import Run
from pfvit.schemas.run import RunConfig
from pfvit.train.schedule import weight_decay_groups


def timed(fn, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in (112, 224):
            shards = os.path.join(tmp, f"s{size}")
            write_shards(shards, synthetic_specs(1200, 40, seed=0, size=size), maxcount=200, workers=2)
            torch.manual_seed(0)
            imgs = torch.randn(args.batch, 3, size, size)
            cfg = {"img_size": size, "norm_pix_loss": True}

            bare = create_model("mae_vit_tiny", **cfg)
            bare_opt = torch.optim.AdamW(weight_decay_groups(bare, 0.05), lr=1e-4, betas=(0.9, 0.95))

            def bare_step():
                loss, _, _ = bare(imgs, 0.75)
                loss.backward()
                bare_opt.step()
                bare_opt.zero_grad(set_to_none=True)

            run = Run(RunConfig(out=os.path.join(tmp, f"run{size}")), RunConfig(), "benchmark")
            ours = create_model("mae_vit_tiny", **cfg)
            ours_opt = torch.optim.AdamW(weight_decay_groups(ours, 0.05), lr=1e-4, betas=(0.9, 0.95))
            ours, ours_opt = run.accelerator.prepare(ours, ours_opt)

            schedule = WarmupCosine([(ours_opt, 1e-4, 0.0)], warmup_steps=10, total_steps=1000)

            def our_step():
                schedule.at_step(100)
                mae_train_step(run, ours, ours_opt, imgs, 0.75, None, 0)

            bare_step(), our_step()  # warm-up
            t_bare = t_ours = 0.0
            for _ in range(2):  # interleaved, so drift in machine load hits both alike
                t_bare += timed(bare_step, args.steps)
                t_ours += timed(our_step, args.steps)
            n = 2 * args.steps * args.batch
            data = data_path_rate(shards, size, args.batch, 8, args.workers)
            rows.append([f"ViT-T {size}", args.batch, f"{n / t_ours:.1f}", f"{n / t_bare:.1f}",
                         f"{t_bare / t_ours:.3f}", f"{data:.0f}", f"{data / (n / t_ours):.1f}×"])
    report("MAE pretraining step vs bare loop (CPU)",
           ["model", "batch", "ours img/s", "bare loop img/s", "ours / bare", "data path img/s (2 workers)",
            "data / model"], rows,
           "ours = accelerate-prepared model + `mae_train_step` (the loop's lr schedule, accumulate, autocast, finite check); "
           "bare = the same MAE and AdamW in a plain loop. Same random batch, no data loading in either. "
           "Data path = indexed loader reading synthetic shards, decode + RandomResizedCrop + flip + normalise.")


if __name__ == "__main__":
    main()
