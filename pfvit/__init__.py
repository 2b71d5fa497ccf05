"""pfvit: self-supervised, disentangling facial-expression recognition (MAE → PF-ViT → POSTER family)."""

__version__ = "0.1.0"

# The Python API, imported on first use so that `import pfvit` (and every script's --help) stays free of torch:
#   from pfvit import load_classifier, FaceAligner, Predictor
_API = {"load_classifier": "pfvit.inference", "Classifier": "pfvit.inference", "FaceAligner": "pfvit.data.align",
        "Predictor": "pfvit.predict", "predict": "pfvit.predict", "load_model": "pfvit.models.registry",
        "create_model": "pfvit.models.registry"}
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'pfvit' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_API[name]), name)

