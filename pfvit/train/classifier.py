"""What every classifier stage shares (the ViT baseline, the POSTER family, PF-ViT's classifier): the labelled data
and its protocol, training augmentation, the sampling plan, model selection on the validation split, and the
supervised :class:`ClassifierTask` that :func:`~.loop.fit` runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.data import Mixup, create_transform

from ..checkpoint import save_checkpoint
from ..config import to_dict
from ..data.shards import check_shard_files, indexed_train_loader, shard_class_skew, split_entry, split_index
from ..data.transforms import IMAGENET_MEAN, IMAGENET_STD, imagenet_preprocess
from ..errors import ConfigError, UserError
from ..eval.evaluate import split_metrics
from ..eval.plots import loss_curves
from ..labels import class_names, outside_protocol
from ..models.geometry import inherit_geometry
from ..models.vit import timm_config
from ..runtime import Progress, Run, read_metrics
from ..schemas.classifier import AugConfig, ClassifierDataConfig
from .loop import LRSchedule, Task
from .schedule import StepPlan

def train_transform(img_size: int, aug: AugConfig):
    if aug.randaugment:
        parts = aug.randaugment.split("-")
        if "inc1" in parts and not any(p.startswith("mmax") and float(p[4:]) < 10 for p in parts[1:]):
            # timm's increasing posterize keeps 4 − ⌊4·m/10⌋ bits: 0 bits at magnitude 10, which Pillow ≥ 13 rejects
            # inside a loader worker, mid-run.
            raise ConfigError(f"aug.randaugment={aug.randaugment!r} can posterize to 0 bits at magnitude 10, which "
                              "Pillow rejects; cap the magnitude, e.g. rand-m9-mstd0.5-inc1-mmax9")
    return create_transform(img_size, is_training=True, scale=aug.scale, hflip=aug.hflip,
                            color_jitter=aug.color_jitter, auto_augment=aug.randaugment, re_prob=aug.reprob,
                            interpolation="bicubic", mean=IMAGENET_MEAN, std=IMAGENET_STD)


def soft_target_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against a distribution (mixup / cutmix targets, FER+ vote distributions)."""
    return torch.sum(-target * F.log_softmax(logits, dim=-1), dim=-1).mean()


@dataclass
class SamplingPlan:
    """Which training samples a K-class protocol keeps, their sampling weights (class-balanced sampling), the
    class weights of the loss, the per-class counts and what was excluded."""
    keep: list[bool]
    weights: Optional[list[float]]
    class_weights: Optional[torch.Tensor]
    counts: torch.Tensor
    dropped: dict


def sampling_plan(run: Run, data: ClassifierDataConfig, num_classes: int) -> SamplingPlan:
    names = class_names(num_classes)
    if data.verify:
        for split in (data.train_split, selection_split(data)):
            check_shard_files(data.shards, split, rehash=True)
        run.info(f"verify: the {data.train_split} and {selection_split(data)} shards of {data.shards} match their "
                 "manifest")
    _, labels = split_index(data.shards, data.train_split)
    keep = [0 <= y < num_classes for y in labels]
    dropped = outside_protocol(labels, num_classes)
    if dropped:
        run.info(f"excluded {sum(dropped.values())} training samples outside the {num_classes}-class protocol: "
                 f"{dropped}")
    sizes = [s["count"] for s in split_entry(data.shards, data.train_split)["shards"]]
    skew = shard_class_skew(sizes, labels)
    if skew > 0.5:  # shards written before make_shards mixed folder sources
        run.warn(f"the {data.train_split!r} shards of {data.shards} are grouped by class (skew {skew:.2f}): the loader "
                 "shuffles within shards, so batches will hold one class or two; rebuild them with make_shards.py")
    counts = torch.bincount(torch.tensor([y for y, k in zip(labels, keep) if k]), minlength=num_classes)
    missing = [names[i] for i in range(len(names)) if counts[i] == 0]
    if missing and data.missing_classes == "error":
        raise UserError(f"split {data.train_split!r} of {data.shards} has no samples of {missing}; use a protocol "
                        "without them, other shards, or data.missing_classes=allow (the model never learns them)")
    if missing:
        run.warn(f"split {data.train_split!r} of {data.shards} has no samples of {missing}: the model never learns "
                 "them (data.missing_classes=allow)")
    present = counts > 0
    weights = [1.0 / counts[y].item() if k else 0.0 for y, k in zip(labels, keep)] if data.balanced_sampling else None
    class_weights = None
    if data.class_weighted_loss:  # N / (K n_k) over the K classes present (a mean sample weight of 1); absent: 0
        inverse = counts.sum() / counts.clamp(min=1).float() / present.sum()
        class_weights = torch.where(present, inverse, torch.zeros(num_classes)).to(run.device)
    return SamplingPlan(keep, weights, class_weights, counts, dropped)


