r"""Blind deconvolution: finding the blur kernel from the blurred image alone.

:func:`estimate_psf` is coarse to fine (kernel sizes from about 5 pixels up to the requested size, scale steps of
sqrt 2) and alternates at each scale between

- a sharp *latent* image: min_x ||k * x - y||^2 + w ||grad x||_0, the L0 gradient prior solved by half-quadratic
  splitting (Xu, Lu, Xu & Jia 2011; as used for deblurring by Pan, Hu, Su & Yang 2014). Only strong edges survive,
  which is what makes the kernel identifiable (with a TV or Gaussian prior the blurred image itself is the best
  "sharp" image and the kernel collapses to a single point);
- the kernel: min_k ||k * grad x - grad y||^2 + gamma ||k||^2 on its support, by conjugate gradients with the
  operator applied in the Fourier domain, then made non-negative, small entries (under 1/20 of the peak; 1/40 in
  four more alternations that end the finest scale, so that the faint parts of a long shake stay) cleared, and
  normalised to sum 1. Only the latent's strongest gradients take part (Cho & Lee 2009, as in Pan et al.'s
  code): those above a threshold set on the coarsest blurred image so that each of four gradient directions keeps
  20 x the kernel size of pixels, lowered by 1.1 each alternation. The fit is over the image itself, not the
  padding (see below): the padding's taper is no blur of anything, and fitting it drew the kernel away from the
  true one (from the true kernel, ten alternations on Levin's capture 4-4 raised the error ratio to 4.1 with it,
  2.9 without). In half of the runs (see :data:`RUNS`) the kernel is also cut to its connected pieces
  that carry at least a tenth of its mass, as in Pan et al.'s code: specks apart from the main path are noise, and
  left alone they let the kernel spread into a blob on textured photos. Between scales the kernel is shifted by
  whole pixels so that its centre of mass is at the centre, so that a drifting kernel is not cut by its support.

The image is worked on in gray (the channel mean; stretched to a spread of TARGET_SPREAD when it has under
LOW_SPREAD, see :func:`stretched`), padded by one kernel size and tapered to its mean so that the periodic Fourier
model of the latent step sees no false edge at the frame. The final image is then restored with the found kernel
by the non-blind :func:`.deconvolution.tv_deconvolve`.

The project origin's baseline, Chan & Wong's scheme, is :mod:`.chan_wong`; it shares the kernel helpers here.
"""
from __future__ import annotations

import math
import threading
from typing import Optional

import torch
import torch.nn.functional as F

from .base import ProgressCallback
from .deconvolution import tv_deconvolve
from .operators import laplacian_symbol, periodic_divergence, periodic_gradient
from .psf import transfer_function
from .threads import TorchThreadPool

