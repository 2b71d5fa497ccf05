"""The ViT baseline (PF-ViT paper §3.1): a pretrained encoder plus one linear layer on [CLS], fine-tuned per data set.

Two recipes, by ``optim.recipe``:

* ``paper`` — Adam, lr 1e-4, batch 32, ×0.1 when the validation metric has not improved for 30 epochs, ≤ 100
  epochs, random scale + horizontal flip;
* ``mae`` — MAE's fine-tuning recipe: AdamW with layer-wise lr decay and weight decay (except norms, biases,
  tokens, position table), per-iteration warmup + cosine, drop path, label smoothing, optional mixup / cutmix
  (timm), RandAugment and random erasing.

Either recipe can learn from a teacher as well (``distill.teacher``: one of the project's classifiers, Hinton's
soft targets beside the labels).

Model selection uses the validation split only (:mod:`.classifier`); ``OUT/best`` (best validation metric) and
``OUT/last`` are classifier checkpoints that :func:`pfvit.inference.load_classifier` and ``evaluate.py`` take.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import trunc_normal_

from ..checkpoint import load_state, read_meta
from ..data.transforms import imagenet_preprocess
from ..errors import ConfigError
from ..labels import class_names
from ..models.convert import encoder_state, read_pretrained
from ..models.geometry import fit_position_tables, resolved_geometry
from ..models.judges import JUDGE_NAME
from ..models.mae import arch_config
from ..models.registry import build_model, load_model
from ..models.vit import encoder_config
from ..runtime import Run
from ..schemas.finetune import DistillConfig, FinetuneConfig, FTModelConfig, FTOptimConfig
from .classifier import ClassifierTask, classifier_steps, sampling_plan, soft_target_loss, start_run, train_transform
from .loop import EpochSchedule, WarmupCosine, fit
from .schedule import effective_lr, layer_decay_groups

# Keys a fresh classifier may lack when initialised from an encoder: the head, and fc_norm for mean pooling.
HEAD_KEYS = ("head.weight", "head.bias", "fc_norm.weight", "fc_norm.bias")


def classifier_config(cfg: FTModelConfig) -> dict:
    geometry = resolved_geometry(cfg)
    class_names(geometry["num_classes"])
    return {**encoder_config(arch_config(**geometry)), "num_classes": geometry["num_classes"],
            "global_pool": cfg.global_pool, "drop_path_rate": cfg.drop_path}


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
    # A [CLS]-pooled head over an encoder keeps its norm; a mean-pooled one has fc_norm instead (no norm).
    state = fit_position_tables(encoder_state(read_pretrained(path, ("mae", "vit"))), model)
    report = load_state(model, state, source=str(path),
                        what="the ViT encoder", allow_missing=HEAD_KEYS,
                        allow_unexpected=() if hasattr(model.norm, "weight") else ("norm.weight", "norm.bias"))
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


def load_teacher(cfg: DistillConfig, mconfig: dict, run: Run) -> nn.Module | None:
    """``distill.teacher``'s frozen classifier on the run's device, checked to read the student's images (size,
    normalisation) into the student's classes; None when distillation is off."""
    if cfg.teacher is None:
        return None
    if cfg.teacher == JUDGE_NAME:
        raise ConfigError(f"distill.teacher={JUDGE_NAME} is the peer this project is compared against, never a "
                          "teacher: give one of the project's classifier folders (a ViT run's best/ or last/)")
    meta = read_meta(cfg.teacher)
    names = class_names(mconfig["num_classes"])
    found = {"label_names": meta.get("label_names"), "img_size": meta.get("config", {}).get("img_size"),
             "preprocess": meta.get("extra", {}).get("preprocess")}
    wanted = {"label_names": list(names), "img_size": mconfig["img_size"], "preprocess": imagenet_preprocess()}
    differ = [f"{key} {found[key]} (the student: {wanted[key]})" for key in wanted if found[key] != wanted[key]]
    if differ:
        raise ConfigError(f"distill.teacher={cfg.teacher} does not read the student's faces: {'; '.join(differ)}")
    teacher = load_model(cfg.teacher, expected=("vit", "pfvit_classifier")).to(run.device).requires_grad_(False)
    run.info(f"distilling from {cfg.teacher} (weight {cfg.weight}, temperature {cfg.temperature})")
    return teacher


def distillation_loss(logits: torch.Tensor, teacher_logits: torch.Tensor, label_loss: torch.Tensor,
                      cfg: DistillConfig) -> torch.Tensor:
    """Hinton et al. (2015): (1 − w)·label_loss + w·T²·KL(softmax(t/T) ‖ softmax(s/T)); T² keeps the soft term's
    gradient on the scale of the label term's as T changes."""
    t = cfg.temperature
    soft = F.kl_div(F.log_softmax(logits / t, dim=-1), F.log_softmax(teacher_logits / t, dim=-1), log_target=True,
                    reduction="batchmean")
    return (1 - cfg.weight) * label_loss + cfg.weight * t * t * soft


def train(cfg: FinetuneConfig) -> dict:
    run = start_run(cfg, "finetune_vit")
    mconfig = classifier_config(cfg.model)
    model = build_model("vit", mconfig)
    init_info = init_from_pretrained(model, cfg.model.init, run, cfg.model.head_init_std)
    # after the student's init (building the teacher draws from the same generator), before any data is read
    teacher = load_teacher(cfg.distill, mconfig, run)
    plan = sampling_plan(run, cfg.data, cfg.model.num_classes)
    steps = classifier_steps(run, cfg, plan)
    optimizer, base_lr = make_optimizer(model, cfg.optim, steps.effective_batch)
    if cfg.optim.recipe == "paper":
        schedule = EpochSchedule([torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=cfg.optim.plateau_factor, patience=cfg.optim.plateau_patience)])
    else:
        schedule = WarmupCosine([(optimizer, base_lr, cfg.optim.min_lr)], cfg.optim.warmup_epochs * steps.per_epoch,
                                steps.total)

    def loss_fn(model, images, target):
        logits = model(images).float()
        if target.dim() == 2:
            loss = soft_target_loss(logits, target)
        else:
            loss = F.cross_entropy(logits, target, weight=plan.class_weights, label_smoothing=cfg.aug.label_smoothing)
        if teacher is None:
            return loss
        with torch.no_grad():
            teacher_logits = teacher(images).float()
        return distillation_loss(logits, teacher_logits, loss, cfg.distill)

    task = ClassifierTask(run, cfg, model, model_name="vit", model_config=mconfig, init_info=init_info, plan=plan,
                          optimizer=optimizer, schedule=schedule, loss_fn=loss_fn,
                          transform=train_transform(cfg.model.img_size, cfg.aug),
                          title=f"ViT baseline {cfg.model.arch} ({cfg.optim.recipe} recipe)",
                          label_smoothing=cfg.aug.label_smoothing, ema_decay=cfg.optim.ema_decay, timm_layout=True)
    return fit(run, task, steps)
