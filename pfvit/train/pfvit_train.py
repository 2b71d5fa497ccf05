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
import time

import torch
import torch.nn as nn

from ..checkpoint import save_checkpoint
from ..config import to_dict
from ..data.shards import IndexedShards, split_index
from ..data.transforms import denormalize, eval_transform
from ..errors import ConfigError
from ..eval.evaluate import split_metrics
from ..eval.plots import image_grid, loss_curves
from ..labels import class_names
from ..models import pfvit_losses as L
from ..models.convert import read_pretrained
from ..models.facerec import FrozenFaceEmbedder, build_face_embedder
from ..models.geometry import resolved_geometry
from ..models.mae import arch_config
from ..models.pfvit import Discriminator, PokerFaceViT, discriminator_part, fit_positional_copy, init_from_mae
from ..models.registry import build_model
from ..runtime import Progress, Run, read_metrics
from ..schemas.pfvit import PFLossConfig, PFModelConfig, PFViTConfig
from .classifier import (SamplingPlan, classifier_extra, classifier_steps, labelled_loader, sampling_plan,
                         select_and_save, selection_split, start_run, train_transform)
from .loop import EpochSchedule, Task, WarmupCosine, fit
from .schedule import StepPlan


def model_config(cfg: PFModelConfig) -> dict:
    geometry = resolved_geometry(cfg)
    class_names(geometry["num_classes"])
    return arch_config(**geometry, se_reduction=cfg.se_reduction, drop_path_rate=cfg.drop_path)


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
    fakes = torch.cat([out["reconstruction"], out["poker_face"]])
    if not w.adv_trains_g:  # a second pass of G, weights frozen: only E and S get this term's gradient
        generator = getattr(model, "module", model).generator  # (DDP: no parameter of this pass needs a grad)
        with frozen(generator):
            fakes = generator(torch.cat([out["v_e"] + out["v_p"], out["v_p"]]))
    with frozen(disc):
        d_rec, d_poker = disc(fakes).split(x.shape[0])
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


def discriminator_loss(disc: nn.Module, x: torch.Tensor, out: dict, y: torch.Tensor, num_classes: int,
                       classes_from: str = "all") -> torch.Tensor:
    """L_dis (Eq. 7) over real faces, reconstructions and poker faces (the last two detached), averaged.
    ``classes_from``: which images teach the K emotion units (``loss.dis_classes``); the others teach only the
    real/fake unit."""
    fakes = torch.cat([out["reconstruction"].detach(), out["poker_face"].detach()])
    real, rec, poker = disc(torch.cat([x, fakes])).split(x.shape[0])
    real_fake = slice(num_classes, num_classes + 1)
    rec_units = real_fake if classes_from == "real" else None
    poker_units = None if classes_from == "all" else real_fake
    return (L.discrimination_loss(real, L.discriminator_targets(y, L.REAL, num_classes))
            + L.discrimination_loss(rec, L.discriminator_targets(y, L.RECONSTRUCTION, num_classes), rec_units)
            + L.discrimination_loss(poker, L.discriminator_targets(y, L.POKER_FACE, num_classes), poker_units)) / 3


def pfvit_train_step(run: Run, model, disc, fr, g_opt, d_opt, x, y, cfg: PFViTConfig, step: int,
                     class_weights=None, keys=()) -> dict[str, torch.Tensor]:
    """One micro-batch: the generator step, then the discriminator step (see the module docstring). Returns the
    losses, detached, on the device."""
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
            d_loss = discriminator_loss(disc, x, out, y, k, cfg.loss.dis_classes)
        run.check_finite(d_loss, step, keys, hint)
        acc.backward(d_loss)
        if acc.sync_gradients and cfg.optim.clip_grad is not None:
            acc.clip_grad_norm_(disc.parameters(), cfg.optim.clip_grad)
        d_opt.step()
        d_opt.zero_grad(set_to_none=True)
    return {**{name: value.detach() for name, value in losses.items()}, "dis": d_loss.detach()}


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


