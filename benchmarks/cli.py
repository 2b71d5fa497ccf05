"""Start-up of the command line: wall seconds of every script's ``--help`` and of importing each training stage
(median of several runs), beside ``import torch`` on the same machine; ``--before DIR`` times another checkout's
commands in the same run (its package first on the path), so that before and after are compared as ratios
measured together.

    python benchmarks/cli.py --runs 5
    git worktree add /tmp/before <commit> && python benchmarks/cli.py --before /tmp/before
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import report

ROOT = Path(__file__).resolve().parents[1]


def seconds(command: list[str], runs: int, root: Path) -> float:
    """Median wall seconds of ``command`` run from ``root`` with ``root``'s package first on the path."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    times = []
    for _ in range(runs + 1):  # the first run warms the file cache and is not counted
        start = time.perf_counter()
        subprocess.run(command, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--before", type=Path, help="another checkout whose scripts are timed alongside")
    args = parser.parse_args()
    torch_import = seconds([sys.executable, "-c", "import torch"], args.runs, ROOT)
    commands = {f"{script.name} --help": [sys.executable, f"pipelines/{script.name}", "--help"]
                for script in sorted((ROOT / "pipelines").glob("*.py"))}
    commands["pfvit --help (every stage listed)"] = [sys.executable, "-m", "pfvit", "--help"]
    for stage in ("mae_pretrain", "finetune", "pfvit_train", "poster_train"):
        commands[f"import pfvit.train.{stage}"] = [sys.executable, "-c", f"import pfvit.train.{stage}"]
    rows = []
    for what, command in commands.items():
        now = seconds(command, args.runs, ROOT)
        row = [what, f"{now:.2f}", f"{now / torch_import:.2f}"]
        if args.before is not None:
            try:
                then = seconds(command, args.runs, args.before)
                row += [f"{then:.2f}", f"{then / now:.1f}×"]
            except subprocess.CalledProcessError:  # a command the other checkout does not have
                row += ["—", "—"]
        rows.append(row)
        print(" | ".join(row), flush=True)
    header = ["command", "seconds", "/ import torch"]
    if args.before is not None:
        header += ["before s", "before / now"]
    report("Command line: --help and stage start-up", header, rows,
           f"Median wall seconds of {args.runs} runs after one warm-up; `import torch` alone takes "
           f"{torch_import:.2f} s here." + (f" Before: the scripts of {args.before}." if args.before else ""))


if __name__ == "__main__":
    main()
