"""Name → builder registry, so a checkpoint's JSON metadata alone rebuilds its model (:func:`load_model`)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Callable

import torch.nn as nn

from ..checkpoint import META, WEIGHTS, load_state, read_meta, read_weights
from ..errors import CheckpointError

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}
# Modules that register models; imported on first lookup so that `load_model` works from any entry point.
_MODEL_MODULES = ("pfvit.models.mae", "pfvit.models.vit", "pfvit.models.pfvit", "pfvit.models.poster.poster",
                  "pfvit.models.cnn")


def register(name: str):
    """Decorator: ``@register("mae")`` on a function ``(**config) -> nn.Module``."""

    def wrap(builder):
        _BUILDERS[name] = builder
        return builder

    return wrap


def _ensure_imported() -> None:
    for module in _MODEL_MODULES:
        importlib.import_module(module)


def build_model(name: str, config: dict) -> nn.Module:
    _ensure_imported()
    if name not in _BUILDERS:
        raise CheckpointError(f"unknown model {name!r}; known models: {', '.join(sorted(_BUILDERS))}")
    try:
        return _BUILDERS[name](**config)
    except TypeError as err:
        raise CheckpointError(f"model {name!r} cannot be built from config {config}: {err}") from None


def model_names() -> list[str]:
    _ensure_imported()
    return sorted(_BUILDERS)


def load_model(directory: str | Path, expected: str | tuple[str, ...] | None = None) -> nn.Module:
    """Rebuild a model from a checkpoint folder alone. ``expected`` restricts the accepted model names."""
    meta = read_meta(directory)
    name = meta["model"]
    if expected is not None:
        allowed = (expected,) if isinstance(expected, str) else tuple(expected)
        if name not in allowed:
            raise CheckpointError(f"{directory} holds a {name!r} model, but this needs {' or '.join(map(repr, allowed))}")
    model = build_model(name, meta["config"])
    load_state(model, read_weights(directory), source=str(Path(directory) / WEIGHTS),
               what=f"model {name!r} built from its {META}")
    model.eval()
    return model