VAL_KEYS = ("accuracy", "mean_class_accuracy", "macro_f1")


def classifier_steps(run: Run, cfg, plan: SamplingPlan) -> StepPlan:
    """The run's length over the protocol's training faces (``cfg.data.batch_size``, ``cfg.optim.epochs`` and
    ``max_steps``, ``cfg.run.grad_accum_steps``, every process)."""
    return StepPlan.of(sum(plan.keep), cfg.data.batch_size, cfg.run.grad_accum_steps, run.accelerator.num_processes,
                       cfg.optim.epochs, cfg.optim.max_steps)


def labelled_loader(run: Run, data: ClassifierDataConfig, plan: SamplingPlan, make_example, *, seed: int,
                    start_batch: int = 0, batches_per_epoch: int | None = None):
    """This process's exact, resumable loader over the protocol's training faces (``plan.keep``), drawn with the
    plan's class weights when it has them."""
    acc = run.accelerator
    loader, _ = indexed_train_loader(data.shards, data.train_split, make_example, data.batch_size, seed=seed,
                                     rank=acc.process_index, world=acc.num_processes, start_batch=start_batch,
                                     batches_per_epoch=batches_per_epoch, num_workers=data.num_workers,
                                     keep=plan.keep, weights=plan.weights, max_bad=data.max_bad_samples)
    return loader


def start_run(cfg, stage: str, from_init: bool = True) -> Run:
    """The stage's :class:`Run`, its model geometry resolved first (inherited from ``model.init`` where
    ``from_init``, models/geometry.py) so that the saved config.yaml holds what runs; each kept difference from the
    checkpoint is logged."""
    notes = inherit_geometry(cfg.model, from_init)
    run = Run(cfg.run, cfg, stage)
    for note in notes:
        run.info(note)
    return run


def selection_split(data: ClassifierDataConfig) -> str:
    """The split a training stage selects its best epoch on: validation, or test under the paper protocol."""
    return data.test_split if data.protocol == "paper" else data.val_split


def protocol_label(data: ClassifierDataConfig) -> str:
    return (f"paper protocol: best epoch selected on {data.test_split!r}, so its test numbers are optimistic"
            if data.protocol == "paper" else f"held-out protocol: selected on {data.val_split!r}")


def classifier_extra(metrics: dict, cfg, init_info: dict, checkpoint: str) -> dict:
    """The ``extra`` of a classifier checkpoint (``best`` or ``last``): its normalisation (what ``load_classifier``
    applies at the model's ``img_size``), validation numbers, how it was selected, training config and
    initialisation. ``last`` is the schedule's end, selected on nothing, whatever the protocol."""
    selected = checkpoint != "last"
    protocol = (protocol_label(cfg.data) if selected else
                f"not selected: the last epoch of a fixed schedule (val numbers on {selection_split(cfg.data)!r})")
    return {"preprocess": imagenet_preprocess(), "val": {k: metrics[k] for k in VAL_KEYS},
            "selected_on": selection_split(cfg.data) if selected else None,
            "protocol": protocol, "train_config": to_dict(cfg), **init_info}


def select_and_save(run: Run, progress: Progress, metrics: dict, select_metric: str, save) -> float:
    """Model selection on the validation split: log the metrics, call ``save("best", metrics)`` when the selected
    metric improved, then ``save("last", metrics)``; returns the score (what a plateau schedule steps on)."""
    score = metrics[select_metric]
    run.log({f"val_{k}": metrics[k] for k in VAL_KEYS}, progress.step)
    run.info(f"epoch {progress.epoch} step {progress.step}: val {select_metric} {score:.4f} "
             f"(best {max(score, progress.best):.4f})")
    if score > progress.best:
        progress.best = score
        save("best", metrics)
    save("last", metrics)
    return score


def vote_target(sample: dict, key: str, num_classes: int) -> torch.Tensor:
    """FER+ style soft label: the normalised vote counts stored under ``json[key]``."""
    votes = sample["json"].get(key)
    if votes is None or len(votes) < num_classes:
        raise UserError(f"sample {sample['__key__']}: json has no {num_classes} vote counts under {key!r} "
                        "(data.soft_labels)")
    v = torch.tensor(votes[:num_classes], dtype=torch.float32)
    return v / v.sum().clamp(min=1e-6)


