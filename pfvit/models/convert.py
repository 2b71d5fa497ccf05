"""Weight-layout converters: official / MAE-SFER MAE ``.pth`` → pfvit MAE, and MAE ↔ timm ViT encoder.

The MAE encoder's keys (``patch_embed.proj``, ``cls_token``, ``pos_embed``, ``blocks.N.*``, ``norm``) are
exactly timm's ``VisionTransformer`` keys, so the export is a selection and the import back is the same
selection plus the decoder of an existing MAE.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from ..checkpoint import read_meta, read_weights, save_checkpoint
from ..errors import CheckpointError
from .mae import arch_config
from .registry import build_model
from .vit import encoder_config

ENCODER_PREFIXES = ("patch_embed.", "cls_token", "pos_embed", "blocks.", "norm.")


def encoder_state(mae_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The encoder tensors of a MAE state dict, in timm ``vit_*_patch16_224`` layout."""
    return {k: v for k, v in mae_state.items() if k.startswith(ENCODER_PREFIXES)}


@dataclass
class LoadReport:
    loaded: int
    missing: list[str]
    unexpected: list[str]

    def __str__(self) -> str:
        return (f"loaded {self.loaded} tensors; missing {len(self.missing)} {self.missing[:4]}; "
                f"unexpected {len(self.unexpected)} {self.unexpected[:4]}")


def read_torch_state(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from an official-style ``.pth`` (``{'model': …}`` or bare), tensors only (``weights_only``)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(f"{path} needs arbitrary pickles to load ({str(err).splitlines()[0][:120]}); "
                              "re-save only its state dict: torch.save(ckpt['model'], 'clean.pth')") from None
    except (RuntimeError, EOFError) as err:
        raise CheckpointError(f"{path} is not a readable torch file ({err})") from None
    state = obj.get("model", obj.get("state_dict", obj)) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise CheckpointError(f"{path} holds no state dict of tensors (expected {{'model': state_dict}})")
    return {k.removeprefix("module."): v for k, v in state.items()}


def read_pretrained(path: str | Path, allowed: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """The state dict of a pfvit checkpoint folder holding one of the ``allowed`` models, or of an official-style
    ``.pth`` file."""
    p = Path(path)
    if p.is_dir():
        meta = read_meta(p)
        if meta["model"] not in allowed:
            raise CheckpointError(f"{p} holds a {meta['model']!r} model; this needs a {' or '.join(allowed)} "
                                  "checkpoint")
        return read_weights(p)
    return read_torch_state(p)


def load_into(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> LoadReport:
    """Load what fits by name and shape; a tensor with the right name but another shape is an error."""
    own = model.state_dict()
    for key, value in state.items():
        if key in own and own[key].shape != value.shape:
            raise CheckpointError(f"{source}: {key} has shape {tuple(value.shape)}, the model needs "
                                  f"{tuple(own[key].shape)}; is it another architecture or image size?")
    result = model.load_state_dict(state, strict=False)
    report = LoadReport(len(state) - len(result.unexpected_keys), sorted(result.missing_keys),
                        sorted(result.unexpected_keys))
    if report.loaded == 0:
        raise CheckpointError(f"{source}: no tensor matches the model ({report})")
    return report


def import_official_mae(path: str | Path, out: str | Path, arch: str = "vit_base", img_size: int = 224,
                        patch_size: int = 16) -> LoadReport:
    """An official / MAE-SFER ``.pth`` → ``OUT/checkpoint`` (pfvit MAE) and ``OUT/encoder`` (timm layout).

    Encoder-only releases (``mae_pretrain_vit_*.pth``) leave the decoder at its initialisation, which the report
    shows as missing keys; an encoder tensor missing is an error.
    """
    config = arch_config(arch, img_size=img_size, patch_size=patch_size)
    model = build_model("mae", config)
    report = load_into(model, read_torch_state(path), str(path))
    missing_encoder = [k for k in report.missing if k.startswith(ENCODER_PREFIXES)]
    if missing_encoder:
        raise CheckpointError(f"{path}: encoder tensors missing for {arch} ({', '.join(missing_encoder[:4])}); "
                              "is it another architecture?")
    save_checkpoint(Path(out) / "checkpoint", model, name="mae", config=config, extra={"imported_from": str(path)})
    enc_config = encoder_config(config)
    encoder = build_model("vit", enc_config)
    encoder.load_state_dict(encoder_state(model.state_dict()), strict=True)
    save_checkpoint(Path(out) / "encoder", encoder, name="vit", config=enc_config,
                    extra={"imported_from": str(path)})
    return report
