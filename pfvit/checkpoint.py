"""Checkpoints: safetensors weights + JSON metadata in one folder, written atomically.

A checkpoint folder holds ``model.safetensors`` and ``meta.json`` (model name and config, label names, step,
versions, git commit, the data manifest's path and sha256); a classifier's also holds a model card (``README.md``)
written from that metadata, and a ViT's a timm ``config.json``. :func:`pfvit.models.registry.load_model`
rebuilds the model from the metadata alone, so loading never needs the config that trained it. Folders are
written under a temporary name and renamed into place, so a run killed mid-write never leaves a half-written
checkpoint where a reader looks.

Resume state (optimizer, scheduler, RNG, progress) is accelerate's ``save_state`` into
``OUT/state/step_NNNNNNN/``, written the same way (see :func:`save_training_state`).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from . import __version__
from .errors import CheckpointError, UserError, os_error_line

WEIGHTS = "model.safetensors"
META = "meta.json"
CARD = "README.md"
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
                    data_manifest: str | None = None, extra: dict | None = None,
                    files: dict[str, str] | None = None) -> Path:
    """Write ``model``'s weights and the metadata that rebuilds it (``build_model(name, config)``); ``files``:
    more text files of the folder (a timm ``config.json``), written in the same atomic step."""
    final = Path(directory)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        tmp.mkdir()
        _write_checkpoint(tmp, model, name=name, config=config, label_names=label_names, step=step,
                          data_manifest=data_manifest, extra=extra)
        for file_name, text in (files or {}).items():
            (tmp / file_name).write_text(text)
        _replace_dir(tmp, final)
    except (SafetensorError, OSError) as err:
        raise UserError(f"cannot write the checkpoint {final}: "
                        f"{os_error_line(err) if isinstance(err, OSError) else err}") from None
    finally:  # nothing half-written stays behind, whatever stopped the write
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _write_checkpoint(tmp: Path, model: nn.Module, *, name: str, config: dict, label_names, step, data_manifest,
                      extra) -> None:
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
        "data_manifest_sha256": manifest_sha256(data_manifest),
        "versions": versions(),
        "git_commit": git_commit(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "extra": extra or {},
    }
    (tmp / META).write_text(json.dumps(meta, indent=2, sort_keys=True))
    if meta["label_names"]:
        (tmp / CARD).write_text(model_card(meta))
    _fsync_dir_files(tmp)


def manifest_sha256(data: str | None) -> str | None:
    """The sha256 of a shard folder's ``manifest.json`` (or of the file given): which data a model saw, exactly."""
    if data is None:
        return None
    path = Path(data)
    path = path / "manifest.json" if path.is_dir() else path
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def _percent(value) -> str:
    return f"{100 * value:.2f} %" if isinstance(value, (int, float)) else "not recorded"


