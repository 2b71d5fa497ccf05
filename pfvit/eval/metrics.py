"""Classification metrics (torchmetrics) in the form every report uses, and the confusion-matrix picture."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch


def classification_metrics(target: torch.Tensor, pred: torch.Tensor, class_names: Sequence[str]) -> dict:
    """Accuracy, mean per-class accuracy (= macro recall) over the classes present in ``target``, macro-F1 over
    the classes present in ``target`` or ``pred`` (scikit-learn's labels), per-class precision / recall / F1, the
    confusion matrix (rows = true class), the sample count and the classes with no sample (``absent_classes``):
    an 8-class model on CK+ (no neutral) is not scored on the neutral class it cannot be tested on."""
    # Imported here: torchmetrics imports scipy.signal and transformers' BERT when they are installed (3 s), which
    # every stage would otherwise pay at start-up.
    from torchmetrics.functional.classification import (multiclass_accuracy, multiclass_confusion_matrix,
                                                        multiclass_f1_score, multiclass_precision, multiclass_recall)

    k = len(class_names)
    target, pred = target.long().cpu(), pred.long().cpu()
    per_p = multiclass_precision(pred, target, k, average=None, zero_division=0)
    per_r = multiclass_recall(pred, target, k, average=None, zero_division=0)
    per_f1 = multiclass_f1_score(pred, target, k, average=None, zero_division=0)
    support = torch.bincount(target, minlength=k)[:k]
    present = support > 0
    scored = present | (torch.bincount(pred, minlength=k)[:k] > 0)
    return {
        "num_samples": int(target.numel()),
        "accuracy": multiclass_accuracy(pred, target, k, average="micro").item(),
        "mean_class_accuracy": per_r[present].mean().item() if present.any() else 0.0,
        "macro_f1": per_f1[scored].mean().item() if scored.any() else 0.0,
        "absent_classes": [name for i, name in enumerate(class_names) if not present[i]],
        "per_class": {name: {"precision": per_p[i].item(), "recall": per_r[i].item(), "f1": per_f1[i].item(),
                             "support": int(support[i])} for i, name in enumerate(class_names)},
        "confusion_matrix": multiclass_confusion_matrix(pred, target, k).tolist(),
        "class_names": list(class_names),
    }


def rounded(value, digits: int = 6):
    """``value`` with every float rounded to ``digits`` decimals (lists and dicts inside too): what metrics.json
    stores, without float32 noise such as 0.8999999761581421."""
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(v, digits) for v in value]
    return value


def plot_confusion(metrics: dict, path: str | Path, title: str = "") -> Path:
    """Row-normalised confusion matrix with counts, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = torch.tensor(metrics["confusion_matrix"], dtype=torch.float64)
    norm = cm / cm.sum(dim=1, keepdim=True).clamp(min=1)
    names = metrics["class_names"]
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * len(names), 0.8 + 0.7 * len(names)), dpi=100)
    ax.imshow(norm.numpy(), cmap="Blues", vmin=0, vmax=1)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or f"accuracy {metrics['accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f}")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
