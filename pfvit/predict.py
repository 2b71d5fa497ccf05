"""Predict expressions on photos, folders and videos: detect and align every face, classify it with any pfvit
classifier, and optionally give its poker face (a PF-ViT checkpoint) and a CAM.

Outputs under ``out``: ``predictions.jsonl`` (one line per image or sampled video frame, faces inside — images
with no face or that cannot be read are lines too, with the reason), ``faces.csv`` (the photos flat: one row per
face, and a row with its note per photo without one), ``annotated/`` (a copy of each image with
boxes, label and probability), per video ``videos/<name>.csv`` (per-frame, per-face rows, in frame order, with
temporally smoothed probabilities per face track) and ``videos/<name>.mp4`` (annotated), ``pokerfaces/`` and
``cams/`` when asked, and ``summary.json`` with the counts.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from tqdm.auto import tqdm

from .config import make_config, require
from .data.align import FaceAligner
from .data.sources.folder import IMAGE_SUFFIXES, load_rgb
from .devices import resolve_device
from .errors import UserError
from .inference import Classifier, load_classifier
from .models.registry import load_model
from .schemas.predict import PredictConfig

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}


def expand_inputs(inputs: list[str]) -> tuple[list[Path], list[dict]]:
    """Files and folders (recursively, sorted) → (image and video files, skipped entries with reasons)."""
    files, skipped = [], []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            for f in sorted(q for q in p.rglob("*") if q.is_file() and not q.name.startswith(".")):
                if f.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES:
                    files.append(f)
                else:
                    skipped.append({"source": str(f), "error": "not an image or video file"})
        elif p.is_file():
            files.append(p)
        else:
            skipped.append({"source": str(p), "error": "no such file or folder"})
    return files, skipped


def open_video(path: Path, every: int = 1, fps: float | None = None
               ) -> tuple[float, Iterator[tuple[int, float, Image.Image]]]:
    """(rate of the sampled frames, their iterator of (frame index, time in s, RGB image)): every ``every``-th
    frame, or about ``fps`` frames per second. An unreadable file is an error here, before anything is written."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise UserError(f"{path}: cannot open the video (damaged, or a codec OpenCV lacks)")
    native = cap.get(cv2.CAP_PROP_FPS) or 25.0
    step = max(1, round(native / fps)) if fps else max(1, every)

    def frames():
        index, produced = 0, 0
        try:
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                if index % step == 0:
                    produced += 1
                    yield index, index / native, Image.fromarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
                index += 1
        finally:
            cap.release()
        if produced == 0:
            raise UserError(f"{path}: no frame could be decoded")

    return native / step, frames()


