"""Training stages under `accelerate launch` (the console script) on CPU: one process, two processes, resume,
and precision taken from the launcher."""

import json

from pfvit.checkpoint import read_meta
from pfvit.models.registry import load_model
from pfvit.runtime import read_metrics
from conftest import BIN, run_script

COMMON = ["pipelines/mae_pretrain.py", "--config", "configs/mae_pretrain/demo.yaml", "model.img_size=32",
          "data.batch_size=8", "data.num_workers=0", "data.shuffle_buffer=50", "run.log_every=2", "vis_every=100"]


def launch(launch_args, overrides, env=None):
    proc = run_script([str(BIN / "accelerate"), "launch", *launch_args, *COMMON, *overrides], env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


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


def test_two_cpu_processes_agree_and_precision_comes_from_the_launcher(synthetic_shards, tmp_path):
    out = tmp_path / "mae2"
    proc = launch(["--multi_gpu", "--num_processes", "2", "--mixed_precision", "bf16"],
                  [f"data.shards={synthetic_shards}", f"run.out={out}", "optim.max_steps=3",
                   "run.mixed_precision=no"], env={"ACCELERATE_USE_CPU": "1"})
    result = json.loads((out / "result.json").read_text())
    assert result["processes"] == 2
    assert result["steps_per_process"] == [3, 3]
    a, b = result["weight_checksums"]
    assert abs(a - b) <= 1e-6 * abs(a)  # DDP kept the weights identical
    assert result["mixed_precision"] == "bf16"  # the launcher's flag wins over run.mixed_precision=no
    assert "2 process(es)" in proc.stderr


def test_killed_run_resumes_with_the_same_loss_sequence(synthetic_shards, tmp_path):
    from conftest import PYTHON, assert_kill_resume_identical

    args = [PYTHON, *COMMON, f"data.shards={synthetic_shards}", "optim.max_steps=24", "run.save_every=8",
            "run.log_every=1", "data.num_workers=1"]
    assert_kill_resume_identical(args, tmp_path, state_step=8, last_step=24)


def test_killed_finetune_resumes_identically_from_a_state_saved_mid_epoch(synthetic_shards, tmp_path):
    """``run.save_every`` in the classifier loop (ViT baseline and POSTER): a state between epoch ends (40 steps an
    epoch here, saved at step 4) resumes to the same per-step losses as a run never killed."""
    from conftest import PYTHON, assert_kill_resume_identical

    args = [PYTHON, "pipelines/finetune_vit.py", "--config", "configs/finetune_vit/demo.yaml",
            f"data.shards={synthetic_shards}", "model.init=null", "model.img_size=32", "model.patch_size=8",
            "data.batch_size=8", "data.num_workers=1", "optim.max_steps=8", "run.save_every=4", "run.log_every=1"]
    assert_kill_resume_identical(args, tmp_path, state_step=4, last_step=8)


def test_wandb_tracker_runs_offline_beside_the_jsonl_log(tmp_path, monkeypatch):
    from pfvit.runtime import Run
    from pfvit.schemas.run import RunConfig

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = RunConfig(out=str(tmp_path / "run"), wandb=True)
    run = Run(cfg, cfg, "test")
    assert run.accelerator.trackers and run.accelerator.trackers[0].name == "wandb"
    run.log({"loss": 1.5}, step=1)
    run.finish()
    assert read_metrics(tmp_path / "run" / "metrics.jsonl")[0]["loss"] == 1.5
    assert list((tmp_path / "run" / "wandb").glob("offline-run-*"))
