"""Poker-face quality, measured (seed 004 shows pictures only; these are the numbers behind them).

On shards whose samples carry the true neutral twin (``neutral.jpg``, the synthetic source):

* PSNR / SSIM of the poker face x̃ vs the twin, next to the input x vs the twin and the reconstruction x̂ vs the
  twin, over the expressive (non-neutral) faces. x̂ and x̃ come from the same generator with the same blur, so
  "x̃ is closer to the twin than x̂ is" isolates the removal of the expression from the generator's fidelity;
* the same PSNRs over the **expression region** only — the pixels where x and its twin differ (by more than
  ``REGION_THRESHOLD``, above JPEG noise). Over the whole image x is the twin except there, so a generated face
  cannot beat x on whole-image PSNR before it reproduces background and identity pixel for pixel; inside the
  region x is, by construction, wrong, and a poker face that removed the expression is closer to the twin;
* the share of poker faces that an independent classifier (``judge``) calls neutral, next to its share on the
  inputs, on the reconstructions (what G's blur alone does to its verdict) and, with twins, on the true neutral
  twins: a perfect poker face's share, the most ``judge_neutral_poker`` can reach with this judge;
* identity preservation: the FR cosine of x̃ vs x when an FR network is given, otherwise SSIM(x̃, x) as a
  pixel-space proxy (named in the output);
* the reconstruction error of x̂ (MSE and PSNR vs x), which is all that real data without twins allows besides
  the neutral share.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from PIL import Image

from ..data.shards import EvalDataset
from ..data.transforms import denormalize, eval_transform
from ..errors import UserError
from ..devices import resolve_device
from ..labels import NEUTRAL
from ..models.registry import load_model
from .plots import image_grid
from .reconstruction import masked_psnr


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR (dB) of [0, 1] images ``a`` against ``b``; +inf where they are identical."""
    from torchmetrics.functional.image import peak_signal_noise_ratio  # imported on use (see eval/metrics.py)

    return peak_signal_noise_ratio(a, b, data_range=1.0, reduction="none", dim=(1, 2, 3))


REGION_THRESHOLD = 0.1  # of the [0, 1] range: above the JPEG error between a twin pair's unchanged pixels


def judged_neutral(judge, images01: torch.Tensor) -> torch.Tensor:
    """Whether ``judge`` (a :class:`~pfvit.inference.Classifier` whose class 0 is neutral) calls each [0, 1] image
    neutral, read as the 8-bit image a user would save."""
    return judge(judge.preprocess((images01 * 255).round().byte())).argmax(-1) == NEUTRAL


def expression_region(inputs: torch.Tensor, twins: torch.Tensor) -> torch.Tensor:
    """1 where ``inputs`` and ``twins`` differ by more than ``REGION_THRESHOLD`` in some channel, per pixel (all
    channels), else 0."""
    return ((inputs - twins).abs().amax(1, keepdim=True) > REGION_THRESHOLD).expand_as(inputs).float()


def expression_region_psnr(images: torch.Tensor, inputs: torch.Tensor, twins: torch.Tensor,
                           outside: bool = False) -> torch.Tensor:
    """PSNR of ``images`` vs ``twins`` over each sample's expression region (or, ``outside``, over the rest of the
    image); NaN for a sample without such pixels."""
    region = expression_region(inputs, twins)
    return masked_psnr(images, twins, 1 - region if outside else region)


def _ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    from torchmetrics.functional.image import structural_similarity_index_measure  # imported on use

    return structural_similarity_index_measure(a, b, data_range=1.0, reduction="none")


def _mean(values: torch.Tensor) -> float | None:
    """Mean over the finite entries: region measures are NaN where the expression changed no pixel, and PSNR is
    infinite for a face identical to its twin (an expression too faint to show at a small size)."""
    values = values[values.isfinite()]
    return values.mean().item() if values.numel() else None


