"""Checkpoints: safetensors weights + JSON metadata in one folder, written atomically.

A checkpoint folder holds ``model.safetensors`` and ``meta.json`` (model name and config, label names, step,
versions, git commit, data manifest hash). :func:`load_model` rebuilds the model from the metadata alone, so
loading never needs the config that trained it. Folders are written under a temporary name and renamed into
place, so a run killed mid-write never leaves a half-written checkpoint where a reader looks.

Resume state (optimizer, scheduler, RNG, progress) is accelerate's ``save_state`` into
``OUT/state/step_NNNNNNN/``, written the same way (see :func:`save_training_state`).
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .. import __version__
from ..errors import CheckpointError
from ..models.registry import build_model

WEIGHTS = "model.safetensors"
META = "meta.json"
FORMAT = "pfvit-checkpoint-v1"
STATE_DIR = "state"
_STATE_RE = re.compile(r"^step_(\d{7,})$")


def git_commit() -> str | None:
    """The commit of the pfvit source tree, when it is a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def versions() -> dict[str, str]:
    import timm

    return {"pfvit": __version__, "torch": torch.__version__, "timm": timm.__version__,
            "python": platform.python_version()}


def _replace_dir(tmp: Path, final: Path) -> None:
    """Move a fully written folder into place; the previous one is removed only after the new one is there."""
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    if old.exists():
        shutil.rmtree(old)


def _fsync_dir_files(directory: Path) -> None:
    for path in directory.iterdir():
        with open(path, "rb") as fh:
            os.fsync(fh.fileno())


def save_checkpoint(directory: str | Path, model: nn.Module, *, name: str, config: dict,
                    label_names: list[str] | tuple[str, ...] | None = None, step: int | None = None,
                    data_manifest: str | None = None, extra: dict | None = None) -> Path:
    """Write ``model``'s weights and the metadata that rebuilds it (``build_model(name, config)``)."""
    final = Path(directory)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    # Clone so that tied or strided tensors serialise; safetensors refuses shared storage.
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    save_file(state, tmp / WEIGHTS, metadata={"format": FORMAT, "model": name})
    meta = {
        "format": FORMAT,
        "model": name,
        "config": config,
        "label_names": list(label_names) if label_names is not None else None,
        "step": step,
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "data_manifest": data_manifest,
        "versions": versions(),
        "git_commit": git_commit(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "extra": extra or {},
    }
    (tmp / META).write_text(json.dumps(meta, indent=2, sort_keys=True))
    _fsync_dir_files(tmp)
    _replace_dir(tmp, final)
    return final


def read_meta(directory: str | Path) -> dict[str, Any]:
    """The metadata of a checkpoint folder; a clear error if it is not one."""
    directory = Path(directory)
    meta_path = directory / META
    if not directory.is_dir():
        raise CheckpointError(f"checkpoint {directory} does not exist (expected a folder with {WEIGHTS} and {META})")
    if not meta_path.is_file() or not (directory / WEIGHTS).is_file():
        raise CheckpointError(f"{directory} is not a complete pfvit checkpoint: it needs both {WEIGHTS} and {META}")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{meta_path}: not valid JSON ({err.msg}, line {err.lineno})") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{meta_path}: format {meta.get('format')!r} is not {FORMAT!r}")
    return meta


def load_weights_into(model: nn.Module, directory: str | Path, *, what: str) -> None:
    """Strictly load a checkpoint's tensors into ``model``; any mismatch is one error naming the keys."""
    path = Path(directory) / WEIGHTS
    try:
        state = load_file(path)
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{path}: cannot read weights ({err}); the file is damaged or incomplete") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or wrong_shape:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected)):
            if keys:
                parts.append(f"{len(keys)} {label} (e.g. {', '.join(keys[:3])})")
        if wrong_shape:
            k = wrong_shape[0]
            parts.append(f"{len(wrong_shape)} of another shape (e.g. {k}: checkpoint "
                         f"{tuple(state[k].shape)} vs model {tuple(expected[k].shape)})")
        raise CheckpointError(f"{path} does not fit {what}: " + "; ".join(parts))
    model.load_state_dict(state, strict=True)


def load_model(directory: str | Path, expected: str | tuple[str, ...] | None = None) -> nn.Module:
    """Rebuild a model from a checkpoint folder alone. ``expected`` restricts the accepted model names."""
    meta = read_meta(directory)
    name = meta["model"]
    if expected is not None:
        allowed = (expected,) if isinstance(expected, str) else tuple(expected)
        if name not in allowed:
            raise CheckpointError(f"{directory} holds a {name!r} model, but this needs {' or '.join(map(repr, allowed))}")
    model = build_model(name, meta["config"])
    load_weights_into(model, directory, what=f"model {name!r} built from its {META}")
    model.eval()
    return model


# ---------------------------------------------------------------------------------------------------------------
# Resume state through accelerate.


def state_dir(out: str | Path, step: int) -> Path:
    return Path(out) / STATE_DIR / f"step_{step:07d}"


def list_states(out: str | Path) -> list[tuple[int, Path]]:
    """Complete state folders under ``OUT/state``, oldest first; temporary ones are ignored."""
    root = Path(out) / STATE_DIR
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        match = _STATE_RE.match(path.name)
        if match and path.is_dir():
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_state(out: str | Path) -> Path | None:
    states = list_states(out)
    return states[-1][1] if states else None


def save_training_state(accelerator, out: str | Path, step: int, keep: int = 2) -> Path:
    """``accelerator.save_state`` into ``OUT/state/step_NNNNNNN`` (atomic), keeping the newest ``keep`` folders.

    Explicit step folders avoid accelerate's automatic naming, whose iteration counter is not restored by
    ``load_state`` (huggingface/accelerate#1601): the next save would collide with ``checkpoint_0``.
    """
    final = state_dir(out, step)
    tmp = final.with_name(final.name + ".tmp")
    if accelerator.is_main_process:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.parent.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        _replace_dir(tmp, final)
        for _, old in list_states(out)[:-keep] if keep > 0 else []:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final
