"""Synthetic noise for experiments, and noise-level estimation.

Images are (N, C, H, W) tensors in [0, 1]. Gaussian sigma is given on the 0-255 scale (sigma 25 means 25/255 in
[0, 1]) whatever the file's bit depth, as in the denoising literature; Poisson noise is given by its peak: the clean
value 1.0 corresponds to ``peak`` expected photons.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from .errors import DenoiseError

#: 1 / Phi^-1(3/4): turns the median absolute value of N(0, s^2) samples into s.
MAD_TO_SIGMA = 1.482602218505602
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


def estimate_sigma(x: torch.Tensor) -> torch.Tensor:
    """Robust estimate of additive white Gaussian noise sigma in [0, 1] units, per image: shape (N,).

    The median absolute deviation of the finest diagonal Haar wavelet coefficients (Donoho & Johnstone 1994),
    ``(a - b - c + d) / 2`` over non-overlapping 2x2 blocks, which for white noise have the noise's variance; image
    structure rarely reaches that diagonal band. Channels are pooled.
    """
    if x.dim() != 4:
        raise ValueError(f"expected (N, C, H, W), got shape {tuple(x.shape)}")
    n, _, h, w = x.shape
    if h < 2 or w < 2:
        raise ValueError(f"cannot estimate noise on a {h}x{w} image")
    x = x[:, :, : h // 2 * 2, : w // 2 * 2]
    diagonal = (x[:, :, 0::2, 0::2] - x[:, :, 0::2, 1::2] - x[:, :, 1::2, 0::2] + x[:, :, 1::2, 1::2]) / 2
    return diagonal.reshape(n, -1).abs().median(dim=1).values * MAD_TO_SIGMA

