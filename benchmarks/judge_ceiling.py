"""What the study's judge can say about poker faces at a given sharpness (issue 20's 85 % target).

The judge calls a poker face of an expressive test face "neutral" or not. A perfect poker face is the face's true
neutral twin, so the judge's neutral share on the twins is the most any PF-ViT can score; a generator that draws
at G's PSNR blurs every face, so the share on the twins blurred to that PSNR is what the judge allows a perfect
removal drawn by such a generator. This script prints, over the expressive test faces of the shards (and over the
neutral ones), the judge's neutral share on: the inputs, the true twins, the twins under a Gaussian blur of a few
widths (with the PSNR that blur leaves), and, for each PF-ViT checkpoint given, its reconstructions x̂ and poker
faces x̃ (with x̂'s PSNR against the input).

    python benchmarks/judge_ceiling.py --judge runs/study2x/judge --shards shards/study \
        --pfvit runs/study2x/pfvit_seed2/best runs/study4x/pfvit/best

Numbers go to docs/results.md (they are accuracy-type numbers, not timings).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from common import markdown_table
from pfvit.data.shards import IndexedShards
from pfvit.data.transforms import denormalize, eval_transform
from pfvit.eval.pokerface import judged_neutral, psnr
from pfvit.inference import load_classifier
from pfvit.labels import NEUTRAL
from pfvit.models.registry import load_model

BLUR_SIGMAS = (0.5, 0.7, 0.9, 1.2)  # pixels at 32 px: the twins' PSNR after them spans G's 22–29 dB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--judge", type=Path, required=True)
    parser.add_argument("--shards", type=Path, required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--pfvit", nargs="*", type=Path, default=[])
    args = parser.parse_args()

    from torchvision.transforms.v2.functional import gaussian_blur

    judge = load_classifier(args.judge)
    data = IndexedShards(args.shards, args.split)
    samples = [data.sample(i) for i in range(len(data))]
    missing = sum("neutral.jpg" not in s for s in samples)
    if missing:
        raise SystemExit(f"error: {missing} of {len(samples)} samples of {args.shards} ({args.split}) carry no true "
                         "neutral twin (neutral.jpg): give synthetic shards, e.g. shards/study")
    models = [load_model(path, expected="pfvit").eval() for path in args.pfvit]
    size = models[0].img_size if models else samples[0]["jpg"].size[0]  # the generator's size, else the shards'
    transform = eval_transform(size)
    x = torch.stack([transform(s["jpg"]) for s in samples])
    twins01 = denormalize(torch.stack([transform(s["neutral.jpg"]) for s in samples]))
    x01 = denormalize(x)
    neutral = torch.tensor([s["cls"] == NEUTRAL for s in samples])

    @torch.no_grad()
    def called_neutral(images01: torch.Tensor) -> tuple[str, str]:
        verdict = judged_neutral(judge, images01)
        return f"{100 * verdict[~neutral].float().mean():.1f} %", f"{100 * verdict[neutral].float().mean():.1f} %"

    rows = [["inputs", "—", *called_neutral(x01)], ["true neutral twins", "—", *called_neutral(twins01)]]
    for sigma in BLUR_SIGMAS:
        blurred = gaussian_blur(twins01, kernel_size=[7, 7], sigma=[sigma, sigma])
        rows.append([f"twins, Gaussian blur σ {sigma} px", f"{psnr(blurred, twins01).mean():.2f}",
                     *called_neutral(blurred)])
    with torch.no_grad():
        for path, model in zip(args.pfvit, models):
            out = model(x, render_emotion=False)
            rec01, poker01 = denormalize(out["reconstruction"].float()), denormalize(out["poker_face"].float())
            rows.append([f"{path}: reconstructions x̂", f"{psnr(rec01, x01).mean():.2f}", *called_neutral(rec01)])
            rows.append([f"{path}: poker faces x̃", "—", *called_neutral(poker01)])
    print(f"judge {args.judge} on {args.shards} {args.split}: {int((~neutral).sum())} expressive, "
          f"{int(neutral.sum())} neutral faces at {size} px")
    print(markdown_table(["images", "PSNR vs their source (dB)", "called neutral: expressive faces' images",
                          "neutral faces' images"], rows))


if __name__ == "__main__":
    main()
