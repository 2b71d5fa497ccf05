"""Parameters, FLOPs and images/s of POSTER, POSTER++ and POSTER-Var on both backbone families, next to the papers'
figures (POSTER++: 43.7 M parameters, 8.4 GFLOPs at 224 px). FLOPs by torch's FlopCounterMode, which counts 2
per multiply-add (so 8.4 G "FLOPs" as multiply-adds in the papers' thop convention is 16.8 G here).

    python benchmarks/poster.py [--batch 32]
"""

from __future__ import annotations

import argparse

import torch
from torch.utils.flop_counter import FlopCounterMode

from common import rate, report
from pfvit.models.poster.poster import poster_config
from pfvit.models.registry import build_model

CASES = [("poster", "face", "vit_tiny", 224), ("poster++", "face", "vit_tiny", 224),
         ("poster-var", "face", "vit_tiny", 224), ("poster++", "encoder", "vit_tiny", 112),
         ("poster-var", "encoder", "vit_tiny", 112), ("poster++", "encoder", "vit_small", 224)]
PAPER = {("poster", "face"): "71.8 M / 15.7 G", ("poster++", "face"): "43.7 M / 8.4 G"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    rows = []
    for variant, backbone, arch, size in CASES:
        name, config = poster_config(variant, 7, backbone, arch=arch, img_size=size)
        model = build_model(name, config).eval().to(device)
        params = sum(p.numel() for p in model.parameters()) / 1e6
        x1 = torch.randn(1, 3, size, size, device=device)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x1)
        gflops = counter.get_total_flops() / 1e9
        xb = torch.randn(args.batch, 3, size, size, device=device)

        def forward(x):
            with torch.no_grad():
                model(x)
            if device == "cuda":
                torch.cuda.synchronize()

        speed1 = rate(lambda: forward(x1), 1, min_seconds=2.0)
        speedb = rate(lambda: forward(xb), args.batch, min_seconds=3.0)
        backbone_name = "IR-50 + MobileFaceNet" if backbone == "face" else f"{arch} encoder (E+S)"
        rows.append([variant, backbone_name, size, f"{params:.2f}", f"{gflops:.2f}", f"{gflops / 2:.2f}",
                     f"{speed1:.1f}", f"{speedb:.1f}", PAPER.get((variant, backbone), "")])
        print(rows[-1], flush=True)
    report("POSTER family: parameters, FLOPs, images/s",
           ["variant", "backbone", "px", "params (M)", "GFLOPs (2/MAC)", "GMACs", "img/s b1", f"img/s b{args.batch}",
            "paper (params / GFLOPs)"], rows,
           notes="FLOPs for one image from torch.utils.flop_counter (2 FLOPs per multiply-add); GMACs = half. "
                 "The papers count with thop (multiply-adds), so compare their GFLOPs with the GMACs column. "
                 "Parameters exclude the release's dead layers (unused patch embedding, Conv1d token mixers, "
                 "ECA, IR-50 output layer, MobileFaceNet's landmark head).")


if __name__ == "__main__":
    main()
