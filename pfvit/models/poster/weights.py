"""Weights of the POSTER family from files users bring: IR-50 (``ir50.pth``, face.evoLVe layout), the MobileFaceNet
landmark regressor (``mobilefacenet_model_best.pth.tar``) and released POSTER++ / POSTER-Var checkpoints
(``module.``-prefixed). Every load counts its tensors; fewer than the model needs is an error, never a print."""

from __future__ import annotations

import re
from pathlib import Path

import torch
import torch.nn as nn

from ...checkpoint import load_state, save_checkpoint
from ...data.transforms import imagenet_preprocess
from ...errors import CheckpointError
from ...labels import class_names, index_of
from ..convert import read_torch_state
from ..registry import build_model
from .ir50 import remap_ir50_keys
from .poster import poster_config


def load_face_weights(backbone: nn.Module, ir50: str | Path | None, mobilefacenet: str | Path | None) -> dict:
    """IR-50 and MobileFaceNet weights into a :class:`~.backbones.FaceBackbone`: the tensor counts loaded."""
    counts = {}
    if ir50 is not None:
        counts["ir50_tensors"] = load_state(backbone.image_net, remap_ir50_keys(read_torch_state(ir50)),
                                            source=str(ir50), what="IR-50 (stages 1-3)", allow_unexpected=True).loaded
    if mobilefacenet is not None:
        state = {k: v for k, v in read_torch_state(mobilefacenet).items() if not k.startswith("output_layer.")}
        counts["mobilefacenet_tensors"] = load_state(backbone.landmark_net, state, source=str(mobilefacenet),
                                                     what="MobileFaceNet landmark", allow_unexpected=True).loaded
    return counts


def _released_prefixes(var_fusion: bool) -> list[tuple[str, str]]:
    """(released prefix, pfvit prefix) of POSTER++ (Talented-Q/POSTER_V2) and POSTER-Var (lg2578/poster-var)."""
    pairs = [("face_landback.", "backbone.landmark_net."), ("ir_back.", "backbone.image_net."),
             ("last_face_conv.", "query_convs.2."), ("embed_q.0.", "embed.0.0."), ("embed_k.0.", "embed.1.0."),
             # With GELUs (POSTER-Var) the second conv of embed_q is index 2, without (POSTER++) index 1.
             ("embed_q.2." if var_fusion else "embed_q.1.", "embed.0.2."),
             ("embed_v.0." if var_fusion else "embed_v.proj.", "embed.2.0."),
             ("VIT.cls_token", "cls_token"), ("VIT.pos_embed", "pos_embed"), ("VIT.blocks.", "blocks."),
             ("VIT.norm.", "norm."), ("VIT.se_block.", "se_block."), ("VIT.head.linear.", "head."),
             ("VIT.head.fc_", "head.fc_"), ("level_embeds", "level_embeds"), ("fusion_norm.", "fusion_norm.")]
    for i in range(3):
        n, s = i + 1, f"cross_attn.{i}."
        pairs += [(f"conv{n}.", f"image_convs.{i}."), (f"attn{n}.qkv.", s + "attn.kv."),
                  (f"attn{n}.proj.", s + "attn.proj."),
                  (f"attn{n}.relative_position_bias_table", s + "relative_position_bias_table"),
                  (f"window{n}.norm.", s + "norm."), (f"ffn{n}.gamma", s + "gamma"), (f"ffn{n}.norm.", s + "mlp_norm."),
                  (f"ffn{n}.mlp.", s + "mlp.")]
    return pairs


# Parameters the released code builds but never uses, and buffers rebuilt here.
RELEASED_DEAD = re.compile(r"^(VIT\.(patch_embed|CON1|IRLinear\d|eca_block|dist_token|head_dist)|VIT\.blocks\.\d+\.conv\."
                           r"|(face_landback|ir_back)\.output_layer\.|attn\d\.relative_position_index$)")


def released_poster_v2_state(state: dict[str, torch.Tensor], var_fusion: bool) -> tuple[dict, list[str]]:
    """A released POSTER++ / POSTER-Var state dict (``module.`` already stripped) → (pfvit ``poster_v2`` state,
    released keys left unused)."""
    pairs = _released_prefixes(var_fusion)
    out, unused = {}, []
    for key, value in state.items():
        if RELEASED_DEAD.match(key):
            unused.append(key)
            continue
        for old, new in pairs:
            if key.startswith(old):
                out[new + key[len(old):]] = value
                break
        else:
            unused.append(key)
    return out, unused




def import_released_poster(path: str | Path, out: str | Path, variant: str, label_order: tuple[str, ...]) -> dict:
    """A released POSTER++ / POSTER-Var ``.pth`` → a pfvit ``poster_v2`` classifier checkpoint at ``out``; the head
    rows are permuted from the release's class order (``label_order``) into the canonical order."""
    names = class_names(len(label_order))
    order = [index_of(n) for n in label_order]
    if sorted(order) != list(range(len(names))):
        raise CheckpointError(f"label order {label_order} is not a permutation of {names}")
    name, config = poster_config(variant, len(names), "face")
    if name != "poster_v2":
        raise CheckpointError(f"only POSTER++ and POSTER-Var releases import; got variant {variant!r}")
    model = build_model(name, config)
    state, unused = released_poster_v2_state(read_torch_state(path), config.get("var_fusion", False))
    own = model.state_dict()
    head_keys = [k for k in own if k.startswith("head.")]
    for key in head_keys:
        if key in state:
            if state[key].shape[0] != len(order):
                raise CheckpointError(f"{path}: {key} has {state[key].shape[0]} classes, the label order "
                                      f"{len(order)}")
            # Row r of the release is class label_order[r]: put it at its canonical index.
            permuted = torch.empty_like(state[key])
            permuted[order] = state[key]
            state[key] = permuted
    loaded = load_state(model, state, source=str(path), what=f"{variant} (face backbone)",
                        allow_unexpected=True).loaded
    extra = {"preprocess": imagenet_preprocess(),
             "imported_from": str(path), "released_label_order": list(label_order), "unused_tensors": unused}
    save_checkpoint(out, model, name=name, config=config, label_names=names, extra=extra)
    return {"loaded": loaded, "unused": len(unused), "unused_examples": unused[:6]}
