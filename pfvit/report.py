"""One report of a chain's run folder: every evaluated model's metrics, parameters and images/s, the poker-face
measures, and the pictures (MAE reconstructions, PF-ViT samples and poker faces, confusion matrices, loss curves,
CAM sheet, annotated photo) → ``report.md`` and ``report.html`` side by side, with relative links."""

from __future__ import annotations

import html
import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from .errors import UserError
from .inference import load_classifier

# Stage folders of a chain run and their display names, in pipeline order.
MODELS = (("vit", "ViT baseline"), ("pfvit", "PF-ViT (E+S+C)"), ("poster_pp", "POSTER++"),
          ("poster_var", "POSTER-Var"))


@dataclass
class ReportConfig:
    run: str = "runs/demo"
    title: str = "pfvit demo on synthetic faces"
    split: str = "test"
    checkpoint: str = "best"  # the folder the chain evaluated (best, or last where nothing was selected)
    speed_batch: int = 32
    speed_repeats: int = 3


def images_per_second(clf, batch: int, repeats: int) -> float:
    """Classifier forward throughput on this machine's CPU / GPU at ``batch`` (after one warm-up batch)."""
    clf = clf.to("cuda" if torch.cuda.is_available() else "cpu")
    x = torch.randn(batch, 3, clf.img_size, clf.img_size, device=clf.mean.device)
    with torch.no_grad():
        clf(x)
        start = time.perf_counter()
        for _ in range(repeats):
            clf(x)
        if x.is_cuda:
            torch.cuda.synchronize()
    return batch * repeats / (time.perf_counter() - start)


def _latest(folder: Path, pattern: str) -> Optional[Path]:
    found = sorted(folder.glob(pattern))
    return found[-1] if found else None


def _deployed(run: Path, name: str, checkpoint: str) -> Path:
    """The checkpoint a user deploys: PF-ViT's exported classifier, else the evaluated one."""
    exported = run / name / "classifier"
    return exported if (exported / "meta.json").is_file() else run / name / checkpoint


def collect(cfg: ReportConfig) -> list[tuple]:
    """The report as blocks: ("h", text), ("p", text), ("table", header, rows), ("img", path, caption)."""
    run = Path(cfg.run)
    blocks: list[tuple] = [("h", cfg.title),
                           ("p", f"Run folder `{run}`, split `{cfg.split}`; images/s measured on "
                                 f"{'GPU' if torch.cuda.is_available() else 'CPU'} ({platform.processor() or platform.machine()}, "
                                 f"torch {torch.__version__}, {torch.get_num_threads()} threads) at batch "
                                 f"{cfg.speed_batch}.")]
    rows, found = [], []
    for name, title in MODELS:
        metrics_file = run / name / f"eval_{cfg.split}" / "metrics.json"
        if not metrics_file.is_file():
            continue
        m = json.loads(metrics_file.read_text())
        ckpt = _deployed(run, name, cfg.checkpoint)
        meta = json.loads((ckpt / "meta.json").read_text())
        clf = load_classifier(ckpt)
        params = sum(p.numel() for p in clf.model.parameters()) / 1e6
        speed = images_per_second(clf, cfg.speed_batch, cfg.speed_repeats)
        chance = 1 / len(m["class_names"])
        rows.append([title, f"{m['accuracy']:.3f}", f"{m['mean_class_accuracy']:.3f}", f"{m['macro_f1']:.3f}",
                     f"{chance:.3f}", str(m["num_samples"]), f"{params:.2f}", f"{speed:.1f}",
                     f"`{ckpt}` ({meta['model']})"])
        found.append((name, title, m))
    if not rows:
        raise UserError(f"no evaluated model under {run} (expected {run}/<stage>/eval_{cfg.split}/metrics.json)")
    blocks += [("h2", "Models"),
               ("table", ["model", "accuracy", "mean class acc.", "macro-F1", "chance", "samples", "params (M)",
                          "images/s", "checkpoint"], rows)]
    poker = next((m["pokerface"] for name, _, m in found if "pokerface" in m), None)
    if poker is not None:
        prow = [[k, f"{v:.4f}" if isinstance(v, float) else str(v)] for k, v in poker.items()
                if not isinstance(v, (dict, list))]
        blocks += [("h2", "Poker faces (PF-ViT)"),
                   ("p", "PSNR / SSIM against each face's true neutral twin: a poker face should be closer to the twin "
                         "than the expressive input is where the two differ "
                         "(`poker_closer_to_twin_than_input_in_expression_region`), and closer than the reconstruction "
                         "from the same generator (`poker_closer_to_twin_than_reconstruction`)."),
                   ("table", ["measure", "value"], prow)]
    pictures = [(_latest(run / "mae" / "reconstructions", "*.png"), "MAE reconstructions (masked | reconstruction | input)"),
                (_latest(run / "pfvit" / "samples", "*.png"), "PF-ViT samples during training"),
                (run / "pfvit" / f"eval_{cfg.split}" / "pokerface.png", "Poker faces with their true neutral twins")]
    for name, title, _ in found:
        pictures.append((run / name / f"eval_{cfg.split}" / "confusion.png", f"{title}: confusion matrix"))
    for name, title in (("mae", "MAE"), *MODELS):
        pictures.append((run / name / "loss.png", f"{title}: loss curves"))
    for name, title, _ in found:
        pictures.append((run / name / f"eval_{cfg.split}" / "cam.png", f"{title}: GradCAM++ sheet"))
    pictures.append((_latest(run / "predict" / "annotated", "*.jpg"), "predict.py on a photo"))
    blocks.append(("h2", "Pictures"))
    blocks += [("img", p, caption) for p, caption in pictures if p is not None and p.is_file()]
    return blocks


