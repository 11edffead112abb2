"""Estimating the level of additive white Gaussian noise from the noisy image alone.

The estimator is Chen, Zhu & Heng's statistic on patch principal components ("An efficient statistical method for
image noise level estimation", ICCV 2015): the covariance of all 7x7 patches (all channels together) has, for white
noise of variance s^2 on top of a natural image, a tail of eigenvalues that are s^2 plus a sample-size spread; the
largest set of smallest eigenvalues whose mean is also their median is taken as that tail and its mean as s^2. Unlike
the median absolute deviation of fine wavelet coefficients it is mostly not fooled by texture. On unclipped float
images (the 24 Kodak 256x256 crops) its mean error is -0.01 / +0.01 / -0.07 at sigma 15 / 25 / 50.

Fine texture can still reach the smallest eigenvalues when the patches have few dimensions and the noise is weak: on
gray 256x256 crops of Kodak 1-12 with sigma 2 (8-bit) the statistic read 2.8-10.4, and ``denoise tv`` then lost up
to 13 dB against its noisy input. So a second reading is taken on the *flat* patches (Liu, Tanaka & Okutomi's idea
of weak-textured patches, 2013): the FLAT_FRACTION of patches with the least energy in their low-frequency DCT
coefficients (orders 1 to FLAT_LOW_ORDER), the statistic computed on their remaining, higher-frequency coefficients.
For white noise the two sets of coefficients are independent, so choosing the patches by the first does not bias
the second. It is used when it is under TEXTURED_RATIO of the first reading (texture raised that one), not
otherwise (it has more spread, and flat areas are more often clipped).

Clipping: noise on an 8-bit file is clipped at 0 and 255, and clipped pixels vary less. Patches holding a clipped
value (exactly 0 or 1) are left out when at least half of all patches are free of them; otherwise (strong noise over
dark or bright areas) every patch counts, and the statistic reads the lower, *effective* noise of the clipped data
(on the Kodak crops, 8-bit and clipped: -0.2 / -0.7 / -4.0 on average at sigma 15 / 25 / 50, -13 on the worst).
:func:`estimate_noise` also returns the *underlying* sigma of the Gaussian before clipping: the sigma at which the
clipped-Gaussian standard deviation, averaged in variance over the same patches (each at its own mean value), equals
the effective reading (mean error -0.1 / -0.3 / -0.7 at sigma 15 / 25 / 50 on those crops, -3.7 on the worst).
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F

from .clipping import clipped_sigma_at_mean
from .dct_shrinkage import dct_matrix

#: Patch side, and the most patches used per image (a regular subsample beyond that, for large images).
PATCH = 7
MAX_PATCHES = 1 << 16
#: Leave out patches with clipped values when at least this fraction of patches has none.
MIN_UNCLIPPED_FRACTION = 0.5
#: Levels (of the estimate) whose residuals fit the variance model of :func:`fit_noise_variance`: away from the
#: clipped ends, where the noise's spread shrinks whatever its model.
MODEL_LEVELS = (0.05, 0.95)
#: The most samples that fit it per image (a regular subsample beyond that).
MAX_MODEL_SAMPLES = 1 << 20
#: The flat-patch reading (see the module's note): DCT orders 1..FLAT_LOW_ORDER (u + v, of 7 x 7) choose the patches,
#: the FLAT_FRACTION flattest of them, at least FLAT_PATCHES_PER_DIMENSION per coefficient read; it replaces the
#: reading of all patches when it is under TEXTURED_RATIO of it. Chosen on gray Kodak 1-12 256^2 crops at sigma 2,
#: 10 and 50 among orders 1-3 and 3-10 % of the patches (mean |log error| at sigma 2: 0.24 against 0.39 for order 2
#: and 10 %, 0.94 for the reading of all patches); the floor of 30 per coefficient keeps colour photos' readings.
FLAT_LOW_ORDER, FLAT_FRACTION, FLAT_PATCHES_PER_DIMENSION, TEXTURED_RATIO = 3, 0.03, 30, 0.9
#: Only patches whose level is FLAT_MARGIN_SIGMAS x the first reading from 0 and 1 take part in it: near the
#: bounds, those free of clipped values are the ones whose noise happened to be small.
FLAT_MARGIN_SIGMAS = 3
#: Bisection steps for the underlying sigma: a bracket of [effective, 4 x effective] narrowed to 5e-5 of it.
_BISECTION_STEPS = 16


class NoiseLevel(NamedTuple):
    """Per-image noise sigmas (N,), float64 on the CPU, in the units of the image: ``effective`` is what the clipped
    data show; ``underlying`` is the Gaussian's sigma before clipping (equal to it when nothing is near 0 or 1)."""

    effective: torch.Tensor
    underlying: torch.Tensor


