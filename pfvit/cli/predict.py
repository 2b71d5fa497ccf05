"""Predict expressions on photos, folders and videos with any pfvit classifier checkpoint.

    python pipelines/predict.py checkpoint=runs/demo/vit/best inputs=[photo.jpg,folder/,clip.mp4] out=runs/predict
    python pipelines/predict.py checkpoint=runs/poster_pp/best inputs=[clip.mp4] fps=5 cam=true \
        pokerface_checkpoint=runs/pfvit/best device=cuda

Every face is detected (MTCNN, or detector=yunet) and aligned as in the shards, then classified. Writes
out/predictions.jsonl (one line per image or sampled frame; no-face and unreadable inputs are lines too),
out/faces.csv (photos: one row per face, and a noted row per photo without one),
out/annotated/*.jpg, out/videos/<name>.csv and .mp4 (per-frame, per-face, smoothed per face track),
out/pokerfaces/, out/cams/ when asked, and out/summary.json.
"""

from ..config import parse_stage_args
from ..errors import cli_entry
from ..schemas.predict import PREDICT_LEGACY, PredictConfig


@cli_entry
def main(argv=None) -> int:
    cfg = parse_stage_args(PredictConfig, argv, __doc__, legacy=PREDICT_LEGACY)
    # Imported after the parsing, so that --help, --print-config and a bad key answer without loading torch.
    from ..predict import predict

    counts = predict(cfg)
    print(f"{counts['images']} images, {counts['videos']} videos ({counts['frames']} frames): {counts['faces']} "
          f"faces, {counts['no_face']} without a face, {counts['errors']} unreadable")
    return 0
