"""Synthetic noise for experiments (estimating the noise of an image is :mod:`noise_level`).

Images are (N, C, H, W) tensors in [0, 1]. Gaussian sigma is given on the 0-255 scale (sigma 25 means 25/255 in
[0, 1]) whatever the file's bit depth, as in the denoising literature; Poisson noise is given by its peak: the clean
value 1.0 corresponds to ``peak`` expected photons.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch

from .errors import DenoiseError

NOISE_KINDS = ("gaussian", "poisson")


@dataclass(frozen=True)
class NoiseSpec:
    """A noise model: ``gaussian`` with ``level`` = sigma on the 0-255 scale, or ``poisson`` with ``level`` = peak."""

    kind: str
    level: float

    def __str__(self) -> str:
        return f"{self.kind}:{self.level:g}"


def parse_noise(text: str) -> NoiseSpec:
    """Parse ``gaussian:SIGMA`` or ``poisson:PEAK`` (SIGMA on the 0-255 scale, PEAK > 0)."""
    kind, _, value = text.strip().lower().partition(":")
    if kind not in NOISE_KINDS or not value:
        raise DenoiseError(f"noise {text!r}: expected gaussian:SIGMA or poisson:PEAK, e.g. gaussian:25")
    try:
        level = float(value)
    except ValueError:
        raise DenoiseError(f"noise {text!r}: {value!r} is not a number") from None
    if not math.isfinite(level):
        raise DenoiseError(f"noise {text!r}: the level must be a finite number")
    if level < 0 or (kind == "poisson" and level == 0):
        raise DenoiseError(f"noise {text!r}: the level must be positive")
    return NoiseSpec(kind, level)


def add_noise(x: torch.Tensor, spec: NoiseSpec, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """``x`` plus noise drawn from ``spec``, not clipped (the caller stores it in a file, which clips)."""
    if spec.kind == "gaussian":
        noise = torch.randn(x.shape, generator=generator, dtype=torch.float32, device="cpu")
        return x + noise.to(x.device) * (spec.level / 255.0)
    counts = torch.poisson((x.clamp(0, 1) * spec.level).cpu().float(), generator=generator)
    return (counts / spec.level).to(x.device)
