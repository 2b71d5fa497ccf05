"""Training stages under `accelerate launch` (the console script) on CPU: one process, two processes, resume,
and precision taken from the launcher."""

import json
from pathlib import Path

import pytest

from pfvit.checkpoint import read_meta
from pfvit.models.registry import load_model
from pfvit.runtime import read_metrics
from conftest import BIN, classifier_checkpoint, free_port, run_main, run_script

COMMON = ["pipelines/mae_pretrain.py", "--config", "configs/mae_pretrain/demo.yaml", "model.img_size=32",
          "data.batch_size=8", "data.num_workers=0", "data.shuffle_buffer=50", "run.log_every=2", "vis_every=100"]


def launch(launch_args, overrides, env=None):
    proc = run_script([str(BIN / "accelerate"), "launch", *launch_args, *COMMON, *overrides], env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_one_process_then_resume(synthetic_shards, tmp_path):
    out = tmp_path / "mae"
    launch(["--num_processes", "1"], [f"data.shards={synthetic_shards}", f"run.out={out}", "optim.max_steps=4",
                                      "run.save_every=2"])
    result = json.loads((out / "result.json").read_text())
    assert result["step"] == 4 and result["processes"] == 1
    assert [r["step"] for r in read_metrics(out / "metrics.jsonl")] == [2, 4]
    assert read_meta(out / "checkpoint")["step"] == 4
    encoder = load_model(out / "encoder", expected="vit")
    assert encoder.patch_embed.img_size == (32, 32)
    assert (out / "reconstructions" / "step_0000004.png").is_file() and (out / "loss.png").is_file()
    # Resume: the run continues from its latest state instead of starting over.
    proc = launch(["--num_processes", "1"], [f"data.shards={synthetic_shards}", f"run.out={out}",
                                             "optim.max_steps=6"])
    assert "resumed from" in proc.stderr and "step_0000004" in proc.stderr
    assert [r["step"] for r in read_metrics(out / "metrics.jsonl")] == [2, 4, 6]
    assert json.loads((out / "result.json").read_text())["step"] == 6


@pytest.mark.slow
def test_two_cpu_processes_agree_and_precision_comes_from_the_launcher(synthetic_shards, tmp_path):
    out = tmp_path / "mae2"
    proc = launch(["--multi_gpu", "--num_processes", "2", "--main_process_port", str(free_port()),
                   "--mixed_precision", "bf16"],
                  [f"data.shards={synthetic_shards}", f"run.out={out}", "optim.max_steps=3",
                   "run.mixed_precision=no"], env={"ACCELERATE_USE_CPU": "1"})
    result = json.loads((out / "result.json").read_text())
    assert result["processes"] == 2
    assert result["steps_per_process"] == [3, 3]
    a, b = result["weight_checksums"]
    assert abs(a - b) <= 1e-6 * abs(a)  # DDP kept the weights identical
    assert result["mixed_precision"] == "bf16"  # the launcher's flag wins over run.mixed_precision=no
    assert "2 process(es)" in proc.stderr


@pytest.mark.slow
def test_killed_run_resumes_with_the_same_loss_sequence(synthetic_shards, tmp_path):
    from conftest import PYTHON, assert_kill_resume_identical

    args = [PYTHON, *COMMON, f"data.shards={synthetic_shards}", "optim.max_steps=24", "run.save_every=8",
            "run.log_every=1", "data.num_workers=1"]
    assert_kill_resume_identical(args, tmp_path, state_step=8, last_step=24)


@pytest.mark.slow
def test_killed_finetune_resumes_identically_from_a_state_saved_mid_epoch(synthetic_shards, tmp_path):
    """``run.save_every`` in the classifier loop (ViT baseline and POSTER): a state between epoch ends (40 steps an
    epoch here, saved at step 4) resumes to the same per-step losses as a run never killed."""
    from conftest import PYTHON, assert_kill_resume_identical

    args = [PYTHON, "pipelines/finetune_vit.py", "--config", "configs/finetune_vit/demo.yaml",
            f"data.shards={synthetic_shards}", "model.init=null", "model.img_size=32", "model.patch_size=8",
            "data.batch_size=8", "data.num_workers=1", "optim.max_steps=8", "run.save_every=4", "run.log_every=1"]
    assert_kill_resume_identical(args, tmp_path, state_step=4, last_step=8)


def test_wandb_and_tensorboard_trackers_log_beside_the_jsonl_log(tmp_path, monkeypatch, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from pfvit.runtime import Run
    from pfvit.schemas.run import RunConfig

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = RunConfig(out=str(tmp_path / "run"), log_with=["wandb", "tensorboard"])
    run = Run(cfg, cfg, "test")
    assert [t.name for t in run.accelerator.trackers] == ["wandb", "tensorboard"]
    run.log({"loss": 1.5}, step=1)
    run.log({"loss": 0.5}, step=2)
    run.finish()
    assert read_metrics(tmp_path / "run" / "metrics.jsonl")[0]["loss"] == 1.5
    assert list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    folder = tmp_path / "run" / "logs" / cfg.wandb_project  # the scalars; the config goes in a sub-folder
    assert list(folder.glob("events.out.tfevents.*")), "no TensorBoard event file under run.out/logs"
    scalars = EventAccumulator(str(folder)).Reload().Scalars("loss")
    assert [(s.step, s.value) for s in scalars] == [(1, 1.5), (2, 0.5)]
    # The deprecated spelling still works, and says so in one line.
    old = RunConfig(out=str(tmp_path / "old"), wandb=True)
    run = Run(old, old, "test")
    assert [t.name for t in run.accelerator.trackers] == ["wandb"]
    run.finish()
    assert "run.wandb=true is deprecated; write run.log_with=[wandb]" in capsys.readouterr().err


def test_a_tracker_whose_package_is_missing_is_one_warning(tmp_path, monkeypatch, capsys):
    import importlib.util

    from pfvit.runtime import Run
    from pfvit.schemas.run import RunConfig

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    cfg = RunConfig(out=str(tmp_path / "run"), log_with=["tensorboard"])
    run = Run(cfg, cfg, "test")
    assert not run.accelerator.trackers
    run.finish()
    assert ("run.log_with has tensorboard, but the tensorboard package is not installed (pip install "
            "'pfvit[tensorboard]')") in capsys.readouterr().err


def test_accelerates_info_lines_stay_out_of_the_log(tmp_path, caplog):
    """accelerate logs several INFO lines per saved state; a run's log keeps its own lines and accelerate's
    warnings only."""
    import logging

    import torch

    from pfvit.checkpoint import save_training_state
    from pfvit.runtime import Run
    from pfvit.schemas.run import RunConfig

    caplog.set_level(logging.INFO)
    cfg = RunConfig(out=str(tmp_path / "run"))
    run = Run(cfg, cfg, "test")
    model = run.accelerator.prepare(torch.nn.Linear(2, 2))
    save_training_state(run.accelerator, cfg.out, 1, 2, {})
    assert (tmp_path / "run" / "state").is_dir() and model is not None
    assert any(r.name == "pfvit" for r in caplog.records)
    chatter = [r.getMessage() for r in caplog.records
               if r.name.startswith("accelerate") and r.levelno < logging.WARNING]
    assert not chatter, chatter[:3]


def test_the_weight_average_is_what_gets_validated_and_saved(synthetic_shards, tmp_path):
    """optim.ema_decay: training follows the same trajectory, and best/ and last/ hold the average, which a small
    decay keeps close to the trained weights and a large one keeps away from them."""
    import torch
    from safetensors.torch import load_file

    def finetune(name, *extra):
        code, err, _ = run_main("pipelines/finetune_vit.py", [
            "--config", "configs/finetune_vit/short.yaml", f"data.shards={synthetic_shards}",
            f"run.out={tmp_path / name}", "model.img_size=32", "model.patch_size=16", "model.num_classes=8",
            "model.init=null", "data.batch_size=16", "data.num_workers=0", "optim.epochs=1", *extra])
        assert code == 0, err[-2000:]
        state = sorted((tmp_path / name / "state").iterdir())[-1]
        return load_file(tmp_path / name / "last" / "model.safetensors"), load_file(state / "model.safetensors")

    plain, plain_state = finetune("plain")
    slow, slow_state = finetune("slow", "optim.ema_decay=0.9")
    fast, _ = finetune("fast", "optim.ema_decay=1e-6")
    assert all(torch.equal(plain_state[k], slow_state[k]) for k in plain_state)  # the same training
    assert all(torch.equal(plain[k], plain_state[k]) for k in plain)  # without it last/ is the trained weights
    distance = lambda a: sum((a[k] - plain[k]).abs().sum().item() for k in plain)  # noqa: E731
    assert distance(fast) < 1e-3 * distance(slow)
    assert distance(slow) > 0


def test_distillation_loss_is_hintons_and_pulls_the_student_towards_the_teacher():
    import torch
    import torch.nn.functional as F

    from pfvit.schemas.finetune import DistillConfig
    from pfvit.train.finetune import distillation_loss

    torch.manual_seed(0)
    student, teacher = torch.randn(4, 7, requires_grad=True), torch.randn(4, 7)
    label_loss = torch.tensor(1.5)
    cfg = DistillConfig(teacher="t", weight=0.25, temperature=3.0)
    p_t, p_s = F.softmax(teacher / 3, -1), F.softmax(student / 3, -1)
    by_hand = 0.75 * 1.5 + 0.25 * 9 * (p_t * (p_t.log() - p_s.log())).sum(-1).mean()
    assert torch.allclose(distillation_loss(student, teacher, label_loss, cfg), by_hand)
    assert torch.allclose(distillation_loss(teacher, teacher, label_loss, cfg), torch.tensor(0.75 * 1.5))
    # a step on the soft term alone brings the student's distribution closer to the teacher's
    soft_only = DistillConfig(teacher="t", weight=1.0, temperature=3.0)
    loss = distillation_loss(student, teacher, label_loss, soft_only)
    loss.backward()
    stepped = (student - 1.0 * student.grad).detach()
    assert distillation_loss(stepped, teacher, label_loss, soft_only) < loss


def test_a_fine_tune_distils_from_a_project_classifier_and_refuses_a_mismatched_teacher_or_the_judge(
        synthetic_shards, tmp_path):
    """The teacher changes the student's training only through the loss: at weight 0 the run is bit-identical to
    one without a teacher (same data order, same steps), at 0.5 it is not."""
    import torch
    from safetensors.torch import load_file

    def finetune(teacher, *extra, out=None):
        return run_main("pipelines/finetune_vit.py", [
            "--config", "configs/finetune_vit/short.yaml", f"data.shards={synthetic_shards}",
            f"run.out={tmp_path / (out or Path(str(teacher)).name)}", "model.img_size=32", "model.patch_size=16",
            "model.num_classes=8", "model.init=null", "data.batch_size=16", "data.num_workers=0", "optim.max_steps=3",
            f"distill.teacher={teacher}", *extra])

    teacher = classifier_checkpoint(tmp_path / "teacher", num_classes=8, img_size=32)
    for name, args in (("plain", ["distill.teacher=null"]), ("weight0", ["distill.weight=0"]), ("weight05", [])):
        code, err, _ = finetune(teacher, *args, out=name)
        assert code == 0, err[-2000:]
    plain, weight0, weight05 = (load_file(tmp_path / name / "last" / "model.safetensors")
                                for name in ("plain", "weight0", "weight05"))
    assert all(torch.equal(plain[k], weight0[k]) for k in plain)
    assert not all(torch.equal(plain[k], weight05[k]) for k in plain)
    code, err, _ = finetune(classifier_checkpoint(tmp_path / "teacher7", num_classes=7, img_size=32))
    assert code != 0 and "Traceback" not in err and "distill.teacher" in err and "label_names" in err, err
    code, err, _ = finetune(classifier_checkpoint(tmp_path / "teacher48", num_classes=8, img_size=48))
    assert code != 0 and "Traceback" not in err and "img_size 48" in err, err
    code, err, _ = finetune("fer-mini-xception")
    assert code != 0 and "Traceback" not in err and "never a teacher" in err, err


def test_last_is_selected_on_nothing_and_only_a_selected_checkpoint_is_labelled_paper_protocol(synthetic_shards,
                                                                                               tmp_path):
    """Under data.protocol=paper best/ is selected on the test split and its report says so; last/ is the
    schedule's end whatever the protocol, so neither its record nor a report of it claims a selection."""
    run = tmp_path / "run"
    code, err, _ = run_main("pipelines/finetune_vit.py", [
        "--config", "configs/finetune_vit/short.yaml", f"data.shards={synthetic_shards}", f"run.out={run / 'vit'}",
        "model.img_size=32", "model.patch_size=16", "model.num_classes=8", "model.init=null", "data.batch_size=32",
        "data.num_workers=0", "optim.epochs=1", "data.protocol=paper"])
    assert code == 0, err[-2000:]
    best, last = (read_meta(run / "vit" / name)["extra"] for name in ("best", "last"))
    assert best["selected_on"] == "test" and best["protocol"].startswith("paper protocol")
    assert last["selected_on"] is None and last["protocol"].startswith("not selected")
    for name in ("best", "last"):
        code, err, _ = run_main("pipelines/evaluate.py", [f"checkpoint={run / 'vit' / name}",
                                                          f"shards={synthetic_shards}", "split=test",
                                                          f"out={run / 'vit' / 'eval_test'}", "num_workers=0"])
        assert code == 0, err[-2000:]
        code, err, _ = run_main("pipelines/report.py", [f"run={run}", "split=test", f"checkpoint={name}",
                                                        "speed_repeats=1"])
        assert code == 0, err[-2000:]
        assert ("paper protocol, selected on test" in (run / "report.md").read_text()) == (name == "best"), name


def test_a_report_of_twinless_poker_faces_does_not_describe_twins():
    """Real faces (FER2013) have no neutral twins: their report must not describe twin measures it lacks."""
    from pfvit.report import poker_blocks

    def text(blocks):
        return " ".join(str(b[1]) for b in blocks if b[0] == "p")

    with_twins = text(poker_blocks({"has_twins": True, "samples": 8}))
    without = text(poker_blocks({"has_twins": False, "samples": 8, "judge_neutral_poker": 0.1}))
    assert "true neutral twin" in with_twins
    assert "twin" not in without.replace("no true neutral twins", "") and "judge_neutral_poker" in without
