"""Class activation maps (the grad-cam package): GradCAM and GradCAM++ for every pfvit classifier.

Target layers (each model's ``cam_target_layers()``): for ViTs (baseline, PF-ViT's E) the first norm of the last
block, its patch tokens reshaped to the token grid; for the POSTER family on the face backbone the last IR-50 unit
(256×14×14, as POSTER-cv), on the encoder backbone the encoder's last block as for ViTs; for the expression CNN its
last conv block. Maps come back at the classifier's input size in [0, 1].
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence, get_args

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..errors import UserError
from ..inference import Classifier
from ..resources import optional
from ..schemas.choices import CamMethod

METHODS = get_args(CamMethod)


def class_activation_maps(classifier: Classifier, images, classes: Sequence[int] | None = None,
                          method: str = "gradcam++") -> tuple[np.ndarray, torch.Tensor]:
    """(maps (N, S, S) in [0, 1] at the classifier's input size S, probabilities (N, K)) for PIL images or uint8
    tensors; each map explains ``classes[i]``, by default the predicted class."""
    grad_cam = optional("pytorch_grad_cam")
    targets_of = optional("pytorch_grad_cam.utils.model_targets")

    if method not in METHODS:
        raise UserError(f"CAM method {method!r} is not one of {', '.join(METHODS)}")
    layers, reshape = classifier.model.cam_target_layers()  # the classifier contract (models/vit.py)
    x = classifier.preprocess(images)
    with torch.no_grad():
        probs = classifier(x).float().softmax(-1)
    chosen = classes if classes is not None else probs.argmax(-1)
    targets = [targets_of.ClassifierOutputTarget(int(c)) for c in chosen]
    cam_class = grad_cam.GradCAMPlusPlus if method == "gradcam++" else grad_cam.GradCAM
    with cam_class(model=classifier, target_layers=layers, reshape_transform=reshape) as cam:
        maps = cam(input_tensor=x, targets=targets)
    return maps, probs.cpu()


def overlay(image: Image.Image, cam: np.ndarray) -> Image.Image:
    """A CAM over the image (resized to the map's size), jet colour map at half weight."""
    show_cam_on_image = optional("pytorch_grad_cam.utils.image").show_cam_on_image
    rgb = np.asarray(image.convert("RGB").resize(cam.shape[::-1], Image.BICUBIC), dtype=np.float32) / 255.0
    return Image.fromarray(show_cam_on_image(rgb, cam, use_rgb=True))


def cam_sheet(classifier: Classifier, rows: dict[str, list[Image.Image]], path: str | Path,
              method: str = "gradcam++", tile: int = 112) -> Path:
    """One row per true class: each face overlaid with the CAM of its predicted class, captioned
    ``predicted p``."""
    titled = []
    for name, images in rows.items():
        if not images:
            continue
        maps, probs = class_activation_maps(classifier, images, method=method)
        tiles = []
        for img, cam, p in zip(images, maps, probs):
            k = int(p.argmax())
            tiles.append((overlay(img, cam).resize((tile, tile), Image.BICUBIC),
                          f"{classifier.class_names[k]} {p[k]:.2f}"))
        titled.append((name, tiles))
    if not titled:
        raise UserError("no images to explain")
    label_w, cap = 70, 12
    cols = max(len(t) for _, t in titled)
    sheet = Image.new("RGB", (label_w + cols * tile, len(titled) * (tile + cap)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (name, tiles) in enumerate(titled):
        y = r * (tile + cap)
        draw.text((2, y + tile // 2), name, fill="black")
        for c, (img, caption) in enumerate(tiles):
            sheet.paste(img, (label_w + c * tile, y))
            draw.text((label_w + c * tile + 2, y + tile), caption, fill="black")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return Path(path)
