"""The ViT baseline (PF-ViT paper §3.1): a pretrained encoder plus one linear layer on [CLS], fine-tuned per data set.

Two recipes, by ``optim.recipe``:

* ``paper`` — Adam, lr 1e-4, batch 32, ×0.1 when the validation metric has not improved for 30 epochs, ≤ 100
  epochs, random scale + horizontal flip;
* ``mae`` — MAE's fine-tuning recipe: AdamW with layer-wise lr decay and weight decay (except norms, biases,
  tokens, position table), per-iteration warmup + cosine, drop path, label smoothing, optional mixup / cutmix
  (timm), RandAugment and random erasing.

Model selection uses the validation split only; ``OUT/best`` (best validation metric) and ``OUT/last`` are
classifier checkpoints that :func:`pfvit.inference.load_classifier` and ``evaluate.py`` take.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Annotated, Literal, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.data import Mixup, create_transform
from timm.layers import trunc_normal_

from ..checkpoint import latest_state, load_training_state, save_checkpoint, save_training_state
from ..config import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, Probability, Range, to_dict
from ..data.shards import (check_shard_files, indexed_train_loader, read_manifest, shard_class_skew,
                           split_index)
from ..data.transforms import IMAGENET_MEAN, IMAGENET_STD
from ..errors import CheckpointError, ConfigError, UserError
from ..eval.evaluate import split_metrics
from ..eval.plots import loss_curves
from ..labels import class_names, outside_protocol
from ..models.convert import encoder_state, load_into, read_pretrained
from ..models.mae import Arch, arch_config
from ..models.registry import build_model
from ..models.vit import encoder_config
from ..runtime import LossWindow, Progress, Run, RunConfig, read_metrics
from .schedule import StepPlan, effective_lr, layer_decay_groups, warmup_cosine

# Keys a fresh classifier may lack when initialised from an encoder: the head, and fc_norm for mean pooling.
HEAD_KEYS = ("head.weight", "head.bias", "fc_norm.weight", "fc_norm.bias")


@dataclass
class FTModelConfig:
    arch: Arch = "vit_tiny"
    img_size: PositiveInt = 224
    patch_size: PositiveInt = 16
    num_classes: Literal[7, 8] = 7
    global_pool: Literal["token", "avg"] = "token"
    drop_path: Annotated[float, Range(0, 1, hi_open=True)] = 0.0
    # A pfvit MAE / encoder checkpoint folder or an official / MAE-SFER .pth; null trains from scratch (warned).
    init: Optional[str] = None
    # Std of the head's init over a loaded encoder: MAE's 2e-5 suits long runs; in a few hundred steps over a brief
    # MAE it keeps the trunk's gradients near zero and the run at chance (short.yaml uses timm's 0.02).
    head_init_std: PositiveFloat = 2e-5


@dataclass
class FTDataConfig:
    shards: str = "shards/synthetic"
    train_split: str = "train"
    val_split: str = "val"
    # heldout: select on val_split (the default, and the only protocol whose test numbers are unbiased); paper: the
    # authors' released code — select the best epoch on test_split and report it (labelled in every output).
    protocol: Literal["heldout", "paper"] = "heldout"
    test_split: str = "test"
    # Re-hash the shards against their manifest before training (sizes are always checked); and how many training
    # samples that cannot be read may be skipped (each counted, with a warning) before the run stops.
    verify: bool = False
    max_bad_samples: NonNegativeInt = 10
    # A protocol class with no training sample (CK+ has no neutral): an error, or allowed — the head keeps the
    # class, never learns it, and evaluation leaves classes without test samples out of its means.
    missing_classes: Literal["error", "allow"] = "error"
    batch_size: PositiveInt = 32
    num_workers: NonNegativeInt = 2
    balanced_sampling: bool = False
    class_weighted_loss: bool = False
    # json key holding per-class vote counts (FER+): train on the vote distribution instead of the label.
    soft_labels: Optional[str] = None


@dataclass
class AugConfig:
    """Training augmentation of the classifier stages (timm ``create_transform``)."""
    scale: tuple[float, float] = (0.8, 1.0)
    hflip: Probability = 0.5
    color_jitter: Optional[NonNegativeFloat] = None
    randaugment: Optional[str] = None  # timm string, e.g. rand-m9-mstd0.5-inc1
    reprob: Probability = 0.0


@dataclass
class FTAugConfig(AugConfig):
    mixup: NonNegativeFloat = 0.0
    cutmix: NonNegativeFloat = 0.0
    label_smoothing: Annotated[float, Range(0, 1, hi_open=True)] = 0.0


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


@dataclass
class FTOptimConfig:
    recipe: Literal["paper", "mae"] = "paper"
    lr: Optional[PositiveFloat] = None  # paper: 1e-4; mae: blr × effective batch / 256 when unset
    blr: PositiveFloat = 5e-4
    layer_decay: Annotated[float, Range(0, 1, lo_open=True)] = 0.75
    weight_decay: NonNegativeFloat = 0.05
    epochs: PositiveInt = 100
    warmup_epochs: NonNegativeFloat = 5.0
    min_lr: NonNegativeFloat = 1e-6
    plateau_patience: NonNegativeInt = 30
    plateau_factor: Annotated[float, Range(0, 1, lo_open=True, hi_open=True)] = 0.1
    clip_grad: Optional[PositiveFloat] = None
    max_steps: Optional[PositiveInt] = None


@dataclass
class FinetuneConfig:
    run: RunConfig = field(default_factory=lambda: RunConfig(out="runs/vit"))
    model: FTModelConfig = field(default_factory=FTModelConfig)
    data: FTDataConfig = field(default_factory=FTDataConfig)
    aug: FTAugConfig = field(default_factory=FTAugConfig)
    optim: FTOptimConfig = field(default_factory=FTOptimConfig)
    select_metric: Literal["accuracy", "mean_class_accuracy", "macro_f1"] = "accuracy"


def classifier_config(cfg: FTModelConfig) -> dict:
    class_names(cfg.num_classes)
    return {**encoder_config(arch_config(cfg.arch, img_size=cfg.img_size, patch_size=cfg.patch_size)),
            "num_classes": cfg.num_classes, "global_pool": cfg.global_pool, "drop_path_rate": cfg.drop_path}


def init_from_pretrained(model: nn.Module, path: str | None, run: Run, head_init_std: float = 2e-5) -> dict:
    """Load the encoder; only the head (and fc_norm for mean pooling) may stay fresh. Over a loaded encoder the head
    starts at N(0, ``head_init_std``) (MAE: 2e-5); from scratch it keeps timm's init, since a near-zero head over a
    random trunk leaves the trunk's gradients near zero and the run stalls at chance (docs/decisions.md)."""
    if path is None:
        msg = ("model.init is not set: fine-tuning a ViT from RANDOM initialisation, without MAE pretraining; "
               "expect far lower accuracy (set model.init=runs/…/checkpoint)")
        run.warn(msg)
        return {"init": None}
    trunc_normal_(model.head.weight, std=head_init_std)
    report = load_into(model, encoder_state(read_pretrained(path, ("mae", "vit"))), path)
    unexpected_ok = {"norm.weight", "norm.bias"} if not hasattr(model.norm, "weight") else set()
    bad_missing = [k for k in report.missing if k not in HEAD_KEYS]
    bad_unexpected = [k for k in report.unexpected if k not in unexpected_ok]
    if bad_missing or bad_unexpected:
        raise CheckpointError(f"{path} does not fit the ViT encoder: missing {bad_missing[:4]}, unexpected "
                              f"{bad_unexpected[:4]}; check model.arch, model.img_size and model.patch_size")
    run.info(f"initialised from {path}: {report}")
    return {"init": str(path), "loaded_tensors": report.loaded}


