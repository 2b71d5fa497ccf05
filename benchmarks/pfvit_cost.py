"""The cost of PF-ViT's auxiliary task: training images/s of one PF-ViT step (generator step + discriminator step,
optionally with the frozen FR network) against one ViT fine-tune step of the same encoder (Adam, CE), and the
inference speed of PF-ViT's exported classifier (E + S + C) against the plain ViT baseline.

    python benchmarks/pfvit_cost.py [--arch vit_tiny] [--size 112] [--batch 16]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from common import rate, report
from pfvit.models.facerec import build_face_embedder
from pfvit.models.mae import arch_config
from pfvit.models.pfvit import Discriminator, PokerFaceViT, discriminator_part
from pfvit.models.vit import build_vit
from pfvit.train.pfvit_train import discriminator_loss, frozen, generator_losses
from pfvit.schemas.pfvit import PFLossConfig



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--arch", default="vit_tiny")
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    torch.manual_seed(0)
    k, b = 8, args.batch
    config = arch_config(args.arch, img_size=args.size, patch_size=16, num_classes=k)
    model, disc = PokerFaceViT(**config), Discriminator(**discriminator_part(config))
    vit = build_vit(img_size=args.size, patch_size=16, embed_dim=config["embed_dim"], depth=config["depth"],
                    num_heads=config["num_heads"], num_classes=k)
    x, y = torch.randn(b, 3, args.size, args.size), torch.randint(0, k, (b,))
    g_opt, d_opt = torch.optim.Adam(model.parameters(), 2e-5), torch.optim.Adam(disc.parameters(), 1e-4, (0.5, 0.999))
    v_opt = torch.optim.Adam(vit.parameters(), 1e-4)

    def vit_step():
        loss = F.cross_entropy(vit(x), y)
        v_opt.zero_grad()
        loss.backward()
        v_opt.step()

    def pfvit_step(fr=None):
        losses, out = generator_losses(model, disc, fr, x, y, PFLossConfig(), k)
        g_opt.zero_grad()
        losses["total"].backward()
        g_opt.step()
        d_loss = discriminator_loss(disc, x, out, y, k)
        d_opt.zero_grad()
        d_loss.backward()
        d_opt.step()

    fr = build_face_embedder("inception_resnet_v1", None)
    vit_rate = rate(vit_step, b, 8.0)
    rows = [["ViT fine-tune step (E + linear head)", f"{vit_rate:.1f}", "1.00"]]
    for name, fn in (("PF-ViT step, no FR", pfvit_step), ("PF-ViT step + InceptionResnetV1 FR",
                                                          lambda: pfvit_step(fr))):
        r = rate(fn, b, 8.0)
        rows.append([name, f"{r:.1f}", f"{vit_rate / r:.2f}"])

    classifier = model.classifier.eval()
    vit.eval()
    with torch.inference_mode(), frozen(model):
        for batch in (1, 32):
            xb = torch.randn(batch, 3, args.size, args.size)
            base = rate(lambda: vit(xb), batch, 4.0)
            ours = rate(lambda: classifier(xb), batch, 4.0)
            rows.append([f"inference batch {batch}: exported E+S+C vs ViT baseline", f"{ours:.1f} vs {base:.1f}",
                         f"{base / ours:.2f}"])
    report(f"PF-ViT cost ({args.arch}, {args.size} px, batch {b}, CPU)", ["what", "images/s", "cost × ViT"], rows,
           "Training: one optimizer step each, fp32. PF-ViT = E/S/G/C step (x̂, x̃ and, with FR, the emotion image "
           "through G; D read on x̂, x̃) + D step on x, x̂, x̃. Inference: the export drops G and D, so it should "
           "cost the same as the baseline (the SE gate adds two small Linears).")


if __name__ == "__main__":
    main()
