"""GPU readiness in one call: every stage's step, the data path, the demo at GPU scale and the inference paths on
CUDA, each briefly, with throughput and MFU against peaks measured in the same run.

    python benchmarks/gpu_check.py                 # on a CUDA machine (make gpu-check): ~8 min on one H100/H200
    python benchmarks/gpu_check.py --dry-run       # the same code paths at toy size on the CPU, < 1 min
    python benchmarks/gpu_check.py --only peaks,mae --out runs/gpu_check

Sections (``--only`` takes their names):
  peaks      a large bf16 matmul (TFLOP/s) and a device-to-device copy (GB/s): the MFU denominator
  mae        MAE ViT-B/16 at 224 through the pipeline's step (accelerate, bf16 autocast), eager and
             torch.compile: images/s, MFU (FLOPs counted by FlopCounterMode on the same step), peak memory,
             host syncs per step, graph breaks, and the first step's loss next to a CPU fp32 reference
  finetune   ViT-B fine-tune step, PF-ViT-B step (E, S, G, D) with InceptionResnetV1 and with SFace as the FR
             network, POSTER++ on IR-50 + MobileFaceNet and on the ViT encoder: the same columns
  data       synthetic shards → decoded, augmented batches on 16 workers, pinned: images/s against MAE's
  demo       `make demo DEMO_SCALE=gpu` end to end under `accelerate launch --mixed_precision bf16`, every
             report artefact checked (the dry run checks the commands the target would run: tests/test_chain.py
             runs the chain itself on the CPU)
  inference  evaluate, predict on a photo and a short video, retrieval, all with device=auto

Writes OUT/gpu_check.log (everything printed), OUT/gpu_check.json (every row, with errors) and prints the table
last; a real run (not --dry-run) also appends the table to docs/benchmarks.md. A section that fails is a row
with its error, and the script goes on; the exit code is 1 when any section failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import data_path_rate, machine, markdown_table, report  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("peaks", "mae", "finetune", "data", "demo", "inference")
HEADER = ["section", "what", "images/s", "MFU %", "peak GiB", "syncs/step", "notes", "status"]


@dataclass(frozen=True)
class Scale:
    """The sizes of one kind of run: the GPU check proper, or the dry run's toy sizes on the CPU."""

    arch: str
    img_size: int
    patch_size: int
    batch: int
    steps: int            # timed steps per measurement (after warm-up)
    warmup: int
    matmul: int           # N of the N×N×N matmul
    copy_mib: int         # the copied buffer
    shard_faces: int
    data_batches: int
    workers: int
    compile_backend: str  # inductor on the GPU; the dry run traces with dynamo only ("eager": no code generation)


GPU = Scale("vit_base", 224, 16, 64, 20, 5, 8192, 2048, 4096, 40, 16, "inductor")
DRY = Scale("vit_tiny", 32, 8, 4, 1, 0, 256, 8, 64, 4, 2, "eager")


class Tee:
    """Everything printed goes to the terminal and to the log file."""

    def __init__(self, stream, log):
        self.stream, self.log = stream, log

    def write(self, text):
        self.stream.write(text)
        self.log.write(text)
        return len(text)

    def flush(self):
        self.stream.flush()
        self.log.flush()

    def isatty(self):
        return False


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_gib(device: torch.device) -> str:
    return f"{torch.cuda.max_memory_allocated(device) / 2**30:.1f}" if device.type == "cuda" else "n/a"


