r"""Non-blind deconvolution: total-variation (or adaptive-TV) regularised, with an unknown-boundary data term.

A photo's borders hold light from outside the frame, so the blurred image ``f`` (H, W) is modelled as the *valid*
part of the convolution ``k * u`` of a larger unknown image ``u`` (H + kh - 1, W + kw - 1): nothing is assumed
about ``u`` beyond the frame (no wrap-around, no mirror), which is what keeps the borders free of ringing.

    min_u  1/2 || M (k * u) - f ||^2 + lambda R(u)

M selects the frame inside a periodic working grid larger than ``u``, R is the coupled (vectorial) TV of
:mod:`.operators` or the adaptive TV below. It is solved by ADMM with the splitting v = k * u, z = grad u (Almeida
& Figueiredo, "Deconvolving images with unknown boundaries using ADMM", 2013): the u-step is one division in the
Fourier domain, the v-step is per pixel, the z-step a shrinkage. The output is u on the frame.

Adaptive TV (``regularizer="adaptive"``): R(u) = sum s (|grad u| / s)^p / p, s one 8-bit level (so that p = 1 is
TV and gradients are weighed in levels), with a per-pixel exponent p = 1 + 1 / (1 + |grad G|^2), G the blurred
input smoothed by a Gaussian of 1 pixel, |grad G| in 8-bit levels per pixel: TV (p = 1) at edges, quadratic
(p = 2) in flat areas, so no staircasing (Chen, Levine & Rao 2006).
"""
from __future__ import annotations

import math
import threading
import time
from typing import Optional

import torch
import torch.nn.functional as F

from ..core.errors import DenoiseError
from .base import ProgressCallback
from .noise_level import PATCH, estimate_noise
from .operators import laplacian_symbol, periodic_divergence, periodic_gradient
from .psf import check_fits, transfer_function, trim_zero_border
from .sure import TYPICAL_EVALUATIONS, sure_parameter, sure_tiles
from .threads import TorchThreadPool

REGULARIZERS = ("tv", "adaptive")
#: The adaptive TV's gradient scale: one 8-bit level.
ADAPTIVE_SCALE = 1 / 255
#: ADMM penalty per unit of lambda (both splittings) and over-relaxation: the solution does not depend on them, the
#: speed does. On every 4th Levin image (true kernel, auto weight, default tol) 75 lambda and 1.8 stop after 78
#: iterations on average at the converged PSNR (34.59 dB), plain ADMM (1.0) after 99. A larger penalty (200 lambda)
#: stops sooner but short of the solution: the steps get small before the iterate is there (tests/test_deblur.py).
PENALTY_PER_WEIGHT, RELAXATION = 75.0, 1.8
#: ``--weight auto``, first the rule: lambda = sqrt(C) * AUTO_WEIGHT_NOISE * sigma_hat^2 + AUTO_WEIGHT_FLOOR per image
#: (sqrt(C): coupled colour, as in ``tv``). Quadratic in sigma as the MAP weight of a Laplacian gradient prior is
#: (lambda = sigma^2 / b), with a floor for what remains at low noise (the PSF's and the capture's own errors). The
#: floor comes from the Levin set (real gray captures, sigma ~0.3/255: within 0.1 dB over 2e-4 to 5e-4; at 1.25e-4
#: the mean fell 0.22 dB and 2 of 32 images fell behind Levin 2007). The noise coefficient is
#: benchmarks/calibrate_deblur_weight.py's choice on Kodak 1-12 with synthetic blur and noise: 4.25 falls short of
#: each case's best weight by 0.173 dB on average (worst case 0.61) where the earlier 5.0 fell short by 0.215 (0.71).
#: The best weight of single photos spreads over 0.25-1.6x the rule (texture wants less): no fixed rule holds every
#: photo within 0.3 dB, hence the search below.
AUTO_WEIGHT_NOISE, AUTO_WEIGHT_FLOOR = 4.25, 2e-4
#: Then, where sigma_hat is at least SURE_MIN_SIGMA, lambda is the one of least Monte-Carlo SURE of the reblurred
#: estimate M (k * u) (the predicted risk, :mod:`.sure`) in [SURE_LOW, 1] x the rule, searched from SURE_START x the
#: rule to SURE_REL_TOL on up to 2 x 2 windows of SURE_WINDOW^2 pixels (at least twice the PSF's size; each with its own
#: unknown boundary), solved at the default tol. The search only lowers the rule: predicted risk does not see errors in
#: the blur's near-null space and, free to raise it, picked weights up to 2.8x too large on smooth photos (1.65 dB
#: lost). Below SURE_MIN_SIGMA (0.6 of an 8-bit level, twice the rounding's own 0.29) the noise is not SURE's Gaussian
#: and the capture's own errors dominate (the Levin set): the rule stands. On Kodak 1-12 (the calibration's cases,
#: benchmarks/calibrate_deblur_weight.py) the search falls short of each case's best weight by 0.068 dB on average, 3 of
#: 72 cases over 0.3 dB (the rule alone: 0.173, 17; the 3 want more than the rule), in 1.9 s on average (7.0 s at most,
#: low noise) on a 2-core CPU (a five-point grid on one centred 128^2 window, the same work, chose about as well); held
#: out: benchmarks/deblur_quality.py.
SURE_LOW, SURE_START, SURE_REL_TOL, SURE_WINDOW, SURE_MIN_SIGMA = 0.25, 0.7, 0.05, 64, 0.6 / 255
#: Convergence is checked every this many iterations: the RMS change of u per iteration since the last check. The
#: defaults: stop when it is under TOL ([0, 1] units), or after MAX_ITER iterations.
CHECK_EVERY, TOL, MAX_ITER = 10, 1e-4, 300
#: Large images are solved in tiles of this many pixels a side, each on a window this many PSF sizes (and at least
#: TILE_MARGIN_MIN pixels) wider on each side: the difference to a whole-image solve stays far below one 8-bit level
#: (tests/test_deblur.py). 384 was the fastest per pixel of 256-640 on a 2-core CPU (a tile's arrays stay in cache;
#: 640 took twice as long per pixel).
TILE_CORE, TILE_MARGIN_PSFS, TILE_MARGIN_MIN = 384, 2, 16


