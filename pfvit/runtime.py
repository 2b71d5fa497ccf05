"""The accelerate setup every training stage shares: seeds, precision, accumulation, logging, progress.

Mixed precision comes from the launcher (``accelerate launch --mixed_precision bf16``) and is never overridden by
a constructor argument; the config's ``run.mixed_precision`` applies only to a plain ``python`` run where no
launcher set one. Only the main process writes files.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterable

import torch
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration, set_seed

from .checkpoint import OBJECTS, latest_state, list_states
from .config import changed_keys, read_yaml, save_config, to_dict
from .errors import UserError
from .schemas.run import RunConfig

log = logging.getLogger("pfvit")


TRACKER_PACKAGES = {"wandb": "wandb", "tensorboard": "tensorboard"}


def _setup_logging(is_main: bool) -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO if is_main else logging.WARNING, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    # accelerate's INFO lines (one per saved or loaded state, per file) would outnumber the step lines.
    logging.getLogger("accelerate").setLevel(logging.WARNING)


def trackers(cfg: RunConfig) -> list[str]:
    """The trackers of ``run.log_with`` (and the deprecated ``run.wandb``) whose package is installed; each one
    asked for but missing is one warning line, and the run logs to metrics.jsonl without it."""
    wanted = list(cfg.log_with)
    if cfg.wandb:
        print("warning: run.wandb=true is deprecated; write run.log_with=[wandb]", file=sys.stderr)
        wanted.append("wandb")
    found = []
    for name in dict.fromkeys(wanted):
        if importlib.util.find_spec(TRACKER_PACKAGES[name]) is None:
            print(f"warning: run.log_with has {name}, but the {TRACKER_PACKAGES[name]} package is not installed "
                  f"(pip install 'pfvit[{name}]'); logging to metrics.jsonl without it", file=sys.stderr)
        else:
            found.append(name)
    return found


def flat_config(config: dict, prefix: str = "") -> dict:
    """A nested config as dotted keys of scalars (lists as text): what TensorBoard's hyper-parameters accept."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(flat_config(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return flat


def cpu_multiprocess_fix() -> bool:
    """Several processes on a machine without CUDA need ``ACCELERATE_USE_CPU=1``; without it accelerate gives each
    process ``DistributedType.NO`` and they train alone, racing on the same files. Set it, and say so."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.cuda.is_available() and os.environ.get("ACCELERATE_USE_CPU", "") not in ("1", "true"):
        os.environ["ACCELERATE_USE_CPU"] = "1"
        if os.environ.get("RANK", "0") == "0":
            print(f"warning: {world} processes on a machine without a GPU: setting ACCELERATE_USE_CPU=1 so they "
                  "train together (gloo); set it yourself to silence this", file=sys.stderr)
        return True
    return False


# What a resumed run may change: where and how it logs and saves, its precision (the launcher's), how long it trains,
# how its data is read. Not run.seed or run.grad_accum_steps: they set the data order and the effective batch.
# The learning rates and clipping may change too, so that a diverged run resumes from an earlier state with a lower
# rate (the non-finite-loss error says how).
RESUMABLE_KEYS = frozenset({"run.out", "run.log_every", "run.save_every", "run.keep_states", "run.resume",
                            "run.log_with", "run.wandb", "run.wandb_project", "run.mixed_precision", "optim.epochs",
                            "optim.max_steps", "data.num_workers", "vis_every", "optim.lr", "optim.blr",
                            "optim.g_lr", "optim.d_lr", "optim.clip_grad"})


def check_resumable(saved: dict, config: dict, out: Path) -> None:
    """A run folder resumes only under the config it was started with (up to ``RESUMABLE_KEYS``): a changed model,
    recipe or data set would otherwise continue silently from the old run's weights and step."""
    changed = [k for k in changed_keys(saved, config) if k not in RESUMABLE_KEYS]
    if changed:
        raise UserError(f"{out} holds a run started with a different config ({', '.join(changed[:5])}); delete it, "
                        "set run.out to a new folder, or set run.resume=false to start over there")