def _relative(path: Path, base: Path) -> str:
    return str(Path(path).resolve().relative_to(base.resolve())) if Path(path).resolve().is_relative_to(
        base.resolve()) else str(Path(path).resolve())


def to_markdown(blocks: list[tuple], base: Path) -> str:
    out = []
    for block in blocks:
        kind = block[0]
        if kind == "h":
            out.append(f"# {block[1]}\n")
        elif kind == "h2":
            out.append(f"## {block[1]}\n")
        elif kind == "p":
            out.append(block[1] + "\n")
        elif kind == "table":
            header, rows = block[1], block[2]
            out.append("| " + " | ".join(header) + " |")
            out.append("|" + "---|" * len(header))
            out += ["| " + " | ".join(r) + " |" for r in rows]
            out.append("")
        elif kind == "img":
            out.append(f"**{block[2]}**\n\n![{block[2]}]({_relative(block[1], base)})\n")
    return "\n".join(out)


def to_html(blocks: list[tuple], base: Path) -> str:
    def inline(text: str) -> str:
        parts = html.escape(text).split("`")
        return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))

    body = []
    for block in blocks:
        kind = block[0]
        if kind in ("h", "h2"):
            tag = "h1" if kind == "h" else "h2"
            body.append(f"<{tag}>{inline(block[1])}</{tag}>")
        elif kind == "p":
            body.append(f"<p>{inline(block[1])}</p>")
        elif kind == "table":
            head = "".join(f"<th>{inline(h)}</th>" for h in block[1])
            rows = "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) + "</tr>" for r in block[2])
            body.append(f"<table><tr>{head}</tr>{rows}</table>")
        elif kind == "img":
            src = html.escape(_relative(block[1], base))
            body.append(f"<figure><img src=\"{src}\" alt=\"{html.escape(block[2])}\">"
                        f"<figcaption>{inline(block[2])}</figcaption></figure>")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #bbb;padding:3px 8px;text-align:left}img{max-width:100%}")
    return (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>pfvit report</title><style>{style}"
            f"</style></head><body>{''.join(body)}</body></html>\n")


def write_report(cfg: ReportConfig) -> tuple[Path, Path]:
    run = Path(cfg.run)
    blocks = collect(cfg)
    md, page = run / "report.md", run / "report.html"
    md.write_text(to_markdown(blocks, run))
    page.write_text(to_html(blocks, run))
    return md, page
