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
from typing import Callable

import torch

#: Finite-difference step of the divergence estimate, in [0, 1] image units (a quarter of an 8-bit level).
EPSILON = 1e-3

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
                   rel_tol: float = 0.05, seed: int = 0) -> float:
    """The parameter in [low, high] with the least Monte-Carlo SURE of ``denoise`` on the images ``y``
    (K, C, H, W) (e.g. a few tiles of one photo), found by golden-section search on a log scale to a factor
    ``1 + rel_tol``. The probe is drawn from ``seed``, so the choice is deterministic."""
    generator = torch.Generator().manual_seed(seed)
    probe = torch.randn(y.shape, generator=generator, dtype=torch.float32).to(y.device)
    best, _ = golden_max(lambda parameter: -mc_sure(denoise, y, parameter, sigma, probe), low, high, rel_tol)
    return best
