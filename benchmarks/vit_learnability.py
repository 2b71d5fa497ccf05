"""How fast a ViT learns the synthetic expressions, next to the small CNN, for a fixed step budget (issue 7).

The same 64x64 images (disjoint identities) go to a 4-layer CNN and to timm ViTs trained from scratch, in three
versions of the data: as shipped; without any disturbance (``disturbance=0``: no roll / shift / scale, lighting,
background colour or texture, noise or occluder); and without disturbance at full expression intensity.
Optionally a ViT starts from an encoder state (``--init``, e.g. a pfvit MAE's ``encoder_state``).

    python benchmarks/vit_learnability.py [--steps 200] [--data as_shipped,calm,calm_full] [--vits 6:token:1e-3]
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch

from common import report
from pfvit.data.synthetic import AU_NAMES, CANONICAL, PROTOTYPES, Expression, synthetic_samples
from pfvit.eval.probe import accuracy, cnn_probe_accuracy, to_tensor_batch, train_probe
from pfvit.models.vit import build_vit

SIZE, PATCH = 64, 8


def full_intensity(sample):
    if sample.expression.intensity == 0:
        return sample
    proto = PROTOTYPES[CANONICAL[sample.label]]
    return dataclasses.replace(sample, expression=Expression(sample.label, 1.0, {k: proto.get(k, 0.0)
                                                                                  for k in AU_NAMES}))


# name: (disturbance strength, every expression at intensity 1)
VARIANTS = {"as_shipped": (1.0, False), "calm": (0.0, False), "calm_full": (0.0, True)}


def tensors(samples, full: bool) -> tuple[torch.Tensor, torch.Tensor]:
    x = to_tensor_batch([(full_intensity(s) if full else s).image(SIZE) for s in samples])
    return (x - 0.45) / 0.25, torch.tensor([s.label for s in samples])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--num", type=int, default=3000, help="faces (100 identities, 80/10/10 split)")
    parser.add_argument("--data", default="as_shipped,calm,calm_full")
    parser.add_argument("--vits", default="6:token:1e-3", help="depth:pool:lr, comma-separated")
    parser.add_argument("--init", help="an encoder state dict (.pt) for every ViT")
    args = parser.parse_args()
    torch.set_num_threads(2)
    rows = []
    for variant in args.data.split(","):
        disturbance, full = VARIANTS[variant]
        samples = synthetic_samples(args.num, 100, seed=0, disturbance=disturbance)
        x_tr, y_tr = tensors(samples["train"], full)
        x_te, y_te = tensors(samples["test"], full)
        start = time.perf_counter()
        acc = cnn_probe_accuracy(x_tr, y_tr, x_te, y_te, num_classes=8, steps=args.steps)
        rows.append([variant, "4-layer CNN", args.steps, f"{acc:.3f}", f"{time.perf_counter() - start:.0f}"])
        for spec in args.vits.split(","):
            depth, pool, lr = spec.split(":")
            torch.manual_seed(0)
            vit = build_vit(img_size=SIZE, patch_size=PATCH, depth=int(depth), num_classes=8, global_pool=pool)
            if args.init:
                missing, unexpected = vit.load_state_dict(torch.load(args.init), strict=False)
                if unexpected or any(not k.startswith("head.") for k in missing):
                    raise SystemExit(f"--init {args.init} does not fit a ViT-T/{PATCH} at {SIZE} px "
                                     f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
            start = time.perf_counter()
            acc = accuracy(train_probe(vit, x_tr, y_tr, args.steps, max_lr=float(lr), weight_decay=0.05), x_te, y_te)
            name = f"ViT-T/{PATCH} depth {depth}, {pool} pool, lr {lr}" + (" (from --init)" if args.init else "")
            rows.append([variant, name, args.steps, f"{acc:.3f}", f"{time.perf_counter() - start:.0f}"])
            print(rows[-1], flush=True)
    report(f"Synthetic faces: ViT vs CNN learnability at {SIZE} px, batch 64, {len(y_te)} test faces (chance 0.125)",
           ["data", "model", "steps", "test accuracy", "seconds"], rows,
           "From scratch, AdamW + one-cycle. 'calm': --disturbance 0; 'calm_full': the same at intensity 1.")


if __name__ == "__main__":
    main()