def model_card(meta: dict) -> str:
    """A classifier folder's ``README.md``: what it is, the data and recipe it came from, how it was selected, its
    validation numbers, how to use it and its limits — all from ``meta.json``."""
    extra, config = meta.get("extra", {}), meta["config"]
    val = extra.get("val", {})
    train = extra.get("train_config", {})
    optim = train.get("optim", {})
    pre = extra.get("preprocess", {})
    size = config.get("img_size") or (config.get("encoder") or {}).get("img_size") or "its own"
    recipe = ", ".join(f"{k} {optim[k]}" for k in ("recipe", "optimizer", "lr", "epochs", "max_steps")
                       if optim.get(k) is not None)
    resize = f"{'grey, ' if pre.get('grey') else ''}{pre.get('interpolation', 'bicubic')} resize to {size} px"
    lines = [
        f"# pfvit `{meta['model']}` classifier",
        "",
        f"{len(meta['label_names'])} classes: {', '.join(meta['label_names'])}. {meta['num_parameters']:,} parameters; "
        f"faces of {size} px.",
        "",
        "## Data and recipe",
        f"- Data: `{meta.get('data_manifest') or 'not recorded'}` (manifest sha256 "
        f"`{meta.get('data_manifest_sha256') or 'not recorded'}`).",
        f"- Initialised from: `{extra.get('init') or extra.get('imported_from') or 'random weights'}`.",
        f"- Recipe: {recipe or 'see meta.json'}; step {meta.get('step')}.",
        f"- Selection: {extra.get('protocol') or 'not recorded'}.",
        "",
        "## Validation",
        f"accuracy {_percent(val.get('accuracy'))}, mean class accuracy {_percent(val.get('mean_class_accuracy'))}, "
        f"macro-F1 {_percent(val.get('macro_f1'))} on `{extra.get('selected_on') or 'the validation split'}`. Test "
        "numbers come from `pipelines/evaluate.py checkpoint=<this folder>`.",
        "",
        "## Use",
        f"Preprocessing: {resize}, mean {pre.get('mean')}, std {pre.get('std')}, no crop.",
        "",
        "```bash",
        "python pipelines/predict.py checkpoint=<this folder> inputs=photo.jpg",
        "```",
        "`from pfvit import load_classifier` gives the model with this preprocessing.",
        "",
        "## Limits",
        "- It expects faces aligned by pfvit's 5-point alignment (`predict.py` and `make_shards.py` do it); other "
        "crops lower its accuracy.",
        "- Its numbers hold for the data above; other datasets, ages, skin tones, poses and cameras are not measured "
        "here.",
        "- Expression labels are what annotators perceived or actors posed, not what a person feels.",
        "- The data's licence (often research-only) binds the weights trained on it.",
        "",
    ]
    return "\n".join(lines)


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


