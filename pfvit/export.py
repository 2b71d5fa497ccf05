"""Export PF-ViT's deployable classifier: E + S + C only (G and D are dropped, §3.2 "During testing")."""

from __future__ import annotations

from pathlib import Path

from .models.pfvit import PokerFaceViT, classifier_part
from .checkpoint import read_meta, save_checkpoint
from .models.registry import load_model


def export_classifier(checkpoint: str | Path, out: str | Path) -> Path:
    """A ``pfvit`` checkpoint → a ``pfvit_classifier`` checkpoint with the same class names and preprocessing,
    loadable by :func:`pfvit.inference.load_classifier` without the training config."""
    meta = read_meta(checkpoint)
    model: PokerFaceViT = load_model(checkpoint, expected="pfvit")
    kept = ("preprocess", "val", "init", "selected_on", "protocol")
    extra = {k: v for k, v in meta.get("extra", {}).items() if k in kept}
    extra["exported_from"] = str(checkpoint)
    return save_checkpoint(out, model.classifier, name="pfvit_classifier", config=classifier_part(meta["config"]),
                           label_names=meta["label_names"], step=meta.get("step"),
                           data_manifest=meta.get("data_manifest"), extra=extra)
