"""The levers of the FER2013 CPU recipe (issue 25), each measured at one fixed budget: the ViT baseline of
``configs/finetune_vit/fer2013_cpu.yaml`` fine-tuned from the same MAE for the same number of epochs, with one
change per variant, scored on PublicTest (the shards' ``val`` split) at each epoch end. Nothing is selected on it:
every number is the run's last epoch. Each variant is a run folder laid out as ``make fer2013-cpu``'s
(``VARIANT/vit``, ``VARIANT/times``), so ``benchmarks/accuracy_curve.py`` draws them with the chain's own runs.

    python benchmarks/fer2013_levers.py --mae runs/fer2013_cpu --epochs 1 [--variants shipped ema ...] \
        [--set optim.lr=1e-3 ...]      # the recipe itself changed for every variant (a variant's change wins)

Runs one variant at a time (the machine's cores are the budget); a variant whose run finished is read back, not
rerun. Prints the table (accuracy against wall minutes, the MAE's included) and writes the curve's PNG.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

from accuracy_curve import stage_minutes
from common import markdown_table
from pfvit.runtime import read_metrics

# One change each against the shipped recipe (an empty list is the recipe itself). From scratch needs the geometry
# the MAE would have given.
VARIANTS: dict[str, list[str]] = {
    "shipped": [],
    "seed1": ["run.seed=1"],
    "scratch": ["model.init=null", "model.arch=vit_tiny", "model.img_size=48", "model.patch_size=8"],
    "label_smoothing": ["aug.label_smoothing=0.1"],
    "ema": ["optim.ema_decay=0.999"],
    "class_weighted": ["data.class_weighted_loss=true"],
    "balanced_sampler": ["data.balanced_sampling=true"],
    "lr_5e-4": ["optim.lr=5e-4"],
    "lr_2e-4": ["optim.lr=2e-4"],
    "lr_1e-4": ["optim.lr=1e-4"],
    "lr_2e-3": ["optim.lr=2e-3"],
    "bf16": ["run.mixed_precision=bf16"],
    "mean_pool": ["model.global_pool=avg"],
    "layer_decay": ["optim.layer_decay=0.75"],
    "randaug_erasing": ["aug.randaugment=rand-m9-mstd0.5-inc1-mmax9", "aug.reprob=0.25"],
    "crops": ["aug.scale=[0.6,1.0]"],
    "mixup_cutmix": ["aug.mixup=0.8", "aug.cutmix=1.0"],  # the MAE fine-tuning recipe's α
    # from the chain's own baseline (make fer2013-cpu), never the fer judge
    "distill": ["distill.teacher=runs/fer2013_cpu/vit/last"],
    "batch_128": ["data.batch_size=128", "optim.lr=4.2e-4"],
}


def run_variant(root: Path, name: str, overrides: list[str], args) -> None:
    out = root / name
    if (out / "vit" / "result.json").exists():
        return
    (out / "times").mkdir(parents=True, exist_ok=True)
    uses_mae = "model.init=null" not in overrides
    if uses_mae and (args.mae / "times" / "mae.txt").exists():
        shutil.copy(args.mae / "times" / "mae.txt", out / "times" / "mae.txt")
    command = [sys.executable, "pipelines/finetune_vit.py", "--config", args.config, f"data.shards={args.shards}",
               f"model.init={args.mae / 'mae' / 'checkpoint'}", f"run.out={out / 'vit'}", f"optim.epochs={args.epochs}",
               *args.set, *overrides]
    print(f"[{name}] {' '.join(command[1:])}", flush=True)
    start = time.time()
    subprocess.run(command, check=True)
    (out / "times" / "vit.txt").write_text(f"{round(time.time() - start)}\n")


def last_epoch(run: Path) -> dict:
    records = [r for r in read_metrics(run / "vit" / "metrics.jsonl") if "val_accuracy" in r]
    return records[-1] if records else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mae", type=Path, default=Path("runs/fer2013_cpu"),
                        help="a make fer2013-cpu run folder: its mae/checkpoint and times/mae.txt")
    parser.add_argument("--shards", default="shards/fer2013_48")
    parser.add_argument("--config", default="configs/finetune_vit/fer2013_cpu.yaml")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="overrides of the recipe for every variant (before the variant's own)")
    parser.add_argument("--out", type=Path, default=Path("runs/fer2013_levers"))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--png", type=Path, default=None,
                        help="the curve's PNG (default: OUT/epochs_E/levers.png; docs/ only when asked)")
    args = parser.parse_args()

    root = args.out / f"epochs_{args.epochs:g}"
    png = args.png or root / "levers.png"
    for name in args.variants:
        run_variant(root, name, VARIANTS[name], args)
    rows = []
    for name in args.variants:
        last = last_epoch(root / name)
        if not last:
            continue
        rows.append([name, " ".join(VARIANTS[name]) or "(the recipe)", f"{stage_minutes(root / name, 'mae'):.1f}",
                     f"{stage_minutes(root / name, 'vit'):.1f}", f"{100 * last['val_accuracy']:.2f}",
                     f"{100 * last['val_mean_class_accuracy']:.2f}", f"{100 * last['val_macro_f1']:.2f}"])
    print(markdown_table(["variant", "change", "MAE min", "fine-tune min", "PublicTest acc %", "mean class acc %",
                          "macro-F1 %"], rows))
    subprocess.run([sys.executable, str(Path(__file__).with_name("accuracy_curve.py")),
                    *[str(root / name) for name in args.variants], "--models", "vit", "--png", str(png)],
                   check=True)


if __name__ == "__main__":
    main()
