r"""Non-blind deconvolution: total-variation (or adaptive-TV) regularised, with an unknown-boundary data term.

A photo's borders hold light from outside the frame, so the blurred image ``f`` (H, W) is modelled as the *valid*
part of the convolution ``k * u`` of a larger unknown image ``u`` (H + kh - 1, W + kw - 1): nothing is assumed
about ``u`` beyond the frame (no wrap-around, no mirror), which is what keeps the borders free of ringing.

    min_u  1/2 || M (k * u) - f ||^2 + lambda R(u)

M selects the frame inside a periodic working grid larger than ``u``, R is the coupled (vectorial) TV of
:mod:`.operators` or the adaptive TV below. It is solved by ADMM with the splitting v = k * u, z = grad u (Almeida
& Figueiredo, "Deconvolving images with unknown boundaries using ADMM", 2013): the u-step is one division in the
Fourier domain, the v-step is per pixel, the z-step a shrinkage. The output is u on the frame.

Adaptive TV (``regularizer="adaptive"``): R(u) = sum |grad u|^p / p with a per-pixel exponent
p = 1 + 1 / (1 + |grad G|^2), G the blurred input smoothed by a Gaussian of 1 pixel, |grad G| in 8-bit levels per
pixel: TV (p = 1) at edges, quadratic (p = 2) in flat areas, so no staircasing (Chen, Levine & Rao 2006).
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F

from ..core.errors import DenoiseError
from .base import ProgressCallback
from .noise_level import PATCH, estimate_noise
from .operators import laplacian_symbol, periodic_divergence, periodic_gradient
from .psf import check_fits, transfer_function

REGULARIZERS = ("tv", "adaptive")
#: ADMM penalty per unit of lambda (both splittings): 75 lambda reaches 0.1 dB of the converged PSNR in 100
#: iterations on the Levin set (benchmarks/deblur_levin.py); the result does not depend on it, the speed does.
PENALTY_PER_WEIGHT = 75.0
#: ``--weight auto``: lambda = AUTO_WEIGHT_SLOPE * sigma_hat (per image; times sqrt(C) for coupled colour, as in
#: ``tv``), calibrated on the Levin set (real captures) and Kodak 1-12 (synthetic blur and noise), see
#: benchmarks/calibrate_deblur_weight.py; at least MIN_WEIGHT (the noise-free limit: sensor noise and the
#: 8-bit quantisation of the blurred file, 1/255/sqrt(12), are never zero).
AUTO_WEIGHT_SLOPE = 0.1
MIN_WEIGHT = 1e-4
#: Convergence is checked every this many iterations: the RMS change of u per iteration since the last check.
CHECK_EVERY = 10
#: Working grid: the frame plus this many PSF sizes on each side, rounded up to a size the FFT handles fast.
MARGIN_PSFS = 1


def tv_deconvolve(x: torch.Tensor, psf: torch.Tensor, weight="auto", regularizer: str = "tv", max_iter: int = 300,
                  tol: float = 1e-5, progress: Optional[ProgressCallback] = None) -> tuple[torch.Tensor, dict]:
    """Deblur each image of a batch (N, C, H, W) in [0, 1] blurred by ``psf`` (h, w), normalised (:mod:`.psf`).

    weight: lambda (a number or ``"auto"``: from the estimated noise level, see AUTO_WEIGHT_SLOPE).
    tol: stop when the RMS change of u per iteration (over the last CHECK_EVERY) is below ``tol`` ([0, 1] units);
    ``max_iter`` caps the iterations. Returns the batch (same shape) and facts: weight, sigma (when auto),
    iterations, change (the last RMS change per iteration), converged.
    """
    if regularizer not in REGULARIZERS:
        raise ValueError(f"regularizer must be one of {REGULARIZERS}, got {regularizer!r}")
    n, channels, height, width = x.shape
    check_fits(psf, height, width)
    facts: dict = {"weight": [], "iterations": [], "change": []}
    if weight == "auto":
        sigma = deblur_noise_level(x)
        weights = [max(MIN_WEIGHT, AUTO_WEIGHT_SLOPE * s * math.sqrt(channels)) for s in sigma.tolist()]
        facts["sigma"] = sigma.tolist()
    else:
        weights = [float(weight)] * n
    outputs = []
    for image, lam in zip(x.float(), weights):
        u, iterations, change = _admm(image, psf.to(x.device, torch.float32), lam, regularizer, max_iter, tol,
                                      progress)
        outputs.append(u)
        facts["weight"].append(lam)
        facts["iterations"].append(iterations)
        facts["change"].append(change)
    facts["converged"] = all(change <= tol for change in facts["change"])
    return torch.stack(outputs).to(x.dtype), facts


def deblur_noise_level(x: torch.Tensor) -> torch.Tensor:
    """The noise sigma of each blurred image of (N, C, H, W), (N,), float64: the underlying (unclipped) estimate of
    :func:`noise_level.estimate_noise`. Images under 7x7 pixels raise DenoiseError."""
    if min(x.shape[-2:]) < PATCH:
        raise DenoiseError(f"a {x.shape[-1]}x{x.shape[-2]} image is too small to estimate its noise: give the "
                           "weight as a number")
    return estimate_noise(x).underlying


def working_size(size: int, psf_size: int) -> tuple[int, int]:
    """(grid size, offset of the frame in it) for one axis: the frame plus MARGIN_PSFS PSF sizes each side plus the
    PSF's own reach, rounded up to a product of 2, 3 and 5."""
    need = size + 2 * MARGIN_PSFS * psf_size + psf_size
    grid = need
    while not _is_smooth(grid):
        grid += 1
    return grid, (grid - size) // 2


