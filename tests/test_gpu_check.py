"""benchmarks/gpu_check.py --dry-run: every section of the GPU check runs its code paths at toy size on the CPU, so
that the script cannot rot while no GPU is at hand."""

import json

import pytest

from conftest import PYTHON, run_script


@pytest.mark.slow
def test_gpu_check_dry_run_runs_every_section_and_writes_its_table(tmp_path):
    proc = run_script([PYTHON, "benchmarks/gpu_check.py", "--dry-run", "--out", str(tmp_path)], timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    rows = result["rows"]
    assert result["dry_run"] and [r for r in rows if r["status"] != "ok"] == []
    assert {r["section"] for r in rows} == {"peaks", "mae", "finetune", "data", "demo", "inference"}
    steps = [r for r in rows if r["section"] in ("mae", "finetune")]
    assert len(steps) == 2 + 5  # MAE eager + compiled; ViT, PF-ViT × 2 FR networks, POSTER++ × 2 backbones
    for r in steps:  # every step ran, was timed, and had its FLOPs counted against the measured peak
        assert r["images_per_s"] > 0 and r["flops_per_step"] > 0 and 0 < r["mfu"], r
    mae = [r for r in rows if r["section"] == "mae"]
    for r in mae:  # bf16 autocast keeps the first step's loss near the fp32 CPU reference of the same weights
        assert abs(r["first_loss"] - r["reference_loss"]) < 0.05 * r["reference_loss"], r
    assert mae[1]["compiled"] and "graph_breaks" in mae[1]
    assert mae[0]["flops_per_step"] == mae[1]["flops_per_step"]
    log = (tmp_path / "gpu_check.log").read_text()
    assert log.rstrip().splitlines()[-1].startswith("| inference |")  # the table comes last
    assert "| section | what | images/s | MFU % |" in log
