"""Exact evaluation of any pfvit classifier on a shard split, on one or many processes.

Every sample is seen exactly once (map-style wids dataset, accelerate's ``gather_for_metrics`` drops the padding
of the last batch), and the count is checked against the manifest. Writes ``metrics.json``, ``confusion.png`` and
``predictions.csv`` (key, true, predicted, one probability per class).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..config import require
from ..data.shards import EvalDataset, check_shard_files, split_entry, split_index
from ..errors import UserError
from ..data.transforms import imagenet_preprocess
from ..inference import Classifier, load_classifier
from ..models.judges import JUDGE_NAME
from ..checkpoint import read_meta
from ..models.registry import load_model
from ..labels import outside_protocol
from ..runtime import Run, RunConfig
from ..schemas.evaluate import EvalConfig
from .metrics import classification_metrics, plot_confusion, rounded


def check_protocol(labels: list[int], num_classes: int, where: str) -> None:
    """Every label must be a class of the model's protocol."""
    counts = outside_protocol(labels, num_classes)
    if counts:
        raise UserError(f"{where} has {sum(counts.values())} samples outside the model's {num_classes}-class "
                        f"protocol ({counts}); evaluate a model with more classes or make shards without them")


def _uint8(sample: dict):
    return torch.from_numpy(np.asarray(sample["jpg"]).copy()).permute(2, 0, 1)


def predict_split(run: Run, classifier, shards: str, split: str, index: tuple[list[str], list[int]],
                  batch_size: int, num_workers: int, tta_flip: bool = False, desc: str = "evaluate") -> torch.Tensor:
    """Class probabilities (N, K) for every sample of a split in index order (``index``: its
    :func:`split_index`), computed across all processes, each sample exactly once; the count is checked against
    the manifest and the index."""
    acc = run.accelerator
    dataset = _WithIndex(EvalDataset(shards, split, _uint8))
    loader = acc.prepare(DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, shuffle=False))
    all_idx, all_probs = [], []
    with torch.no_grad():
        for images, idx in run.progress(loader, desc=desc):
            x = classifier.preprocess(images)
            with acc.autocast():
                probs = classifier(x).float().softmax(-1)
                if tta_flip:
                    probs = (probs + classifier(torch.flip(x, dims=[3])).float().softmax(-1)) / 2
            idx, probs = acc.gather_for_metrics((idx.to(acc.device), probs))
            all_idx.append(idx.cpu())
            all_probs.append(probs.cpu())
    idx = torch.cat(all_idx)
    order = idx.argsort()
    idx, probs = idx[order], torch.cat(all_probs)[order]
    expected = split_entry(shards, split)["count"]
    if idx.numel() != expected or not torch.equal(idx, torch.arange(expected)) or len(index[0]) != expected:
        raise UserError(f"evaluation saw {idx.numel()} samples ({torch.unique(idx).numel()} distinct) and the shard "
                        f"headers list {len(index[0])}, but the manifest of {shards} counts {expected} in {split!r}")
    return probs


def split_metrics(run: Run, module: torch.nn.Module, names: list[str], data, split: str, index) -> dict:
    """Classification metrics of a model (normalised tensors → logits) on ``split`` of ``data.shards`` (the
    selection pass of every training stage); samples outside the model's protocol are left out. The module's
    train/eval mode is restored afterwards."""
    was_training = module.training
    module.eval()
    clf = Classifier(module, names, **imagenet_preprocess()).to(run.device)
    probs = predict_split(run, clf, data.shards, split, index, data.batch_size, data.num_workers,
                          desc="validate")
    module.train(was_training)
    labels = torch.tensor(index[1])
    inside = (labels >= 0) & (labels < len(names))
    return classification_metrics(labels[inside], probs.argmax(-1)[inside], names)