def tv_deconvolve(x: torch.Tensor, psf: torch.Tensor, weight="auto", regularizer: str = "tv",
                  max_iter: int = MAX_ITER, tol: float = TOL, progress: Optional[ProgressCallback] = None,
                  search: bool = True) -> tuple[torch.Tensor, dict]:
    """Deblur each image of a batch (N, C, H, W) in [0, 1] blurred by ``psf`` (h, w), normalised (:mod:`.psf`).

    weight: lambda (a number or ``"auto"``: from the estimated noise level, see :func:`sure_weight`; with
    ``search=False`` the rule alone, for an estimated PSF: SURE trusts the blur model, and a kernel's errors are not
    noise).
    tol: stop when the RMS change of u per iteration (over the last CHECK_EVERY) is below ``tol`` ([0, 1] units);
    ``max_iter`` caps the iterations. Returns the batch (same shape) and facts: weight, sigma and weight_seconds
    (when auto: the time the weight search took), iterations, change (the last RMS change per iteration), converged.
    """
    if regularizer not in REGULARIZERS:
        raise ValueError(f"regularizer must be one of {REGULARIZERS}, got {regularizer!r}")
    n, channels, height, width = x.shape
    check_fits(psf, height, width)
    # a kernel found blind fills only part of its --psf-size support: the zero border would only widen the working
    # grid and the tiles' margins (12 MP, a 31^2 support holding a 9 x 7 motion: the solve took 63 s, 41 s trimmed)
    psf = trim_zero_border(psf).to(x.device, torch.float32)
    facts: dict = {"weight": [], "iterations": [], "change": []}
    if weight == "auto":
        sigma = deblur_noise_level(x)
        weights, facts["sigma"], facts["weight_seconds"] = [], sigma.tolist(), []
        for image, noise in zip(x.float(), facts["sigma"]):
            started = time.perf_counter()
            weights.append(sure_weight(image, psf, noise, regularizer, progress) if search
                           else auto_weight(noise, channels))
            facts["weight_seconds"].append(round(time.perf_counter() - started, 3))
    else:
        weights = [float(weight)] * n
    outputs = []
    for image, lam in zip(x.float(), weights):
        u, iterations, change = _tiled(image, psf, lam, regularizer, max_iter, tol, progress)
        outputs.append(u)
        facts["weight"].append(lam)
        facts["iterations"].append(iterations)
        facts["change"].append(change)
    facts["converged"] = all(change <= tol for change in facts["change"])
    return torch.stack(outputs).to(x.dtype), facts


