"""How well a MAE fills in what it did not see: PSNR on the masked patches only, next to the mean training face.

The mean face is the best constant guess a model without the visible patches could make per pixel, so the gain
over it is what the visible context contributed. A MAE trained with ``norm_pix_loss`` predicts each patch up to
its own mean and contrast; its pixels are recovered with the *masked* patch's true statistics, which the model
never saw, so the measure says so (``uses_true_patch_statistics``) and flatters such a model.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..data.shards import IndexedShards
from ..data.transforms import denormalize, eval_transform
from ..devices import resolve_device
from .plots import image_grid


def _images(shards: str, split: str, size: int, limit: int | None) -> torch.Tensor:
    data = IndexedShards(shards, split)
    transform = eval_transform(size)
    count = len(data) if limit is None else min(limit, len(data))
    return torch.stack([transform(data.sample(i)["jpg"]) for i in range(count)])


def masked_psnr(images: torch.Tensor, target: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """PSNR (data range 1) of ``images`` vs ``target`` over each sample's ``region`` (1 = counted), per sample;
    NaN for a sample whose region is empty."""
    mse = ((images - target).pow(2) * region).flatten(1).sum(1) / region.flatten(1).sum(1)
    return -10 * torch.log10(mse.clamp_min(1e-10))


SHEET_TITLES = ("input", "masked", "reconstruction", "pasted")


@torch.no_grad()
def reconstruct_masked(model, images: torch.Tensor, mask_ratio: float, gen: torch.Generator):
    """One batch through the MAE, masked by noise drawn from ``gen`` (a CPU generator of the caller's, never the
    training RNG): the input and its reconstruction in [0, 1] pixels, and the masked region (1 on masked pixels)."""
    noise = torch.rand(images.shape[0], model.patch_embed.num_patches, generator=gen).to(images.device)
    _, pred, mask = model(images, mask_ratio, noise)
    region = model.unpatchify(mask.unsqueeze(-1).expand(-1, -1, model.patch_size ** 2 * model.in_chans))
    return denormalize(images), denormalize(model.pred_to_pixels(images, pred.float())), region


def sheet_rows(x01: torch.Tensor, rec01: torch.Tensor, region: torch.Tensor) -> list[list[torch.Tensor]]:
    """A row of :data:`SHEET_TITLES` per image: input | masked (grey) | reconstruction | the reconstruction pasted
    on the visible patches."""
    return [[x, x * (1 - m) + 0.5 * m, r, x * (1 - m) + r * m] for x, r, m in zip(x01, rec01, region)]


@torch.no_grad()
def mae_reconstruction_metrics(model, shards: str, split: str = "test", *, train_split: str = "train",
                               mask_ratio: float = 0.75, limit: int | None = 512, seed: int = 0,
                               batch_size: int = 64, sheet: str | Path | None = None,
                               device: str | torch.device = "auto") -> dict:
    """PSNR of ``model``'s reconstruction of the masked patches of ``split`` (fixed, seeded masks) and of the mean
    ``train_split`` face on the same patches; ``sheet``: a PNG of input | masked | reconstruction | pasted.
    ``device``: auto is CUDA when there is one."""
    device = resolve_device(device)
    model = model.to(device).eval()
    size = model.img_size
    mean_face = denormalize(_images(shards, train_split, size, 4096)).mean(0, keepdim=True).to(device)
    x = _images(shards, split, size, limit)
    gen = torch.Generator().manual_seed(seed)
    psnr_rec, psnr_mean, rows = [], [], []
    for chunk in x.split(batch_size):
        x01, rec01, region = reconstruct_masked(model, chunk.to(device), mask_ratio, gen)
        psnr_rec.append(masked_psnr(rec01, x01, region).cpu())
        psnr_mean.append(masked_psnr(mean_face.expand_as(x01), x01, region).cpu())
        rows += sheet_rows(x01, rec01, region)[:8 - len(rows)]
    rec, mean = torch.cat(psnr_rec), torch.cat(psnr_mean)
    if sheet is not None:
        image_grid(rows, sheet, titles=SHEET_TITLES)
    return {"split": split, "samples": int(rec.numel()), "mask_ratio": mask_ratio,
            "psnr_masked_reconstruction": rec.mean().item(), "psnr_masked_mean_face": mean.mean().item(),
            "gain_over_mean_face_db": (rec - mean).mean().item(),
            "uses_true_patch_statistics": bool(model.norm_pix_loss)}