def evaluate(cfg: EvalConfig) -> dict:
    require(cfg, "checkpoint")
    if cfg.out is None:  # before Run saves the config, so that config.yaml holds where this run went
        cfg.out = str(default_out(cfg.checkpoint, cfg.split))
    run = Run(RunConfig(out=cfg.out), cfg, "evaluate")
    if cfg.checkpoint != JUDGE_NAME and read_meta(cfg.checkpoint)["model"] == "mae":
        return _mae_reconstructions(cfg, run)
    classifier = load_classifier(cfg.checkpoint).to(run.device)
    check_shard_files(cfg.shards, cfg.split, rehash=cfg.verify)
    names = classifier.class_names
    keys, labels = split_index(cfg.shards, cfg.split)
    check_protocol(labels, len(names), f"split {cfg.split!r} of {cfg.shards}")
    probs = predict_split(run, classifier, cfg.shards, cfg.split, (keys, labels), cfg.batch_size, cfg.num_workers,
                          cfg.tta_flip)
    pred = probs.argmax(-1)
    metrics = {**classification_metrics(torch.tensor(labels), pred, names), "split": cfg.split,
               "shards": str(cfg.shards), "checkpoint": str(cfg.checkpoint), "tta_flip": cfg.tta_flip,
               **_selection(cfg.checkpoint)}
    if cfg.pokerface and run.is_main:
        metrics["pokerface"] = _pokerface(cfg, run.device)
    if cfg.cam and run.is_main:
        _cam_sheet(cfg, classifier, labels)
    if run.is_main:
        out = Path(cfg.out)
        (out / "metrics.json").write_text(json.dumps(rounded(metrics), indent=2))
        plot_confusion(metrics, out / "confusion.png", title=f"{Path(cfg.checkpoint).name} on {cfg.split}: "
                       f"acc {metrics['accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f}")
        with open(out / "predictions.csv", "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["key", "true", "predicted", *[f"p_{n}" for n in names]])
            for i, key in enumerate(keys):
                writer.writerow([key, names[labels[i]], names[pred[i]], *[f"{p:.6f}" for p in probs[i].tolist()]])
        run.info(f"{cfg.split}: accuracy {metrics['accuracy']:.4f}, mean class accuracy "
                 f"{metrics['mean_class_accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f} on {len(keys)} samples")
        if metrics["absent_classes"]:
            run.info(f"{cfg.split} has no samples of {', '.join(metrics['absent_classes'])}: the class means leave "
                     "them out")
    run.finish()
    return metrics


def default_out(checkpoint: str, split: str) -> Path:
    """Where an evaluation goes when ``out`` is not given: ``eval_<split>`` in the checkpoint's run folder (as the
    Makefile's chains write), so that evaluating two checkpoints or two splits never overwrites the first."""
    if checkpoint == JUDGE_NAME:
        return Path("runs/eval") / f"{JUDGE_NAME}_{split}"
    path = Path(checkpoint)
    return path.parent / f"eval_{split}" if path.name in ("best", "last", "checkpoint", "classifier") \
        else path.parent / f"eval_{path.name}_{split}"


def _selection(checkpoint: str) -> dict:
    """How a trained classifier was selected (``selected_on``, ``protocol``), as its checkpoint records it."""
    if checkpoint == JUDGE_NAME:
        return {}
    extra = read_meta(checkpoint).get("extra", {})
    return {k: extra[k] for k in ("selected_on", "protocol") if k in extra}


def _mae_reconstructions(cfg: EvalConfig, run: Run) -> dict:
    """A MAE checkpoint: PSNR on the masked patches vs the mean training face, and a reconstruction sheet."""
    from .reconstruction import mae_reconstruction_metrics

    metrics = {}
    if run.is_main:
        out = Path(cfg.out)
        metrics = mae_reconstruction_metrics(load_model(cfg.checkpoint, expected="mae"), cfg.shards, cfg.split,
                                             limit=cfg.pokerface_limit or 512, batch_size=cfg.batch_size,
                                             sheet=out / "reconstructions.png", device=run.device)
        metrics.update(shards=str(cfg.shards), checkpoint=str(cfg.checkpoint))
        (out / "metrics.json").write_text(json.dumps(rounded(metrics), indent=2))
        run.info(f"{cfg.split}: masked-patch PSNR {metrics['psnr_masked_reconstruction']:.2f} dB, mean face "
                 f"{metrics['psnr_masked_mean_face']:.2f} dB on {metrics['samples']} samples")
    run.finish()
    return metrics


def _pokerface(cfg: EvalConfig, device) -> dict:
    from ..models.facerec import build_face_embedder
    from .pokerface import pokerface_metrics

    if read_meta(cfg.checkpoint)["model"] != "pfvit":
        raise UserError(f"pokerface=true needs a full PF-ViT checkpoint (run.out/best of pfvit_train.py); "
                        f"{cfg.checkpoint} has no generator")
    judge = load_classifier(cfg.judge).to(device) if cfg.judge else None
    if judge is not None and judge.class_names[0] != "neutral":
        raise UserError(f"judge {cfg.judge} does not have neutral as class 0 ({judge.class_names[:3]})")
    fr = build_face_embedder(cfg.fr_model, cfg.fr_weights)
    result = pokerface_metrics(load_model(cfg.checkpoint, expected="pfvit"), cfg.shards, cfg.split,
                               batch_size=cfg.batch_size, judge=judge, fr=None if fr is None else fr.to(device),
                               device=device, limit=cfg.pokerface_limit, sheet=Path(cfg.out) / "pokerface.png")
    result["judge"] = cfg.judge
    return result


def _cam_sheet(cfg: EvalConfig, classifier: Classifier, labels: list[int]) -> None:
    from ..data.shards import IndexedShards
    from .cam import cam_sheet

    shards = IndexedShards(cfg.shards, cfg.split)
    rows = {name: [] for name in classifier.class_names}
    for i, y in enumerate(labels):
        row = rows[classifier.class_names[y]]
        if len(row) < cfg.cam_per_class:
            row.append(shards.sample(i)["jpg"])
    cam_sheet(classifier, rows, Path(cfg.out) / "cam.png", cfg.cam_method)


class _WithIndex(torch.utils.data.Dataset):
    """Pairs each item with its index, so gathered predictions can be put back in order."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        return self.dataset[i], i