#: The kernel is estimated on at most the centre ESTIMATION_WINDOW x ESTIMATION_WINDOW pixels of an image: a 12 Mpx
#: photo's kernel then takes about 40 s on 2 cores. Smaller windows lose accuracy (Kodak 14/17/20/23, three Levin
#: kernels: 24.5 dB on 384^2 windows against 23.2 on 256^2); 1024 against the whole image was not measured.
ESTIMATION_WINDOW = 1024
#: The coarsest kernel is about this many pixels across; scales step by sqrt(2).
COARSEST_KERNEL = 5
SCALE_STEP = math.sqrt(0.5)
#: Alternations per scale; the L0 weight starts at LATENT_WEIGHT and shrinks by LATENT_DECAY per alternation down
#: to LATENT_WEIGHT_MIN (Pan et al.'s schedule).
ALTERNATIONS = 5
LATENT_WEIGHT, LATENT_DECAY, LATENT_WEIGHT_MIN = 4e-3, 1.1, 1e-4
#: Half-quadratic splitting: the penalty starts at 2 w and doubles up to this.
SPLITTING_MAX = 1e5
#: Kernel step: Tikhonov weight and conjugate-gradient iterations; entries under PEAK_FRACTION of the peak are cleared.
KERNEL_WEIGHT, KERNEL_CG_STEPS, PEAK_FRACTION = 2.0, 20, 1 / 20
#: The finest scale ends with FINAL_ALTERNATIONS more alternations that clear only entries under FINAL_PEAK_FRACTION
#: of the peak. The 1/20 cut, needed while the kernel takes shape (1/40 at every scale: ratio <= 2 on 20 of the 32
#: Levin captures against 24), also cuts the faint parts of a long shake: Levin's kernels 6 and 7 lose 6-9 % of their
#: mass under it, and even the true kernel cut so restores up to 1.9x worse. The finish at 1/40 (2-4 %, 1.0-1.14x):
#: Levin set ratio <= 2 / 3 on 25 / 31 against 23 / 30 (benchmarks/deblur_levin.py; 26 / 31 against 24 / 30 in the
#: harness that compared the variants, which differs only in the array layout of the input: the estimate is chaotic
#: in the last bits); Kodak 14/17/20/23 blurred by Levin's kernels (held out) 8 / 15 against 4 / 13. In the harness,
#: the last of the five alternations at 1/40 instead gave 25 / 31, and two finishing steps at 1/30, 1/40 or 1/60
#: gave 25 / 31, 24 / 30 and 22 / 28.
FINAL_ALTERNATIONS, FINAL_PEAK_FRACTION = 4, 1 / 40
#: Gradient selection for the kernel step: each of four direction bins keeps at least SELECTED_PER_KERNEL_PIXEL x the
#: coarsest kernel size of pixels above the first threshold, which is divided by THRESHOLD_DECAY each alternation.
SELECTED_PER_KERNEL_PIXEL, THRESHOLD_DECAY = 20, 1.1
#: A value of a deconvolution counts as out of range beyond [0, 1] by more than RANGE_MARGIN; kernels are compared
#: by the share of such values in steps of RING_SHARE_STEP (:func:`choose_kernel`).
RANGE_MARGIN, RING_SHARE_STEP = 0.01, 0.001
#: A gray image whose spread (between its STRETCH_QUANTILE and 1 - STRETCH_QUANTILE quantiles) is under LOW_SPREAD
#: is stretched to TARGET_SPREAD for the estimate: the spreads of Levin's captures, where the weights were set, are
#: 0.63-0.81. Stretching the Kodak crops of benchmarks/deblur_levin.py --held-out 13,16,19,22 with spreads 0.55-0.6
#: to 0.6 turned one good kernel bad (the estimate is chaotic), so only images clearly out of that range are.
STRETCH_QUANTILE, LOW_SPREAD, TARGET_SPREAD = 0.001, 0.4, 0.6


def scale_sizes(psf_size: int) -> list[int]:
    """Odd kernel sizes from coarse to fine, the last equal to ``psf_size`` rounded up to odd."""
    levels = max(int(math.floor(math.log(COARSEST_KERNEL / psf_size) / math.log(SCALE_STEP))), 0) + 1
    sizes = []
    for level in range(levels):
        size = int(math.ceil(psf_size * SCALE_STEP ** level))
        sizes.append(size + (size % 2 == 0))
    return sizes[::-1]