@torch.no_grad()
def pokerface_metrics(model, shards: str, split: str, *, batch_size: int = 32, judge=None, fr=None,
                      device: str | torch.device = "auto", limit: int | None = None,
                      sheet: str | Path | None = None, sheet_rows: int = 8) -> dict:
    """The measures above for ``split`` of ``shards`` (the first ``limit`` samples when given). ``model`` is a
    :class:`~pfvit.models.pfvit.PokerFaceViT`; ``judge`` a :class:`~pfvit.inference.Classifier` whose class 0 is
    neutral; ``fr`` a :class:`~pfvit.models.facerec.FrozenFaceEmbedder`. ``sheet``: a PNG of input | poker face
    | reconstruction (| true neutral), expressive faces first. ``device``: auto is CUDA when there is one.

    Over every face: the reconstruction's PSNR and MSE vs the input, identity. Over the expressive faces: every
    ``*_vs_twin*`` measure and the judge's neutral shares of poker faces and inputs. Over the neutral faces (whose
    twin is the input): ``*_neutral_inputs``, the poker face and the reconstruction against the input."""
    device = resolve_device(device)
    model = model.to(device).eval()
    transform = eval_transform(model.img_size)
    data = EvalDataset(shards, split, lambda s: s)
    count = len(data) if limit is None else min(limit, len(data))
    acc: dict[str, list[torch.Tensor]] = {}
    rows, neutral_rows, has_twins = [], [], True

    def add(name: str, values: torch.Tensor) -> None:
        acc.setdefault(name, []).append(values.float().cpu())

    for start in range(0, count, batch_size):
        samples = [data[i] for i in range(start, min(start + batch_size, count))]
        x = torch.stack([transform(s["jpg"]) for s in samples]).to(device)
        labels = torch.tensor([s["cls"] for s in samples])
        out = model(x, render_emotion=False)
        x01, rec01, poker01 = denormalize(x), denormalize(out["reconstruction"].float()), \
            denormalize(out["poker_face"].float())
        add("label", labels)
        add("rec_mse", (rec01 - x01).pow(2).flatten(1).mean(1))
        add("psnr_reconstruction_vs_input", psnr(rec01, x01))
        add("psnr_poker_vs_input", psnr(poker01, x01))
        add("identity", (fr(poker01) * fr(x01)).sum(-1) if fr is not None else _ssim(poker01, x01))
        if judge is not None:
            add("judge_neutral_poker", judged_neutral(judge, poker01))
            add("judge_neutral_input", judged_neutral(judge, x01))
            add("judge_neutral_reconstruction", judged_neutral(judge, rec01))
        twins = None
        has_twins = has_twins and all("neutral.jpg" in s for s in samples)
        if has_twins:
            twins = denormalize(torch.stack([transform(s["neutral.jpg"]) for s in samples]).to(device))
            if judge is not None:
                add("judge_neutral_twin", judged_neutral(judge, twins))
            for name, img in (("poker", poker01), ("input", x01), ("reconstruction", rec01)):
                add(f"psnr_{name}_vs_twin", psnr(img, twins))
                add(f"ssim_{name}_vs_twin", _ssim(img, twins))
                add(f"psnr_{name}_vs_twin_expression_region", expression_region_psnr(img, x01, twins))
                add(f"psnr_{name}_vs_twin_outside_expression_region",
                    expression_region_psnr(img, x01, twins, outside=True))
        for i in range(len(samples)):
            row = [x01[i], poker01[i], rec01[i]] + ([twins[i]] if twins is not None else [])
            (neutral_rows if labels[i] == NEUTRAL else rows).append(row)

    values = {k: torch.cat(v) for k, v in acc.items()}
    labels = values.pop("label")
    expressive, neutral = labels != NEUTRAL, labels == NEUTRAL
    result: dict = {"samples": count, "expressive_samples": int(expressive.sum()),
                    "neutral_samples": int(neutral.sum()),
                    "identity_measure": f"fr_cosine:{fr.name}" if fr is not None else "ssim_poker_vs_input",
                    "has_twins": has_twins}
    rec_psnr, poker_psnr = values.pop("psnr_reconstruction_vs_input"), values.pop("psnr_poker_vs_input")
    result.update(rec_mse=_mean(values.pop("rec_mse")), psnr_reconstruction_vs_input=_mean(rec_psnr),
                  identity=_mean(values.pop("identity")))
    if neutral.any():
        result["psnr_poker_vs_input_neutral_inputs"] = _mean(poker_psnr[neutral])
        result["psnr_reconstruction_vs_input_neutral_inputs"] = _mean(rec_psnr[neutral])
    for name, v in values.items():  # judge shares and twin measures: over the expressive faces
        if expressive.any() and (has_twins or "_vs_twin" not in name):
            mean = _mean(v[expressive])
            if mean is not None:
                result[name] = mean
    if judge is not None and neutral.any():
        result["judge_neutral_poker_neutral_inputs"] = _mean(values["judge_neutral_poker"][neutral])
    if has_twins and expressive.any():
        result["expressive_inputs_identical_to_twin"] = int(values["psnr_input_vs_twin"][expressive].isinf().sum())
        result["poker_faces_identical_to_twin"] = int(values["psnr_poker_vs_twin"][expressive].isinf().sum())

        def mean_db(key: str) -> float | None:
            """The mean PSNR, or +inf where every face is identical to its twin (no finite value to average)."""
            defined = values[key][expressive]
            defined = defined[~defined.isnan()]
            return result.get(key, math.inf if defined.numel() and defined.isposinf().all() else None)

        for flag, poker_key, other_key in (
                ("poker_closer_to_twin_than_input", "psnr_poker_vs_twin", "psnr_input_vs_twin"),
                ("poker_closer_to_twin_than_reconstruction", "psnr_poker_vs_twin", "psnr_reconstruction_vs_twin"),
                ("poker_closer_to_twin_than_input_in_expression_region", "psnr_poker_vs_twin_expression_region",
                 "psnr_input_vs_twin_expression_region")):
            poker_db, other_db = mean_db(poker_key), mean_db(other_key)
            if poker_db is not None and other_db is not None:
                result[flag] = poker_db > other_db
    if sheet is not None and rows + neutral_rows:
        shown = rows[:sheet_rows - min(2, len(neutral_rows))]
        shown += neutral_rows[:sheet_rows - len(shown)]
        titles = ["input", "poker face", "reconstruction"] + (["true neutral"] if len(shown[0]) == 4 else [])
        image_grid(shown, sheet, titles=titles)
    return result


