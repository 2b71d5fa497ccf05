"""Stage 6: the POSTER family — POSTER, POSTER++ and POSTER-Var heads fine-tuned on labelled shards.

Backbone by ``model.backbone``: ``face`` — IR-50 + frozen MobileFaceNet from ``model.ir50`` /
``model.mobilefacenet`` (random init is warned about loudly); ``encoder`` — the pipeline's MAE / ViT / PF-ViT
encoder from ``model.init`` (E, plus PF-ViT's separator S when the checkpoint has one).

Training options of the papers, each a config value: SAM (ρ ``optim.sam_rho``) over Adam / AdamW / SGD with the
weight decay actually applied, ExponentialLR per epoch (``optim.gamma``), losses ``ce`` / ``lsce`` / ``poster``
(2·LSCE + CE, POSTER) / ``cb_focal`` (class-balanced sigmoid focal loss, Cui et al.), POSTER-Var's KL to N(0, I)
(``loss.kl_weight``), class-balanced sampling (``data.balanced_sampling``), LoRA on the fusion transformer
(``model.lora_r``) and PCA lighting (``aug.lighting``). Shares the ViT baseline's loop (selection on the
validation split, best/ and last/ checkpoints, resume).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..checkpoint import load_state, read_meta
from ..data.transforms import PCALighting
from ..errors import CheckpointError, ConfigError
from ..models.convert import encoder_state, read_pretrained
from ..models.geometry import fit_position_tables, resolved_geometry
from ..models.pfvit import PFVIT_MODELS, backbone_state
from ..models.poster.backbones import FaceBackbone
from ..models.poster.layers import gaussian_kl
from ..models.poster.poster import poster_config
from ..models.poster.weights import load_face_weights
from ..models.registry import build_model
from ..runtime import Run
from ..schemas.poster import PosterConfig, PosterLossConfig, PosterModelConfig, PosterOptimConfig
from .classifier import ClassifierTask, classifier_steps, sampling_plan, soft_target_loss, start_run, train_transform
from .loop import EpochSchedule, fit


def class_balanced_focal_loss(logits: torch.Tensor, target: torch.Tensor, counts: torch.Tensor, beta: float,
                              gamma: float) -> torch.Tensor:
    """Cui et al. (2019): per-class weights (1−β)/(1−β^n_c) normalised to sum K, times a sigmoid focal loss
    (1−p_t)^γ·BCE over one-hot (or soft) targets, summed and divided by the number of targets."""
    k = logits.shape[-1]
    weights = (1 - beta) / (1 - torch.pow(beta, counts.float().clamp(min=1)))
    weights = (weights / weights.sum() * k).to(logits.device)
    onehot = target if target.dim() == 2 else F.one_hot(target, k).float()
    bce = F.binary_cross_entropy_with_logits(logits, onehot, reduction="none")
    p = torch.sigmoid(logits)
    p_t = p * onehot + (1 - p) * (1 - onehot)
    sample_weight = (onehot * weights).sum(dim=-1, keepdim=True)
    return (sample_weight * (1 - p_t).pow(gamma) * bce).sum() / onehot.sum()


def classification_loss(logits: torch.Tensor, target: torch.Tensor, cfg: PosterLossConfig, counts: torch.Tensor,
                        class_weights: torch.Tensor | None) -> torch.Tensor:
    if cfg.kind == "cb_focal":
        return class_balanced_focal_loss(logits, target, counts, cfg.cb_beta, cfg.focal_gamma)
    if target.dim() == 2:
        return soft_target_loss(logits, target)
    ce = F.cross_entropy(logits, target, weight=class_weights)
    if cfg.kind == "ce":
        return ce
    lsce = F.cross_entropy(logits, target, weight=class_weights, label_smoothing=cfg.smoothing)
    return lsce if cfg.kind == "lsce" else 2 * lsce + ce  # POSTER's 2·LSCE + CE


def build_poster_model(m: PosterModelConfig, run: Run) -> tuple[nn.Module, str, dict, dict]:
    """(model with its pretrained parts loaded, registered name, build config, init report)."""
    geometry = resolved_geometry(m)
    if m.backbone == "face" and geometry["img_size"] != FaceBackbone.img_size:
        raise ConfigError(f"model.img_size={geometry['img_size']}, but the face backbone (IR-50 + MobileFaceNet) "
                          f"takes {FaceBackbone.img_size} px faces: leave model.img_size unset")
    init_meta = read_meta(m.init) if m.backbone == "encoder" and m.init and Path(m.init).is_dir() else None
    separator = m.separator
    if separator is None:
        separator = init_meta is not None and init_meta["model"] in PFVIT_MODELS
    overrides = {"lora_r": m.lora_r, "lora_alpha": m.lora_alpha, "lora_dropout": m.lora_dropout}
    if m.fusion_dim is not None:
        overrides["dim" if m.variant == "poster" else "embed_dim"] = m.fusion_dim
    if m.fusion_depth is not None:
        overrides["depth" if m.variant == "poster" else "fusion_depth"] = m.fusion_depth
    try:
        name, config = poster_config(m.variant, geometry["num_classes"], m.backbone, arch=geometry["arch"],
                                     img_size=geometry["img_size"], patch_size=geometry["patch_size"],
                                     separator=bool(separator), **overrides)
    except ValueError as err:
        raise ConfigError(f"model: {err}") from None
    model = build_model(name, config)
    info: dict = {"init": None}
    if m.backbone == "face":
        if m.ir50 is None or m.mobilefacenet is None:
            run.warn("model.ir50 / model.mobilefacenet not set: the face backbone starts from RANDOM weights "
                     "(the papers use IR-50 from MS-Celeb-1M and a trained landmark MobileFaceNet); give the "
                     "released files' paths")
        info.update(load_face_weights(model.backbone, m.ir50, m.mobilefacenet))
        info["init"] = {"ir50": m.ir50, "mobilefacenet": m.mobilefacenet}
    elif m.init is None:
        run.warn("model.init is not set: the encoder backbone starts from RANDOM weights; give a MAE / ViT / "
                 "PF-ViT checkpoint (model.init=runs/…)")
    else:
        info.update(_load_encoder(model.backbone, m.init, init_meta))
        info["init"] = str(m.init)
    run.info(f"{m.variant} on the {m.backbone} backbone: {info}")
    return model, name, config, info


def _load_encoder(backbone: nn.Module, path: str, meta: dict | None) -> dict:
    """E (and S) of a pfvit MAE / ViT / PF-ViT checkpoint, or an official-style MAE ``.pth``, into the backbone."""
    state = read_pretrained(path, ("mae", "vit", *PFVIT_MODELS))
    if meta is not None and meta["model"] in PFVIT_MODELS:
        enc, sep = backbone_state(state, meta["model"])
    else:
        enc, sep = encoder_state(state), {}
    # The backbone's encoder has no head: every tensor it has must come from the checkpoint.
    report = load_state(backbone.encoder, fit_position_tables(enc, backbone.encoder), source=str(path),
                        what="the encoder backbone", allow_unexpected=True)
    out = {"encoder_tensors": report.loaded}
    if backbone.separator is not None:
        if not sep:
            raise CheckpointError(f"{path} has no PF-ViT separator; set model.separator=false or use a PF-ViT "
                                  "checkpoint")
        out["separator_tensors"] = load_state(backbone.separator, sep, source=str(path),
                                              what="the PF-ViT separator").loaded
    return out


def make_optimizer(model: nn.Module, cfg: PosterOptimConfig) -> torch.optim.Optimizer:
    """Adam / AdamW / SGD over the trainable parameters, with ``weight_decay`` passed to the optimizer (POSTER++
    parsed ``--wd`` and never used it)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)