def estimate_psf(x: torch.Tensor, psf_size: int, progress: Optional[ProgressCallback] = None) -> torch.Tensor:
    """The blur kernel (psf_size, psf_size) (rounded up to odd), float64, non-negative, sum 1, of one blurred image
    (1, C, H, W) in [0, 1]. ``progress`` hears of each alternation (phase "estimating the blur").

    The alternation has local minima: it is run from two starts, with and without pruning the kernel to its main
    connected pieces (:data:`RUNS`), and one of the four kernels is kept by :func:`choose_kernel`. On the Levin set
    the two starts gave ratio <= 3 on 28 of 32 captures against 25 and 26 for either alone; the pruned runs added to
    them keep that (28) and, on Kodak photos blurred by Levin's kernels, raised the mean from 27.9 to 29.7 dB (ratio
    <= 3 on 18 of 32 against 11). Four more starts (vertical and diagonal segments, with and without pruning) did not
    help.

    An image larger than ESTIMATION_WINDOW on a side is estimated on its centre window of that size (the blur is
    taken to be the same over the frame): the time grows with the pixels (about 40 s for 1024^2 on 2 CPU cores).
    """
    height, width = x.shape[-2:]
    top, left = max((height - ESTIMATION_WINDOW) // 2, 0), max((width - ESTIMATION_WINDOW) // 2, 0)
    gray = stretched(x[0, :, top:top + ESTIMATION_WINDOW, left:left + ESTIMATION_WINDOW].float().mean(dim=0))
    steps = {"done": 0, "all": len(RUNS) * (len(scale_sizes(psf_size)) * ALTERNATIONS + FINAL_ALTERNATIONS)}
    lock = threading.Lock()  # the runs report from threads of their own

    def step() -> None:
        with lock:
            steps["done"] += 1
            if progress is not None:
                progress(steps["done"], steps["all"], {"phase": "estimating the blur"})

    with TorchThreadPool(min(TorchThreadPool.threads(gray.device), len(RUNS)), "blind-run") as pool:
        found = pool.map(lambda run: _coarse_to_fine(gray, psf_size, *run, step), RUNS)
        return choose_kernel(gray, found, pool).double()


def stretched(gray: torch.Tensor) -> torch.Tensor:
    """``gray`` (H, W), when its spread (see LOW_SPREAD) is under LOW_SPREAD, mapped affinely to TARGET_SPREAD around
    0.5; else unchanged. A blur kernel sums to 1, so k * (a x + b) = a (k * x) + b: the kernel of the stretched image
    is the kernel of the image, and the estimate's weights see about the contrast they were set at."""
    low, high = (float(q) for q in torch.quantile(gray.flatten().double(), torch.tensor(
        [STRETCH_QUANTILE, 1 - STRETCH_QUANTILE], dtype=torch.float64, device=gray.device)))
    if high - low >= LOW_SPREAD or high <= low:
        return gray
    return 0.5 + (gray - (low + high) / 2) * (TARGET_SPREAD / (high - low))


def choose_kernel(gray: torch.Tensor, found: list, pool: Optional[TorchThreadPool] = None) -> torch.Tensor:
    """Of the (kernel, final objective) pairs ``found`` for the gray image (H, W), the kernel whose deconvolution of
    the image (the non-blind pass with the rule weight, as the final one) rings least: the fewest values out of range
    (:func:`ring_share`, in steps of RING_SHARE_STEP), then the lowest objective.

    A wrong kernel's deconvolution rings, and the objective alone does not see it: the lowest objective of the four
    runs gave error ratio <= 1.5 / 2 / 3 on 18 / 25 / 31 of Levin's 32 captures and 32.65 dB, this choice 20 / 26 / 31
    and 32.84 dB (the best of the four: 22 / 28 / 31, 33.21 dB); on Kodak photos blurred by Levin's kernels
    (benchmarks/deblur_levin.py --held-out, 32 each) 31.34 -> 31.62 dB on 14/17/20/23 and 26.35 -> 26.73 on
    13/16/19/22 (a /tmp harness with the SURE-searched weight, 2026-12-04). The exact share (no steps) chose as well
    on Levin's set but worse on the textured photos (26.64 dB, two more outputs below their inputs). The restorations
    run on ``pool``'s threads when given."""
    if len(found) == 1:
        return found[0][0]

    def score(candidate: tuple) -> tuple[int, float]:
        kernel, objective = candidate
        restored, _ = tv_deconvolve(gray[None, None], kernel, search=False)
        return round(ring_share(restored, max(kernel.shape)) / RING_SHARE_STEP), objective

    scores = (pool or TorchThreadPool(1)).map(score, found)
    return found[scores.index(min(scores))][0]


def ring_share(restored: torch.Tensor, border: int) -> float:
    """The share of the values of a deconvolution ``restored`` (N, C, H, W), of an image in [0, 1], that lie beyond
    [0, 1] by more than RANGE_MARGIN, inside a border of ``border`` pixels (the kernel's size) where one is left."""
    height, width = restored.shape[-2:]
    if min(height, width) > 4 * border:
        restored = restored[..., border:height - border, border:width - border]
    out_of_range = (restored < -RANGE_MARGIN) | (restored > 1 + RANGE_MARGIN)
    return float(out_of_range.double().mean())


def _coarse_to_fine(gray: torch.Tensor, psf_size: int, start, prune: bool, step) -> tuple[torch.Tensor, float]:
    """One run of the scheme of the module docstring from the kernel ``start(size, like)``, its kernel cut to its
    main connected pieces at each step when ``prune``: (kernel, the final objective on the finest scale)."""
    sizes = scale_sizes(psf_size)
    height, width = gray.shape
    weight = LATENT_WEIGHT
    kernel, threshold = None, None
    for level, size in enumerate(sizes):
        scale = SCALE_STEP ** (len(sizes) - 1 - level)
        shape = (max(round(height * scale), 2 * size), max(round(width * scale), 2 * size))
        observed = gray if scale == 1 else F.interpolate(gray[None, None], size=shape, mode="bilinear",
                                                          align_corners=False, antialias=True)[0, 0]
        if kernel is None:
            kernel, threshold = start(size, gray), gradient_threshold(observed, size)
        else:
            kernel = _resize_kernel(recentre(kernel), size)
        observed = _pad_and_taper(observed, size)
        inside = (..., slice(size, -size), slice(size, -size))  # the image without its padding
        observed_gradient = periodic_gradient(observed)[inside]
        finest = level == len(sizes) - 1
        cuts = [PEAK_FRACTION] * ALTERNATIONS + [FINAL_PEAK_FRACTION] * (FINAL_ALTERNATIONS if finest else 0)
        for peak_fraction in cuts:
            latent = _l0_latent(observed, kernel, weight)
            latent_gradient = periodic_gradient(latent)[inside]
            latent_gradient = latent_gradient * (latent_gradient.pow(2).sum(dim=0) >= threshold)
            kernel = clean_kernel(_kernel_step(latent_gradient, observed_gradient, kernel), kernel, peak_fraction)
            if prune:
                kernel = keep_main_components(kernel)
            weight = max(weight / LATENT_DECAY, LATENT_WEIGHT_MIN)
            threshold /= THRESHOLD_DECAY
            step()
    kernel = recentre(kernel)
    latent = _l0_latent(observed, kernel, weight)
    height, width = observed.shape
    residual = torch.fft.irfft2(transfer_function(kernel, height, width) * torch.fft.rfft2(latent), s=(height, width))
    edges = (periodic_gradient(latent).pow(2).sum(dim=0) > EDGE_FLOOR).sum()
    return kernel, float((residual - observed).pow(2).sum() + weight * edges)


def gradient_threshold(image: torch.Tensor, kernel_size: int) -> float:
    """The squared gradient magnitude above which each of four direction bins of ``image`` (H, W) (forward
    differences; directions in [0, 45), [45, 90], [-45, 0), [-90, -45) degrees) keeps at least
    SELECTED_PER_KERNEL_PIXEL x ``kernel_size`` pixels (Cho & Lee 2009); 0 (keep all) when a bin has fewer."""
    dy, dx = periodic_gradient(image)[:, :-1, :-1]  # without the wrapped-around last row and column
    magnitude = dx.pow(2) + dy.pow(2)
    slope = dy / dx  # +-inf or nan for vertical or zero gradients; nan compares false and joins no bin
    quarter = math.pi / 4
    angle = torch.atan(slope)
    bins = ((angle >= 0) & (angle < quarter), angle >= quarter, (angle >= -quarter) & (angle < 0), angle < -quarter)
    needed = SELECTED_PER_KERNEL_PIXEL * kernel_size
    threshold = float("inf")
    for in_bin in bins:
        values = magnitude[in_bin]
        if values.numel() < needed:
            return 0.0
        threshold = min(threshold, float(values.topk(needed).values[-1]))
    return threshold


def recentre(kernel: torch.Tensor) -> torch.Tensor:
    """``kernel`` (h, w), non-negative with sum 1, shifted by whole pixels so that its centre of mass is nearest the
    centre of its support; what leaves the support is dropped and the rest renormalised to sum 1."""
    height, width = kernel.shape
    rows = torch.arange(height, dtype=kernel.dtype, device=kernel.device)
    columns = torch.arange(width, dtype=kernel.dtype, device=kernel.device)
    down = round((height - 1) / 2 - float(kernel.sum(dim=1) @ rows))
    right = round((width - 1) / 2 - float(kernel.sum(dim=0) @ columns))
    if down == 0 and right == 0:
        return kernel
    shifted = torch.zeros_like(kernel)
    shifted[max(down, 0):height + min(down, 0), max(right, 0):width + min(right, 0)] = \
        kernel[max(-down, 0):height - max(down, 0), max(-right, 0):width - max(right, 0)]
    return shifted / shifted.sum()


def _segment_start(size: int, like: torch.Tensor) -> torch.Tensor:
    """A short horizontal segment at the centre: Pan et al.'s start (a point would be a fixed point)."""
    kernel = like.new_zeros(size, size)
    kernel[size // 2, size // 2 - 1: size // 2 + 1] = 0.5
    return kernel


def box_start(size: int, like: torch.Tensor) -> torch.Tensor:
    """A centred 3x3 box: no direction favoured."""
    kernel = like.new_zeros(size, size)
    kernel[size // 2 - 1: size // 2 + 2, size // 2 - 1: size // 2 + 2] = 1 / 9
    return kernel


#: The runs of :func:`estimate_psf`: (starting kernel of the coarsest scale, whether the kernel is pruned to its
#: main connected pieces); the result with the lowest objective is kept.
RUNS = tuple((start, prune) for prune in (False, True) for start in (_segment_start, box_start))
#: Pruning keeps the 8-connected pieces of the kernel's support that carry at least this share of its mass.
COMPONENT_MIN_MASS = 0.1
#: A latent gradient counts as an edge in the L0 term above this squared magnitude.
EDGE_FLOOR = 1e-8


def _pad_and_taper(image: torch.Tensor, size: int) -> torch.Tensor:
    """(H, W) -> (H + 2 size, W + 2 size): edge-replicated, then blended linearly to the mean over the padding."""
    padded = F.pad(image[None, None], (size,) * 4, mode="replicate")[0, 0]
    ramp = torch.linspace(0, 1, size, dtype=image.dtype, device=image.device)
    window = torch.ones_like(padded)
    window[:size] *= ramp[:, None]
    window[-size:] *= ramp.flip(0)[:, None]
    window[:, :size] *= ramp[None]
    window[:, -size:] *= ramp.flip(0)[None]
    return window * padded + (1 - window) * image.mean()


def _l0_latent(observed: torch.Tensor, kernel: torch.Tensor, weight: float) -> torch.Tensor:
    """min_x ||k * x - y||^2 + weight ||grad x||_0 on the periodic grid of ``observed`` (H, W), by half-quadratic
    splitting: the penalty beta doubles from 2 weight to SPLITTING_MAX; each step hard-thresholds the gradient
    (|g|^2 < weight / beta -> 0) and solves for x in the Fourier domain."""
    height, width = observed.shape
    otf = transfer_function(kernel, height, width)
    blurred_term = otf.conj() * torch.fft.rfft2(observed)
    otf_power = otf.abs() ** 2
    laplacian = laplacian_symbol(height, width, observed.dtype, observed.device)
    latent = observed
    beta = 2 * weight
    while beta < SPLITTING_MAX:
        gradient = periodic_gradient(latent)
        gradient = gradient * (gradient.pow(2).sum(dim=0) >= weight / beta)
        numerator = blurred_term - beta * torch.fft.rfft2(periodic_divergence(gradient))
        latent = torch.fft.irfft2(numerator / (otf_power + beta * laplacian), s=(height, width))
        beta *= 2
    return latent


def _kernel_step(latent_gradient: torch.Tensor, observed_gradient: torch.Tensor,
                 start: torch.Tensor) -> torch.Tensor:
    """min_k sum_d ||k * (grad x)_d - (grad y)_d||^2 + KERNEL_WEIGHT ||k||^2 over kernels of ``start``'s support,
    by KERNEL_CG_STEPS conjugate-gradient steps from ``start``."""
    height, width = latent_gradient.shape[-2:]
    kh, kw = start.shape
    latent_f = torch.fft.rfft2(latent_gradient)
    normal = latent_f.abs().pow(2).sum(dim=0)
    correlation = (latent_f.conj() * torch.fft.rfft2(observed_gradient)).sum(dim=0)

    def crop(full_f: torch.Tensor) -> torch.Tensor:
        return kernel_from_spectrum(full_f, height, width, kh, kw)

    def apply(kernel: torch.Tensor) -> torch.Tensor:
        return crop(normal * transfer_function(kernel, height, width)) + KERNEL_WEIGHT * kernel

    kernel = start.clone()
    residual = crop(correlation) - apply(kernel)
    direction = residual.clone()
    power = residual.pow(2).sum()
    for _ in range(KERNEL_CG_STEPS):
        image = apply(direction)
        step = power / (direction * image).sum().clamp_min(1e-30)
        kernel = kernel + step * direction
        residual = residual - step * image
        new_power = residual.pow(2).sum()
        direction = residual + new_power / power.clamp_min(1e-30) * direction
        power = new_power
    return kernel


def kernel_from_spectrum(spectrum: torch.Tensor, height: int, width: int, kh: int, kw: int) -> torch.Tensor:
    """The (kh, kw) kernel centred at the origin of the periodic (height, width) signal whose rfft2 is ``spectrum``
    (the inverse of :func:`.psf.transfer_function`'s placement)."""
    full = torch.fft.irfft2(spectrum, s=(height, width))
    return torch.roll(full, (kh // 2, kw // 2), (0, 1))[:kh, :kw]


def clean_kernel(kernel: torch.Tensor, previous: torch.Tensor, peak_fraction: float = PEAK_FRACTION) -> torch.Tensor:
    """Non-negative, entries under ``peak_fraction`` of the peak cleared, sum 1; ``previous`` if nothing is left."""
    kernel = kernel.clamp_min(0)
    if float(kernel.max()) <= 0:
        return previous
    kernel = torch.where(kernel < kernel.max() * peak_fraction, torch.zeros_like(kernel), kernel)
    return kernel / kernel.sum()


def keep_main_components(kernel: torch.Tensor) -> torch.Tensor:
    """``kernel`` (h, w), non-negative with sum 1, less its 8-connected pieces of support (non-zero entries) that
    carry under COMPONENT_MIN_MASS of its mass (the heaviest piece always stays), renormalised to sum 1."""
    labels = _component_labels(kernel > 0)
    pieces, piece_of = torch.unique(labels, return_inverse=True)
    mass = torch.zeros(len(pieces), dtype=kernel.dtype, device=kernel.device).index_add_(
        0, piece_of.flatten(), kernel.flatten())
    mass[pieces == 0] = 0  # label 0 is the background
    keep = (mass >= COMPONENT_MIN_MASS) | (mass == mass.max())
    kept = torch.where(keep[piece_of], kernel, torch.zeros_like(kernel))
    return kept / kept.sum()


def _component_labels(support: torch.Tensor) -> torch.Tensor:
    """The 8-connected components of a boolean (h, w) mask: each True entry labelled with the largest flat index + 1
    in its component (so the labels are distinct per component), False entries 0. The largest label spreads to the
    8 neighbours until nothing changes (as many steps as the longest path inside a piece: a kernel is small)."""
    labels = torch.arange(1, support.numel() + 1, dtype=torch.float32, device=support.device).view(support.shape)
    labels = labels * support
    while True:
        spread = F.max_pool2d(labels[None, None], 3, stride=1, padding=1)[0, 0] * support
        if torch.equal(spread, labels):
            return labels.long()
        labels = spread


def _resize_kernel(kernel: torch.Tensor, size: int) -> torch.Tensor:
    """The kernel carried to the next scale: bilinear resize to (size, size), non-negative, sum 1."""
    resized = F.interpolate(kernel[None, None], size=(size, size), mode="bilinear", align_corners=True)[0, 0]
    resized = resized.clamp_min(0)
    return resized / resized.sum()
