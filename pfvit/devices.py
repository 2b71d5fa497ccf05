"""Device names as every stage's ``device=`` key spells them."""

from __future__ import annotations

import torch

from .errors import UserError


def resolve_device(name: str | torch.device) -> torch.device:
    """``auto`` → the first CUDA device when there is one, else the CPU; any other name as torch spells it
    (``cpu``, ``cuda``, ``cuda:1``), refused with one line when this machine has no such device."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"device={name!r} is not a device name: use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device={name!r}, but this machine has no CUDA device: use device=auto or device=cpu")
    return device
