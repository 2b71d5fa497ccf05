"""The one training loop of every stage (MAE, the classifier stages, PF-ViT).

A stage builds its networks and optimisers and hands :func:`fit` a :class:`Task`: its loader, its step (one
micro-batch that returns the losses, as DINOv2's meta-architecture owns ``forward_backward``), its validation and
what it saves at the end. The loop owns everything the stages share: the step plan (:class:`StepPlan`: effective
batch, steps per epoch, total steps, the resumed run's first micro-batch), resume, the progress bar, the step line
every ``run.log_every`` steps (with or without a terminal), the learning-rate schedule (:class:`LRSchedule`),
periodic state saves (``run.save_every``), validation at epoch ends and the result.
"""

from __future__ import annotations

import math
from typing import Iterable

import torch

from ..checkpoint import latest_state, load_training_state, save_training_state
from ..runtime import LossWindow, Progress, Run
from .schedule import StepPlan, warmup_cosine


class LRSchedule:
    """The one scheduler interface: :meth:`at_step` before every micro-batch, :meth:`at_epoch_end` after each
    validation with its score, :attr:`lr` for the step line; saved with the training state."""

    lr: float

    def at_step(self, step: int) -> None:
        pass

    def at_epoch_end(self, score: float) -> None:
        pass

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class WarmupCosine(LRSchedule):
    """MAE's per-step linear warm-up and half cosine, for one or more ``(optimizer, base_lr, min_lr)``; every
    parameter group gets ``lr × lr_scale`` (layer decay, PF-ViT's G). Stateless: the step is the state."""

    def __init__(self, optimizers: list[tuple[torch.optim.Optimizer, float, float]], warmup_steps: float,
                 total_steps: int):
        self.optimizers, self.warmup_steps, self.total_steps = optimizers, warmup_steps, total_steps
        self.lr = optimizers[0][1]

    def at_step(self, step: int) -> None:
        for i, (optimizer, base_lr, min_lr) in enumerate(self.optimizers):
            lr = warmup_cosine(step, self.total_steps, self.warmup_steps, base_lr, min_lr)
            for group in optimizer.param_groups:
                group["lr"] = lr * group.get("lr_scale", 1.0)
            if i == 0:
                self.lr = lr


class EpochSchedule(LRSchedule):
    """torch schedulers stepped at each validation: ``ReduceLROnPlateau`` on the score (the paper's ×0.1 on a
    plateau), any other (``ExponentialLR``, POSTER) once per epoch."""

    def __init__(self, schedulers: list):
        self.schedulers = schedulers

    @property
    def lr(self) -> float:
        return self.schedulers[0].optimizer.param_groups[0]["lr"]

    def at_epoch_end(self, score: float) -> None:
        for scheduler in self.schedulers:
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(score)
            else:
                scheduler.step()

    def state_dict(self) -> dict:
        return {str(i): s.state_dict() for i, s in enumerate(self.schedulers)}

    def load_state_dict(self, state: dict) -> None:
        for i, scheduler in enumerate(self.schedulers):
            scheduler.load_state_dict(state[str(i)])


class Task:
    """What a stage gives :func:`fit`. ``model`` is what ``result.json``'s checksum covers; ``loss_key`` the window
    mean kept as ``progress.loss``; ``validates``: :meth:`validate` runs at every epoch end."""

    name: str
    model: torch.nn.Module
    schedule: LRSchedule
    loss_key = "loss"
    validates = False

    def prepare(self, run: Run, resumed: bool) -> None:
        """``accelerator.prepare`` the task's modules and optimisers; ``resumed``: a saved state will be loaded
        into them next (a fresh run may first initialise what the state would overwrite)."""

    def state_objects(self) -> dict:
        """Counters saved with the training state beside the progress and the schedule."""
        return {}

    def start(self, run: Run, resumed: bool) -> None:
        """After the resume, before the first step (PF-ViT warms D up here in a fresh run)."""

    def summary(self) -> str:
        """The run's first line, before its step counts."""
        return self.name

    def loader(self, start_batch: int, num_batches: int, epoch_batches: int) -> Iterable:
        """This process's micro-batches from ``start_batch``; ``num_batches`` is what the run still needs,
        ``epoch_batches`` the micro-batches of one epoch (the sampler's reshuffle period)."""
        raise NotImplementedError

    def step(self, batch, step: int) -> tuple[dict[str, torch.Tensor], int]:
        """One micro-batch under ``accelerator.accumulate``: (losses detached on the device, images)."""
        raise NotImplementedError

    def after_step(self, step: int, final: bool) -> None:
        """After each optimizer step (pictures)."""

    def validate(self, progress: Progress) -> float:
        """At an epoch end: evaluate, save what improved, return the score the schedule steps on."""
        raise NotImplementedError

    def finish(self, progress: Progress) -> dict:
        """After the last step: final checkpoints and curves; returns the extra fields of ``result.json``."""
        return {}


def fit(run: Run, task: Task, plan: StepPlan) -> dict:
    """Run ``task`` for ``plan.total`` optimizer steps, resuming from ``OUT/state`` when ``run.resume`` is set."""
    acc, cfg = run.accelerator, run.cfg
    resume = latest_state(cfg.out) if cfg.resume else None
    task.prepare(run, resumed=resume is not None)
    progress = Progress()
    state_objects = {"progress": progress, "schedule": task.schedule, **task.state_objects()}
    if resume is not None:
        load_training_state(acc, resume, state_objects)
        run.resumed(resume, progress.step, progress.epoch if task.validates else None)
    task.start(run, resumed=resume is not None)
    run.info(f"{task.summary()}, {plan.total} steps ({plan.per_epoch}/epoch, effective batch {plan.effective_batch})")

    loader = task.loader(plan.first_micro_batch(progress.step), plan.first_micro_batch(plan.total - progress.step),
                         plan.micro_batches_per_epoch)
    task.model.train()
    window = LossWindow(run, progress.step)
    saved_at = progress.step
    bar = run.progress(total=plan.total, initial=progress.step, desc=task.name)
    for batch in loader:
        if progress.step >= plan.total:
            break
        task.schedule.at_step(progress.step)
        losses, images = task.step(batch, progress.step)
        window.add(losses, images)
        progress.samples += images * acc.num_processes
        if not acc.sync_gradients:
            continue
        progress.step += 1
        bar.update(1)
        final = progress.step == plan.total
        if progress.step % cfg.log_every == 0 or final:
            progress.loss = window.log(progress.step, plan.total, lr=task.schedule.lr)[task.loss_key]
        task.after_step(progress.step, final)
        epoch_end = plan.epoch_end(progress.step)
        save_state = progress.step % cfg.save_every == 0 or final or (epoch_end and task.validates)
        if save_state:
            run.raise_if_not_finite()  # before weights are evaluated or saved
        if epoch_end:
            progress.epoch = math.ceil(progress.step / plan.per_epoch)
        if epoch_end and task.validates:
            task.schedule.at_epoch_end(task.validate(progress))
        if save_state:
            save_training_state(acc, cfg.out, progress.step, cfg.keep_states, state_objects)
            saved_at = progress.step
    bar.close()
    run.raise_if_not_finite()
    if saved_at != progress.step:  # a loader that ended before the plan (a stream)
        save_training_state(acc, cfg.out, progress.step, cfg.keep_states, state_objects)
    extra = task.finish(progress)
    result = run.write_result(task.model, progress.step, extra)
    run.finish()
    return result