def estimate_sigma(x: torch.Tensor) -> torch.Tensor:
    """The effective noise sigma of each image of (N, C, H, W) in [0, 1] (see :func:`estimate_noise`): (N,)."""
    return estimate_noise(x).effective


def estimate_noise(x: torch.Tensor) -> NoiseLevel:
    """Effective and underlying noise sigma of each image of (N, C, H, W) in [0, 1], in the same units.

    Images smaller than the 7x7 patch raise ValueError.
    """
    if x.dim() != 4:
        raise ValueError(f"expected (N, C, H, W), got shape {tuple(x.shape)}")
    n, channels, h, w = x.shape
    if h < PATCH or w < PATCH:
        raise ValueError(f"cannot estimate noise on a {h}x{w} image (needs {PATCH}x{PATCH})")
    positions = (h - PATCH + 1) * (w - PATCH + 1)
    stride = max(1, int((positions / MAX_PATCHES) ** 0.5 + 0.999))
    effective, underlying = [], []
    for image in x:
        # float64 on the CPU (which MPS lacks)
        patches = F.unfold(image[None].float(), PATCH, stride=stride)[0].cpu().double()
        free = ((patches > 0) & (patches < 1)).all(dim=0)  # the patches with no clipped value
        sigma, unclipped = _reading(patches[:, free] if float(free.double().mean()) >= MIN_UNCLIPPED_FRACTION
                                    else patches, channels)
        flat_sigma = _flat_reading(patches, channels, float(unclipped))
        if flat_sigma is not None and flat_sigma < TEXTURED_RATIO * unclipped:
            sigma, unclipped = flat_sigma, flat_sigma  # its patches lie far from 0 and 1: nothing clipped
        effective.append(sigma)
        underlying.append(unclipped)
    return NoiseLevel(torch.stack(effective), torch.stack(underlying))


