"""Image transforms shared by the stages (torchvision v2), and ImageNet (de)normalisation."""

from __future__ import annotations

import torch
from torchvision.transforms import v2

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# ITU-R 601 luma, as PIL's "L" and OpenCV's BGR2GRAY: the grey of a grey-input model.
LUMA = (0.299, 0.587, 0.114)


def imagenet_preprocess() -> dict:
    """A checkpoint's ``extra.preprocess`` for a model trained on ImageNet-normalised RGB faces resized bicubically
    (:func:`eval_transform`; the size is the model's own ``img_size``): what ``inference.Classifier`` applies."""
    return {"interpolation": "bicubic", "grey": False, "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}


def _to_normalised_tensor() -> list:
    return [v2.PILToTensor(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]


def mae_train_transform(size: int, scale: tuple[float, float] = (0.2, 1.0)) -> v2.Compose:
    """MAE's pretraining augmentation: random resized crop (bicubic) and horizontal flip."""
    return v2.Compose([v2.RandomResizedCrop(size, scale=scale, interpolation=v2.InterpolationMode.BICUBIC,
                                            antialias=True),
                       v2.RandomHorizontalFlip(), *_to_normalised_tensor()])


def eval_transform(size: int) -> v2.Compose:
    """Resize an aligned face to the model's size; no cropping (the shards are already aligned crops)."""
    return v2.Compose([v2.Resize((size, size), interpolation=v2.InterpolationMode.BICUBIC, antialias=True),
                       *_to_normalised_tensor()])


def denormalize(x: torch.Tensor) -> torch.Tensor:
    """Normalised (N, 3, H, W) → [0, 1]."""
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x * std + mean).clamp(0, 1)


# ImageNet RGB principal components (AlexNet's PCA lighting), as used by POSTER-cv.
IMAGENET_EIGVAL = (0.2175, 0.0188, 0.0045)
IMAGENET_EIGVEC = ((-0.5675, 0.7192, 0.4009), (-0.5808, -0.0045, -0.8140), (-0.5836, -0.6948, 0.4203))


class PCALighting(torch.nn.Module):
    """AlexNet's lighting noise on a *normalised* image: adds ``V·(α ⊙ λ)`` with α ~ N(0, alphastd²) to the RGB
    values. Normalisation is linear, so the shift is divided by the normalisation std."""

    def __init__(self, alphastd: float, std=IMAGENET_STD):
        super().__init__()
        self.alphastd = alphastd
        self.register_buffer("eigval", torch.tensor(IMAGENET_EIGVAL))
        self.register_buffer("eigvec", torch.tensor(IMAGENET_EIGVEC))
        self.register_buffer("std", torch.tensor(std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = torch.randn(3) * self.alphastd
        shift = self.eigvec @ (alpha * self.eigval)
        return x + (shift / self.std).view(3, 1, 1)
