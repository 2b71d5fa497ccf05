"""The data path on real faces: sharding FER2013 (pre-aligned mode, from the Kaggle tar), MTCNN and YuNet
detection + alignment of the face photos (faces found vs EXPECTED.csv), and reading + decoding + augmenting at 112 and 224 px with 2 workers — beside the
ViT-T fine-tuning step on this machine, so it is visible whether data or model limits (target at 112: data ≥ 3×).

    python benchmarks/shards.py [--workers 2]      # needs ../shared/data (or PFVIT_SHARED_DATA)
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from common import data_path_rate, rate, report
from pfvit.data.align import FaceAligner
from pfvit.data.shards import write_shards
from pfvit.data.sources.fer2013 import fer2013_folder_specs
from pfvit.data.sources.folder import load_rgb
from pfvit.models.mae import ARCHS
from pfvit.models.vit import build_vit
from pfvit.train.classifier import train_transform
from pfvit.schemas.classifier import AugConfig

DATA = Path(os.environ.get("PFVIT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"real face data not found at {DATA} (set PFVIT_SHARED_DATA); nothing measured")
    rows = []
    rows_csv = [r for r in csv.DictReader(open(DATA / "face-photos" / "EXPECTED.csv")) if r["expected_faces"].isdigit()]
    images = [load_rgb(str(DATA / "face-photos" / r["path"])) for r in rows_csv]
    expected = [int(r["expected_faces"]) for r in rows_csv]
    for detector in ("mtcnn", "yunet"):
        aligner = FaceAligner(size=224, keep="all", detector=detector)
        start = time.perf_counter()
        found = [len(aligner(img)) for img in images]
        seconds = time.perf_counter() - start
        exact = sum(f == e for f, e in zip(found, expected))
        rows.append([f"{detector} detect + align, {len(images)} face photos (up to 2,048 px)",
                     f"{len(images) / seconds:.1f} photos/s ({sum(found) / seconds:.1f} faces/s)",
                     f"count = EXPECTED.csv on {exact}/{len(images)} photos; {sum(found)}/{sum(expected)} faces"])
    with tempfile.TemporaryDirectory() as tmp:
        for size in (112, 224):
            specs = fer2013_folder_specs([DATA / "fer2013" / "publictest.tar"], size=size)
            n = sum(len(s.items) for s in specs)
            start = time.perf_counter()
            write_shards(f"{tmp}/fer{size}", specs, maxcount=500, workers=args.workers)
            rows.append([f"sharding FER2013 PublicTest, pre-aligned, {size} px", f"{n / (time.perf_counter() - start):.0f}",
                         f"{args.workers} workers"])
            data = data_path_rate(f"{tmp}/fer{size}", size, args.batch, 40, args.workers,
                                  train_transform(size, AugConfig()), split="val")
            a = ARCHS["vit_tiny"]
            model = build_vit(img_size=size, embed_dim=a["embed_dim"], depth=a["depth"], num_heads=a["num_heads"],
                              num_classes=7)
            opt = torch.optim.Adam(model.parameters(), 1e-4)
            x, y = torch.randn(args.batch, 3, size, size), torch.randint(0, 7, (args.batch,))

            def step():
                loss = F.cross_entropy(model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()

            train = rate(step, args.batch, 8.0)
            rows.append([f"read + decode + augment, {size} px", f"{data:.0f}", f"{args.workers} workers"])
            rows.append([f"ViT-T fine-tune step, {size} px, batch {args.batch}", f"{train:.1f}",
                         f"data / model = {data / train:.1f}×"])
    report("Data path on real faces (CPU)", ["what", "images/s", "note"], rows,
           "Sharding includes JPEG decode, resize and JPEG re-encode (quality 95) and the tar writes. The loader "
           "rate is the indexed reader with the fine-tune augmentation (random resized crop, flip, normalise).")


if __name__ == "__main__":
    main()
