"""Weight-layout converters: official / MAE-SFER MAE ``.pth`` → pfvit MAE, and MAE ↔ timm ViT encoder.

The MAE encoder's keys (``patch_embed.proj``, ``cls_token``, ``pos_embed``, ``blocks.N.*``, ``norm``) are
exactly timm's ``VisionTransformer`` keys, so the export is a selection and the import back is the same
selection plus the decoder of an existing MAE.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
import torch.nn as nn

from ..checkpoint import LoadReport, load_state, read_meta, read_weights, save_checkpoint
from ..errors import CheckpointError
from .mae import arch_config
from .registry import build_model
from .vit import encoder_config, timm_config

ENCODER_PREFIXES = ("patch_embed.", "cls_token", "pos_embed", "blocks.", "norm.")
# What an encoder-only release (mae_pretrain_vit_*.pth) lacks: the decoder, left at its initialisation.
DECODER_PREFIXES = ("mask_token", "decoder_")


def encoder_state(mae_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The encoder tensors of a MAE state dict, in timm ``vit_*_patch16_224`` layout."""
    return {k: v for k, v in mae_state.items() if k.startswith(ENCODER_PREFIXES)}


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


def save_encoder(folder: str | Path, mae: nn.Module, mae_config: dict, **meta) -> None:
    """The one MAE → encoder export: the MAE's encoder as a timm-layout ``vit`` checkpoint (``meta``: step,
    data_manifest, extra of :func:`save_checkpoint`)."""
    config = encoder_config(mae_config)
    encoder = build_model("vit", config)
    load_state(encoder, encoder_state(mae.state_dict()), source="the MAE", what="its ViT encoder",
               allow_unexpected=False)
    save_checkpoint(Path(folder), encoder, name="vit", config=config, files={"config.json": timm_config(config)},
                    **meta)


def import_official_mae(path: str | Path, out: str | Path, arch: str = "vit_base", img_size: int = 224,
                        patch_size: int = 16) -> LoadReport:
    """An official / MAE-SFER ``.pth`` → ``OUT/checkpoint`` (pfvit MAE) and ``OUT/encoder`` (timm layout).

    Encoder-only releases (``mae_pretrain_vit_*.pth``) leave the decoder at its initialisation, which the report
    shows as missing keys; an encoder tensor missing is an error.
    """
    config = arch_config(arch, img_size=img_size, patch_size=patch_size)
    model = build_model("mae", config)
    report = load_state(model, read_torch_state(path), source=str(path), what=f"the {arch} MAE",
                        allow_missing=DECODER_PREFIXES, allow_unexpected=True)
    save_checkpoint(Path(out) / "checkpoint", model, name="mae", config=config, extra={"imported_from": str(path)})
    save_encoder(Path(out) / "encoder", model, config, extra={"imported_from": str(path)})
    return report