def train(cfg: PosterConfig) -> dict:
    run = start_run(cfg, "finetune_poster", from_init=cfg.model.backbone == "encoder")
    model, name, mconfig, init_info = build_poster_model(cfg.model, run)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    run.info(f"trainable parameters {trainable:,} of {total:,}" + (" (LoRA)" if cfg.model.lora_r else ""))
    init_info = {**init_info, "trainable_parameters": trainable, "parameters": total}
    plan = sampling_plan(run, cfg.data, cfg.model.num_classes)
    steps = classifier_steps(run, cfg, plan)
    optimizer = make_optimizer(model, cfg.optim)
    schedule = EpochSchedule([torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=cfg.optim.gamma)])
    transform = train_transform(model.img_size, cfg.aug)
    if cfg.aug.lighting > 0:
        transform.transforms.append(PCALighting(cfg.aug.lighting))

    def loss_fn(model, images, target):
        out = model(images, all_outputs=True)
        loss = classification_loss(out["logits"].float(), target, cfg.loss, plan.counts, plan.class_weights)
        if "mu" in out and cfg.loss.kl_weight > 0:
            loss = loss + cfg.loss.kl_weight * gaussian_kl(out["mu"].float(), out["logvar"].float())
        return loss

    # Mixed targets are smoothed as the loss smooths hard ones (one knob: loss.smoothing).
    smoothing = cfg.loss.smoothing if cfg.loss.kind in ("lsce", "poster") else 0.0
    task = ClassifierTask(run, cfg, model, model_name=name, model_config=mconfig, init_info=init_info, plan=plan,
                          optimizer=optimizer, schedule=schedule, loss_fn=loss_fn, transform=transform,
                          title=f"{cfg.model.variant} ({cfg.model.backbone} backbone)", label_smoothing=smoothing,
                          sam_rho=cfg.optim.sam_rho)
    return fit(run, task, steps)
