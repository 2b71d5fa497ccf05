"""Difficulty probes for a labelled image set, and the independent expression judge of the poker faces.

* :func:`nearest_neighbour_accuracy` — 1-NN on raw pixels. Across disjoint identities it should stay far below
  100%: a high number means the labels can be read off by matching whole images (identity or background leaks).
* :func:`cnn_probe_accuracy` — a small strided CNN trained for a fixed number of steps. It should land well
  above chance: the expression signal is there to be learned.
* :func:`train_judge` — the same CNN trained on one shard set and saved as a classifier checkpoint: the judge
  that says whether PF-ViT's poker faces look neutral (``evaluate.py … pokerface=true judge=…``). It shares no part
  with PF-ViT; trained on faces of other identities (another synthetic family seed), it judges unseen people.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
from PIL import Image

from ..checkpoint import save_checkpoint
from ..errors import UserError
from ..labels import class_names
from ..models.cnn import ExpressionCNN
from ..schemas.evaluate import JudgeConfig


def to_tensor_batch(images: Sequence[Image.Image], size: int | None = None) -> torch.Tensor:
    """PIL RGB images → float tensor (N, 3, H, W) in [0, 1] (resized to ``size`` when given, bicubic)."""
    def array(img):
        img = img.convert("RGB")
        if size is not None and img.size != (size, size):
            img = img.resize((size, size), Image.BICUBIC)
        return np.asarray(img, dtype=np.float32) / 255.0

    return torch.from_numpy(np.stack([array(img) for img in images])).permute(0, 3, 1, 2).contiguous()


def nearest_neighbour_accuracy(x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor,
                               y_test: torch.Tensor) -> float:
    dist = torch.cdist(x_test.flatten(1), x_train.flatten(1))
    return (y_train[dist.argmin(dim=1)] == y_test).float().mean().item()


def blur_batch(x: torch.Tensor, max_sigma: float, gen: torch.Generator) -> torch.Tensor:
    """Each image blurred by a Gaussian of its own σ, uniform in [0, ``max_sigma``] pixels (σ < 0.3: unchanged)."""
    from torchvision.transforms.v2 import functional as TF

    sigmas = torch.rand(x.shape[0], generator=gen) * max_sigma
    out = x.clone()
    for i, sigma in enumerate(sigmas.tolist()):
        if sigma >= 0.3:
            k = 2 * int(3 * sigma) + 1
            out[i] = TF.gaussian_blur(x[i], [k, k], [sigma, sigma])
    return out


def train_probe(net: nn.Module, x_train: torch.Tensor, y_train: torch.Tensor, steps: int, max_lr: float,
                batch_size: int = 64, weight_decay: float = 0.01, seed: int = 0, hflip: bool = False,
                blur: float = 0.0, channels_last: bool = True) -> nn.Module:
    """Train ``net`` with AdamW and a one-cycle schedule for ``steps`` steps of random batches (optionally
    flipped left-right, and blurred by up to ``blur`` px); returns it in eval mode, its weights contiguous (the
    layout safetensors stores). ``channels_last``: train in that memory layout, in which the CPU's convolutions
    run these small CNNs about 1.25x as fast (benchmarks/probe_layout.py)."""
    layout = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=layout)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(net.parameters(), lr=max_lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=steps)
    net.train()
    for _ in range(steps):
        idx = torch.randint(0, len(x_train), (batch_size,), generator=gen)
        x = x_train[idx]
        if hflip:
            flip = torch.rand(x.shape[0], generator=gen) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
        if blur > 0:
            x = blur_batch(x, blur, gen)
        loss = nn.functional.cross_entropy(net(x.contiguous(memory_format=layout)), y_train[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return net.to(memory_format=torch.contiguous_format).eval()


@torch.no_grad()
def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    pred = torch.cat([net(chunk).argmax(dim=1) for chunk in x.split(256)])
    return (pred == y).float().mean().item()


def cnn_probe_accuracy(x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor,
                       num_classes: int, steps: int = 900, batch_size: int = 64, seed: int = 0) -> float:
    """Train a 4-layer strided CNN with a one-cycle schedule for ``steps`` steps; test accuracy."""
    torch.manual_seed(seed)
    net = train_probe(ExpressionCNN(num_classes), x_train, y_train, steps, max_lr=6e-3, batch_size=batch_size,
                      seed=seed)
    return accuracy(net, x_test, y_test)


def _split_tensors(shards: str, split: str, size: int, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    from ..data.shards import IndexedShards

    data = IndexedShards(shards, split)
    samples = [data.sample(i) for i in range(len(data))]
    keep = [s for s in samples if 0 <= s["cls"] < num_classes]
    if not keep:
        raise UserError(f"split {split!r} of {shards} has no samples of the {num_classes}-class protocol")
    return to_tensor_batch([s["jpg"] for s in keep], size), torch.tensor([s["cls"] for s in keep])


def train_judge(cfg: JudgeConfig) -> dict:
    """Train the CNN on the ``train`` split of ``cfg.shards`` and save it as a classifier checkpoint in
    ``cfg.out`` (inputs in [0, 1]: mean 0, std 1); its accuracy on the ``val`` split is stored with it."""
    x_train, y_train = _split_tensors(cfg.shards, "train", cfg.img_size, cfg.num_classes)
    x_val, y_val = _split_tensors(cfg.shards, "val", cfg.img_size, cfg.num_classes)
    torch.manual_seed(cfg.seed)
    config = {"num_classes": cfg.num_classes, "widths": [24, 48, 64, 96], "img_size": cfg.img_size}
    net = train_probe(ExpressionCNN(**config), x_train, y_train, cfg.steps, cfg.lr, cfg.batch_size, seed=cfg.seed,
                      hflip=True, blur=cfg.blur)
    val = accuracy(net, x_val, y_val)
    preprocess = {"interpolation": "bicubic", "grey": False, "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}
    save_checkpoint(Path(cfg.out), net, name="expression_cnn", config=config,
                    label_names=class_names(cfg.num_classes), data_manifest=str(cfg.shards),
                    extra={"preprocess": preprocess, "val": {"accuracy": val}, "train_samples": len(y_train),
                           "steps": cfg.steps, "blur": cfg.blur})
    return {"out": cfg.out, "val_accuracy": val, "train_samples": len(y_train)}