def auto_weight(sigma: float, channels: int, noise_coefficient: float = AUTO_WEIGHT_NOISE) -> float:
    """The calibrated lambda for noise ``sigma`` ([0, 1] units) and ``channels`` coupled channels; the calibration
    (benchmarks/calibrate_deblur_weight.py) passes other ``noise_coefficient`` values to compare them."""
    return math.sqrt(channels) * noise_coefficient * sigma ** 2 + AUTO_WEIGHT_FLOOR


def sure_weight(image: torch.Tensor, psf: torch.Tensor, sigma: float, regularizer: str = "tv",
                progress: Optional[ProgressCallback] = None) -> float:
    """``--weight auto`` for one blurred image (C, H, W) in [0, 1] with noise ``sigma`` ([0, 1] units): the rule of
    :func:`auto_weight`, lowered where Monte-Carlo SURE finds less risk (see SURE_LOW and the constants after it).
    ``progress`` hears of each solve of the search (phase "choosing the weight")."""
    rule = auto_weight(sigma, image.shape[0])
    if sigma < SURE_MIN_SIGMA:
        return rule
    solves = [0]

    def reblurred(batch: torch.Tensor, lam: float) -> torch.Tensor:
        u, frame, _, _ = _admm(batch, psf, lam, regularizer, MAX_ITER, TOL, None)
        solves[0] += 1
        if progress is not None:
            progress(min(solves[0], TYPICAL_EVALUATIONS), TYPICAL_EVALUATIONS, {"phase": "choosing the weight"})
        return torch.fft.irfft2(transfer_function(psf, *u.shape[-2:]) * torch.fft.rfft2(u), s=u.shape[-2:])[frame]

    windows = sure_tiles(image.float(), max(SURE_WINDOW, 2 * max(psf.shape)))
    return sure_parameter(reblurred, windows, sigma, SURE_LOW * rule, rule, SURE_START * rule, SURE_REL_TOL)


def deblur_noise_level(x: torch.Tensor) -> torch.Tensor:
    """The noise sigma of each blurred image of (N, C, H, W), (N,), float64: the underlying (unclipped) estimate of
    :func:`noise_level.estimate_noise`. Images under 7x7 pixels raise DenoiseError."""
    if min(x.shape[-2:]) < PATCH:
        raise DenoiseError(f"a {x.shape[-1]}x{x.shape[-2]} image is too small to estimate its noise: give the "
                           "weight as a number")
    return estimate_noise(x).underlying


def working_size(size: int, psf_size: int) -> tuple[int, int]:
    """(grid size, offset of the frame in it) for one axis: the frame plus the PSF's reach (psf_size - 1, plus one so
    that an even PSF's two sides stay apart), rounded up to a product of 2, 3 and 5. The unknowns beyond each side of
    the frame are then distinct pixels of the periodic grid: the blur never wraps from one side to the other."""
    grid = size + psf_size
    while not _is_smooth(grid):
        grid += 1
    return grid, (grid - size) // 2


def _is_smooth(number: int) -> bool:
    for prime in (2, 3, 5):
        while number % prime == 0:
            number //= prime
    return number == 1


def tiles(size: int, core: int, margin: int) -> list[tuple[int, int, int, int]]:
    """Split one axis of ``size`` pixels into cores of about ``core`` pixels, each solved on a window reaching
    ``margin`` pixels further each side (clipped to the image): [(window start, window end, core start, core end)]."""
    count = max(1, math.ceil(size / core))
    edges = [round(i * size / count) for i in range(count + 1)]
    return [(max(0, a - margin), min(size, b + margin), a, b) for a, b in zip(edges[:-1], edges[1:])]


