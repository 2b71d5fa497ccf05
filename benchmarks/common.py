"""Shared by the benchmark scripts: machine description and appending a result table to docs/benchmarks.md."""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{cpu}, {os.cpu_count()} cores, {gpu}; Python {platform.python_version()}, torch {torch.__version__}")


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def report(title: str, header: list[str], rows: list[list], notes: str = "") -> None:
    """Print the table and append it, with the command, date, machine and versions, to docs/benchmarks.md."""
    table = markdown_table(header, rows)
    print(table)
    command = "python " + " ".join([os.path.relpath(sys.argv[0], DOC.parents[1])] + sys.argv[1:])
    entry = (f"\n## {title}\n\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} · `{command}` · {machine()}\n\n"
             f"{table}\n" + (f"\n{notes}\n" if notes else ""))
    DOC.parent.mkdir(exist_ok=True)
    if not DOC.exists():
        DOC.write_text("# Benchmarks\n\nAppended by the scripts in `benchmarks/`; newest last.\n")
    with open(DOC, "a") as fh:
        fh.write(entry)


def rate(fn, batch: int, min_seconds: float = 3.0) -> float:
    """Images per second of ``fn`` (one call = one batch), after one warm-up call, over at least ``min_seconds``."""
    fn()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < min_seconds or n < 3:
        fn()
        n += 1
    return n * batch / (time.perf_counter() - start)


def data_path_rate(shards: str, size: int, batch: int, batches: int, workers: int, transform=None,
                   split: str = "train") -> float:
    """Images/s of the indexed training loader (read + decode + augment in ``workers`` processes); the transform
    defaults to MAE's pretraining augmentation."""
    from pfvit.data.shards import indexed_train_loader
    from pfvit.data.transforms import mae_train_transform

    transform = transform or mae_train_transform(size)
    loader, _ = indexed_train_loader(shards, split, lambda s: (transform(s["jpg"]), s["__key__"]), batch, seed=0,
                                     num_workers=workers)
    it = iter(loader)
    next(it)  # start the workers
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * batch / (time.perf_counter() - start)