def _reading(patches: torch.Tensor, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(effective, underlying) sigma of float64 patches (C * 49, L), the clipping model on the patches' own levels:
    two float64 scalars."""
    sigma = _pca_sigma(patches)
    patch_means = patches.view(channels, PATCH * PATCH, -1).mean(dim=1)  # (C, L): each channel's level
    return sigma, _unclipped_sigma(sigma, patch_means)


def _flat_reading(patches: torch.Tensor, channels: int, sigma: float) -> Optional[torch.Tensor]:
    """Chen et al.'s statistic on the higher-frequency DCT coefficients of the flattest patches (D, L) (see the
    module's note) whose levels lie FLAT_MARGIN_SIGMAS x ``sigma`` from 0 and 1 in every channel: a float64 scalar,
    or None where too few patches are left."""
    low, high = _frequency_split(channels)
    levels = patches.view(channels, PATCH * PATCH, -1).mean(dim=1)
    margin = FLAT_MARGIN_SIGMAS * sigma
    patches = patches[:, ((levels > margin) & (levels < 1 - margin)).all(dim=0)]
    least = FLAT_PATCHES_PER_DIMENSION * high.shape[0]
    if patches.shape[1] < least:
        return None
    count = min(patches.shape[1], max(least, int(FLAT_FRACTION * patches.shape[1])))
    flattest = (low @ patches).pow(2).sum(dim=0).topk(count, largest=False).indices
    return _pca_sigma(high @ patches[:, flattest])


def _frequency_split(channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Orthonormal 2-D DCT-II rows for patches of ``channels`` x PATCH x PATCH values (channel-major, as unfold
    gives them), float64: (low, high), the coefficients of orders u + v in 1..FLAT_LOW_ORDER and above it."""
    basis = dct_matrix(PATCH)
    basis = torch.kron(basis, basis)  # rows: frequencies (u, v) row-major; columns: positions row-major
    k = torch.arange(PATCH)
    order = (k[:, None] + k[None]).flatten()
    low = basis[(order >= 1) & (order <= FLAT_LOW_ORDER)]
    high = basis[order > FLAT_LOW_ORDER]
    return torch.block_diag(*[low] * channels), torch.block_diag(*[high] * channels)


class NoiseVariance(NamedTuple):
    """The Poisson-Gaussian model of one image's noise: variance ``slope * v + offset`` at level v (units of the
    image squared), and ``signal_share``, the part of the variance that grows with the signal at the mean level, in
    [0, 1]: about 0 for Gaussian noise, about 1 for photon (Poisson) noise."""

    slope: float
    offset: float
    signal_share: float


def fit_noise_variance(noisy: torch.Tensor, estimate: torch.Tensor) -> list[NoiseVariance]:
    """The noise model of each image of (N, C, H, W): the squared residual (noisy - estimate)^2 of every sample,
    fitted by least squares with a v + b in the level v of the estimate there (levels within MODEL_LEVELS; up to
    MAX_MODEL_SAMPLES samples per image, a regular subsample beyond). A model of slope 0, offset 0 and share 0 where
    too few levels fit."""
    models = []
    for image, guess in zip(noisy, estimate):
        stride = max(1, guess.numel() // MAX_MODEL_SAMPLES)  # a regular subsample of large images
        level = guess.flatten()[::stride].cpu().double()
        power = (image - guess).flatten()[::stride].cpu().double().square()
        keep = (level > MODEL_LEVELS[0]) & (level < MODEL_LEVELS[1])
        level, power = level[keep], power[keep]
        if level.numel() < 2 or float(level.var()) == 0:
            models.append(NoiseVariance(0.0, 0.0, 0.0))
            continue
        slope = ((level - level.mean()) * (power - power.mean())).mean() / (level - level.mean()).square().mean()
        offset = power.mean() - slope * level.mean()  # the least-squares line power = slope level + offset
        growing = slope * level.mean()
        share = (growing / (growing + offset).clamp_min(1e-300)).clamp(0, 1)
        models.append(NoiseVariance(float(slope), float(offset), float(share)))
    return models


def _pca_sigma(patches: torch.Tensor) -> torch.Tensor:
    """Chen et al.'s estimate from float64 patches (D, L) (one column per patch): a float64 scalar."""
    patches = patches - patches.mean(dim=1, keepdim=True)
    eigenvalues = torch.linalg.eigvalsh(patches @ patches.T / max(patches.shape[1] - 1, 1))  # ascending
    for count in range(eigenvalues.numel(), 0, -1):
        tail = eigenvalues[:count]
        tail_mean = tail.mean()
        if int((tail > tail_mean).sum()) == int((tail < tail_mean).sum()):
            break
    return tail_mean.clamp_min(0).sqrt()


def _unclipped_sigma(effective: torch.Tensor, patch_means: torch.Tensor) -> torch.Tensor:
    """The sigma whose clipped noise, averaged in variance over patches at the levels ``patch_means``, has the
    ``effective`` sigma (the clipped variance grows with sigma, so bisection finds it): a float64 scalar."""
    target = float(effective)
    if target <= 0:
        return effective
    low, high = target, 4 * target
    for _ in range(_BISECTION_STEPS):
        middle = 0.5 * (low + high)
        if float(clipped_sigma_at_mean(patch_means, middle).pow(2).mean()) < target ** 2:
            low = middle
        else:
            high = middle
    return torch.tensor(0.5 * (low + high), dtype=torch.float64)