class Progress:
    """Training counters (optimizer steps, epochs, samples seen, best validation score), registered with
    ``accelerator.register_for_checkpointing`` so that a resumed run continues from them."""

    def __init__(self):
        self.step, self.epoch, self.samples, self.best = 0, 0, 0, -1.0
        self.loss = float("nan")  # the training loss of the last logged window (saved with every state)

    def state_dict(self) -> dict:
        return dict(vars(self))

    def load_state_dict(self, state: dict) -> None:
        for name, value in vars(self).items():
            setattr(self, name, type(value)(state[name]))


class Run:
    """One training run: the accelerator, the output folder, metric logging and periodic progress lines."""

    def __init__(self, cfg: RunConfig, full_config: Any, stage: str):
        cpu_multiprocess_fix()
        launcher_precision = os.environ.get("ACCELERATE_MIXED_PRECISION")
        kwargs: dict[str, Any] = {}
        if launcher_precision is None and cfg.mixed_precision is not None:
            kwargs["mixed_precision"] = cfg.mixed_precision
        log_with = trackers(cfg)
        self.cfg = cfg
        self.stage = stage
        self.out = Path(cfg.out)
        self.accelerator = Accelerator(
            gradient_accumulation_steps=cfg.grad_accum_steps,
            log_with=log_with or None,
            project_config=ProjectConfiguration(project_dir=str(self.out), logging_dir=str(self.out / "logs")),
            **kwargs,
        )
        _setup_logging(self.accelerator.is_main_process)
        # The same seed on every process gives identical initial weights; data order is split per rank elsewhere.
        set_seed(cfg.seed)
        self.config_dict = to_dict(full_config)
        if cfg.resume and latest_state(self.out) is not None and (self.out / "config.yaml").is_file():
            check_resumable(read_yaml(self.out / "config.yaml"), self.config_dict, self.out)
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            save_config(full_config, self.out / "config.yaml")
        if log_with:
            self.accelerator.init_trackers(cfg.wandb_project, config=flat_config(self.config_dict),
                                           init_kwargs={"wandb": {"name": f"{stage}:{self.out.name}",
                                                                  "dir": str(self.out)}})
        self._metrics_path = self.out / "metrics.jsonl"
        if self.is_main and self._metrics_path.exists() and self._metrics_path.stat().st_size:
            with open(self._metrics_path, "rb+") as fh:  # a killed run may have left half a line
                fh.seek(-1, 2)
                if fh.read(1) != b"\n":
                    fh.write(b"\n")
        self._t0 = time.time()
        self._first_bad: torch.Tensor | None = None  # the first step with a non-finite loss (-1: none), on device
        self._noted: dict[int, tuple[list, str]] = {}  # step → (batch keys, hint) since the last check
        self.info(f"{stage}: {self.accelerator.num_processes} process(es), device {self.accelerator.device}, "
                  f"mixed precision {self.accelerator.mixed_precision}, output {self.out}")

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    def info(self, message: str) -> None:
        if self.is_main:
            log.info(message)

    def warn(self, message: str) -> None:
        """Loud: in the log and on stdout (e.g. training that falls back to random weights)."""
        self.info("WARNING " + message)
        if self.is_main:
            print(f"warning: {message}", flush=True)

    def resumed(self, state: Path, step: int, epoch: int | None = None) -> None:
        """Announce a resume, and drop the ``metrics.jsonl`` records of steps after ``step``: the resumed run logs
        them again (otherwise they would be listed twice)."""
        self.info(f"resumed from {state} at step {step}" + (f", epoch {epoch}" if epoch is not None else ""))
        if self.is_main and self._metrics_path.is_file():
            kept = [r for r in read_metrics(self._metrics_path) if r.get("step", 0) <= step]
            tmp = self._metrics_path.with_name(f".{self._metrics_path.name}.tmp-{os.getpid()}")
            tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
            os.replace(tmp, self._metrics_path)

    def log(self, metrics: dict[str, float], step: int) -> None:
        """Append one JSON line to ``metrics.jsonl`` and send the numbers to the trackers (main process only)."""
        if not self.is_main:
            return
        record = {"step": step, "time": round(time.time() - self._t0, 3)}
        for key, value in metrics.items():
            value = float(value.item() if torch.is_tensor(value) else value)
            record[key] = value if math.isfinite(value) else str(value)
        with open(self._metrics_path, "a") as fh:
            fh.write(json.dumps(record) + "\n")
        if self.accelerator.trackers:
            self.accelerator.log({k: v for k, v in record.items() if isinstance(v, float)}, step=step)

    def progress(self, iterable: Iterable | None = None, total: int | None = None, desc: str = "", initial: int = 0):
        """A tqdm bar on a terminal of the main process; silent elsewhere (log lines report progress instead)."""
        from tqdm.auto import tqdm

        disable = not (self.is_main and sys.stderr.isatty())
        return tqdm(iterable, total=total, desc=desc, initial=initial, disable=disable, dynamic_ncols=True)

    def check_finite(self, loss: torch.Tensor, step: int, keys, hint: str) -> None:
        """Note, on the device, whether ``loss`` is NaN or infinite: no host sync per step (a ``.item()`` per step
        would stall a GPU's queue). :meth:`raise_if_not_finite` reads the note."""
        bad = ~torch.isfinite(loss.detach()).all()
        if self._first_bad is None:
            self._first_bad = torch.full((), -1, dtype=torch.long, device=loss.device)
        self._first_bad = torch.where(bad & (self._first_bad < 0), step, self._first_bad)
        self._noted.setdefault(step, (list(keys)[:4], hint))

    def raise_if_not_finite(self) -> None:
        """Stop every process with one clear message when any process's loss was not finite at a step noted since
        the last call, naming the first such step and the state to resume from: the newest one saved before the
        loss rose. A collective: the loops call it on every process before they log, evaluate or save."""
        if self._first_bad is None:
            return
        firsts = self.accelerator.gather(self._first_bad.reshape(1).to(self.device)).tolist()
        noted, self._first_bad, self._noted = self._noted, None, {}
        bad = [s for s in firsts if s >= 0]
        if not bad:
            return
        step = min(bad)
        keys, hint = noted.get(step, ([], "lower the learning rate"))
        state = state_before_divergence(self.out)
        where = (f"resume from {state}, saved before the loss rose: delete the newer state folders next to it "
                 "and rerun with a lower learning rate (a resumed run may change optim.lr and optim.clip_grad)"
                 if state is not None else "no state was saved before it; start over with a lower learning rate")
        raise UserError(f"loss is not finite at step {step} (batch keys {keys}); {where}; {hint}")

    def train_step(self, model, optimizer, compute_loss, *, clip_grad: float | None, step: int,
                   keys=(), hint: str = "lower the learning rate or set optim.clip_grad",
                   sam_rho: float | None = None) -> torch.Tensor:
        """One micro-batch under ``accumulate``: the loss (``compute_loss()``) under the launcher's precision, a
        finite-loss note (checked by :meth:`raise_if_not_finite`), backward, and — when accumulation is complete —
        clipping and the optimizer step (the loop's schedule has set the lr).

        ``sam_rho``: sharpness-aware minimisation (Foret et al. 2021) — after the first backward the weights move
        to ``w + ρ·g/‖g‖``, the loss is recomputed there, and its gradient is applied at the original ``w``."""
        acc = self.accelerator
        with acc.accumulate(model):
            with acc.autocast():
                loss = compute_loss()
            self.check_finite(loss, step, keys, hint)
            acc.backward(loss)
            if sam_rho is not None:
                if not acc.sync_gradients:
                    raise UserError("SAM needs whole batches: set run.grad_accum_steps=1 or optim.sam_rho=null")
                self._sam_second_pass(model, optimizer, compute_loss, sam_rho)
            if acc.sync_gradients and clip_grad is not None:
                acc.clip_grad_norm_(model.parameters(), clip_grad)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    def _sam_second_pass(self, model, optimizer, compute_loss, rho: float) -> None:
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        with torch.no_grad():
            norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params]))
            if not torch.isfinite(norm):
                # An fp16 gradient scaler's overflow step: w + ρ·g/‖g‖ would be NaN, and w − that again NaN. Keep
                # the first gradient; the scaler skips this step.
                return
            shifts = [p.grad * (rho / (norm + 1e-12)) for p in params]
            for p, e in zip(params, shifts):
                p.add_(e)
        optimizer.zero_grad(set_to_none=True)
        with self.accelerator.autocast():
            loss = compute_loss()
        self.accelerator.backward(loss)
        with torch.no_grad():
            for p, e in zip(params, shifts):
                p.sub_(e)

    def write_result(self, model: torch.nn.Module, step: int, extra: dict | None = None) -> dict:
        """Gather every process's step and a weight checksum into ``OUT/result.json``: a run whose processes
        disagree (a DDP misconfiguration) is visible there and stops with an error."""
        self.raise_if_not_finite()
        checksum = sum(p.detach().double().abs().sum() for p in model.parameters()).reshape(1)
        steps = self.accelerator.gather(torch.tensor([step], device=self.device)).tolist()
        sums = self.accelerator.gather(checksum.to(self.device)).tolist()
        result = {"stage": self.stage, "step": step, "processes": self.accelerator.num_processes,
                  "steps_per_process": steps, "weight_checksums": sums,
                  "mixed_precision": self.accelerator.mixed_precision,
                  "wall_s": round(time.time() - self._t0, 1), **(extra or {})}
        if self.is_main:
            (self.out / "result.json").write_text(json.dumps(result, indent=2))
        if len(set(steps)) > 1 or max(sums) - min(sums) > 1e-6 * max(1.0, abs(max(sums))):
            raise RuntimeError(f"processes disagree after training: steps {steps}, weight checksums {sums}")
        return result

    def finish(self) -> None:
        self.accelerator.wait_for_everyone()
        self.accelerator.end_training()