def _image_files(path: Path) -> list[Path]:
    """A file, or every non-hidden file under a folder (what cannot be decoded is skipped with its reason)."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise UserError(f"images={path} is neither an image file nor a folder")
    return sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))


@torch.no_grad()
def generate_poker_faces(checkpoint: str | Path, out: str | Path, *, shards: str | None = None,
                         split: str = "test", images: str | None = None, limit: int | None = None,
                         batch_size: int = 32, device: str = "auto") -> dict:
    """Poker faces of shard samples or of pre-aligned face images → ``out/<name>_poker.png`` and ``out/sheet.png``
    (input | poker face | reconstruction). Unreadable files are listed in ``out/skipped.json`` with the reason."""
    from ..data.sources.folder import load_rgb

    if (shards is None) == (images is None):
        raise UserError("give exactly one input: shards=DIR (with split=…) or images=FILE_OR_FOLDER")
    device = resolve_device(device)
    model = load_model(checkpoint, expected="pfvit").to(device)
    transform = eval_transform(model.img_size)
    faces: list[tuple[str, object]] = []
    skipped: list[dict] = []
    if shards is not None:
        data = EvalDataset(shards, split, lambda s: s)
        for i in range(len(data) if limit is None else min(limit, len(data))):
            sample = data[i]
            faces.append((sample["__key__"], sample["jpg"]))
    else:
        for path in _image_files(Path(images))[:limit]:
            try:
                faces.append((path.stem, load_rgb(str(path))))
            except (ValueError, OSError) as err:
                skipped.append({"path": str(path), "reason": str(err)})
                print(f"skipped {path}: {err}", flush=True)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for start in range(0, len(faces), batch_size):
        chunk = faces[start:start + batch_size]
        x = torch.stack([transform(img) for _, img in chunk]).to(device)
        result = model(x, render_emotion=False)
        x01, poker01, rec01 = (denormalize(t.float()) for t in (x, result["poker_face"], result["reconstruction"]))
        for (name, _), inp, poker, rec in zip(chunk, x01, poker01, rec01):
            arr = (poker.permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype("uint8")
            Image.fromarray(arr).save(out / f"{name}_poker.png")
            if len(rows) < 16:
                rows.append([inp, poker, rec])
    if rows:
        image_grid(rows, out / "sheet.png", titles=("input", "poker face", "reconstruction"))
    summary = {"checkpoint": str(checkpoint), "generated": len(faces), "skipped": skipped}
    (out / "skipped.json").write_text(json.dumps(skipped, indent=2))
    return summary
