"""One report of a chain's run folder: every evaluated model's metrics, parameters and images/s, the poker-face
measures, and the pictures (MAE reconstructions, PF-ViT samples and poker faces, confusion matrices, loss curves,
CAM sheet, annotated photo) → ``report.md`` and ``report.html`` side by side, with relative links."""

from __future__ import annotations

import html
import json
import platform
import time
from pathlib import Path
from typing import Optional

import torch

from .errors import UserError
from .inference import load_classifier
from .schemas.report import ReportConfig

# Stage folders of a chain run and their display names, in pipeline order.
MODELS = (("vit", "ViT baseline"), ("pfvit", "PF-ViT (E+S+C)"), ("poster_pp", "POSTER++"),
          ("poster_var", "POSTER-Var"))


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


def poker_blocks(poker: dict) -> list:
    """The poker-face section: what the measures mean depends on whether the shards carry true neutral twins (the
    synthetic faces) or not (real faces: fidelity, identity and the judge are all there is to measure)."""
    rows = [[k, f"{v:.4f}" if isinstance(v, float) else str(v)] for k, v in poker.items()
            if not isinstance(v, (dict, list))]
    if poker.get("has_twins", True):
        text = ("PSNR / SSIM against each face's true neutral twin: a poker face should be closer to the twin than "
                "the expressive input is where the two differ "
                "(`poker_closer_to_twin_than_input_in_expression_region`), and closer than the reconstruction from "
                "the same generator (`poker_closer_to_twin_than_reconstruction`).")
    else:
        text = ("These faces have no true neutral twins, so whether the expression was removed is measured by the "
                "judge alone (`judge_neutral_poker` against `judge_neutral_input`: the share of poker faces and of "
                "their inputs it calls neutral), whether the person was kept by `identity` (poker face against "
                "input, by `identity_measure`), and G's fidelity by `psnr_reconstruction_vs_input`.")
    return [("h2", "Poker faces (PF-ViT)"), ("p", text), ("table", ["measure", "value"], rows)]


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
        # The paper protocol: selected on the reported split (a last/ checkpoint is selected on nothing).
        if cfg.checkpoint != "last" and m.get("selected_on") == cfg.split:
            title = f"{title} — paper protocol, selected on {cfg.split}"
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
        blocks += poker_blocks(poker)
    blocks += study_blocks(run, cfg.split)
    pictures = [(run / "mae" / f"eval_{cfg.split}" / "reconstructions.png",
                 f"MAE reconstructions of {cfg.split} faces (input | masked | reconstruction | pasted)"),
                (_latest(run / "mae" / "reconstructions", "*.png"),
                 "MAE reconstructions during training (input | masked | reconstruction | pasted)"),
                (_latest(run / "pfvit" / "samples", "*.png"), "PF-ViT samples during training"),
                (run / "pfvit" / f"eval_{cfg.split}" / "pokerface.png",
                 "Poker faces with their true neutral twins" if poker is None or poker.get("has_twins", True)
                 else "Poker faces (input | poker face | reconstruction)")]
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


def _json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _seed_runs(run: Path, name: str) -> list[Path]:
    """A stage's run folders over seeds: NAME (seed 0) and NAME_seedN, in seed order."""
    extra = sorted(run.glob(f"{name}_seed*"), key=lambda p: int(p.name.rsplit("seed", 1)[1]))
    return [p for p in [run / name, *extra] if p.is_dir()]


def _mean_spread(values: list[float]) -> str:
    t = torch.tensor(values, dtype=torch.float64)
    spread = t.std().item() if len(values) > 1 else 0.0
    return f"{t.mean().item():.3f} ± {spread:.3f} (min {t.min().item():.3f}, max {t.max().item():.3f})"