def make_optimizer(model: nn.Module, cfg: FTOptimConfig, eff_batch: int):
    """(optimizer, base lr). Paper: Adam without decay. MAE: AdamW over layer-decayed groups (``lr_scale``)."""
    if cfg.recipe == "paper":
        lr = cfg.lr if cfg.lr is not None else 1e-4
        return torch.optim.Adam(model.parameters(), lr=lr), lr
    lr = cfg.lr if cfg.lr is not None else effective_lr(cfg.blr, eff_batch)
    groups = layer_decay_groups(model, cfg.weight_decay, cfg.layer_decay, set(model.no_weight_decay()))
    return torch.optim.AdamW(groups, lr=lr), lr


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


def sampling_plan(run: Run, data: "FTDataConfig", num_classes: int) -> SamplingPlan:
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
    sizes = [s["count"] for s in read_manifest(data.shards)["splits"][data.train_split]["shards"]]
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


def selection_split(data: FTDataConfig) -> str:
    """The split a training stage selects its best epoch on: validation, or test under the paper protocol."""
    return data.test_split if data.protocol == "paper" else data.val_split


def protocol_label(data: FTDataConfig) -> str:
    return (f"paper protocol: best epoch selected on {data.test_split!r}, so its test numbers are optimistic"
            if data.protocol == "paper" else f"held-out protocol: selected on {data.val_split!r}")


