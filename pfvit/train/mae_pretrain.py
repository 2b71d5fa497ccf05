"""MAE pretraining (He et al., 2022) on face shards: the recipe of facebookresearch/mae on accelerate.

AdamW β (0.9, 0.95), weight decay except norms / biases / tokens / position tables, lr = blr × effective batch
/ 256, per-iteration linear warmup and half-cosine, gradient accumulation and optional clipping, precision from
the launcher, optional ``torch.compile``, resume from ``OUT/state``, and a stop with a clear message when the loss
is not finite. Outputs: ``OUT/checkpoint`` (full MAE), ``OUT/encoder`` (timm layout), ``OUT/state/step_*``,
``OUT/metrics.jsonl``, ``OUT/reconstructions/step_*.png``.
"""

from __future__ import annotations

import torch

from ..checkpoint import save_checkpoint
from ..config import to_dict
from ..data.shards import check_shard_files, indexed_train_loader, split_entry, split_urls, train_stream
from ..data.transforms import mae_train_transform
from ..eval.plots import image_grid, loss_curves
from ..eval.reconstruction import SHEET_TITLES, reconstruct_masked, sheet_rows
from ..models.convert import save_encoder
from ..models.geometry import check_patch_grid
from ..models.mae import MaskedAutoencoderViT, arch_config
from ..models.registry import build_model
from ..runtime import Run, read_metrics
from ..schemas.mae import MAEModelConfig, MAEPretrainConfig
from .loop import Task, WarmupCosine, fit
from .schedule import StepPlan, effective_lr, weight_decay_groups


def model_config(cfg: MAEModelConfig) -> dict:
    check_patch_grid(cfg.img_size, cfg.patch_size)
    return arch_config(cfg.arch, img_size=cfg.img_size, patch_size=cfg.patch_size, norm_pix_loss=cfg.norm_pix_loss,
                       visible_loss_weight=cfg.visible_loss_weight)


def save_reconstructions(model: MaskedAutoencoderViT, imgs: torch.Tensor, mask_ratio: float, path,
                         seed: int = 0) -> None:
    """input | masked | reconstruction | reconstruction pasted on the visible patches (un-normalised).

    The masks come from a generator of their own, seeded with ``seed``: a picture must not draw from the training
    RNG (the masking noise), on the CPU or on a GPU, or a run's noise would depend on ``vis_every``; and the same
    masks at every step make the pictures of one run comparable."""
    x01, rec01, region = reconstruct_masked(model, imgs[:4].float(), mask_ratio, torch.Generator().manual_seed(seed))
    image_grid(sheet_rows(x01, rec01, region), path, titles=SHEET_TITLES)


def mae_train_step(run: Run, model, optimizer, imgs: torch.Tensor, mask_ratio: float, clip_grad: float | None,
                   step: int, keys=()) -> torch.Tensor:
    """One MAE micro-batch through :meth:`Run.train_step`. Returns the loss, detached, on the device."""
    return run.train_step(model, optimizer, lambda: model(imgs, mask_ratio)[0], clip_grad=clip_grad, step=step,
                          keys=keys, hint="lower optim.blr or set optim.clip_grad")