def timed(fn, steps: int, device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    sync(device)
    return time.perf_counter() - start


@contextlib.contextmanager
def counting_host_syncs(device: torch.device, counter: list):
    """CUDA's sync debug mode warns once per synchronising call (``.item()``, a host copy, …); counted into
    ``counter[0]``. Nothing to count on the CPU."""
    if device.type != "cuda":
        yield
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            yield
        finally:
            torch.cuda.set_sync_debug_mode("default")
    counter[0] += sum("synchroniz" in str(w.message) for w in caught)


def count_flops(fn) -> int:
    """FLOPs of one call (forward + backward: matmuls, convolutions, attention), by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


class Check:
    def __init__(self, scale: Scale, device: torch.device, out: Path, dry: bool):
        self.scale, self.device, self.out, self.dry = scale, device, out, dry
        self.rows: list[dict] = []
        self.peak_flops: float | None = None
        self.mae_rate: float | None = None
        self._run = None

    def row(self, section, what, rate=None, mfu=None, peak="", syncs="", notes="", status="ok", **values):
        """One line of the table; ``values`` go to the JSON file only."""
        record = {"section": section, "what": what, "images_per_s": rate, "mfu": mfu, "peak_gib": peak,
                  "syncs_per_step": syncs, "notes": notes, "status": status, **values}
        self.rows.append(record)
        shown = [section, what, "" if rate is None else f"{rate:.1f}", "" if mfu is None else f"{100 * mfu:.1f}",
                 peak, syncs, notes, status]
        print("  ".join(str(c) for c in shown), flush=True)

    def run(self):
        """One accelerate Run for every step measurement (its state is per process): bf16 autocast."""
        if self._run is None:
            from pfvit.runtime import Run
            from pfvit.schemas.run import RunConfig

            cfg = RunConfig(out=str(self.out / "steps"), mixed_precision="bf16", log_every=10 ** 6)
            self._run = Run(cfg, cfg, "gpu_check")
        return self._run

    # ---- measurements -------------------------------------------------------------------------------------
    def step_row(self, section: str, what: str, step, flops_step=None, notes: str = "", **values) -> float:
        """Warm up ``step``, count its host syncs and FLOPs, time it; one row. Returns images/s."""
        s, device = self.scale, self.device
        for _ in range(s.warmup):
            step()
        syncs = [0]
        if device.type == "cuda":  # host syncs exist only on a GPU; the dry run skips the extra step (IR-50 in bf16
            with counting_host_syncs(device, syncs):  # on a CPU without bf16 units takes ~40 s a step)
                step()
        flops = count_flops(flops_step or step)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        seconds = timed(step, s.steps, device)
        self.run().raise_if_not_finite()  # the steps' deferred finite-loss check, as the loops do when they log
        rate = s.steps * s.batch / seconds
        mfu = flops * s.steps / seconds / self.peak_flops if self.peak_flops else None
        self.row(section, what, rate, mfu, peak_gib(device), str(syncs[0]) if device.type == "cuda" else "n/a",
                 f"{flops / 1e9:.1f} GFLOP/step" + (f"; {notes}" if notes else ""), flops_per_step=flops, **values)
        return rate

    def peaks(self):
        s, device = self.scale, self.device
        dtype = torch.bfloat16
        a = torch.randn(s.matmul, s.matmul, device=device, dtype=dtype)
        b = torch.randn(s.matmul, s.matmul, device=device, dtype=dtype)
        a @ b
        reps = 5 if self.dry else 50
        seconds = timed(lambda: a @ b, reps, device)
        self.peak_flops = 2 * s.matmul ** 3 * reps / seconds
        self.row("peaks", f"bf16 matmul {s.matmul}³", notes=f"{self.peak_flops / 1e12:.1f} TFLOP/s (MFU's peak)")
        x = torch.empty(s.copy_mib * 2 ** 20, dtype=torch.uint8, device=device)
        y = torch.empty_like(x)
        y.copy_(x)
        seconds = timed(lambda: y.copy_(x), reps, device)
        self.row("peaks", f"device copy {s.copy_mib} MiB", notes=f"{2 * x.numel() * reps / seconds / 1e9:.0f} GB/s "
                 "(read + write)")

    def mae(self):
        from pfvit.models.mae import ARCHS, MaskedAutoencoderViT
        from pfvit.train.mae_pretrain import mae_train_step
        from pfvit.train.schedule import weight_decay_groups

        s, device = self.scale, self.device
        run = self.run()
        cfg = {**ARCHS[s.arch], "img_size": s.img_size, "patch_size": s.patch_size, "norm_pix_loss": True}
        torch.manual_seed(0)
        x = torch.randn(s.batch, 3, s.img_size, s.img_size)
        noise = torch.rand(s.batch, (s.img_size // s.patch_size) ** 2)
        reference = MaskedAutoencoderViT(**cfg)
        with torch.no_grad():
            ref_loss = reference(x, 0.75, noise)[0].item()  # CPU, fp32
        for compiled in (False, True):
            model = MaskedAutoencoderViT(**cfg)
            model.load_state_dict(reference.state_dict())
            optimizer = torch.optim.AdamW(weight_decay_groups(model, 0.05), lr=1e-4, betas=(0.9, 0.95),
                                          fused=device.type == "cuda")
            model, optimizer = run.accelerator.prepare(model, optimizer)
            xd, nd = x.to(device), noise.to(device)
            first = run.train_step(model, optimizer, lambda: model(xd, 0.75, nd)[0], clip_grad=None,
                                   step=0).item()
            eager = model
            if compiled:
                torch._dynamo.reset()
                torch._dynamo.utils.counters.clear()
                model = torch.compile(model, backend=s.compile_backend)
            counter = [0]

            def step(model=model, counter=counter):
                counter[0] += 1
                mae_train_step(run, model, optimizer, xd, 0.75, None, counter[0])

            def flops_step():
                loss = eager(xd, 0.75, nd)[0]
                loss.backward()

            what = (f"MAE {s.arch}/{s.patch_size} {s.img_size} px, batch {s.batch}, bf16, "
                    + (f"torch.compile ({s.compile_backend})" if compiled else "eager"))
            notes = f"first loss {first:.5f} vs CPU fp32 {ref_loss:.5f} (Δ {abs(first - ref_loss):.1e})"
            rate = self.step_row("mae", what, step, flops_step, notes, first_loss=first, reference_loss=ref_loss,
                                 compiled=compiled)
            if compiled:  # counted while step_row ran the compiled step
                breaks = sum(torch._dynamo.utils.counters["graph_break"].values())
                self.rows[-1].update(graph_breaks=breaks, notes=self.rows[-1]["notes"] + f"; graph breaks {breaks}")
            self.mae_rate = max(self.mae_rate or 0, rate)

    def finetune(self):
        from pfvit.config import load_config
        from pfvit.models.facerec import build_face_embedder
        from pfvit.models.mae import ARCHS
        from pfvit.models.mae import arch_config
        from pfvit.models.pfvit import Discriminator, PokerFaceViT, discriminator_part
        from pfvit.models.vit import build_vit
        from pfvit.train.pfvit_train import pfvit_train_step
        from pfvit.schemas.pfvit import PFViTConfig
        from pfvit.models.poster.backbones import FaceBackbone
        from pfvit.train.poster_train import build_poster_model
        from pfvit.schemas.poster import PosterModelConfig

        s, device, run = self.scale, self.device, self.run()
        acc = run.accelerator
        k = 8
        torch.manual_seed(0)
        x = torch.randn(s.batch, 3, s.img_size, s.img_size, device=device)
        y = torch.randint(0, k, (s.batch,), device=device)
        a = ARCHS[s.arch]
        tag = f"{s.arch}/{s.patch_size} {s.img_size} px, batch {s.batch}, bf16"

        def classifier_row(what, model, k_out=k):
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
            model, optimizer = acc.prepare(model, optimizer)
            target = y % k_out

            def loss():
                return F.cross_entropy(model(x).float(), target)

            def step():
                run.train_step(model, optimizer, loss, clip_grad=None, step=1)

            def flops_step():
                loss().backward()

            self.step_row("finetune", f"{what}, {tag}", step, flops_step)

        classifier_row("ViT fine-tune", build_vit(img_size=s.img_size, patch_size=s.patch_size,
                                                  embed_dim=a["embed_dim"], depth=a["depth"],
                                                  num_heads=a["num_heads"], num_classes=k))
        cfg = load_config(PFViTConfig, str(ROOT / "configs/pfvit/vit_base.yaml"),
                          [f"run.out={self.out / 'pfvit'}", f"model.arch={s.arch}", f"model.img_size={s.img_size}",
                           f"model.patch_size={s.patch_size}", f"model.num_classes={k}", "model.init=null"])
        for fr_name in ("inception_resnet_v1", "sface"):
            config = arch_config(s.arch, img_size=s.img_size, patch_size=s.patch_size, num_classes=k)
            model, disc = PokerFaceViT(**config), Discriminator(**discriminator_part(config))
            g_opt = torch.optim.Adam(model.parameters(), 2e-5)
            d_opt = torch.optim.Adam(disc.parameters(), 1e-4, betas=(0.5, 0.999))
            model, disc, g_opt, d_opt = acc.prepare(model, disc, g_opt, d_opt)
            fr = build_face_embedder(fr_name, None).to(device)

            def step(model=model, disc=disc, fr=fr, g_opt=g_opt, d_opt=d_opt):
                pfvit_train_step(run, model, disc, fr, g_opt, d_opt, x, y, cfg, 1)

            self.step_row("finetune", f"PF-ViT step (E, S, G, D) + {fr_name}, {tag}", step,
                          notes="FR random-init: speed only")
        for backbone in ("face", "encoder"):  # the face backbone is built for IR-50's 224 px faces
            m = PosterModelConfig(variant="poster++", backbone=backbone, num_classes=7, arch=s.arch,
                                  img_size=s.img_size if backbone == "encoder" else FaceBackbone.img_size,
                                  patch_size=s.patch_size)
            model = build_poster_model(m, run)[0]
            classifier_row(f"POSTER++ on the {'IR-50 + MobileFaceNet' if backbone == 'face' else 'ViT encoder'}",
                           model, 7)

    def shards(self) -> Path:
        """Synthetic shards at the check's size (written once per output folder)."""
        from pfvit.data.shards import write_shards
        from pfvit.data.sources.synthetic import synthetic_specs

        s, shards = self.scale, self.out / "shards"
        if not (shards / "manifest.json").is_file():
            write_shards(shards, synthetic_specs(s.shard_faces, max(4, s.shard_faces // 40), seed=0, size=s.img_size),
                         maxcount=256, workers=min(16, os.cpu_count() or 1))
        return shards

    def data(self):
        s = self.scale
        rate = data_path_rate(str(self.shards()), s.img_size, s.batch, s.data_batches, s.workers)
        pinned = torch.cuda.is_available()
        keeps = "" if self.mae_rate is None else (f"{'keeps up with' if rate >= self.mae_rate else 'SLOWER than'} "
                                                  f"MAE's {self.mae_rate:.0f} img/s")
        self.row("data", f"indexed loader, {s.workers} workers, {s.img_size} px, MAE augmentation"
                 + (", pinned" if pinned else ""), rate, notes=keeps,
                 status="ok" if self.mae_rate is None or rate >= self.mae_rate else "slow")

    def demo(self):
        demo = self.out / "demo"
        # This python and its accelerate, not a .venv: a GPU image has its own torch and no network to set one up.
        accelerate = f"{sys.executable} -m accelerate.commands.accelerate_cli"
        args = ["make", "--no-print-directory", "-o", ".venv/.setup-stamp", "demo", "DEMO_SCALE=gpu", f"DEMO={demo}",
                f"DEMO_SHARDS={demo}/shards", f"PY={sys.executable}", f"ACCELERATE={accelerate}"]
        if self.dry:
            text = subprocess.run([*args[:2], "-n", *args[2:]], cwd=ROOT, capture_output=True, text=True,
                                  timeout=120).stdout
            wanted = ("img_size=112", "model.arch=vit_small", "--mixed_precision bf16", f"{accelerate} launch")
            problems = [f"missing {w!r}" for w in wanted if w not in text]
            problems += [f"sets up a venv ({w!r})" for w in ("-m venv", "pip install") if w in text]
            self.row("demo", "make -n demo DEMO_SCALE=gpu (commands only)",
                     notes="; ".join(problems) or "112 px, ViT-S, accelerate bf16, this python",
                     status="FAILED" if problems else "ok")
            return
        start = time.perf_counter()
        proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)
        minutes = (time.perf_counter() - start) / 60
        (self.out / "demo.log").write_text(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            raise RuntimeError(f"make demo DEMO_SCALE=gpu failed after {minutes:.1f} min; see {self.out}/demo.log: "
                               + proc.stderr[-500:])
        report_md = (demo / "report.md").read_text()
        pictures = re.findall(r"!\[[^]]*\]\(([^)]+)\)", report_md)
        missing = [p for p in pictures if not (demo / p).is_file()]
        accuracy = {m: json.loads((demo / m / "eval_test" / "metrics.json").read_text())["accuracy"]
                    for m in ("vit", "pfvit", "poster_pp", "poster_var")}
        self.row("demo", "make demo DEMO_SCALE=gpu (112 px, ViT-S, accelerate bf16)",
                 notes=f"{minutes:.1f} min; test acc " + ", ".join(f"{m} {v:.3f}" for m, v in accuracy.items())
                 + (f"; missing pictures {missing}" if missing else f"; {len(pictures)} pictures"),
                 status="ok" if not missing and minutes < 10 else ("slow" if not missing else "FAILED"))

    def inference(self):
        from pfvit.data.synthetic import group_photo
        from pfvit.eval.evaluate import evaluate
        from pfvit.schemas.evaluate import EvalConfig
        from pfvit.eval.retrieval import FaceMemory, shard_faces
        from pfvit.devices import resolve_device
        from pfvit.inference import load_classifier
        from pfvit.predict import predict
        from pfvit.schemas.predict import PredictConfig

        demo = self.out / "demo"
        if (demo / "report.md").is_file():  # the GPU-scale demo's models
            classifier, pokerface, shards = demo / "poster_pp" / "best", demo / "pfvit" / "best", demo / "shards"
        else:
            classifier, pokerface = random_checkpoints(self.out / "random", self.scale)
            shards = self.shards()
        device = resolve_device("auto")
        start = time.perf_counter()
        metrics = evaluate(EvalConfig(checkpoint=str(classifier), shards=str(shards), split="test",
                                      out=str(self.out / "eval"), num_workers=min(8, os.cpu_count() or 1)))
        self.row("inference", f"evaluate {classifier.name} on {device}", metrics["num_samples"] /
                 (time.perf_counter() - start), notes=f"accuracy {metrics['accuracy']:.3f}")
        photo, video = self.out / "photo.jpg", self.out / "clip.mp4"
        group_photo(1, 4).save(photo)
        write_video(photo, video, frames=8)
        start = time.perf_counter()
        summary = predict(PredictConfig(checkpoint=str(classifier), inputs=[str(photo), str(video)],
                                        out=str(self.out / "predict"), pokerface_checkpoint=str(pokerface),
                                        device="auto"))
        self.row("inference", f"predict a photo + an 8-frame video on {device}, device=auto",
                 notes=f"{summary['faces']} faces in {time.perf_counter() - start:.1f} s, errors {summary['errors']}",
                 status="ok" if summary["errors"] == 0 and summary["faces"] > 0 else "FAILED")
        clf = load_classifier(classifier).to(device)
        start = time.perf_counter()
        memory = FaceMemory.build(clf, shard_faces(shards, "train"), checkpoint=str(classifier))
        results = memory.search(clf, [load_rgb_face(photo, clf.img_size)], 3)
        self.row("inference", f"retrieval: memory of {memory.meta['count']} faces, one query, on {device}",
                 memory.meta["count"] / (time.perf_counter() - start), notes=f"{len(results[0])} neighbours",
                 status="ok" if len(results[0]) == 3 else "FAILED")


def random_checkpoints(folder: Path, scale: Scale) -> tuple[Path, Path]:
    """A random-init ViT classifier and PF-ViT at the scale's size (the inference paths' speed and device placement
    do not depend on trained weights)."""
    from pfvit.data.transforms import imagenet_preprocess
    from pfvit.labels import class_names
    from pfvit.models.mae import arch_config
    from pfvit.models.registry import build_model
    from pfvit.checkpoint import save_checkpoint

    config = arch_config(scale.arch, img_size=scale.img_size, patch_size=scale.patch_size, num_classes=8)
    vit = {k: config[k] for k in ("img_size", "patch_size", "embed_dim", "depth", "num_heads", "num_classes")}
    preprocess = {"preprocess": imagenet_preprocess()}
    paths = []
    for name, cfg in (("vit", vit), ("pfvit", config)):
        paths.append(save_checkpoint(folder / name, build_model(name, cfg), name=name, config=cfg,
                                     label_names=class_names(8), extra=preprocess))
    return paths[0], paths[1]


def load_rgb_face(path: Path, size: int):
    from PIL import Image

    return Image.open(path).convert("RGB").resize((size, size))


def write_video(photo: Path, path: Path, frames: int) -> None:
    """A short clip of the photo drifting sideways (the predict path's video decoding and face tracking)."""
    import cv2
    import numpy as np

    image = cv2.imread(str(photo))
    h, w = image.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 8, (w, h))
    for i in range(frames):
        writer.write(np.roll(image, 2 * i, axis=1))
    writer.release()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="toy sizes on the CPU (what the test runs)")
    parser.add_argument("--out", default=None, help="output folder (default runs/gpu_check; a temporary one "
                                                    "for --dry-run)")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections of {SECTIONS}")
    args = parser.parse_args(argv)
    only = [s for s in args.only.split(",") if s]
    unknown = [s for s in only if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {unknown}; choose from {', '.join(SECTIONS)}")
    if not args.dry_run and not torch.cuda.is_available():
        print("error: no CUDA device here; run it on a GPU machine, or with --dry-run for the toy CPU check",
              file=sys.stderr)
        return 2
    os.environ.setdefault("WANDB_MODE", "disabled")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    scratch = tempfile.TemporaryDirectory() if args.dry_run and args.out is None else None
    out = Path(scratch.name if scratch else args.out or ROOT / "runs" / "gpu_check")
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device("cpu") if args.dry_run else torch.device("cuda")
    check = Check(DRY if args.dry_run else GPU, device, out, args.dry_run)
    total = time.perf_counter()
    with open(out / "gpu_check.log", "w") as log, contextlib.redirect_stdout(Tee(sys.stdout, log)):
        print(f"gpu_check{' --dry-run' if args.dry_run else ''}: {machine()}; output {out}", flush=True)
        for name in only:
            start = time.perf_counter()
            try:
                getattr(check, name)()
            except Exception as err:  # one failed section is a row; the others still run
                traceback.print_exc(file=sys.stdout)
                check.row(name, "section failed", notes=f"{type(err).__name__}: {str(err)[:300]}", status="FAILED")
            print(f"[{name}: {time.perf_counter() - start:.1f} s]", flush=True)
        seconds = time.perf_counter() - total
        table = [[r["section"], r["what"], "" if r["images_per_s"] is None else f"{r['images_per_s']:.1f}",
                  "" if r["mfu"] is None else f"{100 * r['mfu']:.1f}", r["peak_gib"], r["syncs_per_step"],
                  r["notes"], r["status"]] for r in check.rows]
        (out / "gpu_check.json").write_text(json.dumps({"machine": machine(), "dry_run": args.dry_run,
                                                        "seconds": seconds, "rows": check.rows}, indent=2))
        print(f"\ngpu_check finished in {seconds:.0f} s; log {out / 'gpu_check.log'}\n", flush=True)
        if args.dry_run:
            print(markdown_table(HEADER, table))
        else:
            report("GPU check (benchmarks/gpu_check.py)", HEADER, table,
                   "MFU against the bf16 matmul peak measured in the same run; FLOPs by FlopCounterMode.")
    failed = [r for r in check.rows if r["status"] == "FAILED"]
    if scratch:
        scratch.cleanup()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