def warm_up_discriminator(run: Run, disc: nn.Module, d_opt, cfg: PFViTConfig, plan, steps: int) -> None:
    """D alone on ``steps`` batches of real training faces (Eq. 7 with real targets), at d_lr, from
    its own seeded order (the training loader's order is untouched)."""
    acc, k = run.accelerator, cfg.model.num_classes
    transform = train_transform(cfg.model.img_size, cfg.aug)
    loader = labelled_loader(run, cfg.data, plan, lambda s: (transform(s["jpg"]), s["cls"]), seed=cfg.run.seed + 1)
    disc.train()
    t0, losses = time.time(), []
    for step, (images, labels) in enumerate(loader, start=1):
        images, labels = images.to(acc.device), labels.to(acc.device)
        with acc.autocast():
            loss = L.discrimination_loss(disc(images), L.discriminator_targets(labels, L.REAL, k))
        run.check_finite(loss, step, (), "lower optim.d_lr")
        acc.backward(loss)
        d_opt.step()
        d_opt.zero_grad(set_to_none=True)
        losses.append(loss.detach())
        if step >= steps:
            break
    run.raise_if_not_finite()
    losses = torch.stack(losses).tolist()
    run.info(f"D warmed up on real faces: {step} steps in {time.time() - t0:.0f} s, L_dis "
             f"{sum(losses[:10]) / len(losses[:10]):.3f} → {sum(losses[-10:]) / len(losses[-10:]):.3f}")


@torch.no_grad()
def training_tokens(model: PokerFaceViT, cfg: PFViTConfig, count: int = 512) -> torch.Tensor:
    """E's tokens of the first ``count`` training faces (unaugmented): what MCA's positional copy is fitted on."""
    data = IndexedShards(cfg.data.shards, cfg.data.train_split)
    transform = eval_transform(cfg.model.img_size)
    images = torch.stack([transform(data.sample(i)["jpg"]) for i in range(min(count, len(data)))])
    return torch.cat([model.classifier.encoder.forward_features(chunk) for chunk in images.split(128)])


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