def study_targets(run: Path, split: str) -> list[list[str]]:
    """Issue 20's targets against what the run measured: [target, measured, bound, met]."""
    rows = []

    def target(name: str, value: float | None, bound: str, met: bool | None, fmt: str = "{:.2f}") -> None:
        rows.append([name, "—" if value is None else fmt.format(value), bound,
                     "—" if met is None else ("yes" if met else "**no**")])

    mae = _json(run / "mae" / f"eval_{split}" / "metrics.json")
    if mae is not None:
        gain = mae["gain_over_mean_face_db"]
        target("MAE: masked patches, gain over the mean face (dB)", gain, "≥ 3", gain >= 3)
    poker = (_json(run / "pfvit" / f"eval_{split}" / "metrics.json") or {}).get("pokerface")
    if poker is not None:
        g = poker["psnr_reconstruction_vs_input"]
        target("G: x̂ = G(V_e + V_p) vs input (dB)", g, "≥ 25", g >= 25)
        region = {k: poker.get(f"psnr_{k}_vs_twin_expression_region") for k in ("poker", "input", "reconstruction")}
        if None not in region.values():
            d_in, d_rec = region["poker"] - region["input"], region["poker"] - region["reconstruction"]
            target("poker face vs twin in the expression region, minus input vs twin (dB)", d_in, "≥ 4", d_in >= 4)
            target("… minus reconstruction vs twin (dB)", d_rec, "≥ 2", d_rec >= 2)
        outside = poker.get("psnr_poker_vs_twin_outside_expression_region")
        if outside is not None:
            target("poker face vs twin outside the expression region (dB)", outside, "≥ 24", outside >= 24)
        if "psnr_poker_vs_input_neutral_inputs" in poker:
            gap = poker["psnr_poker_vs_input_neutral_inputs"] - poker["psnr_reconstruction_vs_input_neutral_inputs"]
            target("neutral inputs: PSNR(x̃, x) − PSNR(x̂, x) (dB)", gap, "within ±1", abs(gap) <= 1)
        if "judge_neutral_poker" in poker:
            target("judge: poker faces of expressive faces called neutral", poker["judge_neutral_poker"], "≥ 0.85",
                   poker["judge_neutral_poker"] >= 0.85, "{:.3f}")
            target("judge: those inputs called neutral", poker["judge_neutral_input"], "≤ 0.20",
                   poker["judge_neutral_input"] <= 0.20, "{:.3f}")
            if "judge_neutral_twin" in poker:  # the ceiling of the first judge row, and what G's blur leaves of it
                target("(context) judge: their true neutral twins called neutral", poker["judge_neutral_twin"], "—",
                       None, "{:.3f}")
                target("(context) judge: their reconstructions x̂ called neutral",
                       poker["judge_neutral_reconstruction"], "—", None, "{:.3f}")
    judge = _json(run / "judge" / f"eval_{split}" / "metrics.json")
    if judge is not None:
        target("judge accuracy on the test faces", judge["accuracy"], "≥ 0.85", judge["accuracy"] >= 0.85, "{:.3f}")
    acc = {name: [m["accuracy"] for m in (_json(p / f"eval_{split}" / "metrics.json") for p in _seed_runs(run, name))
                  if m is not None] for name in ("vit", "pfvit")}
    if acc["vit"] and acc["pfvit"]:
        diff = sum(acc["pfvit"]) / len(acc["pfvit"]) - sum(acc["vit"]) / len(acc["vit"])
        target(f"accuracy: PF-ViT − ViT baseline, mean over {len(acc['pfvit'])} / {len(acc['vit'])} seeds", diff,
               "≥ 0", diff >= 0, "{:+.3f}")
    return rows


def study_blocks(run: Path, split: str) -> list[tuple]:
    """The seed table, the targets and the stage times of a study run (``make pfvit-study``); nothing elsewhere."""
    blocks: list[tuple] = []
    seeds = []
    for name, title in MODELS[:2]:
        runs = _seed_runs(run, name)
        metrics = [m for m in (_json(p / f"eval_{split}" / "metrics.json") for p in runs) if m is not None]
        if len(metrics) > 1:
            seeds.append([title, str(len(metrics)), " / ".join(f"{m['accuracy']:.3f}" for m in metrics),
                          _mean_spread([m["accuracy"] for m in metrics])])
    if seeds:
        blocks += [("h2", f"Accuracy over seeds ({split})"),
                   ("table", ["model", "seeds", "accuracy per seed", "mean ± std"], seeds)]
    targets = study_targets(run, split)
    if targets and (run / "judge").is_dir():
        blocks += [("h2", "Targets"), ("table", ["target", "measured", "bound", "met"], targets)]
    times = sorted((run / "times").glob("*.txt"))
    if times:
        rows = [[t.stem, t.read_text().strip()] for t in times]
        total = sum(int(t.read_text().strip() or 0) for t in times)
        blocks += [("h2", "Time of each stage (s, wall)"), ("table", ["stage", "seconds"], rows + [["total", str(total)]])]
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
