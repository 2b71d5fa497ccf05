"""Pictures a person would rather look at than read: image grids and loss curves."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw


def image_grid(rows: Sequence[Sequence[torch.Tensor]], path: str | Path, titles: Sequence[str] = (),
               min_tile: int = 96) -> Path:
    """Save a grid of images given as [0, 1] tensors (3, H, W); one list per row, a title above each column.
    Tiles narrower than ``min_tile`` are enlarged by a whole factor (nearest neighbour, so patches stay sharp):
    48–64 px faces are too small to judge and too narrow for their column titles."""
    h, w = rows[0][0].shape[-2:]
    scale = max(1, -(-min_tile // w))
    h, w = h * scale, w * scale
    top = 14 if titles else 0
    canvas = Image.new("RGB", (w * max(len(r) for r in rows), top + h * len(rows)), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for c, title in enumerate(titles):
        draw.text((c * w + 2, 1), title, fill=(0, 0, 0))
    for r, row in enumerate(rows):
        for c, img in enumerate(row):
            arr = (img.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8)
            canvas.paste(Image.fromarray(arr).resize((w, h), Image.NEAREST), (c * w, top + r * h))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return Path(path)


def loss_curves(records: Sequence[dict], keys: Sequence[str], path: str | Path, title: str = "") -> Path:
    """Plot ``keys`` of metrics records (``step`` on the x axis) into a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    for key in keys:
        pts = [(r["step"], r[key]) for r in records if isinstance(r.get(key), (int, float))]
        if pts:
            ax.plot(*zip(*pts), label=key)
    ax.set_xlabel("step")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
