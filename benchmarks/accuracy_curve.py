"""Accuracy against CPU-minutes of chain runs (``make fer2013-cpu`` and its variants): for each model of each run,
the validation accuracy logged at every epoch end (on FER2013 that split is PublicTest; it is logged, never used to
choose a checkpoint) against the wall minutes spent so far, the MAE's included (``RUN/times/mae.txt``). Prints a
table and writes one PNG with a curve per run and model.

    python benchmarks/accuracy_curve.py runs/fer2013_cpu [RUN ...] [--models vit pfvit] [--png docs/fer2013_cpu_curve.png]

A variant run (another lever) is one more RUN folder laid out the same way; its label is the folder's name.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from common import markdown_table
from pfvit.runtime import read_metrics


# The chain's POSTER heads train on PF-ViT's E + S: their minutes begin when PF-ViT's end.
BUILT_ON = {"poster_pp": "pfvit", "poster_var": "pfvit"}


def records(run: Path, model: str) -> list[dict]:
    path = run / model / "metrics.jsonl"
    return read_metrics(path) if path.exists() else []


def stage_minutes(run: Path, name: str) -> float:
    """Wall minutes of a stage as the Makefile timed it, else up to its last logged record (a stage run by hand);
    0 for a stage that is neither (reused from elsewhere)."""
    path = run / "times" / f"{name}.txt"
    if path.exists():
        return float(path.read_text()) / 60
    logged = [r["time"] for r in records(run, name) if "time" in r]
    return logged[-1] / 60 if logged else 0.0


def curve(run: Path, model: str) -> list[tuple[int, float, float]]:
    """(step, minutes since the MAE began, val accuracy) at each validation of ``run/model``."""
    start = stage_minutes(run, "mae") + (stage_minutes(run, BUILT_ON[model]) if model in BUILT_ON else 0.0)
    return [(r["step"], start + r["time"] / 60, r["val_accuracy"]) for r in records(run, model) if "val_accuracy" in r]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--models", nargs="+", default=["vit", "pfvit"])
    parser.add_argument("--png", type=Path, default=Path("docs/fer2013_cpu_curve.png"))
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, fig = [], plt.figure(figsize=(9, 4), dpi=110)
    ax = fig.gca()
    # Each run is labelled by its path below the runs' common folder (two variants of one name stay apart).
    common = Path(os.path.commonpath([run.resolve() for run in args.runs]))
    for run in args.runs:
        label = str(run.resolve().relative_to(common)) if len(args.runs) > 1 else run.name
        for model in args.models:
            points = curve(run, model)
            if not points:
                print(f"{run}/{model}: no validation records in metrics.jsonl; skipped")
                continue
            rows += [[label, model, step, f"{minutes:.1f}", f"{100 * acc:.1f}"] for step, minutes, acc in points]
            # matplotlib's colours repeat after ten curves; the marker changes with each round of them
            marker = "osD^v"[len(ax.lines) // 10 % 5]
            ax.plot([p[1] for p in points], [100 * p[2] for p in points], marker=marker, label=f"{label} {model}")
    if not rows:
        raise SystemExit("no run had validation records: give run folders of make fer2013-cpu (RUN/vit, RUN/pfvit)")
    print(markdown_table(["run", "model", "step", "minutes (MAE included)", "val accuracy %"], rows))
    ax.set_xlabel("minutes on this machine, MAE included")
    ax.set_ylabel("val accuracy (%)")
    ax.grid(alpha=0.3)
    # beside the axes, not on them: with a dozen runs an inner legend hides points
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    args.png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.png, bbox_inches="tight")
    print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