def _tiled(f: torch.Tensor, psf: torch.Tensor, lam: float, regularizer: str, max_iter: int, tol: float,
           progress: Optional[ProgressCallback]) -> tuple[torch.Tensor, int, float]:
    """:func:`_admm` on tiles of TILE_CORE^2 pixels, each solved on a window TILE_MARGIN_PSFS PSF sizes (at least
    TILE_MARGIN_MIN pixels) wider with its own unknown boundary; only the cores are kept. Bounded memory, and a
    working set that stays in the CPU's cache. The tiles are independent: on the CPU they are spread over a
    :class:`.threads.TorchThreadPool` (a 4000x3000 RGB photo: 41 s on 2 threads of ours, 68 s with one tile after
    another on torch's two OpenMP threads). Returns (u, most iterations of a tile, largest last change)."""
    margin = max(TILE_MARGIN_MIN, TILE_MARGIN_PSFS * max(psf.shape))
    rows, cols = tiles(f.shape[1], TILE_CORE, margin), tiles(f.shape[2], TILE_CORE, margin)
    if len(rows) * len(cols) == 1:
        u, frame, iterations, change = _admm(f[None], psf, lam, regularizer, max_iter, tol, progress)
        return u[frame][0].clone(), iterations, change
    u = torch.empty_like(f)
    lock, done = threading.Lock(), [0]  # the tiles report from threads of their own

    def solve(tile: tuple) -> tuple[int, float]:
        (top, bottom, core_top, core_bottom), (left, right, core_left, core_right) = tile
        window, frame, iterations, change = _admm(f[None, :, top:bottom, left:right], psf, lam, regularizer,
                                                  max_iter, tol, None)
        u[:, core_top:core_bottom, core_left:core_right] = window[frame][0, :, core_top - top:core_bottom - top,
                                                                         core_left - left:core_right - left]
        with lock:
            done[0] += 1
            if progress is not None:
                progress(done[0], len(rows) * len(cols), {"phase": "deconvolving"})
        return iterations, change

    all_tiles = [(row, col) for row in rows for col in cols]
    with TorchThreadPool(min(TorchThreadPool.threads(f.device), len(all_tiles)), "deconvolve-tile") as pool:
        results = pool.map(solve, all_tiles)
    return u, max(iterations for iterations, _ in results), max(change for _, change in results)


def _admm(f: torch.Tensor, psf: torch.Tensor, lam: float, regularizer: str, max_iter: int, tol: float,
          progress: Optional[ProgressCallback]) -> tuple[torch.Tensor, tuple, int, float]:
    """A batch (N, C, H, W) with one PSF and weight: ADMM of the module docstring, all N stopped together (the RMS
    change is over the batch). Returns (u on the working grid (N, C, grid_h, grid_w), the index of the frame in it,
    iterations, last change)."""
    height, width = f.shape[-2:]
    grid_h, top = working_size(height, psf.shape[0])
    grid_w, left = working_size(width, psf.shape[1])
    frame = (Ellipsis, slice(top, top + height), slice(left, left + width))
    mask = f.new_zeros(grid_h, grid_w)
    mask[frame] = 1.0
    observed = f.new_zeros(*f.shape[:-2], grid_h, grid_w)
    observed[frame] = f
    otf = transfer_function(psf, grid_h, grid_w)
    otf_conj = otf.conj()
    lam = max(lam, 1e-8)
    rho = PENALTY_PER_WEIGHT * lam
    # the u-step's Fourier division (rho multiplies both sides: it cancels); the v-step v = (M f + rho a) / (M + rho)
    # as a * keep + data
    solve = 1.0 / (otf.abs() ** 2 + laplacian_symbol(grid_h, grid_w, f.dtype, f.device))
    keep, data = rho / (mask + rho), observed / (mask + rho)
    exponent = _adaptive_exponent(f, top, left, grid_h, grid_w) if regularizer == "adaptive" else None

    u = F.pad(f, (left, grid_w - width - left, top, grid_h - height - top), mode="replicate")
    v = torch.fft.irfft2(otf * torch.fft.rfft2(u), s=(grid_h, grid_w))
    v_dual = torch.zeros_like(v)
    z = periodic_gradient(u)
    z_dual = torch.zeros_like(z)
    previous, change, iteration = u[frame].clone(), float("inf"), 0
    while iteration < max_iter:
        iteration += 1
        spectrum = torch.fft.rfft2(v - v_dual).mul_(otf_conj)
        spectrum.add_(torch.fft.rfft2(periodic_divergence(z_dual.sub_(z)))).mul_(solve)
        z_dual.add_(z)
        u = torch.fft.irfft2(spectrum, s=(grid_h, grid_w))
        # over-relaxed ADMM (Eckstein & Bertsekas): k * u and grad u enter the v- and z-steps as
        # RELAXATION * new + (1 - RELAXATION) * previous v / z
        a = torch.fft.irfft2(spectrum.mul_(otf), s=(grid_h, grid_w)).mul_(RELAXATION)
        a.add_(v, alpha=1.0 - RELAXATION).add_(v_dual)
        v = torch.addcmul(data, a, keep)
        v_dual = a.sub_(v)
        b = periodic_gradient(u).mul_(RELAXATION).add_(z, alpha=1.0 - RELAXATION).add_(z_dual)
        z = _shrink(b, lam / rho, exponent)
        z_dual = b.sub_(z)
        if iteration % CHECK_EVERY == 0 or iteration == max_iter:
            current = u[frame]
            change = float((current - previous).pow(2).mean().sqrt()) / CHECK_EVERY
            previous = current.clone()
            if progress is not None:
                progress(iteration, max_iter, {"phase": "deconvolving"})
            if change <= tol:
                break
    return u, frame, iteration, change