class PFViTTask(Task):
    """PF-ViT's game for :func:`fit`: its step is :func:`pfvit_train_step` (G then D), its validation is E+S+C's on
    the selection split (best/, last/ and the discriminator saved), its pictures the sample grid."""

    name = "pfvit"
    loss_key = "total"
    validates = True

    def __init__(self, run: Run, cfg: PFViTConfig, plan: SamplingPlan, steps: StepPlan):
        self.run, self.cfg, self.plan = run, cfg, plan
        self.names = class_names(cfg.model.num_classes)
        self.mconfig = model_config(cfg.model)
        self.model: PokerFaceViT = build_model("pfvit", self.mconfig)
        self.disc: Discriminator = build_model("pfvit_discriminator", discriminator_part(self.mconfig))
        self.init_info = initialise(self.model, self.disc, cfg.model.init, run, cfg.model.head_init_std)
        self.fr = build_face_embedder(cfg.fr.model, cfg.fr.weights)
        if self.fr is not None:
            self.fr.to(run.device)
            run.info(f"FR orthogonality through {self.fr.name} "
                     f"({'pretrained' if self.fr.pretrained else 'RANDOM weights'})")
        o = cfg.optim
        g_lr_scale = 1.0 if o.g_lr is None else o.g_lr / o.lr
        self.g_opt = torch.optim.Adam([{"params": list(self.model.classifier.parameters()), "lr_scale": 1.0},
                                       {"params": list(self.model.generator.parameters()), "lr_scale": g_lr_scale}],
                                      lr=o.lr, betas=o.betas)
        for group in self.g_opt.param_groups:
            group["lr"] = o.lr * group["lr_scale"]
        self.d_opt = torch.optim.Adam([p for p in self.disc.parameters() if p.requires_grad], lr=o.d_lr,
                                      betas=o.d_betas)
        if o.schedule == "cosine":
            self.schedule = WarmupCosine([(self.g_opt, o.lr, o.min_lr), (self.d_opt, o.d_lr, o.min_lr * o.d_lr / o.lr)],
                                         o.warmup_epochs * steps.per_epoch, steps.total)
        else:
            self.schedule = EpochSchedule([torch.optim.lr_scheduler.ReduceLROnPlateau(
                opt, mode="max", factor=o.plateau_factor, patience=o.plateau_patience)
                for opt in (self.g_opt, self.d_opt)])
        # optim.max_steps (a smoke run) caps the two preparatory loops as well as the game.
        self.copy_steps, self.d_warmup_steps = (min(n, o.max_steps or n) for n in (cfg.model.mca_copy_steps,
                                                                                   o.d_warmup_steps))
        self.val_index = split_index(cfg.data.shards, selection_split(cfg.data))
        self.vis_images, self.vis_twins = visual_batch(cfg.data.shards, cfg.data.val_split, cfg.model.img_size)

    def prepare(self, run: Run, resumed: bool) -> None:
        cfg = self.cfg
        if cfg.model.mca_init == "copy" and not resumed:  # a resumed run loads the fitted G from its state
            error = fit_positional_copy(self.model.generator, training_tokens(self.model, cfg), self.copy_steps,
                                        seed=cfg.run.seed)
            run.info(f"MCA fitted as a positional copy of the memory in {self.copy_steps} steps (relative error "
                     f"{error:.4f})")
            self.init_info["mca_copy_error"] = error
        self.model, self.disc, self.g_opt, self.d_opt = run.accelerator.prepare(self.model, self.disc, self.g_opt,
                                                                                self.d_opt)
        self.unwrapped: PokerFaceViT = run.accelerator.unwrap_model(self.model)

    def start(self, run: Run, resumed: bool) -> None:
        if not resumed and self.d_warmup_steps > 0:
            warm_up_discriminator(run, self.disc, self.d_opt, self.cfg, self.plan, self.d_warmup_steps)
        self.disc.train()

    def summary(self) -> str:
        cfg = self.cfg
        return (f"PF-ViT {cfg.model.arch}, {cfg.model.num_classes} classes, lr {cfg.optim.lr:.3g} / D "
                f"{cfg.optim.d_lr:.3g}, {sum(self.plan.keep)} training faces, losses {to_dict(cfg.loss)}")

    def loader(self, start_batch: int, num_batches: int, epoch_batches: int):
        transform = train_transform(self.cfg.model.img_size, self.cfg.aug)
        return labelled_loader(self.run, self.cfg.data, self.plan, lambda s: (transform(s["jpg"]), s["cls"]),
                               seed=self.cfg.run.seed, start_batch=start_batch, batches_per_epoch=epoch_batches)

    def step(self, batch, step: int):
        images, labels = (t.to(self.run.device) for t in batch)
        record = pfvit_train_step(self.run, self.model, self.disc, self.fr, self.g_opt, self.d_opt, images, labels,
                                  self.cfg, step, self.plan.class_weights)
        return record, images.shape[0]

    def after_step(self, step: int, final: bool) -> None:
        if self.run.is_main and (step % self.cfg.vis_every == 0 or final):
            twins = None if self.vis_twins is None else self.vis_twins.to(self.run.device)
            save_sample_grid(self.unwrapped, self.vis_images.to(self.run.device), twins,
                             self.run.out / "samples" / f"step_{step:07d}.png")

    def validate(self, progress: Progress) -> float:
        run, cfg = self.run, self.cfg
        metrics = split_metrics(run, self.unwrapped.classifier, self.names, cfg.data,
                                selection_split(cfg.data), self.val_index)

        def save(name: str, metrics: dict) -> None:
            if run.is_main:
                save_checkpoint(run.out / name, self.unwrapped, name="pfvit", config=self.mconfig,
                                label_names=self.names, step=progress.step, data_manifest=str(cfg.data.shards),
                                extra=classifier_extra(metrics, cfg, self.init_info, name))

        score = select_and_save(run, progress, metrics, cfg.select_metric, save)
        if run.is_main:
            save_checkpoint(run.out / "discriminator", run.accelerator.unwrap_model(self.disc),
                            name="pfvit_discriminator", config=discriminator_part(self.mconfig),
                            label_names=self.names, step=progress.step)
        return score

    def finish(self, progress: Progress) -> dict:
        if self.run.is_main:
            loss_curves(read_metrics(self.run.out / "metrics.jsonl"),
                        ["emo", "rec", "poker_rec", "adv", "dis", "orth", "orth_fr", "val_accuracy"],
                        self.run.out / "loss.png", "PF-ViT")
        return {"best_val": progress.best, "select_metric": self.cfg.select_metric,
                "excluded_train_samples": self.plan.dropped,
                "fr": None if self.fr is None else {"model": self.fr.name, "pretrained": self.fr.pretrained}}


def train(cfg: PFViTConfig) -> dict:
    if cfg.data.soft_labels is not None:
        raise ConfigError("data.soft_labels is not supported by PF-ViT (L_emo is the hard-label CE of Eq. 5)")
    run = start_run(cfg, "pfvit_train")
    plan = sampling_plan(run, cfg.data, cfg.model.num_classes)
    steps = classifier_steps(run, cfg, plan)
    return fit(run, PFViTTask(run, cfg, plan, steps), steps)
