"""pfvit: self-supervised, disentangling facial-expression recognition (MAE → PF-ViT → POSTER family)."""

__version__ = "0.1.0"
