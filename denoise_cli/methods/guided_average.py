"""A non-local average of the noisy image whose weights come from a first estimate of the clean image (the guide).

For every pixel, the noisy pixels at the centres of the patches within a ``window`` x ``window`` search area are
averaged with weights exp(-d / (h^2 sigma^2)), d the mean squared difference between the two ``patch`` x ``patch``
patches *of the guide* (all channels), sigma the noise level. The pixel's own weight is the largest of the others'
(Buades, Coll & Morel's convention: it never outweighs its best match). Matching on the guide instead of on the
noisy image is the idea of BM3D's second (Wiener) stage: the guide's patches are nearly noise-free, so the matches
are the pixels of truly similar content, and averaging their noisy values removes the noise the guide kept and
restores the detail the guide smoothed away.

The average z of n_eff = (sum w)^2 / sum w^2 effective samples has a noise variance of about sigma^2 / n_eff; the
result is the per-pixel mix (n_eff z + GUIDE_SAMPLES g) / (n_eff + GUIDE_SAMPLES), which trusts the guide g as much
as GUIDE_SAMPLES noisy samples: where a pixel has few matches (fine texture, edges) it stays close to the guide.

It is computed tile by tile over the reflect-padded image, so memory stays bounded and the result does not depend on
the tile size. The settings were calibrated on Kodak 1, 3, 8, 12 (256x256 crops, Gaussian sigma 25 and 50,
Poisson 50) with ZS-N2N's output as the guide (benchmarks/zsn2n_benchmark.py reports the held-out images).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from .base import ProgressCallback

#: Side of the search area and of the compared patches (pixels), and the weight's scale h (units of sigma).
WINDOW = 21
PATCH = 3
SCALE = 0.35
#: How many noisy samples the guide counts for in the final mix.
GUIDE_SAMPLES = 8
#: Output tile side: memory is about WINDOW x channels x (TILE + PATCH - 1)^2 values at a time.
TILE = 256


def guided_average(noisy: torch.Tensor, guide: torch.Tensor, sigma: torch.Tensor,
                   progress: Optional[ProgressCallback] = None) -> torch.Tensor:
    """noisy, guide: (N, C, H, W) on one device; sigma: (N,) noise level of each image in the units of the image.
    Returns the refined (N, C, H, W); ``progress`` hears (tiles done, tiles in all, {"phase": "refining"})."""
    out = torch.empty_like(guide)
    for index in range(noisy.shape[0]):
        out[index:index + 1] = _refine_one(noisy[index:index + 1], guide[index:index + 1], float(sigma[index]),
                                           progress)
    return out


def _refine_one(noisy: torch.Tensor, guide: torch.Tensor, sigma: float,
                progress: Optional[ProgressCallback]) -> torch.Tensor:
    height, width = noisy.shape[-2:]
    margin = WINDOW // 2 + PATCH // 2
    mode = "reflect" if min(height, width) > margin else "replicate"
    noisy_padded = F.pad(noisy, (margin,) * 4, mode=mode)
    guide_padded = F.pad(guide, (margin,) * 4, mode=mode)
    out = torch.empty_like(guide)
    corners = [(top, left) for top in range(0, height, TILE) for left in range(0, width, TILE)]
    for done, (top, left) in enumerate(corners, start=1):
        bottom, right = min(top + TILE, height), min(left + TILE, width)
        rows, cols = slice(top, bottom + 2 * margin), slice(left, right + 2 * margin)
        out[..., top:bottom, left:right] = _refine_tile(noisy_padded[..., rows, cols], guide_padded[..., rows, cols],
                                                         sigma)
        if progress is not None:
            progress(done, len(corners), {"phase": "refining"})
    return out


def _refine_tile(noisy: torch.Tensor, guide: torch.Tensor, sigma: float) -> torch.Tensor:
    """noisy, guide: (1, C, h + 2m, w + 2m) with m = WINDOW // 2 + PATCH // 2 -> the refined (1, C, h, w)."""
    radius, half = WINDOW // 2, PATCH // 2
    height, width = noisy.shape[-2] - 2 * (radius + half), noisy.shape[-1] - 2 * (radius + half)
    inner = guide[0, :, radius:-radius, radius:-radius]  # the guide's patches around each output pixel: (C, h+2p, w+2p)
    centre = noisy[0, :, radius + half:radius + half + height, radius + half:radius + half + width]
    scale = 1.0 / (SCALE * SCALE * max(sigma * sigma, 1e-12))
    total = torch.zeros_like(centre)
    weight_sum = centre.new_zeros((1, height, width))
    weight_squares = torch.zeros_like(weight_sum)
    best = torch.zeros_like(weight_sum)
    span_h, span_w = height + 2 * half, width + 2 * half
    for dy in range(WINDOW):
        shifted = torch.stack([guide[0, :, dy:dy + span_h, dx:dx + span_w] for dx in range(WINDOW)])
        distance = F.avg_pool2d((shifted - inner).square_().mean(1, keepdim=True), PATCH, stride=1)
        weights = torch.exp_(distance.mul_(-scale))  # (WINDOW, 1, h, w)
        if dy == radius:
            weights[radius] = 0  # the pixel itself: weighted below
        values = torch.stack([noisy[0, :, dy + half:dy + half + height, dx + half:dx + half + width]
                              for dx in range(WINDOW)])
        total += (weights * values).sum(0)
        weight_sum += weights.sum(0)
        weight_squares += weights.square().sum(0)
        best = torch.maximum(best, weights.amax(0))
    own = best.clamp_min(1e-12)
    total += own * centre
    weight_sum += own
    weight_squares += own.square()
    effective = weight_sum.square() / weight_squares
    average = total / weight_sum
    guide_centre = inner[:, half:half + height, half:half + width]
    return ((effective * average + GUIDE_SAMPLES * guide_centre) / (effective + GUIDE_SAMPLES))[None]