def _is_smooth(number: int) -> bool:
    for prime in (2, 3, 5):
        while number % prime == 0:
            number //= prime
    return number == 1


def _admm(f: torch.Tensor, psf: torch.Tensor, lam: float, regularizer: str, max_iter: int, tol: float,
          progress: Optional[ProgressCallback]) -> tuple[torch.Tensor, int, float]:
    """One image (C, H, W): ADMM of the module docstring. Returns (u on the frame, iterations, last change)."""
    channels, height, width = f.shape
    grid_h, top = working_size(height, psf.shape[0])
    grid_w, left = working_size(width, psf.shape[1])
    frame = (slice(None), slice(top, top + height), slice(left, left + width))
    mask = f.new_zeros(1, grid_h, grid_w)
    mask[frame] = 1.0
    observed = f.new_zeros(channels, grid_h, grid_w)
    observed[frame] = f
    otf = transfer_function(psf, grid_h, grid_w)
    lam = max(lam, 1e-8)
    rho = PENALTY_PER_WEIGHT * lam
    denominator = rho * (otf.abs() ** 2 + laplacian_symbol(grid_h, grid_w, f.dtype, f.device))
    exponent = _adaptive_exponent(f, top, left, grid_h, grid_w) if regularizer == "adaptive" else None

    def blur(u: torch.Tensor) -> torch.Tensor:
        return torch.fft.irfft2(otf * torch.fft.rfft2(u), s=(grid_h, grid_w))

    u = F.pad(f[None], (left, grid_w - width - left, top, grid_h - height - top), mode="replicate")[0]
    blurred = blur(u)
    v, v_dual = blurred.clone(), torch.zeros_like(blurred)
    z = periodic_gradient(u)
    z_dual = torch.zeros_like(z)
    previous, change, iteration = u[frame].clone(), float("inf"), 0
    while iteration < max_iter:
        iteration += 1
        rhs = torch.fft.rfft2(v - v_dual).mul_(otf.conj()).add_(torch.fft.rfft2(periodic_divergence(z_dual - z)))
        u = torch.fft.irfft2(rhs.mul_(rho).div_(denominator), s=(grid_h, grid_w))
        blurred = blur(u)
        a = blurred + v_dual
        v = (observed + rho * a) / (mask + rho)  # observed is zero outside the frame
        v_dual = a - v
        b = periodic_gradient(u).add_(z_dual)
        z = _shrink(b, lam / rho, exponent)
        z_dual = b - z
        if iteration % CHECK_EVERY == 0 or iteration == max_iter:
            current = u[frame]
            change = float((current - previous).pow(2).mean().sqrt()) / CHECK_EVERY
            previous = current.clone()
            if progress is not None:
                progress(iteration, max_iter, {"phase": "deconvolving"})
            if change <= tol:
                break
    return u[frame].clone(), iteration, change


def _shrink(b: torch.Tensor, threshold: float, exponent: Optional[torch.Tensor]) -> torch.Tensor:
    """The proximal map of threshold * R at b (C, 2, H, W), groups over channels and directions: TV's
    b * max(1 - threshold / |b|, 0), or for the adaptive TV the magnitude t solving threshold * t^(p-1) + t = |b|
    (16 bisection steps on [0, |b|]; exact at p = 1 and p = 2 up to that precision)."""
    magnitude = b.pow(2).sum(dim=(0, 1), keepdim=True).sqrt_()
    if exponent is None:
        return b * (1.0 - threshold / magnitude.clamp_min(1e-12)).clamp_min_(0.0)
    low, high = torch.zeros_like(magnitude), magnitude.clone()
    power = exponent - 1.0
    for _ in range(16):
        middle = (low + high) / 2
        too_big = threshold * middle.clamp_min(1e-30).pow(power) + middle > magnitude
        high = torch.where(too_big, middle, high)
        low = torch.where(too_big, low, middle)
    return b * ((low + high) / 2 / magnitude.clamp_min(1e-12))


def _adaptive_exponent(f: torch.Tensor, top: int, left: int, grid_h: int, grid_w: int) -> torch.Tensor:
    """p = 1 + 1 / (1 + |grad G|^2) on the working grid, (1, 1, grid_h, grid_w), G = f (channel mean) smoothed by
    a Gaussian of 1 pixel, in 8-bit levels; outside the frame p continues the nearest border value."""
    radius = 3
    axis = torch.arange(-radius, radius + 1, dtype=f.dtype, device=f.device)
    line = torch.exp(-axis ** 2 / 2)
    line = line / line.sum()
    gray = f.mean(dim=0, keepdim=True)[None] * 255.0
    smooth = F.conv2d(F.pad(gray, (radius,) * 4, mode="replicate"), (line[:, None] * line[None, :])[None, None])
    gradient = periodic_gradient(smooth)[..., :-1, :-1]
    squared = F.pad(gradient.pow(2).sum(dim=2), (0, 1, 0, 1), mode="replicate")
    exponent = 1.0 + 1.0 / (1.0 + squared)
    height, width = f.shape[-2:]
    return F.pad(exponent, (left, grid_w - width - left, top, grid_h - height - top), mode="replicate")
