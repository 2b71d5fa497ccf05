"""Frozen face-recognition embedders (FR) for PF-ViT's orthogonality loss (seed 004, §4.2, Table 5).

:class:`FrozenFaceEmbedder` takes images in [0, 1] at any size, resizes them to the network's input, applies its
own standardisation and returns L2-normalised embeddings. It is frozen (no parameter requires grad) and stays in
eval mode whatever ``train()`` is called with, so its BatchNorm statistics never drift; gradients still flow to
the images, which is what the loss needs. It is never handed to ``accelerator.prepare`` (no DDP wrapper).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import CheckpointError, ConfigError
from .convert import read_torch_state

FR_MODELS = ("inception_resnet_v1", "none")


class FrozenFaceEmbedder(nn.Module):
    def __init__(self, net: nn.Module, input_size: int, standardize: Callable[[torch.Tensor], torch.Tensor],
                 name: str, pretrained: bool):
        super().__init__()
        self.net = net
        self.input_size = input_size
        self.standardize = standardize
        self.name = name
        self.pretrained = pretrained
        for p in self.net.parameters():
            p.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> "FrozenFaceEmbedder":
        return super().train(False)

    def forward(self, images01: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(images01.float(), size=(self.input_size, self.input_size), mode="bilinear",
                          align_corners=False)
        return F.normalize(self.net(self.standardize(x)).float(), dim=-1)


def _facenet_standardize(x01: torch.Tensor) -> torch.Tensor:
    """facenet-pytorch's ``fixed_image_standardization`` on 0–255 values: (v − 127.5) / 128."""
    return (x01 * 255.0 - 127.5) / 128.0


def inception_resnet_v1(weights: str | None) -> FrozenFaceEmbedder:
    """facenet-pytorch's InceptionResnetV1 at 160x160; ``weights``: a VGGFace2 / CASIA-WebFace state dict as
    facenet-pytorch publishes it (``20180402-114759-vggface2.pt``). The classification layer (``logits.*``) is
    dropped; every other tensor must load."""
    from facenet_pytorch import InceptionResnetV1

    net = InceptionResnetV1(pretrained=None, classify=False)
    if weights is not None:
        state = {k: v for k, v in read_torch_state(weights).items() if not k.startswith("logits.")}
        own = net.state_dict()
        missing = sorted(set(own) - set(state))
        wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
        if missing or wrong or set(state) - set(own):
            raise CheckpointError(f"{weights} is not an InceptionResnetV1 state dict: {len(missing)} missing "
                                  f"(e.g. {missing[:2]}), {len(wrong)} of another shape; use facenet-pytorch's "
                                  "20180402-114759-vggface2.pt or casia-webface.pt")
        net.load_state_dict(state)
    return FrozenFaceEmbedder(net, 160, _facenet_standardize, "inception_resnet_v1", pretrained=weights is not None)


def build_face_embedder(model: str, weights: str | None) -> FrozenFaceEmbedder | None:
    """The FR network named by ``fr.model`` (``none``: no FR orthogonality term). Without weights it warns loudly:
    a random network's embeddings carry no identity, so the orthogonality term is then meaningless."""
    if model not in FR_MODELS:
        raise ConfigError(f"fr.model={model!r} is not one of {', '.join(FR_MODELS)}")
    if model == "none":
        return None
    if weights is not None and not Path(weights).is_file():
        raise ConfigError(f"fr.weights={weights} does not exist; give the path of the face-recognition weights")
    embedder = inception_resnet_v1(weights)
    if weights is None:
        print("WARNING: fr.weights is not set: the face-recognition network of the orthogonality loss is RANDOMLY "
              "initialised, so that loss term is meaningless (set fr.weights=PATH to facenet-pytorch's VGGFace2 "
              ".pt, or fr.model=none)", file=sys.stderr, flush=True)
    return embedder
