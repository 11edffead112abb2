"""Choosing the torch device: ``auto`` picks the best one present; an explicit one that is missing is an error."""
from __future__ import annotations

import torch

from .errors import UsageError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(name: str = "auto") -> torch.device:
    """Return the torch device for ``name`` (auto, cpu, cuda, cuda:N or mps).

    ``auto`` prefers CUDA, then MPS, then the CPU. Asking for a device that is not present raises UsageError
    (nothing can run) instead of falling back silently.
    """
    name = (name or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise UsageError(f"device {name!r} requested but CUDA is not available (use --device cpu or auto)")
        device = torch.device(name)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"device {name!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
        return device
    if name == "mps":
        if not _mps_available():
            raise UsageError("device 'mps' requested but Apple MPS is not available (use --device cpu or auto)")
        return torch.device("mps")
    raise UsageError(f"unknown device {name!r}: choose one of auto, cpu, cuda, cuda:N, mps")
