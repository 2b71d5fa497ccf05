"""The enumerations configs choose from, as types: a config value outside them fails when it is parsed, and
``--help`` lists them. The modules that implement each choice read their names from here."""

from __future__ import annotations

from typing import Literal

# The encoder widths of the PF-ViT paper (seed 004, Table 1) and ViT-T at half depth; their sizes are models.mae.ARCHS.
Arch = Literal["vit_tiny", "vit_tiny_d6", "vit_small", "vit_base"]
# The 7-class (basic emotions + neutral) and 8-class (+ contempt) protocols.
NumClasses = Literal[7, 8]
Detector = Literal["mtcnn", "yunet"]
CamMethod = Literal["gradcam", "gradcam++"]
# auto: InceptionResnetV1 when weights are given, else SFace; none: no face-recognition network.
FRModel = Literal["auto", "sface", "inception_resnet_v1", "none"]
SelectMetric = Literal["accuracy", "mean_class_accuracy", "macro_f1"]
