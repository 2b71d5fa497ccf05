"""Inference speed of ViT-T/S/B classifiers (224 px, 7 classes) loaded through `load_classifier`, at batch 1 and
64, against the bare timm model's forward on the same weights (the wrapper's overhead).

    python benchmarks/inference.py [--archs vit_tiny vit_small vit_base]
"""

from __future__ import annotations

import argparse
import tempfile

import torch

from common import rate, report
from pfvit.data.transforms import imagenet_preprocess
from pfvit.inference import load_classifier
from pfvit.models.mae import ARCHS
from pfvit.models.registry import build_model, model_config
from pfvit.checkpoint import save_checkpoint
from pfvit.labels import class_names



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--archs", nargs="+", default=list(ARCHS))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp, torch.inference_mode():
        for arch in args.archs:
            name, cfg = model_config(arch, num_classes=7)  # the vit_tiny … variants: 224 px, 16 px patches
            path = save_checkpoint(f"{tmp}/{arch}", build_model(name, cfg), name=name, config=cfg,
                                   label_names=class_names(7), extra={"preprocess": imagenet_preprocess()})
            clf = load_classifier(path)
            for batch in (1, 64):
                images = torch.randint(0, 256, (batch, 3, 224, 224), dtype=torch.uint8)
                x = clf.preprocess(images)
                ours = rate(lambda: clf.predict(images), batch)
                bare = rate(lambda: clf.model(x), batch)
                rows.append([arch, batch, f"{ours:.1f}", f"{bare:.1f}", f"{ours / bare:.2f}"])
    report("Classifier inference (CPU, 224 px)", ["model", "batch", "predict() img/s", "bare forward img/s",
                                                  "ratio"], rows,
           "predict() includes uint8 → resize → normalise → forward → softmax; bare = the timm model on a "
           "prepared tensor.")


if __name__ == "__main__":
    main()
