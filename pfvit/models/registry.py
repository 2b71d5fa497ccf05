"""Name → builder registry, so a checkpoint's JSON metadata alone rebuilds its model (:func:`load_model`), and
named variants in the manner of timm's ``@register_model``: ``create_model("mae_vit_tiny", img_size=32)``."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Callable

import torch.nn as nn

from ..checkpoint import META, WEIGHTS, load_state, read_meta, read_weights
from ..errors import CheckpointError, ConfigError, UserError

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}
_VARIANTS: dict[str, tuple[str, dict]] = {}  # variant name → (registered model, its constructor config)
# Modules that register models; imported on first lookup so that `load_model` works from any entry point.
_MODEL_MODULES = ("pfvit.models.mae", "pfvit.models.vit", "pfvit.models.pfvit", "pfvit.models.poster.poster",
                  "pfvit.models.cnn")


def register(name: str):
    """Decorator: ``@register("mae")`` on a function ``(**config) -> nn.Module``."""

    def wrap(builder):
        _BUILDERS[name] = builder
        return builder

    return wrap


def register_variant(name: str, model: str, **config) -> None:
    """A named variant: ``create_model(name)`` builds the registered ``model`` with ``config``."""
    _VARIANTS[name] = (model, config)


def _ensure_imported() -> None:
    for module in _MODEL_MODULES:
        importlib.import_module(module)


def _construct(name: str, config: dict, error: type[UserError], what: str) -> nn.Module:
    """The registered builder's model; a constructor that rejects the config is one ``error`` line."""
    try:
        return _BUILDERS[name](**config)
    except TypeError as err:
        raise error(f"{what}: {err}") from None


def build_model(name: str, config: dict) -> nn.Module:
    """The registered model ``name`` from its constructor config (what ``meta.json`` stores)."""
    _ensure_imported()
    if name not in _BUILDERS:
        raise CheckpointError(f"unknown model {name!r}; known models: {', '.join(sorted(_BUILDERS))}")
    return _construct(name, config, CheckpointError, f"model {name!r} cannot be built from config {config}")


def model_config(name: str, **overrides) -> tuple[str, dict]:
    """(registered model, constructor config) of a variant or a registered model name, with ``overrides``."""
    _ensure_imported()
    if name in _VARIANTS:
        model, config = _VARIANTS[name]
        return model, {**config, **overrides}
    if name in _BUILDERS:
        return name, dict(overrides)
    raise ConfigError(f"unknown model {name!r}; variants: {', '.join(sorted(_VARIANTS))}; models: "
                      f"{', '.join(sorted(_BUILDERS))}")


def create_model(name: str, **overrides) -> nn.Module:
    """A named variant (``vit_tiny``, ``mae_vit_small``, ``pfvit_base``, …) or a registered model, built with
    ``overrides`` (``img_size=112, num_classes=7``); an unknown name or key is one :class:`ConfigError`."""
    model, config = model_config(name, **overrides)
    return _construct(model, config, ConfigError, f"create_model({name!r}) takes the keys of {model!r}")


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
