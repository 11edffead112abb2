"""Clipped noise: an image file stores clip(x + noise, 0, 1), so near black and white the mean of the noisy values is
not the clean value x but the mean of a clipped distribution (Foi, "Clipping noise in digital images: modeling,
estimation and removal", Signal Processing 2009). Noise on a dark area only ever lightens it on average, and on a
bright one only darkens it. A denoiser that averages the noisy data (a network fitted to predict them, a non-local
mean) estimates that clipped mean, and inherits the bias: :func:`unclip` maps such an estimate back to the clean value
whose clipped mean it is.

The noise model is Gaussian with variance ``slope * x + offset`` at the clean level x: slope 0 for additive white
Gaussian noise, offset about 0 for photon (Poisson) noise in its Gaussian approximation.
"""
from __future__ import annotations

import math
from typing import Union

import torch

#: Points of the clean-value grid over which the clipped mean is inverted (a step of ~1/2900 of the range).
GRID_POINTS = 4097
#: How far beyond [0, 1] the grid reaches, in noise sigmas (a flat 0 or 1, a blown highlight, maps past the ends).
GRID_SIGMAS = 4.0
#: Below this variance (per unit range) the noise is taken as none: nothing to undo.
MIN_VARIANCE = 1e-12
#: Values inverted at a time (float64 temporaries of a few times this many, whatever the image's size).
CHUNK = 1 << 20


def clipped_gaussian_moments(x: torch.Tensor, sigma: Union[float, torch.Tensor]
                             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation of clip(x + sigma * z, 0, 1), z standard normal, for each value of ``x``
    (float64, any shape; sigma > 0, a number or a tensor of x's shape)."""
    low, high = -x / sigma, (1 - x) / sigma
    cdf_low, cdf_high = torch.special.ndtr(low), torch.special.ndtr(high)
    pdf_low, pdf_high = [torch.exp(-0.5 * t * t) / math.sqrt(2 * math.pi) for t in (low, high)]
    inside, above = cdf_high - cdf_low, 1 - cdf_high
    mean = above + x * inside + sigma * (pdf_low - pdf_high)
    second = (above + x * x * inside + 2 * x * sigma * (pdf_low - pdf_high)
              + sigma * sigma * (inside + low * pdf_low - high * pdf_high))
    return mean, (second - mean * mean).clamp_min(0).sqrt()


def clipped_sigma_at_mean(mean: torch.Tensor, sigma: float) -> torch.Tensor:
    """Standard deviation of clipped Gaussian noise of ``sigma`` at pixels whose expected (clipped) value is ``mean``
    (float64, any shape); a flat 0 or 1 reads as noiseless."""
    return clipped_gaussian_moments(clean_level_at_mean(mean, 0.0, sigma * sigma), sigma)[1]


def clean_level_at_mean(mean: torch.Tensor, slope: float, offset: float) -> torch.Tensor:
    """The clean level x whose clipped noisy values have the expected value ``mean`` (any shape), under noise of
    variance slope * x + offset (x clamped to [0, 1] in the variance; offset + slope > 0): from -GRID_SIGMAS sigma to
    1 + GRID_SIGMAS sigma, interpolated on a grid of clean levels (in float64), in the dtype and on the device of
    ``mean``."""
    reach = GRID_SIGMAS * math.sqrt(max(offset, slope + offset, MIN_VARIANCE))
    grid = torch.linspace(-reach, 1 + reach, GRID_POINTS, dtype=torch.float64)
    sigma = (slope * grid.clamp(0, 1) + offset).clamp_min(MIN_VARIANCE).sqrt()
    grid_mean = torch.cummax(clipped_gaussian_moments(grid, sigma)[0], dim=0).values  # non-decreasing
    flat = mean.detach().flatten()
    out = torch.empty_like(flat)
    for start in range(0, flat.numel(), CHUNK):  # float64 on the CPU (MPS has no float64), a chunk at a time
        part = flat[start:start + CHUNK].cpu().double().clamp(float(grid_mean[0]), float(grid_mean[-1]))
        upper = torch.searchsorted(grid_mean, part).clamp(1, GRID_POINTS - 1)
        below, above = grid_mean[upper - 1], grid_mean[upper]
        t = ((part - below) / (above - below).clamp_min(1e-300)).clamp(0, 1)
        out[start:start + CHUNK] = torch.lerp(grid[upper - 1], grid[upper], t).to(out.device, out.dtype)
    return out.view(mean.shape)


def unclip(estimate: torch.Tensor, slope: float, offset: float) -> torch.Tensor:
    """An estimate (any shape, in [0, 1]) of the clipped noisy data's mean -> the estimate of the clean image, in
    [0, 1] and the estimate's dtype; noise of variance slope * x + offset at level x (units of the image squared).
    Away from 0 and 1 (a few sigmas) it changes nothing; with no noise it returns the estimate."""
    if max(offset, slope + offset) <= MIN_VARIANCE:
        return estimate
    return clean_level_at_mean(estimate, slope, offset).clamp_(0, 1)