class MAETask(Task):
    """MAE pretraining for :func:`fit`: the masked-patch loss, reconstruction pictures every ``vis_every`` steps,
    and at the end the full MAE (``OUT/checkpoint``) and its encoder (``OUT/encoder``)."""

    name = "mae"

    def __init__(self, run: Run, cfg: MAEPretrainConfig, plan: StepPlan):
        self.run, self.cfg = run, cfg
        self.mcfg = model_config(cfg.model)
        self.model = build_model("mae", self.mcfg)
        base_lr = cfg.optim.lr if cfg.optim.lr is not None else effective_lr(cfg.optim.blr, plan.effective_batch)
        self.optimizer = torch.optim.AdamW(weight_decay_groups(self.model, cfg.optim.weight_decay), lr=base_lr,
                                           betas=cfg.optim.betas)
        self.schedule = WarmupCosine([(self.optimizer, base_lr, cfg.optim.min_lr)],
                                     cfg.optim.warmup_epochs * plan.per_epoch, plan.total)
        self.num_train = plan_samples(cfg)
        self.transform = mae_train_transform(cfg.model.img_size, cfg.data.crop_scale)
        self.last_images = None

    def prepare(self, run: Run, resumed: bool) -> None:
        model = torch.compile(self.model) if self.cfg.compile else self.model
        self.model, self.optimizer = run.accelerator.prepare(model, self.optimizer)
        self.unwrapped = run.accelerator.unwrap_model(self.model)

    def summary(self) -> str:
        return (f"{self.cfg.model.arch} MAE: {sum(p.numel() for p in self.model.parameters()) / 1e6:.2f} M "
                f"parameters, {self.num_train} training faces, lr {self.schedule.lr:.3g}")

    def loader(self, start_batch: int, num_batches: int, epoch_batches: int):
        cfg, acc = self.cfg, self.run.accelerator

        def make_example(sample: dict):
            return self.transform(sample["jpg"]), sample["__key__"]

        if cfg.data.reader == "indexed":
            loader, _ = indexed_train_loader(cfg.data.shards, cfg.data.split, make_example, cfg.data.batch_size,
                                             seed=cfg.run.seed, rank=acc.process_index, world=acc.num_processes,
                                             start_batch=start_batch, batches_per_epoch=epoch_batches,
                                             num_workers=cfg.data.num_workers,
                                             max_bad=cfg.data.max_bad_samples)
            return loader
        # The stream cannot skip what an interrupted run consumed; a resumed run re-seeds it with the position.
        return train_stream(split_urls(cfg.data.shards, cfg.data.split), make_example, cfg.data.batch_size,
                            seed=cfg.run.seed + start_batch, num_workers=cfg.data.num_workers,
                            shuffle_buffer=cfg.data.shuffle_buffer, batches_per_epoch=num_batches)

    def step(self, batch, step: int):
        imgs, keys = batch
        imgs = imgs.to(self.run.device, non_blocking=True)
        self.last_images = imgs
        loss = mae_train_step(self.run, self.model, self.optimizer, imgs, self.cfg.model.mask_ratio,
                              self.cfg.optim.clip_grad, step, keys)
        return {"loss": loss}, imgs.shape[0]

    def after_step(self, step: int, final: bool) -> None:
        if self.run.is_main and (step % self.cfg.vis_every == 0 or final):
            self.unwrapped.eval()
            save_reconstructions(self.unwrapped, self.last_images, self.cfg.model.mask_ratio,
                                 self.run.out / "reconstructions" / f"step_{step:07d}.png")
            self.unwrapped.train()

    def finish(self, progress) -> dict:
        run, cfg = self.run, self.cfg
        if run.is_main:
            mae = getattr(self.unwrapped, "_orig_mod", self.unwrapped)
            save_checkpoint(run.out / "checkpoint", mae, name="mae", config=self.mcfg, step=progress.step,
                            data_manifest=str(cfg.data.shards), extra={"train_config": to_dict(cfg)})
            save_encoder(run.out / "encoder", mae, self.mcfg, step=progress.step, data_manifest=str(cfg.data.shards))
            loss_curves(read_metrics(run.out / "metrics.jsonl"), ["loss"], run.out / "loss.png", "MAE pretraining")
        return {"samples": progress.samples}


def plan_samples(cfg: MAEPretrainConfig) -> int:
    return split_entry(cfg.data.shards, cfg.data.split)["count"]


def train(cfg: MAEPretrainConfig) -> dict:
    run = Run(cfg.run, cfg, "mae_pretrain")
    check_shard_files(cfg.data.shards, cfg.data.split, rehash=cfg.data.verify)
    plan = StepPlan.of(plan_samples(cfg), cfg.data.batch_size, cfg.run.grad_accum_steps,
                       run.accelerator.num_processes, cfg.optim.epochs, cfg.optim.max_steps)
    return fit(run, MAETask(run, cfg, plan), plan)
