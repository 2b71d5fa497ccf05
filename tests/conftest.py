"""Shared fixtures: offline environment, the real-data folder, small synthetic shards."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WIDS_CACHE", "/tmp/_wids_cache_pfvit_tests")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (override with PFVIT_SHARED_DATA); tests that need it skip with a message if absent."""
    path = Path(os.environ.get("PFVIT_SHARED_DATA", ROOT.parent / "shared" / "data"))
    if not path.is_dir():
        pytest.skip(f"real face data not found at {path} (set PFVIT_SHARED_DATA to its folder)")
    return path


def run_script(args: list[str], cwd: Path = ROOT, env: dict | None = None, timeout: int = 300):
    """Run a command with the test interpreter's environment; returns CompletedProcess (text)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(args, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)


PYTHON = sys.executable
BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def synthetic_shards(tmp_path_factory) -> Path:
    """400 synthetic faces at 64 px in shards of 50 (train 320 / val 40 / test 40)."""
    out = tmp_path_factory.mktemp("shards") / "synthetic"
    proc = run_script([PYTHON, "pipelines/make_shards.py", "--num", "400", "--identities", "20", "--size", "64",
                       "--maxcount", "50", "--out", str(out)])
    assert proc.returncode == 0, proc.stderr
    return out