class LossWindow:
    """The training losses of one logging window, summed on the device and read once per ``run.log_every`` steps:
    means over the window's micro-batches and over every process in one reduction and one host sync, with the
    images/s of all processes."""

    def __init__(self, run: Run, start_step: int = 0):
        self.run = run
        self.last_step = start_step  # the step the window opened at (a resumed run's first)
        self._reset()

    def _reset(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.micro_batches, self.images, self.start = 0, 0, time.time()
        self.elapsed = 0.0  # the window's seconds, set when it is read

    def add(self, losses: dict[str, torch.Tensor], images: int) -> None:
        for name, value in losses.items():
            value = value.detach().float()
            self.sums[name] = self.sums[name] + value if name in self.sums else value
        self.micro_batches += 1
        self.images += images

    def read(self) -> dict[str, float]:
        """The window's means (after the finite-loss check), and a new window. A collective, like the check."""
        self.run.raise_if_not_finite()
        acc = self.run.accelerator
        names = list(self.sums)
        means = acc.reduce(torch.stack([self.sums[n] for n in names]) / max(self.micro_batches, 1), "mean")
        values = dict(zip(names, means.tolist()))
        elapsed = max(time.time() - self.start, 1e-9)
        values["images_per_s"] = self.images * acc.num_processes / elapsed
        self._reset()
        self.elapsed = elapsed
        return values

    def log(self, step: int, total_steps: int, **extra: float) -> dict[str, float]:
        """Read the window, append it with ``extra`` (e.g. the lr) to ``metrics.jsonl`` and the trackers, and
        print one step line with the ETA at the window's pace, on a terminal and without one (SLURM, nohup) alike.
        Returns what was logged."""
        steps = step - self.last_step
        values = {**self.read(), **extra}
        self.last_step = step
        self.run.log(values, step)
        shown = " ".join(f"{name} {value:.4g}" for name, value in values.items() if name != "images_per_s")
        eta = (total_steps - step) * self.elapsed / max(steps, 1)
        self.run.info(f"step {step}/{total_steps} {shown} ({values['images_per_s']:.0f} img/s, ETA "
                      f"{int(eta // 3600)}:{int(eta % 3600 // 60):02d}:{int(eta % 60):02d})")
        return values


def state_before_divergence(out: Path) -> Path | None:
    """The newest kept state whose recorded training loss is within 1.5× of the lowest kept one: a state saved
    while the loss was already climbing holds weights that diverge again."""
    losses = []
    for _, path in list_states(out):
        try:
            losses.append((float(json.loads((path / OBJECTS).read_text())["progress"]["loss"]), path))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    finite = [(loss, path) for loss, path in losses if math.isfinite(loss)]
    if not finite:
        return losses[0][1] if losses else None
    lowest = min(loss for loss, _ in finite)
    return [path for loss, path in finite if loss <= 1.5 * lowest][-1]


def read_metrics(path: str | Path) -> list[dict]:
    """The records of a ``metrics.jsonl`` file; a line cut short by a killed run is skipped."""
    records = []
    for line in Path(path).read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records