def read_weights(directory: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint folder; a damaged or truncated file is one error naming it."""
    path = Path(directory) / WEIGHTS
    try:
        return load_file(path)
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{path}: cannot read weights ({err}); the file is damaged or incomplete, so "
                              "re-create it or point to another checkpoint") from None


@dataclass
class LoadReport:
    """What :func:`load_state` did: tensors loaded, and the keys left fresh or ignored (as the caller allowed)."""

    loaded: int
    missing: list[str]
    unexpected: list[str]

    def __str__(self) -> str:
        return (f"loaded {self.loaded} tensors; missing {len(self.missing)} {self.missing[:4]}; "
                f"unexpected {len(self.unexpected)} {self.unexpected[:4]}")


def _allowed(key: str, allow: bool | tuple[str, ...]) -> bool:
    """``allow``: True (any key), False (none), or names and prefixes (ending in ``.`` or ``_``)."""
    if isinstance(allow, bool):
        return allow
    return key in allow or any(p.endswith((".", "_")) and key.startswith(p) for p in allow)


def load_state(module: nn.Module, state: dict[str, torch.Tensor], *, source: str, what: str = "the model",
               allow_missing: bool | tuple[str, ...] = False,
               allow_unexpected: bool | tuple[str, ...] = False) -> LoadReport:
    """The one way a state dict goes into a module: by name, every tensor with the module's shape, and no key of
    the module missing or of the state unexpected unless ``allow_missing`` / ``allow_unexpected`` names it (True:
    any). A state that fits nothing, or breaks a rule, is one error naming the keys."""
    own = module.state_dict()
    wrong_shape = sorted(k for k in state if k in own and own[k].shape != state[k].shape)
    missing = sorted(k for k in own if k not in state)
    unexpected = sorted(k for k in state if k not in own)
    bad = [("missing", [k for k in missing if not _allowed(k, allow_missing)]),
           ("unexpected", [k for k in unexpected if not _allowed(k, allow_unexpected)])]
    loaded = len(state) - len(unexpected)
    if wrong_shape or any(keys for _, keys in bad) or loaded == 0:
        parts = []
        if wrong_shape:
            k = wrong_shape[0]
            parts.append(f"{len(wrong_shape)} of another shape (e.g. {k}: checkpoint {tuple(state[k].shape)} vs "
                         f"model {tuple(own[k].shape)})")
        parts += [f"{len(keys)} {label} (e.g. {', '.join(keys[:3])})" for label, keys in bad if keys]
        if loaded == 0:
            parts.append("no tensor matches")
        raise CheckpointError(f"{source} does not fit {what}: " + "; ".join(parts)
                              + "; is it another architecture, image size or patch size?")
    module.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    return LoadReport(loaded, missing, unexpected)


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


OBJECTS = "objects.json"


def save_training_state(accelerator, out: str | Path, step: int, keep: int = 2,
                        objects: dict[str, Any] | None = None) -> Path:
    """``accelerator.save_state`` into ``OUT/state/step_NNNNNNN`` (atomic), keeping the newest ``keep`` folders.
    ``objects`` (counters, lr schedulers: anything with ``state_dict``) go into ``objects.json``.

    Explicit step folders avoid accelerate's automatic naming, whose iteration counter is not restored by
    ``load_state`` (huggingface/accelerate#1601): the next save would collide with ``checkpoint_0``. Nothing is
    registered with ``register_for_checkpointing``: accelerate reads such objects back from pickles with
    ``weights_only=False``, so a crafted file in a run folder would run code on resume; JSON cannot.
    """
    final = state_dir(out, step)
    tmp = final.with_name(final.name + ".tmp")
    if accelerator.is_main_process:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.parent.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    try:
        accelerator.save_state(str(tmp))
        if accelerator.is_main_process:
            (tmp / OBJECTS).write_text(json.dumps({k: v.state_dict() for k, v in (objects or {}).items()}))
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            _replace_dir(tmp, final)
            for _, old in list_states(out)[:-keep] if keep > 0 else []:
                shutil.rmtree(old)
    except (SafetensorError, OSError) as err:
        raise UserError(f"cannot write the training state {final}: "
                        f"{os_error_line(err) if isinstance(err, OSError) else err}") from None
    finally:
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def check_training_state(path: Path, process_index: int = 0) -> None:
    """Read every file of a state folder the safe way before resuming from it: safetensors, tensors-only torch
    files (``weights_only=True``) and JSON. A damaged or crafted file is one error naming it and the older state
    to fall back on."""
    from accelerate.utils import load as safe_torch_load
    from safetensors import safe_open

    older = [p for _, p in list_states(path.parent.parent) if p != path]

    def fail(file: Path, why: str):
        fallback = (f"delete {path} to resume from {older[-1]}" if older else f"delete {path} to start over")
        raise CheckpointError(f"{file} cannot be resumed from ({why}); {fallback}, or set run.resume=false")

    if not (path / OBJECTS).is_file():
        fail(path / OBJECTS, "it is missing: the state was made by an older pfvit, which pickled its counters")
    for file in sorted(path.iterdir()):
        if file.name.startswith("custom_checkpoint_"):
            fail(file, "pfvit writes no pickled objects, so another program put it there")
        try:
            if file.suffix == ".safetensors":
                with safe_open(str(file), "pt") as fh:
                    for key in fh.keys():
                        fh.get_slice(key)
            elif file.name == OBJECTS:
                json.loads(file.read_text())
            elif file.suffix in (".bin", ".pkl"):
                if file.name.startswith("random_states_") and file.stem != f"random_states_{process_index}":
                    continue
                safe_torch_load(file, map_location="cpu")
        except Exception as err:  # noqa: BLE001 -- any failure to read it safely is the same answer
            fail(file, f"{type(err).__name__}: {str(err).splitlines()[0][:160] if str(err) else 'unreadable'}")


def load_training_state(accelerator, path: Path, objects: dict[str, Any] | None = None) -> None:
    """Resume from a folder written by :func:`save_training_state`, after :func:`check_training_state`."""
    check_training_state(path, accelerator.process_index)
    accelerator.load_state(str(path))
    saved = json.loads((path / OBJECTS).read_text())
    for name, obj in (objects or {}).items():
        if name not in saved:
            raise CheckpointError(f"{path / OBJECTS} has no {name!r}; it was saved by another stage")
        obj.load_state_dict(saved[name])
