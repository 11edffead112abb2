r"""Choosing a denoiser's parameter without the clean image: Stein's unbiased risk estimate.

For Gaussian noise of known sigma, ``y = x + n``, and a denoiser ``u(y)``, Stein's lemma gives an unbiased estimate
of the mean squared error that uses ``y`` alone:
:math:`\mathrm{SURE} = \|u(y) - y\|^2 / n - \sigma^2 + 2\sigma^2\,\mathrm{div}_y u(y) / n`.
The divergence is estimated by Monte Carlo (Ramani, Blu & Unser, "Monte-Carlo SURE", IEEE TIP 2008):
:math:`\mathrm{div} \approx b^\top (u(y + \varepsilon b) - u(y)) / \varepsilon` for one standard normal ``b``.
Minimising SURE over a parameter picks, per image, the value that minimises the true MSE up to the estimate's
spread, which on 256x256 photos is a few hundredths of a dB of PSNR.

Everything here works for any denoiser given as a function of a batch; the caller supplies sigma.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import torch

#: Finite-difference step of the divergence estimate, in [0, 1] image units (a quarter of an 8-bit level).
EPSILON = 1e-3
#: How many evaluations :func:`parabolic_max` typically takes on a SURE curve at rel_tol 0.05 (for progress bars).
TYPICAL_EVALUATIONS = 5

BatchDenoiser = Callable[[torch.Tensor, float], torch.Tensor]  # (batch (N, C, H, W), parameter) -> same shape


def golden_max(score: Callable[[float], float], low: float, high: float, rel_tol: float = 0.01) -> tuple[float,
                                                                                                          float]:
    """Maximise a unimodal ``score`` over [low, high] (both > 0) by golden-section search on a log scale, until the
    bracket is narrower than a factor ``1 + rel_tol``; returns (argument, score) of the best point evaluated."""
    ratio = (math.sqrt(5) - 1) / 2
    a, b = math.log(low), math.log(high)
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = score(math.exp(c)), score(math.exp(d))
    while b - a > rel_tol:
        if fc >= fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = score(math.exp(c))
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = score(math.exp(d))
    return (math.exp(c), fc) if fc >= fd else (math.exp(d), fd)


def parabolic_max(score: Callable[[float], float], low: float, high: float, start: float, rel_tol: float = 0.05,
                  max_evaluations: int = 12) -> tuple[float, float]:
    """Maximise a smooth unimodal ``score`` over [low, high] (both > 0) on a log scale, with few evaluations; returns
    (argument, score) of the best point evaluated.

    Three points around ``start``, a factor 1.25 apart; then, through the best point and its neighbours, the peak of
    the parabola that fits them: evaluated there when the peak lies between them (also when the best point is at an
    end and the peak just inside it: SURE solves cost more the larger the weight, and the next fit goes outward if
    the peak's score disappoints); when the best point is at an end and the peak beyond it, up to twice the last
    spacing beyond it (the same spacing where the parabola has no peak on that side); a golden-section step into the
    wider side where a bracketing parabola has no peak inside. Stops when the next point would lie within a factor
    1 + rel_tol / 2 of the best one, or after ``max_evaluations``. On SURE curves this takes 4-6 evaluations where
    golden-section search over a bracket 4x wide takes 9.
    """
    bounds = (math.log(low), math.log(high))
    scores: dict = {}  # log argument -> score

    def evaluate(t: float) -> bool:
        t = min(max(t, bounds[0]), bounds[1])
        if t in scores:
            return False
        scores[t] = score(math.exp(t))
        return True

    centre, resolution = math.log(start), math.log1p(rel_tol) / 2
    for t in (centre - math.log(1.25), centre, centre + math.log(1.25)):
        evaluate(t)
    while 3 <= len(scores) < max_evaluations:  # fewer than 3 distinct points: a bracket too narrow to search
        ts = sorted(scores)
        i = max(range(len(ts)), key=lambda k: scores[ts[k]])
        first = min(max(i - 1, 0), len(ts) - 3)
        peak = _parabola_peak(*((t, scores[t]) for t in ts[first:first + 3]))
        best = ts[i]
        if 0 < i < len(ts) - 1:
            a, c = ts[i - 1], ts[i + 1]
            if peak is None or not a < peak < c:
                peak = best + 0.382 * ((c - best) if c - best > best - a else (a - best))
            target = peak
        else:
            outward = -1.0 if i == 0 else 1.0
            spacing = abs(best - ts[1 if i == 0 else -2])
            beyond = outward * (peak - best) if peak is not None else -spacing
            if -spacing < beyond < 0:  # the peak lies between the best point and its neighbour: look there first
                target = peak
            else:
                target = best + outward * (min(beyond, 2 * spacing) if beyond > 0 else spacing)
        if abs(target - best) < resolution or not evaluate(target):
            break
    best = max(scores, key=scores.get)
    return math.exp(best), scores[best]


def _parabola_peak(*points: tuple) -> Optional[float]:
    """The argument of the maximum of the parabola through three points (t, score), None if it opens upward."""
    (a, fa), (b, fb), (c, fc) = points
    curvature = ((fc - fb) / (c - b) - (fb - fa) / (b - a)) / (c - a)
    if curvature >= 0:
        return None
    return b - 0.5 * ((b - a) ** 2 * (fb - fc) - (b - c) ** 2 * (fb - fa)) / ((b - a) * (fb - fc) - (b - c) * (fb - fa))


def mc_sure(denoise: BatchDenoiser, y: torch.Tensor, parameter: float, sigma: float, probe: torch.Tensor,
            epsilon: float = EPSILON) -> float:
    """Monte-Carlo SURE (mean squared error per value, [0, 1] units squared) of ``denoise(., parameter)`` on the
    images ``y`` (K, C, H, W) taken together, with ``probe`` a standard normal tensor of the same shape.

    ``y`` and the probed copy go through the denoiser as one batch, so an iterative solver treats both alike.
    """
    k, values = y.shape[0], y.numel()
    both = denoise(torch.cat([y, y + epsilon * probe]), parameter)
    u, u_probed = both[:k], both[k:]
    divergence = float((probe * (u_probed - u)).cpu().double().sum()) / epsilon  # float64 sums (not on MPS)
    residual = float((u - y).cpu().double().pow(2).sum())
    return residual / values - sigma ** 2 + 2 * sigma ** 2 * divergence / values


def sure_parameter(denoise: BatchDenoiser, y: torch.Tensor, sigma: float, low: float, high: float,
                   start: float, rel_tol: float = 0.05, seed: int = 0) -> float:
    """The parameter in [low, high] with the least Monte-Carlo SURE of ``denoise`` on the images ``y``
    (K, C, H, W) (e.g. a few tiles of one photo), found by :func:`parabolic_max` from ``start`` to a factor
    ``1 + rel_tol``. The probe is drawn from ``seed``, so the choice is deterministic."""
    generator = torch.Generator().manual_seed(seed)
    probe = torch.randn(y.shape, generator=generator, dtype=torch.float32).to(y.device)
    best, _ = parabolic_max(lambda parameter: -mc_sure(denoise, y, parameter, sigma, probe), low, high, start,
                            rel_tol)
    return best


def sure_tiles(image: torch.Tensor, side: int) -> torch.Tensor:
    """Up to 2 x 2 tiles of (C, H, W), side^2 (or the image's extent where it is smaller), 2 along an axis of at least
    2 * side pixels, centred in the cells of a regular grid: (K, C, h, w)."""
    _, height, width = image.shape
    tile_h, tile_w = min(side, height), min(side, width)
    rows = 2 if height >= 2 * side else 1
    cols = 2 if width >= 2 * side else 1
    tiles = []
    for row in range(rows):
        for col in range(cols):
            top = min(max(int((row + 0.5) * height / rows) - tile_h // 2, 0), height - tile_h)
            left = min(max(int((col + 0.5) * width / cols) - tile_w // 2, 0), width - tile_w)
            tiles.append(image[:, top:top + tile_h, left:left + tile_w])
    return torch.stack(tiles)
