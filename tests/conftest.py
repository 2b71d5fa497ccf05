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
# `make test` runs the suite on pytest-xdist workers, one per core: each worker, and every stage it launches,
# computes on one thread, since two workers of two threads each on two cores slow each other down (torch reads
# OMP_NUM_THREADS when it is first imported, which is after this file).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"


def pytest_collection_modifyitems(items):
    """Longest first: the tests marked ``slow`` (20 s or more on this 2-core CPU), and so the files that hold them,
    are handed out before the rest, so that on `make test`'s workers the short files fill in behind them instead
    of one long file ending the run alone. The sort is stable: file order otherwise."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


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


def free_port() -> int:
    """A TCP port no one listens on, for ``accelerate launch --main_process_port``: two multi-process launches on
    different pytest workers must not both take accelerate's default port."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_main(script: str, args: list[str]) -> tuple[int, str, str]:
    """A pipeline script's ``main(args)`` in this process (no interpreter start-up, no torch import per call):
    (exit code, stderr, stdout). ``cli_entry`` turns user errors into ``error:`` lines and exit code 2 exactly as
    on the command line."""
    import contextlib
    import importlib.util
    import io

    spec = importlib.util.spec_from_file_location(f"_pipeline_{Path(script).stem}", ROOT / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = module.main([str(a) for a in args])
        except SystemExit as exit_:
            code = exit_.code
    return code, err.getvalue(), out.getvalue()


PYTHON = sys.executable
BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def synthetic_shards(tmp_path_factory) -> Path:
    """400 synthetic faces at 64 px in shards of 50 (train 320 / val 40 / test 40)."""
    out = tmp_path_factory.mktemp("shards") / "synthetic"
    proc = run_script([PYTHON, "pipelines/make_shards.py", "num=400", "identities=20", "img_size=64",
                       "maxcount=50", f"out={out}"])
    assert proc.returncode == 0, proc.stderr
    return out


def assert_kill_resume_identical(args: list[str], tmp_path: Path, state_step: int, last_step: int,
                                 keys=("loss",)) -> None:
    """Run ``args`` unbroken into tmp_path/a; run it again into tmp_path/b, SIGKILL it as soon as the training
    state of ``state_step`` is on disk, resume it, and require the same per-step values of ``keys``, bit for bit
    (the runs must log every step)."""
    import signal
    import time

    from pfvit.runtime import read_metrics

    unbroken = run_script(args + [f"run.out={tmp_path / 'a'}"])
    assert unbroken.returncode == 0, unbroken.stderr[-2000:]
    out = tmp_path / "b"
    proc = subprocess.Popen(args + [f"run.out={out}"], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not (out / "state" / f"step_{state_step:07d}").is_dir() and time.time() < deadline \
            and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "result.json").exists(), "the run finished before it could be killed"
    resumed = run_script(args + [f"run.out={out}"])
    assert resumed.returncode == 0 and "resumed from" in resumed.stderr, resumed.stderr[-2000:]
    for key in keys:
        a = {r["step"]: r[key] for r in read_metrics(tmp_path / "a" / "metrics.jsonl") if key in r}
        steps = [r["step"] for r in read_metrics(out / "metrics.jsonl") if key in r]
        assert len(steps) == len(set(steps)), f"{key}: replayed steps are listed twice after the resume"
        b = {r["step"]: r[key] for r in read_metrics(out / "metrics.jsonl") if key in r}
        assert sorted(a) == sorted(b) == list(range(1, last_step + 1))
        assert [b[s] for s in a] == [a[s] for s in a], key  # bit-identical sequence


# A tiny ViT / PF-ViT for checkpoint fixtures (random weights; tests never assert what they predict).
SMALL_VIT = dict(patch_size=8, embed_dim=32, depth=3, num_heads=2)


def classifier_checkpoint(path: Path, num_classes: int = 8, img_size: int = 32, model: str = "vit") -> Path:
    """A random-init classifier checkpoint ``vit`` (or a full ``pfvit``) that ``load_classifier`` accepts."""
    import torch

    from pfvit.data.transforms import imagenet_preprocess
    from pfvit.labels import class_names
    from pfvit.models.registry import build_model
    from pfvit.checkpoint import save_checkpoint

    torch.manual_seed(0)
    config = {**SMALL_VIT, "img_size": img_size, "num_classes": num_classes}
    if model == "pfvit":
        config.update(decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2)
    return save_checkpoint(path, build_model(model, config), name=model, config=config,
                           label_names=class_names(num_classes),
                           extra={"preprocess": imagenet_preprocess()})
