"""Model geometry — architecture, image size, patch size, classes — and its one owner: a stage that starts from a
pfvit checkpoint (``model.init``) inherits what it leaves unset from that checkpoint's config; with no checkpoint,
or an official ``.pth``, the stage's keys or these defaults apply."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
from timm.layers import resample_abs_pos_embed

from ..checkpoint import read_meta
from ..errors import ConfigError
from .mae import ARCHS

DEFAULTS = {"arch": "vit_tiny", "img_size": 224, "patch_size": 16, "num_classes": 7}
# Keys a given value may change from the checkpoint's: the position table is resampled, the head is new.
ADAPTABLE = ("img_size", "num_classes")


def arch_name(config: dict) -> str | None:
    """The ``ARCHS`` entry whose widths a model config has (None: none of them)."""
    for name, sizes in ARCHS.items():
        if all(config.get(k) == sizes[k] for k in ("embed_dim", "depth", "num_heads")):
            return name
    return None


def checkpoint_geometry(path: str | Path | None) -> dict:
    """The geometry of a pfvit checkpoint folder's model; {} for no path or a ``.pth`` file."""
    if path is None or not Path(path).is_dir():
        return {}
    config = read_meta(path)["config"]
    if "img_size" not in config:
        return {}
    found = {"arch": arch_name(config), "img_size": config["img_size"], "patch_size": config["patch_size"],
             "num_classes": config.get("num_classes") or None}
    return {k: v for k, v in found.items() if v is not None}


def inherit_geometry(model_cfg, from_init: bool = True) -> list[str]:
    """Fill the unset (None) geometry keys of a stage's model config from its ``model.init`` checkpoint (unless
    ``from_init`` is false), else from :data:`DEFAULTS`, in place. A given arch or patch size other than the
    checkpoint's is one error; a given image size or class count other than its is kept and said (the notes)."""
    found = checkpoint_geometry(model_cfg.init) if from_init else {}
    notes = []
    for key in DEFAULTS:
        given, theirs = getattr(model_cfg, key), found.get(key)
        if given is None:
            setattr(model_cfg, key, theirs if theirs is not None else DEFAULTS[key])
        elif theirs is not None and given != theirs:
            if key not in ADAPTABLE:
                raise ConfigError(f"model.{key}={given}, but model.init={model_cfg.init} holds a {key} {theirs} "
                                  f"model: leave model.{key} unset to inherit it, or start from a {given} checkpoint")
            notes.append(f"model.{key}={given} where model.init has {theirs}"
                         + (": its position table is resampled" if key == "img_size" else ": a new head"))
    check_patch_grid(model_cfg.img_size, model_cfg.patch_size)
    return notes


def check_patch_grid(img_size: int, patch_size: int) -> None:
    """A ViT's image must be a whole number of patches."""
    if img_size % patch_size:
        raise ConfigError(f"model.img_size={img_size} is not divisible by model.patch_size={patch_size}")


def resolved_geometry(model_cfg) -> dict:
    """The geometry of a model config that :func:`inherit_geometry` has resolved (once, before the stage's run
    saves its config); model builders read it here and refuse an unresolved config."""
    values = {key: getattr(model_cfg, key) for key in DEFAULTS}
    if None in values.values():
        raise ValueError(f"model geometry {values} is unresolved: call inherit_geometry(model_cfg) first")
    return values


def fit_position_tables(state: dict[str, torch.Tensor], module: nn.Module) -> dict[str, torch.Tensor]:
    """``state`` with each position table (``*pos_embed``) fitted to ``module``'s patch grid where the image size
    differs: a learned table is resampled bicubically over the grid, [CLS] row kept (MAE's ``interpolate_pos_embed``,
    here timm's ``resample_abs_pos_embed``); a fixed sin-cos table (no grad) is the module's own for its grid."""
    params = dict(module.named_parameters())
    own = module.state_dict()
    out = dict(state)
    for key, table in state.items():
        target = own.get(key)
        if not key.endswith("pos_embed") or target is None or target.shape == table.shape \
                or target.shape[-1] != table.shape[-1]:
            continue
        if key in params and not params[key].requires_grad:
            out[key] = target.detach().clone()
        else:
            grid = [round((n - 1) ** 0.5) for n in (table.shape[1], target.shape[1])]
            out[key] = resample_abs_pos_embed(table, new_size=[grid[1]] * 2, old_size=[grid[0]] * 2,
                                              num_prefix_tokens=1)
    return out