class ClassifierTask(Task):
    """Supervised training of a classifier (ViT baseline, POSTER family) for :func:`~.loop.fit`.

    ``cfg`` has ``run``, ``model.num_classes``, ``model.img_size``, ``data`` (:class:`ClassifierDataConfig`),
    ``aug`` (mixup / cutmix), ``optim`` (``clip_grad``) and ``select_metric``. ``loss_fn(model, images, target)`` →
    loss, where ``target`` is class indices or (B, K) distributions (mixup, FER+ votes); ``label_smoothing`` is
    mixup's. ``sam_rho``: sharpness-aware minimisation. ``ema_decay``: validate and save an exponential moving
    average of the weights instead of the weights themselves. Writes ``OUT/best`` and ``OUT/last`` (``model_name``
    checkpoints) and ``loss.png``."""

    validates = True

    def __init__(self, run: Run, cfg, model: nn.Module, *, model_name: str, model_config: dict, init_info: dict,
                 plan: SamplingPlan, optimizer, schedule: LRSchedule, loss_fn: Callable, transform, title: str,
                 label_smoothing: float = 0.0, sam_rho: float | None = None, ema_decay: float | None = None,
                 timm_layout: bool = False):
        self.run, self.cfg, self.model, self.optimizer, self.schedule = run, cfg, model, optimizer, schedule
        self.model_name, self.model_config, self.init_info, self.plan = model_name, model_config, init_info, plan
        self.loss_fn, self.transform, self.name, self.sam_rho = loss_fn, transform, title, sam_rho
        self.ema_decay, self.ema = ema_decay, None
        self.timm_layout = timm_layout  # a timm ViT: its checkpoints also get timm's config.json
        self.names = class_names(cfg.model.num_classes)
        self.mixup = Mixup(mixup_alpha=cfg.aug.mixup, cutmix_alpha=cfg.aug.cutmix, label_smoothing=label_smoothing,
                           num_classes=cfg.model.num_classes) if cfg.aug.mixup > 0 or cfg.aug.cutmix > 0 else None
        self.val_index = split_index(cfg.data.shards, selection_split(cfg.data))

    def prepare(self, run: Run, resumed: bool) -> None:
        self.model, self.optimizer = run.accelerator.prepare(self.model, self.optimizer)
        self.unwrapped = run.accelerator.unwrap_model(self.model)

    def start(self, run: Run, resumed: bool) -> None:
        if self.ema_decay is not None:
            from timm.utils import ModelEmaV3

            # The average is not part of the training state (accelerate would pickle it): a resumed run restarts it
            # from the resumed weights, with the warm-up that lets it follow them quickly.
            self.ema = ModelEmaV3(self.unwrapped, decay=self.ema_decay, use_warmup=True).requires_grad_(False)
            if resumed:
                run.info("optim.ema_decay: the weight average restarts from the resumed weights")

    def summary(self) -> str:
        return (f"{self.name}: {self.cfg.model.num_classes} classes, lr {self.schedule.lr:.3g}, "
                f"{sum(self.plan.keep)} training faces")

    def loader(self, start_batch: int, num_batches: int, epoch_batches: int):
        cfg = self.cfg
        soft_key = cfg.data.soft_labels

        def make_example(sample: dict):
            target = sample["cls"] if soft_key is None else vote_target(sample, soft_key, cfg.model.num_classes)
            return self.transform(sample["jpg"]), target

        return labelled_loader(self.run, cfg.data, self.plan, make_example, seed=cfg.run.seed,
                               start_batch=start_batch, batches_per_epoch=epoch_batches)

    def step(self, batch, step: int):
        images, target = (t.to(self.run.device) for t in batch)
        if self.mixup is not None and self.cfg.data.soft_labels is None:
            images, target = self.mixup(images, target)
        loss = self.run.train_step(self.model, self.optimizer, lambda: self.loss_fn(self.model, images, target),
                                   clip_grad=self.cfg.optim.clip_grad, step=step, sam_rho=self.sam_rho,
                                   hint="lower optim.lr or set optim.clip_grad")
        return {"loss": loss}, images.shape[0]

    def after_step(self, step: int, final: bool) -> None:
        if self.ema is not None:
            self.ema.update(self.unwrapped, step=step)

    def validate(self, progress: Progress) -> float:
        cfg = self.cfg
        evaluated = self.unwrapped if self.ema is None else self.ema.module
        metrics = split_metrics(self.run, evaluated, self.names, cfg.data, selection_split(cfg.data), self.val_index)

        def save(name: str, metrics: dict) -> None:
            if self.run.is_main:
                files = {"config.json": timm_config(self.model_config, self.names)} if self.timm_layout else None
                save_checkpoint(self.run.out / name, evaluated, name=self.model_name, config=self.model_config,
                                label_names=self.names, step=progress.step, data_manifest=str(cfg.data.shards),
                                extra=classifier_extra(metrics, cfg, self.init_info, name), files=files)

        return select_and_save(self.run, progress, metrics, cfg.select_metric, save)

    def finish(self, progress: Progress) -> dict:
        if self.run.is_main:
            loss_curves(read_metrics(self.run.out / "metrics.jsonl"), ["loss", "val_accuracy"],
                        self.run.out / "loss.png", self.name)
        return {"best_val": progress.best, "select_metric": self.cfg.select_metric,
                "excluded_train_samples": self.plan.dropped}