def _shrink(b: torch.Tensor, threshold: float, exponent: Optional[torch.Tensor]) -> torch.Tensor:
    """The proximal map of threshold * R at b (N, C, 2, H, W), groups over channels and directions: TV's
    b * max(1 - threshold / |b|, 0), or for the adaptive TV, R = s (|g| / s)^p / p with s = ADAPTIVE_SCALE, the
    magnitude t solving threshold (t / s)^(p-1) + t = |b| (16 bisection steps on [0, |b|])."""
    magnitude = b.pow(2).sum(dim=(1, 2), keepdim=True).sqrt_()
    if exponent is None:
        return b * (1.0 - threshold / magnitude.clamp_min(1e-12)).clamp_min_(0.0)
    low, high = torch.zeros_like(magnitude), magnitude.clone()
    power = exponent - 1.0
    for _ in range(16):
        middle = (low + high) / 2
        too_big = threshold * (middle / ADAPTIVE_SCALE).clamp_min(1e-30).pow(power) + middle > magnitude
        high = torch.where(too_big, middle, high)
        low = torch.where(too_big, low, middle)
    return b * ((low + high) / 2 / magnitude.clamp_min(1e-12))


def _adaptive_exponent(f: torch.Tensor, top: int, left: int, grid_h: int, grid_w: int) -> torch.Tensor:
    """p = 1 + 1 / (1 + |grad G|^2) on the working grid, (N, 1, 1, grid_h, grid_w) for f (N, C, H, W), G = f (channel
    mean) smoothed by a Gaussian of 1 pixel, in 8-bit levels; outside the frame p continues the nearest border value."""
    radius = 3
    axis = torch.arange(-radius, radius + 1, dtype=f.dtype, device=f.device)
    line = torch.exp(-axis ** 2 / 2)
    line = line / line.sum()
    gray = f.mean(dim=1, keepdim=True) * 255.0
    smooth = F.conv2d(F.pad(gray, (radius,) * 4, mode="replicate"), (line[:, None] * line[None, :])[None, None])
    gradient = periodic_gradient(smooth)[..., :-1, :-1]
    squared = F.pad(gradient.pow(2).sum(dim=2), (0, 1, 0, 1), mode="replicate")
    exponent = 1.0 + 1.0 / (1.0 + squared)
    height, width = f.shape[-2:]
    return F.pad(exponent, (left, grid_w - width - left, top, grid_h - height - top), mode="replicate")[:, :, None]
