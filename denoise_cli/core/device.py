"""Choosing the torch device (``auto`` picks the best one present; an explicit one that is missing is an error) and
how many CPU threads torch uses."""
from __future__ import annotations

import os
from typing import Union

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


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, e.g. a Slurm allocation), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def resolve_threads(requested: Union[int, str] = "auto") -> int:
    """Threads for this run: a number as given; ``auto``: ``OMP_NUM_THREADS`` when the user set it, else every
    available core."""
    if requested != "auto":
        return max(1, int(requested))
    from_environment = os.environ.get("OMP_NUM_THREADS", "").strip()
    if from_environment.isdigit() and int(from_environment) > 0:
        return int(from_environment)
    return available_cores()


def set_threads(count: int) -> None:
    """Make torch's intra-op pool ``count`` threads (on the CPU; a GPU run needs few)."""
    if torch.get_num_threads() != count:
        torch.set_num_threads(max(1, count))


def computes_bf16_natively(device: torch.device) -> bool:
    """Whether ``device`` has bfloat16 arithmetic in hardware: a CUDA GPU that supports it (Ampere and later), or a
    CPU with AVX-512 BF16 or AMX instructions. Elsewhere torch emulates bfloat16, more slowly than float32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
        return any(check is not None and check() for check in checks)
    return False