def iou(a: list[float], b: list[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class FaceTracks:
    """Greedy IoU tracking between consecutive sampled frames, with an exponential moving average of each
    track's probabilities (``alpha``: weight of the past)."""

    def __init__(self, alpha: float, min_iou: float = 0.3):
        self.alpha, self.min_iou = alpha, min_iou
        self.tracks: list[tuple[int, list[float], np.ndarray]] = []  # id, last box, smoothed probabilities
        self.next_id = 0

    def update(self, boxes: list[list[float]], probs: list[np.ndarray]) -> list[tuple[int, np.ndarray]]:
        free = list(range(len(self.tracks)))
        out, new_tracks = [], []
        for box, p in zip(boxes, probs):
            best = max(free, key=lambda t: iou(self.tracks[t][1], box), default=None)
            if best is not None and iou(self.tracks[best][1], box) >= self.min_iou:
                free.remove(best)
                tid, _, past = self.tracks[best]
                smooth = self.alpha * past + (1 - self.alpha) * p
            else:
                tid, smooth = self.next_id, p
                self.next_id += 1
            new_tracks.append((tid, box, smooth))
            out.append((tid, smooth))
        self.tracks = new_tracks
        return out


def annotate(image: Image.Image, faces: list[dict]) -> Image.Image:
    """Boxes with ``label probability`` above each face."""
    img = image.copy()
    draw = ImageDraw.Draw(img)
    width = max(2, round(max(img.size) / 300))
    size = max(11, round(max(img.size) / 60))
    font = ImageFont.load_default(size=size)
    for face in faces:
        x1, y1, x2, y2 = face["box"]
        draw.rectangle([x1, y1, x2, y2], outline=(255, 40, 40), width=width)
        text = f"{face['label']} {face['probability']:.2f}"
        top = max(0, y1 - size - 4)
        draw.rectangle([x1, top, x1 + draw.textlength(text, font=font) + 6, top + size + 4], fill=(255, 40, 40))
        draw.text((x1 + 3, top + 1), text, fill="white", font=font)
    return img


class Predictor:
    """Faces and expressions of one image at a time, as predict.py finds them:
    ``Predictor(checkpoint="fer-mini-xception").faces("photo.jpg")`` is a list of records (box, detection score,
    label, probability, every class's probability). Keys as predict.py's (``device``, ``detector``, ``cam``,
    ``pokerface_checkpoint``, …), or a whole :class:`PredictConfig`."""

    def __init__(self, cfg: PredictConfig | None = None, **keys):
        cfg = cfg if cfg is not None else make_config(PredictConfig, **keys)
        require(cfg, "checkpoint")
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        self.classifier: Classifier = load_classifier(cfg.checkpoint).to(self.device)
        self.aligner = FaceAligner(size=self.classifier.img_size, keep="all", min_face=cfg.min_face,
                                   device=self.device, detector=cfg.detector)
        self.poker = None
        if cfg.pokerface_checkpoint:
            self.poker = load_model(cfg.pokerface_checkpoint, expected="pfvit").to(self.device).eval()
        self.out = Path(cfg.out)

    def faces(self, image: Image.Image | str | Path, name: str | None = None) -> list[dict]:
        """Every face of an image (or of an image file): box, detection score, label, probability and all class
        probabilities; poker face and CAM files when asked, named after ``name`` (default: the file's stem)."""
        if not isinstance(image, Image.Image):
            image, name = load_rgb(str(image)), name or Path(image).stem
        name = name or "image"
        aligned = self.aligner(image)
        if not aligned:
            return []
        crops = [a.image for a in aligned]
        pred = self.classifier.predict(crops)
        faces = []
        for i, (a, k, p) in enumerate(zip(aligned, pred.labels.tolist(), pred.probabilities)):
            faces.append({"face": i, "box": [round(v, 1) for v in a.face.box],
                          "detection": round(a.face.probability, 4), "label": pred.names[i],
                          "probability": round(float(p[k]), 4),
                          "probabilities": {n: round(float(q), 4) for n, q in
                                            zip(self.classifier.class_names, p.tolist())}})
        if self.poker is not None:
            self._poker_faces(crops, faces, name)
        if self.cfg.cam:
            self._cams(crops, faces, name)
        return faces

    def _poker_faces(self, crops, faces, name):
        from .data.transforms import denormalize, eval_transform

        x = torch.stack([eval_transform(self.poker.img_size)(c) for c in crops]).to(self.device)
        images = denormalize(self.poker.poker_face(x)).cpu()
        folder = self.out / "pokerfaces"
        folder.mkdir(parents=True, exist_ok=True)
        for face, img in zip(faces, images):
            path = folder / f"{name}_face{face['face']}.png"
            Image.fromarray((img.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)).save(path)
            face["pokerface"] = str(path)

    def _cams(self, crops, faces, name):
        from .eval.cam import class_activation_maps, overlay

        maps, _ = class_activation_maps(self.classifier, crops, method=self.cfg.cam_method)
        folder = self.out / "cams"
        folder.mkdir(parents=True, exist_ok=True)
        for face, crop, cam in zip(faces, crops, maps):
            path = folder / f"{name}_face{face['face']}.png"
            overlay(crop, cam).save(path)
            face["cam"] = str(path)


def output_names(files: list[Path]) -> dict[Path, str]:
    """A file-name stem per input for its outputs; stems shared by several inputs get ``_2``, ``_3``…"""
    names, used = {}, {}
    for path in files:
        stem = path.stem.replace(" ", "_")
        used[stem] = used.get(stem, 0) + 1
        names[path] = stem if used[stem] == 1 else f"{stem}_{used[stem]}"
    return names


def predict(cfg: PredictConfig) -> dict:
    """Run over every input; a file that fails is a line with its error, never the end of the run."""
    files, skipped = expand_inputs(cfg.inputs)
    if not files and not skipped:
        raise UserError("no inputs: give image files, folders or videos")
    predictor = Predictor(cfg)
    out = Path(cfg.out)
    (out / "annotated").mkdir(parents=True, exist_ok=True)
    counts = {"images": 0, "videos": 0, "frames": 0, "faces": 0, "no_face": 0, "errors": 0}
    names = output_names(files)
    classes = predictor.classifier.class_names
    with open(out / "predictions.jsonl", "w") as jl, open(out / "faces.csv", "w", newline="") as fh:
        # Photos flat, one row per face as videos/<name>.csv has; a photo without a face, or unreadable, is a row
        # with its note, so that no input is missing from the table.
        table = csv.writer(fh)
        table.writerow(["source", "face", "x1", "y1", "x2", "y2", "label", "probability",
                        *[f"p_{n}" for n in classes], "note"])

        def noted(source: str, note: str) -> None:  # a row for an input without a face
            table.writerow([source, *[""] * (7 + len(classes)), note])

        for entry in skipped:
            jl.write(json.dumps({**entry, "faces": []}) + "\n")
            noted(entry["source"], entry["error"])
            counts["errors"] += 1
        for path in tqdm(files, desc="predict", disable=not sys.stderr.isatty()):
            name = names[path]
            try:
                if path.suffix.lower() in VIDEO_SUFFIXES:
                    counts["videos"] += 1
                    for record in _video(predictor, path, name, cfg):
                        jl.write(json.dumps(record) + "\n")
                        counts["frames"] += 1
                        counts["faces"] += len(record["faces"])
                        counts["no_face"] += not record["faces"]
                    continue
                image = load_rgb(str(path))
                faces = predictor.faces(image, name)
                counts["images"] += 1
                counts["faces"] += len(faces)
                counts["no_face"] += not faces
                record = {"source": str(path), "frame": None, "faces": faces}
                for face in faces:
                    table.writerow([str(path), face["face"], *face["box"], face["label"], face["probability"],
                                    *[f"{v:.4f}" for v in face["probabilities"].values()], ""])
                if not faces:
                    record["note"] = "no face found"
                    noted(str(path), record["note"])
                if cfg.annotate:
                    annotate(image, faces).save(out / "annotated" / f"{name}.jpg", quality=92)
            except (UserError, ValueError, OSError) as err:
                counts["errors"] += 1
                record = {"source": str(path), "frame": None, "faces": [], "error": str(err)}
                noted(str(path), str(err))
                print(f"skipped: {err}" if str(path) in str(err) else f"skipped {path}: {err}", flush=True)
            jl.write(json.dumps(record) + "\n")
    (out / "summary.json").write_text(json.dumps({"checkpoint": cfg.checkpoint, **counts}, indent=2))
    return counts


def _video(predictor: Predictor, path: Path, name: str, cfg: PredictConfig) -> Iterator[dict]:
    """Per sampled frame: a record; writes ``videos/<name>.csv`` and the annotated ``videos/<name>.mp4``."""
    import cv2

    rate, frames = open_video(path, cfg.every, cfg.fps)
    folder = predictor.out / "videos"
    folder.mkdir(parents=True, exist_ok=True)
    names = predictor.classifier.class_names
    tracks = FaceTracks(cfg.smoothing)
    writer = None
    with open(folder / f"{name}.csv", "w", newline="") as fh:
        rows = csv.writer(fh)
        rows.writerow(["frame", "time_s", "face", "track", "x1", "y1", "x2", "y2", "label", "probability",
                       "smoothed_label", "smoothed_probability", *[f"p_{n}" for n in names]])
        for index, t, frame in frames:
            faces = predictor.faces(frame, f"{name}_f{index:06d}")
            smoothed = tracks.update([f["box"] for f in faces],
                                     [np.array(list(f["probabilities"].values())) for f in faces])
            for face, (tid, sp) in zip(faces, smoothed):
                k = int(sp.argmax())
                face.update(track=tid, smoothed_label=names[k], smoothed_probability=round(float(sp[k]), 4))
                rows.writerow([index, f"{t:.3f}", face["face"], tid, *face["box"], face["label"],
                               face["probability"], names[k], f"{sp[k]:.4f}",
                               *[f"{v:.4f}" for v in face["probabilities"].values()]])
            if cfg.annotate:
                shown = [{**f, "label": f["smoothed_label"], "probability": f["smoothed_probability"]} for f in faces]
                arr = cv2.cvtColor(np.asarray(annotate(frame, shown)), cv2.COLOR_RGB2BGR)
                if writer is None:
                    writer = cv2.VideoWriter(str(folder / f"{name}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), rate,
                                             (arr.shape[1], arr.shape[0]))
                writer.write(arr)
            yield {"source": str(path), "frame": index, "time_s": round(t, 3), "faces": faces}
    if writer is not None:
        writer.release()