def classifier_extra(img_size: int, metrics: dict, cfg, init_info: dict) -> dict:
    """The ``extra`` of a classifier checkpoint: its preprocessing (what ``load_classifier`` applies), validation
    numbers, training config and initialisation."""
    preprocess = {"img_size": img_size, "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}
    return {"preprocess": preprocess, "val": {k: metrics[k] for k in VAL_KEYS}, "selected_on": selection_split(cfg.data),
            "protocol": protocol_label(cfg.data), "train_config": to_dict(cfg), **init_info}


def end_of_epoch(run: Run, progress: Progress, metrics: dict, select_metric: str, schedulers, save) -> None:
    """Model selection on the validation split: log the metrics, step the epoch schedulers (a plateau scheduler
    on the selected metric), and call ``save("best", metrics)`` when the selected metric improved, then
    ``save("last", metrics)``."""
    score = metrics[select_metric]
    run.log({f"val_{k}": metrics[k] for k in VAL_KEYS}, progress.step)
    run.info(f"epoch {progress.epoch} step {progress.step}: val {select_metric} {score:.4f} "
             f"(best {max(score, progress.best):.4f})")
    for scheduler in schedulers:
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(score)
        else:
            scheduler.step()
    if score > progress.best:
        progress.best = score
        save("best", metrics)
    save("last", metrics)


def vote_target(sample: dict, key: str, num_classes: int) -> torch.Tensor:
    """FER+ style soft label: the normalised vote counts stored under ``json[key]``."""
    votes = sample["json"].get(key)
    if votes is None or len(votes) < num_classes:
        raise UserError(f"sample {sample['__key__']}: json has no {num_classes} vote counts under {key!r} "
                        "(data.soft_labels)")
    v = torch.tensor(votes[:num_classes], dtype=torch.float32)
    return v / v.sum().clamp(min=1e-6)


def fit_classifier(run: Run, cfg, model: nn.Module, *, model_name: str, model_config: dict, init_info: dict,
                   plan: SamplingPlan, optimizer, loss_fn, transform, title: str, lr_at=None, schedulers=(),
                   sam_rho: float | None = None) -> dict:
    """The supervised loop every classifier stage shares (ViT baseline, POSTER family).

    ``cfg`` has ``run``, ``model`` (``num_classes``, ``img_size``), ``data``, ``aug`` (mixup / cutmix /
    label_smoothing), ``optim`` (``epochs``, ``max_steps``, ``clip_grad``) and ``select_metric``.
    ``loss_fn(model, images, target)`` → loss, where ``target`` is class indices or (B, K) distributions (mixup,
    FER+ votes). ``lr_at(step, total_steps, steps_per_epoch)`` sets the lr every step (else the optimizer's lr is
    left to ``schedulers``, stepped at each epoch end). ``sam_rho``: sharpness-aware minimisation.
    Writes ``OUT/best`` and ``OUT/last`` (``model_name`` checkpoints), state/, metrics.jsonl, loss.png, result.json.
    """
    acc = run.accelerator
    names = class_names(cfg.model.num_classes)
    steps = StepPlan.of(sum(plan.keep), cfg.data.batch_size, cfg.run.grad_accum_steps, acc.num_processes,
                        cfg.optim.epochs, cfg.optim.max_steps)
    steps_per_epoch, total_steps = steps.per_epoch, steps.total
    model, optimizer = acc.prepare(model, optimizer)
    progress = Progress()
    state_objects = {"progress": progress, **{f"scheduler_{i}": s for i, s in enumerate(schedulers)}}
    resume = latest_state(cfg.run.out) if cfg.run.resume else None
    if resume is not None:
        load_training_state(acc, resume, state_objects)
        run.resumed(resume, progress.step, progress.epoch)
    run.info(f"{title}: {cfg.model.num_classes} classes, lr {optimizer.param_groups[0]['lr']:.3g}, "
             f"{sum(plan.keep)} training faces, {total_steps} steps ({steps_per_epoch}/epoch)")

    soft_key = cfg.data.soft_labels

    def make_example(sample: dict):
        target = sample["cls"] if soft_key is None else vote_target(sample, soft_key, cfg.model.num_classes)
        return transform(sample["jpg"]), target

    loader, _ = indexed_train_loader(cfg.data.shards, cfg.data.train_split, make_example, cfg.data.batch_size,
                                     seed=cfg.run.seed, rank=acc.process_index, world=acc.num_processes,
                                     start_batch=steps.first_micro_batch(progress.step),
                                     num_workers=cfg.data.num_workers, keep=plan.keep, weights=plan.weights,
                                     max_bad=cfg.data.max_bad_samples)
    mixup = Mixup(mixup_alpha=cfg.aug.mixup, cutmix_alpha=cfg.aug.cutmix, label_smoothing=cfg.aug.label_smoothing,
                  num_classes=cfg.model.num_classes) if cfg.aug.mixup > 0 or cfg.aug.cutmix > 0 else None
    unwrapped = acc.unwrap_model(model)
    val_index = split_index(cfg.data.shards, selection_split(cfg.data))

    def save(name: str, metrics: dict) -> None:
        if run.is_main:
            save_checkpoint(run.out / name, unwrapped, name=model_name, config=model_config, label_names=names,
                            step=progress.step, data_manifest=str(cfg.data.shards),
                            extra=classifier_extra(cfg.model.img_size, metrics, cfg, init_info))

    model.train()
    window = LossWindow(run)
    bar = run.progress(total=total_steps, initial=progress.step, desc=title)
    for images, target in loader:
        if progress.step >= total_steps:
            break
        images, target = images.to(acc.device), target.to(acc.device)
        if mixup is not None and soft_key is None:
            images, target = mixup(images, target)
        step_lr = lr_at(progress.step, total_steps, steps_per_epoch) if lr_at is not None else None
        loss = run.train_step(model, optimizer, lambda: loss_fn(model, images, target), lr=step_lr,
                              clip_grad=cfg.optim.clip_grad, step=progress.step, sam_rho=sam_rho,
                              hint="lower optim.lr or set optim.clip_grad")
        window.add({"loss": loss}, images.shape[0])
        if not acc.sync_gradients:
            continue
        progress.step += 1
        bar.update(1)
        if progress.step % cfg.run.log_every == 0:
            lr = step_lr if step_lr is not None else optimizer.param_groups[0]["lr"]
            progress.loss = window.log(progress.step, total_steps, lr=lr)["loss"]
        epoch_end = steps.epoch_end(progress.step)
        keeps_weights = epoch_end or progress.step % cfg.run.save_every == 0
        if keeps_weights:
            run.raise_if_not_finite()  # before weights are evaluated or saved
        if epoch_end:
            progress.epoch = math.ceil(progress.step / steps_per_epoch)
            metrics = split_metrics(run, unwrapped, names, cfg.model.img_size, cfg.data, selection_split(cfg.data),
                                    val_index)
            end_of_epoch(run, progress, metrics, cfg.select_metric, schedulers, save)
        if keeps_weights:
            save_training_state(acc, cfg.run.out, progress.step, cfg.run.keep_states, state_objects)
    bar.close()
    result = run.write_result(model, progress.step, {"best_val": progress.best, "select_metric": cfg.select_metric,
                                                     "excluded_train_samples": plan.dropped})
    if run.is_main:
        loss_curves(read_metrics(run.out / "metrics.jsonl"), ["loss", "val_accuracy"], run.out / "loss.png", title)
    run.finish()
    return result


def train(cfg: FinetuneConfig) -> dict:
    run = Run(cfg.run, cfg, "finetune_vit")
    mconfig = classifier_config(cfg.model)
    model = build_model("vit", mconfig)
    init_info = init_from_pretrained(model, cfg.model.init, run, cfg.model.head_init_std)
    plan = sampling_plan(run, cfg.data, cfg.model.num_classes)
    eff_batch = cfg.data.batch_size * cfg.run.grad_accum_steps * run.accelerator.num_processes
    optimizer, base_lr = make_optimizer(model, cfg.optim, eff_batch)
    schedulers, lr_at = [], None
    if cfg.optim.recipe == "paper":
        schedulers.append(torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=cfg.optim.plateau_factor, patience=cfg.optim.plateau_patience))
    else:
        def lr_at(step: int, total_steps: int, steps_per_epoch: int) -> float:
            return warmup_cosine(step, total_steps, cfg.optim.warmup_epochs * steps_per_epoch, base_lr,
                                 cfg.optim.min_lr)

    def loss_fn(model, images, target):
        logits = model(images).float()
        if target.dim() == 2:
            return soft_target_loss(logits, target)
        return F.cross_entropy(logits, target, weight=plan.class_weights, label_smoothing=cfg.aug.label_smoothing)

    return fit_classifier(run, cfg, model, model_name="vit", model_config=mconfig, init_info=init_info, plan=plan,
                          optimizer=optimizer, loss_fn=loss_fn, transform=train_transform(cfg.model.img_size, cfg.aug),
                          title=f"ViT baseline {cfg.model.arch} ({cfg.optim.recipe} recipe)", lr_at=lr_at,
                          schedulers=schedulers)
